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
    assert (after.returncode, after.stdout, after.stderr) == (
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


def test_apply_shows_a_diff_backs_up_and_installs_then_undo(home: Path, fake_crontab) -> None:
    path_env, store = fake_crontab
    original = (GOLDEN / "user.crontab").read_text()
    store.write_text(original)
    env = cw_env(home, **path_env)
    result = cronwrap(home, "wrap", "--apply", "--cronwrap", "/usr/local/bin/cronwrap", env=env)
    assert result.returncode == 0, result.stderr
    assert "+*/5 * * * * /usr/local/bin/cronwrap run --name sync" in result.stdout
    assert store.read_text() == (GOLDEN / "user.wrapped").read_text()
    backups = list((home / "crontab-backups").iterdir())
    assert len(backups) == 1 and backups[0].read_text() == original
    assert oct(backups[0].stat().st_mode & 0o777) == "0o600"
    again = cronwrap(home, "wrap", "--apply", "--cronwrap", "/usr/local/bin/cronwrap", env=env)
    assert "nothing to wrap" in again.stdout
    undo = cronwrap(home, "wrap", "--undo", env=env)
    assert undo.returncode == 0, undo.stderr
    assert store.read_text() == original


def test_wrap_reads_the_users_crontab_by_default(home: Path, fake_crontab) -> None:
    path_env, store = fake_crontab
    store.write_text("0 1 * * * /bin/true\n")
    result = cronwrap(home, "wrap", "--cronwrap", "cronwrap", env=cw_env(home, **path_env))
    assert (
        result.stdout == "0 1 * * * cronwrap run --name true --schedule '0 1 * * *' -- /bin/true\n"
    )


def test_undo_without_backup_is_an_error(home: Path) -> None:
    result = cronwrap(home, "wrap", "--undo")
    assert result.returncode == 1 and result.stderr.startswith("cronwrap: nothing to undo")
