"""`cronwrap lint` over real crontab files."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cronwrap.cli.app import cli
from cronwrap.cron.crontab import parse_crontab, wrapped_run
from cronwrap.cron.lint import lint_crontab
from tests.conftest import cw_env

USER_TAB = """\
SHELL=/bin/sh
MAILTO=ops@example.com
# every 15 minutes
*/15 * * * * /usr/local/bin/cronwrap run --name sync -- /usr/local/bin/sync.sh
0 2 * * * /usr/local/bin/backup > /tmp/backup-$(date +%F).log
"""


def lint_text(text: str, *, source: str = "tab", system: bool = False) -> list:
    return lint_crontab(parse_crontab(text, source=source, system=system))


def codes(findings: list) -> list[str]:
    return [f.code for f in findings]


def test_clean_wrapped_crontab_has_no_errors() -> None:
    findings = lint_text(
        "PATH=/usr/local/bin:/usr/bin:/bin\n*/15 * * * * cronwrap run --name sync -- sync.sh\n"
    )
    assert findings == []


def test_a_run_line_with_a_config_option_counts_as_wrapped() -> None:
    findings = lint_text(
        "PATH=/usr/bin:/bin\n0 2 * * * cronwrap --config /etc/cw.yaml run --name b -- backup\n"
    )
    assert "unwrapped" not in codes(findings) and "no-name" not in codes(findings)


def test_findings_carry_line_col_severity_code() -> None:
    findings = lint_text(USER_TAB)
    [pct] = [f for f in findings if f.code == "percent"]
    assert (pct.line, pct.severity) == (5, "warning")
    assert USER_TAB.splitlines()[4][pct.col - 1] == "%"
    assert str(pct).startswith("tab:5:")
    assert "unwrapped" in codes(findings)


@pytest.mark.parametrize(
    ("text", "code", "severity"),
    [
        ("61 * * * * /bin/true\n", "schedule", "error"),
        ("0 0 30 2 * /bin/true\n", "never-fires", "error"),
        ("* 2 * * * /bin/true\n", "every-minute-in-hour", "warning"),
        ("0 0 * * * /bin/true", "no-final-newline", "error"),
        ("PATH=$HOME/bin:/usr/bin\n", "env-expansion", "warning"),
        ("CRON_TZ=Mars/Base\n", "bad-tz", "error"),
        ("CRON_TZ=Europe/Berlin\n", "cron-tz", "info"),
        ("TZ=Europe/Berlin\n", "tz-line", "info"),
        ("this is not cron\n", "syntax", "error"),
        ("0 0 * * * date +%F\n", "percent", "warning"),
        ("0 0 * * *\n", "no-command", "error"),
        ("0 0 1 1 * * /bin/x\n", "bad-command", "error"),
        ("@daily cronwrap run -- /bin/x\n", "no-name", "info"),
        ("0 0 * * * backup.sh\n", "relative-command", "info"),
        (
            "0 0 * * * cronwrap run --name a -- x\n1 0 * * * cronwrap run --name a -- y\n",
            "duplicate-name",
            "warning",
        ),
    ],
)
def test_each_check(text: str, code: str, severity: str) -> None:
    found = [f for f in lint_text(text) if f.code == code]
    assert found, codes(lint_text(text))
    assert found[0].severity == severity


def test_system_format_needs_a_user(tmp_path: Path) -> None:
    findings = lint_text("0 0 * * * root /usr/bin/backup\n", system=True)
    assert "no-user" not in codes(findings) and "unwrapped" in codes(findings)
    assert "no-user" in codes(lint_text("@daily\n", system=True)) or "no-command" in codes(
        lint_text("@daily\n", system=True)
    )


def test_cron_d_names_with_dots_are_ignored_by_cron() -> None:
    findings = lint_text("0 0 * * * root /bin/x\n", source="/etc/cron.d/backup.cron", system=True)
    assert "cron-d-name" in codes(findings)
    ok = lint_text("0 0 * * * root /bin/x\n", source="/etc/cron.d/backup", system=True)
    assert "cron-d-name" not in codes(ok)


def test_cron_tz_applies_to_following_lines() -> None:
    tab = parse_crontab(
        "CRON_TZ=Europe/Berlin\n0 2 * * * x\nCRON_TZ=UTC\n0 3 * * * y\n", source="t", system=False
    )
    assert [j.tz for j in tab.jobs] == ["Europe/Berlin", "UTC"]


def test_wrapped_run_reads_name_and_schedule() -> None:
    run = wrapped_run("/usr/bin/cronwrap run --name=db --schedule '0 2 * * *' -- pg_dump")
    assert run is not None and (run.name, run.schedule) == ("db", "0 2 * * *")
    assert wrapped_run("/usr/bin/backup") is None


def test_cli_lint_files_stdin_json_and_exit_status(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("PATH=/usr/bin:/bin\n0 2 * * * cronwrap run --name b -- backup\n")
    result = CliRunner().invoke(cli, ["lint", "--no-check-programs", str(good)])
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad"
    bad.write_text("61 * * * * /bin/true\n")
    result = CliRunner().invoke(cli, ["lint", "--no-check-programs", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:1:1: error:" in result.stdout
    result = CliRunner().invoke(cli, ["lint", "--json", "-"], input="0 0 * * * x %\n")
    doc = json.loads(result.stdout)
    assert {"file", "line", "col", "severity", "code", "message"} == set(doc[0])
    assert doc[0]["file"] == "-"


def test_cli_lint_missing_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["lint", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.stderr.startswith("cronwrap: cannot read")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet="0123456789*/-, @abcdemnorstuyCRON_TZ=%#\\\"'", max_size=30), max_size=6
    ).map("\n".join)
)
def test_lint_never_crashes(text: str) -> None:
    result = CliRunner().invoke(cli, ["lint", "-"], input=text)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 1)


# ---------------------------------------------------------------- the `cronwrap run` options

CONSOLE_SCRIPT = str(Path(sys.executable).parent / "cronwrap")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        ("--nmae y -- /bin/true", "run-option", ["--nmae", "did you mean --name?"]),
        ("--name y --timeout 10min -- /bin/true", "run-value", ["--timeout 10min", "duration"]),
        ("--name y --retries many -- /bin/true", "run-value", ["--retries many"]),
        ("--name y --on-overlap never -- /bin/true", "run-value", ["skip, wait, allow"]),
        ("--name 'a/b' -- /bin/true", "run-value", ["--name a/b"]),
        ("--name y --quiet=yes -- /bin/true", "run-option", ["does not take a value"]),
        ("--name y --timeout", "run-option", ["requires an argument"]),
    ],
    ids=["unknown", "bad-duration", "bad-int", "bad-choice", "bad-name", "flag-value", "no-value"],
)
def test_run_options_are_checked_by_runs_own_parser(args: str, code: str, words: list) -> None:
    findings = lint_text(f"PATH=/usr/bin:/bin\n0 2 * * * cronwrap run {args}\n")
    found = [f for f in findings if f.code == code]
    assert found and found[0].severity == "error", codes(findings)
    for word in words:
        assert word in found[0].message, found[0].message


def test_secret_values_are_not_shown() -> None:
    findings = lint_text("0 2 * * * cronwrap run --name y --ping-body-limit x --ping-key s3cr3t\n")
    assert all("s3cr3t" not in f.message for f in findings)


@pytest.mark.parametrize(
    "args",
    [
        "--nmae y -- /bin/echo ran",
        "--name y --timeout 10min -- /bin/echo ran",
        "--name y --timeout 10min /bin/echo ran",
        "--nmae y echo ran",
    ],
)
def test_what_lint_says_about_a_run_line_is_what_run_does(home: Path, args: str) -> None:
    """The effect lint states (exit 125, or the option left out) is what happens."""
    [finding] = [
        f for f in lint_text(f"0 2 * * * cronwrap run {args}\n") if f.code.startswith("run-")
    ]
    result = subprocess.run(
        [CONSOLE_SCRIPT, "run", *shlex.split(args)],
        capture_output=True,
        text=True,
        env=cw_env(home),
        check=False,
        timeout=60,
    )
    if "exits 125" in finding.message:
        assert (result.returncode, result.stdout) == (125, ""), result.stderr
    else:
        assert "leaves it out" in finding.message
        assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr


# ---------------------------------------------------------------- commands on this machine


@pytest.fixture
def progs(tmp_path: Path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, mode in [("job", 0o755), ("plain-file", 0o644), ("mine-only", 0o744)]:
        (bindir / name).write_text("#!/bin/sh\n")
        (bindir / name).chmod(mode)
    return bindir


def program_findings(text: str, *, system: bool = False) -> list[tuple[str, str]]:
    tab = parse_crontab(text, source="t", system=system)
    return [
        (f.code, f.message)
        for f in lint_crontab(tab, check_programs=True)
        if f.code in ("not-found", "not-executable", "unknown-user")
    ]


def test_commands_are_looked_up_with_the_lines_path(progs: Path) -> None:
    cw = CONSOLE_SCRIPT
    ok = f"PATH={progs}:/usr/bin:/bin\n0 2 * * * {cw} run --name a -- job --all\n"
    assert program_findings(ok) == []
    [(code, message)] = program_findings(f"0 2 * * * {cw} run --name a -- job --all\n")
    assert code == "not-found" and "with PATH=/usr/bin:/bin" in message and "127" in message
    [(code, message)] = program_findings(f"0 2 * * * {cw} run --name a -- {progs}/plain-file\n")
    assert code == "not-executable" and "126" in message
    [(code, _)] = program_findings(f"0 2 * * * {cw} run --name a -- {progs}/gone\n")
    assert code == "not-found"
    # --env PATH=... and --cwd are what the command is started with
    assert program_findings(f"0 2 * * * {cw} run --name a --env PATH={progs} -- job\n") == []
    assert program_findings(f"0 2 * * * {cw} run --name a --cwd {progs} -- ./job\n") == []
    # through a shell: its first program
    shell_line = f"0 2 * * * {cw} run --name a --shell -- 'nosuchprog | cat'\n"
    assert [c for c, _ in program_findings(shell_line)] == ["not-found"]
    bash_line = f"SHELL=/bin/bash\n0 2 * * * {cw} run --name a -- /bin/bash -c 'cd / && job'\n"
    assert program_findings(bash_line) == []  # `cd` is the shell's own
    # unwrapped lines too
    assert [c for c, _ in program_findings("0 2 * * * nosuchprog --x\n")] == ["not-found"]


def test_cronwrap_itself_and_the_shell_must_exist(progs: Path) -> None:
    [(code, message)] = program_findings("0 2 * * * cronwrap run --name a -- /bin/true\n")
    assert code == "not-found" and message.startswith("cronwrap itself, cronwrap: not found")
    [(code, message)] = program_findings(
        f"SHELL=/bin/nosuchshell\n0 2 * * * {CONSOLE_SCRIPT} run --name a -- /bin/true\n"
    )
    assert code == "not-found" and message.startswith("SHELL /bin/nosuchshell")


def test_commands_are_checked_for_the_lines_user(progs: Path) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    if me == "nobody":
        pytest.skip("needs a user other than nobody")
    line = f"0 2 * * * {{user}} {progs}/mine-only\n"
    assert program_findings(line.format(user=me), system=True) == []
    [(code, message)] = program_findings(line.format(user="nobody"), system=True)
    assert code == "not-executable" and "for user nobody" in message
    [(code, _)] = program_findings(line.format(user="no-such-user-x"), system=True)
    assert code == "unknown-user"


def test_cli_lint_system_reads_the_system_crontabs_in_system_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, progs: Path
) -> None:
    etc = tmp_path / "etc"
    (etc / "cron.d").mkdir(parents=True)
    (etc / "crontab").write_text(f"PATH=/usr/bin:/bin\n17 * * * * root {progs}/job\n")
    (etc / "cron.d" / "backup").write_text("0 2 * * * root /bin/true\n")
    paths = [str(etc / "crontab"), str(etc / "cron.d" / "backup")]
    import cronwrap.cron.crontab

    # the only stand-in: where /etc is (the test must not write the machine's /etc)
    monkeypatch.setattr(cronwrap.cron.crontab, "system_crontab_paths", lambda: paths)
    monkeypatch.setenv("PATH", f"{tmp_path / 'nocrontab'}")  # `crontab -l` must not be run
    result = CliRunner().invoke(cli, ["lint", "--system", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert {f["file"] for f in found} == set(paths)
    assert {f["code"] for f in found} == {"unwrapped"}  # the user field is read as one
    assert {(f["file"], f["col"]) for f in found} == {(paths[0], 17), (paths[1], 16)}
