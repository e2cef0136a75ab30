"""`cronwrap lint` over real crontab files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cronwrap.cli.app import cli
from cronwrap.cron.crontab import parse_crontab, wrapped_run
from cronwrap.cron.lint import lint_crontab

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
    result = CliRunner().invoke(cli, ["lint", str(good)])
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad"
    bad.write_text("61 * * * * /bin/true\n")
    result = CliRunner().invoke(cli, ["lint", str(good), str(bad)])
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
