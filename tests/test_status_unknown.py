"""`status` when it cannot read the store at all (a corrupt SQLite file, a state dir the
reader cannot look into, a fleet store nobody answers for): stdout says nothing that could
be read as "no jobs, all fine" — no table, no `[]` — the dashboard says the status is
unknown and why, and `--watch` shows the reason until the store reads again."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cronwrap.errors import ExitCode
from tests.conftest import cronwrap, cw_env, popen_cronwrap
from tests.pgserver import PASSWORD, free_port

GARBAGE = b"this is not a database, just some bytes\n" * 250


def corrupt_store(home: Path) -> Path:
    """A real run store cronwrap cannot read: bytes that are no SQLite database."""
    home.mkdir(mode=0o750)
    db = home / "runs.db"
    db.write_bytes(GARBAGE)
    return db


def status(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return cronwrap(home, "status", "--crontab", "/dev/null", *args, env=env, timeout=30)


def one_unknown_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == ExitCode.UNKNOWN, (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("cronwrap: status unknown: "), line
    assert all(w in line for w in words), line
    return line


READERS = [
    pytest.param([], id="table"),
    pytest.param(["--json"], id="json"),
    pytest.param(["--failed"], id="failed"),
    pytest.param(["--failed", "--json"], id="failed-json"),
    pytest.param(["--job", "backup"], id="job"),
    pytest.param(["--job", "backup", "--json"], id="job-json"),
    pytest.param(["--host", "db1", "--json"], id="host-json"),
]


@pytest.mark.parametrize("args", READERS)
def test_a_corrupt_store_prints_nothing_on_stdout(home: Path, args: list[str]) -> None:
    """It printed "0 jobs listed." or `[]` (and for --job, a row saying no job of that name is
    in the run store, which it never read)."""
    corrupt_store(home)
    result = status(home, *args)
    one_unknown_line(result, "run store", "damaged")
    assert result.stdout == ""


@pytest.fixture
def unreadable_home(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A store with a failed run in a state dir the reader cannot search (0700, another
    user's; as root, read as nobody through setpriv); the command prefix to read it with."""
    if os.geteuid() != 0:
        home = tmp_path / "home"
        cronwrap(home, "run", "--name", "bad", "--", "false")
        home.chmod(0o600)
        yield home, []
        home.chmod(0o750)
        return
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to read as another user")
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        base.chmod(0o711)
        home = base / "home"
        cronwrap(home, "run", "--name", "bad", "--", "false")
        home.chmod(0o700)
        yield home, ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize("args", [[], ["--json"]], ids=["table", "json"])
def test_a_store_the_reader_cannot_look_into_prints_nothing(
    unreadable_home: tuple[Path, list[str]], args: list[str]
) -> None:
    home, reader = unreadable_home
    cmd = [*reader, sys.executable, "-m", "cronwrap", "status", "--crontab", "/dev/null", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=cw_env(home), check=False)
    one_unknown_line(result)
    assert result.stdout == ""


def test_crontab_jobs_are_still_listed_as_unknown(home: Path, tmp_path: Path) -> None:
    """What the crontab says is known (name, schedule, next run): those rows stay, each
    marked unknown with the reason; a --job the crontab lacks gets no row."""
    tab = tmp_path / "tab"
    tab.write_text("0 * * * * cronwrap run --name hourly -- true\n")
    corrupt_store(home)
    result = cronwrap(home, "status", "--crontab", str(tab), "--json", "--job", "hourly",
                      "--job", "nosuch")  # fmt: skip
    one_unknown_line(result, "damaged")
    [row] = json.loads(result.stdout)
    assert (row["name"], row["state"], row["healthy"]) == ("hourly", "unknown", False)
    assert "damaged" in row["reason"]


def test_an_unknown_job_in_a_readable_store_still_gets_its_row(home: Path) -> None:
    cronwrap(home, "run", "--name", "real", "--", "true")
    result = status(home, "--job", "nosuch", "--json")
    one_unknown_line(result, "no job named 'nosuch'")
    [row] = json.loads(result.stdout)
    assert (row["name"], row["state"], row["result"]) == ("nosuch", "unknown", "unknown job")


def test_the_dashboard_of_a_corrupt_store_says_unknown_not_empty(
    home: Path, tmp_path: Path
) -> None:
    """The page is rewritten (a page left alone would go stale without a word): it says the
    status is unknown, why, and when it was checked; not 0 jobs, no failures, no missed slots."""
    corrupt_store(home)
    page = tmp_path / "status.html"
    page.write_text("yesterday's page")
    result = status(home, "--html", str(page), "--now", "2026-12-01T10:00:00+00:00")
    one_unknown_line(result, "damaged")
    assert result.stdout == ""
    text = page.read_text()
    assert "<title>cronwrap status: unknown</title>" in text
    assert "Status unknown:" in text and "damaged" in text
    assert "2026-12-01 10:00:00 UTC" in text
    for claim in ("0 jobs", "No jobs recorded", "No recent failures", "No missed slots"):
        assert claim not in text, claim


def test_watch_shows_the_reason_and_keeps_watching(home: Path) -> None:
    """Each redraw says the status is unknown and why (it drew an empty table), and when
    the store reads again (moved aside, a run recorded) the table is back."""
    db = corrupt_store(home)
    proc = popen_cronwrap(home, "status", "--crontab", "/dev/null", "--watch", "0.1s",
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    try:
        unknown = 0
        while unknown < 3:
            line = proc.stdout.readline().decode()
            assert line and "jobs listed" not in line, line
            unknown += line.startswith("cronwrap: status unknown: ") and "damaged" in line
        db.unlink()
        cronwrap(home, "run", "--name", "back", "--", "true")
        while b"1 job listed." not in proc.stdout.readline():
            pass  # a SIGINT now, even inside that redraw, ends with its code
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
    assert code == 0


def test_a_redraw_cut_short_by_ctrl_c_ends_with_the_code_of_what_it_drew(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--watch ends on Ctrl-C with the code of the redraw under way, even one stopped while it
    writes: it ended with the code of the redraw before (3, unknown, over a table of jobs
    that had recovered), since the code was kept only once a redraw returned."""
    from datetime import datetime, timedelta, timezone

    from cronwrap.paths import resolve_paths
    from cronwrap.views.report import status_once

    assert cronwrap(home, "run", "--name", "bad", "--", "false").returncode == 1

    class CtrlC:
        def write(self, text: str) -> int:
            raise KeyboardInterrupt

        def isatty(self) -> bool:
            return False

        def fileno(self) -> int:
            return os.open(os.devnull, os.O_WRONLY)

    monkeypatch.setattr(sys, "stdout", CtrlC())
    drawn = [ExitCode.UNKNOWN]
    with pytest.raises(KeyboardInterrupt):
        status_once(
            resolve_paths({"CRONWRAP_HOME": str(home)}),
            now=datetime.now(timezone.utc),
            job_names=(),
            failed=False,
            include_all=False,
            crontab_files=("/dev/null",),
            grace=timedelta(minutes=5),
            host_ids=(),
            as_json=False,
            color="never",
            clear=False,
            watching=True,
            drawing=drawn,
        )
    assert drawn == [1]  # the failed job's


def _has_fleet_driver() -> bool:
    from cronwrap.state import libpq

    return libpq.load() is not None or importlib.util.find_spec("psycopg") is not None


needs_driver = pytest.mark.skipif(not _has_fleet_driver(), reason="neither libpq nor psycopg")


@needs_driver
@pytest.mark.parametrize("args", READERS)
def test_a_fleet_store_nobody_answers_for_prints_nothing(home: Path, args: list[str]) -> None:
    """A free port nobody listens on: it printed "0 jobs listed." or `[]`."""
    url = f"postgresql://cw:{PASSWORD}@127.0.0.1:{free_port()}/fleet"
    result = cronwrap(home, "status", "--fleet-store", url, *args, timeout=30)
    line = one_unknown_line(result, "fleet store", "unavailable")
    assert PASSWORD not in line
    assert result.stdout == ""


@needs_driver
def test_the_dashboard_of_a_dead_fleet_store_says_unknown_without_the_password(
    home: Path, tmp_path: Path
) -> None:
    url = f"postgresql://cw:{PASSWORD}@127.0.0.1:{free_port()}/fleet"
    page = tmp_path / "fleet.html"
    result = cronwrap(home, "status", "--fleet-store", url, "--html", str(page), timeout=30)
    one_unknown_line(result, "unavailable")
    text = page.read_text()
    assert "<title>cronwrap status: unknown</title>" in text and "unavailable" in text
    assert "0 jobs" not in text and "No recent failures" not in text
    assert PASSWORD not in text
