"""Faults of what cronwrap keeps on disk: the run store, the event log, non-UTF-8 argv, a
full filesystem. The job runs, keeps its code, and one line says what was not recorded."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cronwrap, cw_env
from tests.faults.conftest import EXIT, fill, recorded, run_job

# ---------------------------------------------------------------- the run store


def _set_column(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(sql)
    conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE runs SET started_at='garbage'",
        "UPDATE runs SET started_at='2026-01-01 10:00:00'",  # naive: no zone
        "UPDATE runs SET ended_at='garbage', duration_s='slow', exit_code='x'",
        "UPDATE attempts SET started_at='garbage'",
        "UPDATE jobs SET last_alert_at='garbage'",
    ],
    ids=["started-garbage", "started-naive", "ended-garbage", "attempt-garbage", "alert-garbage"],
)
def test_a_bad_value_in_a_stored_row_stops_nothing(home: Path, tmp_path: Path, sql: str) -> None:
    first = run_job(home, tmp_path)
    assert first.ran and first.result.returncode == EXIT
    _set_column(home / "runs.db", sql)
    again = run_job(home, tmp_path, "--alert-after", "1", "--slow-factor", "2")
    assert again.ran and again.result.returncode == EXIT, again.result.stderr
    assert again.lines == [], "a stored value that cannot be read is not a fault"
    for command in (
        ["status"],
        ["status", "--json"],
        ["history", "job"],
        ["history", "job", "--json"],
    ):
        shown = cronwrap(home, *command)
        assert shown.returncode in (0, 1), shown.stderr  # 1: a job needs attention
        assert "Traceback" not in shown.stderr and shown.stdout, shown.stderr
        assert "job" in shown.stdout or "failed" in shown.stdout, shown.stdout


def _damage(db: Path, how: str) -> None:
    if how == "not-a-database":
        db.write_bytes(b"this is not an SQLite file\n" * 200)
    else:  # a valid header, damaged pages after it (a torn write, a bad disk)
        with open(db, "r+b") as f:
            f.seek(4096 * 2)
            f.write(os.urandom(4096 * 4))


@pytest.mark.parametrize("how", ["not-a-database", "damaged-pages"])
def test_a_corrupt_store_is_moved_aside_and_a_fresh_one_used(
    home: Path, tmp_path: Path, how: str
) -> None:
    for name in ("a", "b", "c", "d", "e", "f", "g", "h", "job"):  # enough pages to damage
        run_job(home, tmp_path, name=name)
    conn = sqlite3.connect(home / "runs.db")  # everything into the main file
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    _damage(home / "runs.db", how)
    job = run_job(home, tmp_path)
    line = job.assert_failed_open("runs.db", "moved aside")
    [aside] = [p for p in home.glob("runs.db.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert aside.name in line
    again = run_job(home, tmp_path)
    assert again.ran and again.lines == [], "warned once, then a healthy store"
    assert [r.exit_code for r in recorded(home)] == [EXIT] * len(recorded(home))
    shown = cronwrap(home, "status")
    assert shown.returncode in (0, 1) and "job" in shown.stdout, shown.stderr


def test_status_on_a_damaged_store_says_so_in_one_line(home: Path, tmp_path: Path) -> None:
    run_job(home, tmp_path)
    _damage(home / "runs.db", "not-a-database")
    shown = cronwrap(home, "status")
    assert "Traceback" not in shown.stderr, shown.stderr
    [line] = shown.stderr.splitlines()
    assert "runs.db" in line and "moves it aside" in line


@pytest.fixture
def read_only_home(home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """`home` with a store in it, then made read-only for real: a read-only bind mount."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    run_job(home, tmp_path)
    run_job(home, tmp_path)
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(home), str(home)], check=False)
    if done.returncode != 0:
        pytest.skip("cannot bind-mount here")
    subprocess.run(["mount", "-o", "remount,bind,ro", str(home)], check=False)
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def test_status_and_history_work_on_a_read_only_store(read_only_home: Path) -> None:
    for command in (["status"], ["history", "job"]):
        shown = cronwrap(read_only_home, *command)
        assert shown.returncode in (0, 1), shown.stderr
        assert "failed" in shown.stdout and "Traceback" not in shown.stderr, shown.stderr


def test_a_run_on_a_read_only_store_runs_and_says_it_is_not_recorded(
    read_only_home: Path, tmp_path: Path
) -> None:
    job = run_job(read_only_home, tmp_path)
    assert job.ran and job.result.returncode == EXIT, job.result.stderr
    # one line per thing cronwrap could not do (lock, output log, history), each saying so
    assert job.lines and all(line.startswith("cronwrap: job: ") for line in job.lines)
    assert any("not recorded" in line for line in job.lines), job.lines


# ---------------------------------------------------------------- argv that is not UTF-8


def test_non_utf8_argv_runs_and_is_stored_losslessly(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = f"touch {marker}; echo caf\xe9; exit {EXIT}".encode("latin-1")
    result = subprocess.run(
        [
            os.fsencode(sys.executable),
            b"-m",
            b"cronwrap",
            b"run",
            b"--name",
            b"job",
            b"--",
            b"sh",
            b"-c",
            script,
        ],
        capture_output=True,
        env=cw_env(home),
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT, result.stderr
    # nothing but the line saying the job failed (it exits 3)
    assert marker.exists() and result.stderr.startswith(b"cronwrap: ")
    assert len(result.stderr.splitlines()) == 1 and b"failed, exit 3" in result.stderr
    assert result.stdout == b"caf\xe9\n", "the job's bytes pass through untouched"
    [run] = recorded(home)
    assert script in os.fsencode(run.command), run.command
    shown = cronwrap(home, "history", "job")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr


# ---------------------------------------------------------------- the event log


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def _assert_every_record_whole(path: Path, *, torn: int) -> None:
    """Every line is one JSON record, except `torn` lines cut short by the full disk."""
    lines = [line for line in _lines(path) if line]
    broken = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            broken.append(line)
    assert len(broken) == torn, broken
    for line in broken:  # a torn record is a prefix of a record, never two glued together
        assert line.count(b'{"ts"') == 1, line


def test_a_full_disk_tears_one_event_line_and_the_next_starts_fresh(
    home: Path, tmp_path: Path, tmpfs: Path
) -> None:
    log = tmpfs / "events.log"
    # 4000 of a page's 4096 bytes used: the first record of the run fits only partly
    pad = b'{"ts":"x","event":"old","pad":"%s"}\n'
    log.write_bytes(pad % (b"x" * (4000 - len(pad % b""))))
    filler = fill(tmpfs)
    job = run_job(home, tmp_path, "--log-file", str(log))
    job.assert_failed_open("cannot write event log", str(log))
    assert not log.read_bytes().endswith(b"\n"), "the disk filled mid-record (a torn line)"
    filler.unlink()
    after = run_job(home, tmp_path, "--log-file", str(log))
    assert after.ran and after.lines == [], after.result.stderr
    _assert_every_record_whole(log, torn=1)
    assert [r.exit_code for r in recorded(home)] == [EXIT, EXIT]


def test_a_file_size_limit_tears_one_event_line_and_the_next_starts_fresh(
    home: Path, tmp_path: Path
) -> None:
    """The same with RLIMIT_FSIZE, which needs no root: writes past it fail with EFBIG."""
    log = tmp_path / "events.log"
    log.write_bytes(b'{"ts":"x","event":"old"}\n')
    limit = log.stat().st_size + 300  # the first record fits only partly

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    run_job(home, tmp_path, name="warm")  # the store exists: only the log is at the limit
    home_db = home / "runs.db"
    assert home_db.stat().st_size > 0
    job = run_job(home, tmp_path, "--log-file", str(log), preexec_fn=cap)
    assert job.ran and job.result.returncode == EXIT, job.result.stderr
    assert any("cannot write event log" in line for line in job.lines), job.lines
    assert log.stat().st_size == limit and not log.read_bytes().endswith(b"\n")
    after = run_job(home, tmp_path, "--log-file", str(log))
    assert after.ran and after.lines == [], after.result.stderr
    _assert_every_record_whole(log, torn=1)


def test_metrics_that_cannot_be_written_are_one_line_not_one_a_phase(
    home: Path, tmp_path: Path
) -> None:
    """A metrics dir nobody may write (sysfs refuses even root) failed at the start and at
    the end of the run with the same error, and said it twice."""
    job = run_job(home, tmp_path, "--metrics-dir", "/sys")
    job.assert_failed_open("cannot write metrics (start): ", "Permission denied")
