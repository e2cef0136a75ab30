"""The one table renderer (status and history), the one duration formatter, and defaults shown
as users write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronwrap.cli.common import default_text
from cronwrap.config import parse_duration, parse_size
from cronwrap.options import OPTIONS_BY_NAME, RUN_OPTIONS
from cronwrap.views.humanize import duration, size
from tests.conftest import ROOT, cronwrap, cw_env


def test_history_is_a_plain_table_without_a_terminal(home: Path) -> None:
    for code in (0, 3):
        cronwrap(home, "run", "--name", "h", "--", "sh", "-c", f"exit {code}")
    out = cronwrap(home, "history", "h")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "STARTED",
        "DURATION",
        "RESULT",
        "ATTEMPTS",
        "EXIT",
        "HOST",
        "RUN",
        "ID",
    ]
    assert "\x1b[" not in out.stdout
    newest, oldest = lines[1], lines[2]
    assert " failed " in newest and newest.split()[-3] == "3"  # EXIT column
    assert " success " in oldest and oldest.split()[-3] == "0"


def test_history_colours_on_request_and_fits_the_width(home: Path) -> None:
    cronwrap(home, "run", "--name", "h", "--", "sh", "-c", "exit 3")
    coloured = cronwrap(home, "history", "h", "--color", "always")
    assert "\x1b[1;31mfailed" in coloured.stdout  # the result in bold red
    narrow = cronwrap(home, "history", "h", env=cw_env(home, COLUMNS="60"))
    assert narrow.returncode == 0
    assert all(len(line) <= 60 for line in narrow.stdout.splitlines()), narrow.stdout


def test_history_does_not_import_rich(home: Path) -> None:
    import subprocess
    import sys

    cronwrap(home, "run", "--name", "h", "--", "true")
    probe = (
        "import sys; from cronwrap.__main__ import main\n"
        "try: main(['history', 'h'])\n"
        "except SystemExit: pass\n"
        "print('rich' in sys.modules, file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=cw_env(home), check=False
    )
    assert out.stderr.strip().splitlines()[-1] == "False", out.stderr


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.001, "1ms"),
        (0.0025, "2.5ms"),
        (0.25, "0.25s"),
        (5, "5s"),
        (42, "42s"),
        (303, "5m3s"),
        (600, "10m"),
        (7500, "2h5m"),
        (86400 * 3 + 3600 * 4, "3d4h"),
    ],
)
def test_one_duration_formatter_writes_what_the_parser_reads(seconds: float, text: str) -> None:
    assert duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("n", "text"), [(512, "512"), (65536, "64KiB"), (10485760, "10MiB")])
def test_sizes_as_users_write_them(n: int, text: str) -> None:
    assert size(n) == text and parse_size(text) == n


def test_defaults_are_shown_as_users_write_them() -> None:
    shown = {o.name: default_text(o) for o in RUN_OPTIONS}
    assert shown["lock_wait"] == "10m"
    assert shown["max_log_size"] == "10MiB"
    assert shown["ok_exit_codes"] == "0"
    assert shown["slow_factor"] == "3"
    assert shown["timeout"] is None  # no default: nothing to show
    for name, text in shown.items():  # every shown default reads back as the default
        opt = OPTIONS_BY_NAME[name]
        if text is None:
            continue
        if opt.kind == "duration":
            assert parse_duration(text) == opt.default, name
        elif opt.kind == "size":
            assert parse_size(text) == opt.default, name


def test_exit_code_ranges_are_compressed() -> None:
    from cronwrap.options import Option

    opt = Option("x", "codes", frozenset({0, 24, 100, 101, 102}), "")
    assert default_text(opt) == "0,24,100-102"


def test_man_pages_show_no_python_reprs() -> None:
    for page in ("cronwrap.yaml.5", "cronwrap-run.1"):
        text = (ROOT / "man" / page).read_text()
        for repr_ in ("frozenset", "600.0", "10485760", "('*TOKEN*'"):
            assert repr_ not in text, (page, repr_)


def test_relative_times_are_coarse() -> None:
    from datetime import datetime, timedelta, timezone

    from cronwrap.views.humanize import relative

    now = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    assert relative(now + timedelta(minutes=12, seconds=58), now) == "in 12m"
    assert relative(now - timedelta(seconds=5.7), now) == "5s ago"
    assert relative(now + timedelta(hours=3, minutes=2, seconds=9), now) == "in 3h2m"
    assert relative(now + timedelta(days=2, hours=1, minutes=30), now) == "in 2d1h"
    assert relative(now - timedelta(days=800), now) == "2 years ago"


def test_status_table_draws_each_pass_of_a_repeated_hour_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The table draws each instant once for all jobs: two instants with one wall time (the
    repeated hour of a DST change) must still be drawn apart, CEST and CET."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from cronwrap.views.jobstatus import JobStatus
    from cronwrap.views.table import render_status

    monkeypatch.setenv("TZ", "Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)
    second = first.replace(fold=1)
    jobs = [
        JobStatus("a", schedule="30 2 * * *", next_run=first),
        JobStatus("b", schedule="30 2 * * *", next_run=second),
    ]
    now = datetime(2026, 10, 24, 12, 0, tzinfo=timezone.utc)
    text = render_status(jobs, now, width=160, color=False, terminal=False)
    line_a = next(ln for ln in text.splitlines() if ln.startswith("a "))
    line_b = next(ln for ln in text.splitlines() if ln.startswith("b "))
    assert "02:30 CEST" in line_a and "02:30 CET" in line_b


def test_printable_removes_escapes_and_controls() -> None:
    from cronwrap.views.humanize import printable

    assert printable("a\n\x1b[31mb") == "a b"
    assert printable("\x1b]0;pwned\x07x\x1b]52;c;QUFB\x1b\\y\x1bPq\x1b\\z") == "xyz"
    assert printable("c\x9b31mr\x9d0;t\x07s\x1b(B\x7f\x00") == "crs"
    assert printable("l1\r\n\x1b[2Jl2", multiline=True) == "l1\nl2"
    assert printable("a\tb") == "a       b"
    assert printable("k\x00\x07", keep="\x00") == "k\x00"


def test_status_history_and_failed_print_no_escape_from_stored_text(
    home: Path, tmp_path: Path
) -> None:
    """A host id, a reason and an output tail holding an OSC (window title), colour codes and
    a newline reach the terminal as plain text: status, history and failed alike."""
    from datetime import datetime, timedelta, timezone

    from cronwrap.config import ensure_dir, resolve_paths
    from cronwrap.state.store import Store

    paths = resolve_paths({"CRONWRAP_HOME": str(home)})
    ensure_dir(paths.state_dir)
    at = datetime.now(timezone.utc) - timedelta(minutes=1)
    with Store.open(paths.db_file) as store:
        store.record_start(
            run_id="evil-run", job="evil", host="a\n\x1b[31mb\x1b]0;pwned\x07", pid=1,
            command="true", started_at=at, schedule=None, tz=None, log_path=None,
        )  # fmt: skip
        store.record_end(
            run_id="evil-run", ended_at=at + timedelta(seconds=1), status="failed",
            exit_code=3, signal=None, attempts=1, duration_s=1.0,
            output_tail="first\n\x1b]0;pwned\x07visible\x1b[2J\n", reason="boom\x1b]0;pwned\x07",
        )  # fmt: skip
    env = cw_env(home, COLUMNS="200")
    for args in (["status", "--crontab", "/dev/null"], ["history"], ["failed"]):
        result = cronwrap(home, *args, env=env)
        assert result.returncode in (0, 1), result.stderr
        for bad in ("\x1b", "\x07", "pwned"):
            assert bad not in result.stdout, (args, result.stdout)
        assert "a b" in result.stdout, (args, result.stdout)
    failed = cronwrap(home, "failed", env=env)
    assert "  | visible" in failed.stdout and "reason: boom" in failed.stdout, failed.stdout
