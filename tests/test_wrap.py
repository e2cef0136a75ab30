"""`cronwrap wrap` over real-world crontabs: golden outputs, idempotence, same behaviour under
cron's own `%` rules, and --apply/--undo with a fake `crontab` on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cronwrap.cron.crontab import parse_crontab, wrapped_run
from cronwrap.cron.wrap import job_name, unwrap_crontab, wrap_crontab
from tests.conftest import ROOT, cronwrap, cw_env

GOLDEN = ROOT / "tests" / "golden"
CONSOLE_SCRIPT = str(Path(sys.executable).parent / "cronwrap")  # the installed program
CRONWRAP = [sys.executable, "-m", "cronwrap"]
CASES = [("user", False), ("system", True), ("crond", True)]


@pytest.mark.parametrize(("name", "system"), CASES)
def test_golden(name: str, system: bool) -> None:
    text = (GOLDEN / f"{name}.crontab").read_text()
    out = wrap_crontab(
        text, parse_crontab(text, source=name, system=system), cronwrap="/usr/local/bin/cronwrap"
    )
    assert out == (GOLDEN / f"{name}.wrapped").read_text()


@pytest.mark.parametrize(("name", "system"), CASES)
def test_wrapping_twice_changes_nothing(name: str, system: bool) -> None:
    text = (GOLDEN / f"{name}.wrapped").read_text()
    again = wrap_crontab(
        text, parse_crontab(text, source=name, system=system), cronwrap="/usr/local/bin/cronwrap"
    )
    assert again == text


@pytest.mark.parametrize(("name", "system"), CASES)
def test_every_job_is_wrapped_and_the_rest_is_untouched(name: str, system: bool) -> None:
    before = parse_crontab((GOLDEN / f"{name}.crontab").read_text(), source=name, system=system)
    after = parse_crontab((GOLDEN / f"{name}.wrapped").read_text(), source=name, system=system)
    assert [ln.kind for ln in before.lines] == [ln.kind for ln in after.lines]
    for old, new in zip(before.lines, after.lines, strict=True):
        if old.kind != "job":
            assert old.text == new.text
        else:
            assert old.schedule == new.schedule and old.user == new.user
            assert wrapped_run(new.command) is not None
    names = [wrapped_run(j.command).name for j in after.jobs]  # type: ignore[union-attr]
    assert len(names) == len(set(names))


def test_lines_wrapped_with_a_config_option_are_not_wrapped_again() -> None:
    line = "0 5 * * * /opt/cw/bin/cronwrap --config /etc/cw.yaml run --name x -- /bin/x\n"
    assert wrap_crontab(line, parse_crontab(line, source="t", system=False)) == line
    run = wrapped_run(line)
    assert run is not None and (run.name, run.config) == ("x", "/etc/cw.yaml")
    assert wrapped_run("cronwrap --config=/etc/cw.yaml --debug run -- /bin/x") is not None
    assert wrapped_run("cronwrap status --json") is None


def test_undo_restores_only_what_wrap_changed_and_keeps_hand_edits() -> None:
    before = (GOLDEN / "user.crontab").read_text()
    after = (GOLDEN / "user.wrapped").read_text()
    lines = after.split("\n")
    sync = next(i for i, ln in enumerate(lines) if "--name sync " in ln)
    hand = lines[sync] = lines[sync].replace("--name sync ", "--name sync --timeout 5m ")
    lines.insert(3, "MAILFROM=cron@example.com")  # hand-added lines, anywhere
    lines.insert(-1, "1 1 * * * /usr/local/bin/added-by-hand")
    current = "\n".join(lines)
    undone, edited = unwrap_crontab(current, before=before, after=after)
    out = undone.split("\n")
    assert "MAILFROM=cron@example.com" in out and "1 1 * * * /usr/local/bin/added-by-hand" in out
    assert hand in out and edited == [sync + 2]  # kept, and said so (1-based, after the insert)
    assert "0 3 * * * /usr/local/bin/cronwrap run --name already -- /usr/local/bin/rotate" in out
    added = {"MAILFROM=cron@example.com", "1 1 * * * /usr/local/bin/added-by-hand"}
    expected = before.split("\n")
    expected[sync] = hand
    assert [ln for ln in out if ln not in added] == expected


def test_names_are_readable_and_unique() -> None:
    taken: set[str] = set()
    assert job_name("/usr/local/bin/backup.sh --all", taken) == "backup"
    assert job_name("/usr/local/bin/backup.sh --db", taken) == "backup-2"
    assert job_name("cd /srv && ./manage.py clearsessions", taken) == "manage"
    assert job_name("/usr/bin/php /var/www/cron.php", taken) == "php-cron"
    assert job_name("LANG=C flock -n /tmp/x /opt/x/run", taken) == "run"


def cron_exec(
    command: str, env: dict[str, str], shell: str = "/bin/sh"
) -> subprocess.CompletedProcess[str]:
    """Run a crontab command as cron does: `$SHELL -c`, where an unescaped % ends the command
    and the rest, with % as newlines, is its stdin; \\% is a literal %."""
    cmd, stdin, i = "", None, 0
    while i < len(command):
        if command[i] == "\\" and command[i + 1 : i + 2] == "%":
            cmd += "%"
            i += 2
            continue
        if command[i] == "%":
            stdin = command[i + 1 :].replace("%", "\n")
            break
        cmd += command[i]
        i += 1
    return subprocess.run(
        [shell, "-c", cmd],
        input=stdin or "",
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


SH_LINES = [
    "echo hello world",
    "printf '%s\\n' \"quoted  arg\" | tr a-z A-Z",
    "date -u -d @0 +\\%F",
    "cat%line one%line two",
    "tr a-z A-Z%shout this",
    "echo one && echo two; echo three > /dev/stderr",
    "X=5; echo $X $((X * 2))",
    "echo $0",
]
BASH_LINES = [
    "echo {a,b} $((1<<3))",
    "[[ -n x && 3 -gt 2 ]] && echo yes",
    "[[ abc == a* ]]; echo $?",
    "cat <<< 'here string'",
    "echo ${BASH_VERSION\\%\\%.*} | tr 0-9 N",
    "arr=(x y z); echo ${#arr[@]} ${arr[1]}%stdin unused",
    "echo $0",
    "/bin/echo plain words",
]
SHELLS = [("/bin/sh", c) for c in SH_LINES] + [("/bin/bash", c) for c in BASH_LINES]


@pytest.mark.parametrize(("shell", "command"), SHELLS, ids=[f"{s}: {c}" for s, c in SHELLS])
def test_wrapped_command_behaves_the_same_under_cron(home: Path, shell: str, command: str) -> None:
    """The original and the wrapped command, each run as cron runs it under the crontab's
    SHELL, print the same and exit the same."""
    tab = f"SHELL={shell}\n* * * * * {command}\n"
    exe = str(Path(sys.executable).parent / "cronwrap")  # the installed console script
    wrapped = wrap_crontab(tab, parse_crontab(tab, source="t", system=False), cronwrap=exe)
    new_command = parse_crontab(wrapped, source="t", system=False).jobs[0].command
    assert wrapped_run(new_command) is not None
    env = cw_env(home, SHELL=shell)
    before = cron_exec(command, env, shell)
    after = cron_exec(new_command, env, shell)
    assert before.returncode == 0 or shell == "/bin/sh", before.stderr  # bash lines are valid
    # what cronwrap adds is its own one line for a run that failed, nothing else
    own = [ln for ln in after.stderr.splitlines(keepends=True) if ln.startswith("cronwrap: ")]
    assert len(own) == (0 if before.returncode == 0 else 1), after.stderr
    job_stderr = "".join(ln for ln in after.stderr.splitlines(keepends=True) if ln not in own)
    assert (after.returncode, after.stdout, job_stderr) == (
        before.returncode,
        before.stdout,
        before.stderr,
    )


# ---------------------------------------------------------------- --apply and --undo


@pytest.fixture
def fake_crontab(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `crontab` on PATH that keeps the installed crontab in a file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "installed"
    script = bindir / "crontab"
    script.write_text(f"""#!/bin/sh
if [ "$1" = "-l" ]; then
  [ -f {store} ] || {{ echo "no crontab for $USER" >&2; exit 1; }}
  cat {store}
elif [ "$1" = "-" ]; then
  cat > {store}
else
  exit 2
fi
""")
    script.chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}, store


def backups(home: Path) -> list[Path]:
    folder = home / "crontab-backups"
    return sorted(folder.glob("*.crontab")) if folder.is_dir() else []


def golden_installed(home: Path, fake_crontab) -> tuple[dict[str, str], Path, str]:
    """The golden user crontab installed in the fake `crontab`: env, its store, the text."""
    path_env, store = fake_crontab
    original = (GOLDEN / "user.crontab").read_text()
    store.write_text(original)
    return cw_env(home, **path_env), store, original


def test_apply_shows_a_diff_backs_up_and_installs_then_undo(home: Path, fake_crontab) -> None:
    env, store, original = golden_installed(home, fake_crontab)
    result = cronwrap(home, "wrap", "--apply", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert f"+*/5 * * * * {CONSOLE_SCRIPT} run --name sync" in result.stdout
    tab = parse_crontab(original, source="t", system=False)
    assert store.read_text() == wrap_crontab(original, tab, cronwrap=CONSOLE_SCRIPT)
    missing = cronwrap(home, "wrap", "--apply", "--cronwrap", "/no/cronwrap", env=env)
    assert missing.returncode == 2 and "not an executable here" in missing.stderr
    [backup] = backups(home)
    assert backup.read_text() == original
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    again = cronwrap(home, "wrap", "--apply", "--yes", "--cronwrap", CONSOLE_SCRIPT, env=env)
    assert again.returncode == 0 and "nothing to change" in again.stdout
    undo = cronwrap(home, "wrap", "--undo", "--yes", env=env)
    assert undo.returncode == 0, undo.stderr
    assert store.read_text() == original
    assert len(backups(home)) == 2  # the undo is an install too: the wrapped one is kept
    assert cronwrap(home, "wrap", "--undo", "--yes", env=env).returncode == 1  # done once


def test_undo_after_a_hand_edit_keeps_the_edit(home: Path, fake_crontab) -> None:
    env, store, _ = golden_installed(home, fake_crontab)
    apply = cronwrap(home, "wrap", "--apply", "--yes", env=env)
    assert apply.returncode == 0, apply.stderr
    # the operator adds a job by hand (`crontab -e`) and tunes a wrapped one
    edited = store.read_text().replace("--name sync ", "--name sync --timeout 4m ")
    store.write_text(edited + "5 5 * * * /usr/local/bin/added-by-hand\n")
    undo = cronwrap(home, "wrap", "--undo", "--yes", env=env)
    assert undo.returncode == 0, undo.stderr
    now = store.read_text()
    assert now.endswith("5 5 * * * /usr/local/bin/added-by-hand\n")
    assert "--name sync --timeout 4m" in now and "line 7 was wrapped by --apply" in undo.stderr
    assert "30 2 * * * pg_dump -Fc app" in now  # the other jobs are bare again
    assert "--name already" in now  # wrapped before wrap ran: stays
    assert len([ln for ln in now.splitlines() if wrapped_run(ln)]) == 3  # sync, already, other


def test_apply_asks_on_a_terminal_and_refuses_without_one(home: Path, fake_crontab) -> None:
    path_env, store = fake_crontab
    store.write_text("0 1 * * * /bin/true\n")
    env = cw_env(home, **path_env)
    result = cronwrap(home, "wrap", "--apply", env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "add --yes" in result.stderr and "+0 1 * * *" in result.stdout
    assert store.read_text() == "0 1 * * * /bin/true\n" and backups(home) == []
    for answer, code, installed in [("n", 1, False), ("y", 0, True)]:
        output, status = on_a_terminal([*CRONWRAP, "wrap", "--apply"], answer, env)
        assert status == code, output
        assert "install this crontab?" in output
        assert ("cronwrap run --name true" in store.read_text()) is installed


def on_a_terminal(argv: list[str], answer: str, env: dict[str, str]) -> tuple[str, int]:
    """Run argv with a pseudo-terminal as stdin and stdout, answer its question."""
    import pty

    parent, child = pty.openpty()
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    output = b""
    answered = False
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if b"install this crontab?" in output and not answered:
            os.write(parent, answer.encode() + b"\n")
            answered = True
    os.close(parent)
    return output.decode(errors="replace"), proc.wait(timeout=60)


def test_wrap_writes_the_absolute_path_of_the_installed_program(home: Path, fake_crontab) -> None:
    path_env, store = fake_crontab
    store.write_text("0 1 * * * /bin/true\n")
    result = cronwrap(home, "wrap", env=cw_env(home, **path_env))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"0 1 * * * {CONSOLE_SCRIPT} run --name true --schedule '0 1 * * *' -- /bin/true\n"
    )
    relative = cronwrap(home, "wrap", "--cronwrap", "cronwrap", env=cw_env(home, **path_env))
    assert relative.returncode == 2 and "not an absolute path" in relative.stderr


def test_a_pyenv_shim_is_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cronwrap.cli import crontab as cli_crontab
    from cronwrap.errors import CronwrapError

    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "cronwrap"
    shim.write_text('#!/usr/bin/env bash\nexec "/root/.pyenv/libexec/pyenv" exec cronwrap "$@"\n')
    shim.chmod(0o755)
    # as if started through the shim by an interpreter that has no cronwrap beside it
    monkeypatch.setattr(sys, "argv", [str(shim), "wrap"])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python" / "bin" / "python3"))
    monkeypatch.setenv("PATH", str(shims))
    with pytest.raises(CronwrapError, match="give its absolute path with --cronwrap"):
        cli_crontab._cronwrap_program(None, installing=True)
    real = tmp_path / "venv" / "bin" / "cronwrap"
    real.parent.mkdir(parents=True)
    real.write_text("#!/opt/venv/bin/python3\n")
    real.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{real.parent}")
    monkeypatch.setattr(sys, "argv", [str(real), "wrap"])  # what the shim execs in the end
    assert cli_crontab._cronwrap_program(None, installing=True) == str(real)


def test_undo_without_backup_is_an_error(home: Path) -> None:
    result = cronwrap(home, "wrap", "--undo")
    assert result.returncode == 1 and result.stderr.startswith("cronwrap: nothing to undo")


def test_wrap_prints_the_crontab_byte_for_byte(home: Path, tmp_path: Path) -> None:
    """Off a terminal click dropped what looked like colour codes from the wrapped crontab:
    a command printing ESC [1m lost it, and CRON_TZ=<ESC>[2JEvil came out CRON_TZ=Evil."""
    tab = tmp_path / "tab"
    tab.write_bytes(b'CRON_TZ=\x1b[2JEvil\n0 5 * * * /bin/echo "\x1b[1mbold\x1b[0m"\n')
    r = cronwrap(home, "wrap", str(tab))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "CRON_TZ=\x1b[2JEvil"
    assert "\x1b[1mbold\x1b[0m" in r.stdout
