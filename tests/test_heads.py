"""Each job's kept summary of its newest runs (state/heads.py) agrees with its runs after every
writer, is cleared by any other change to them, is filled in by the migration, and status says
the same with it or without it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from cronwrap.config import Paths, ensure_dir, resolve_paths
from cronwrap.state import heads
from cronwrap.state.schema import MIGRATIONS, SCHEMA_VERSION
from cronwrap.state.store import Store
from cronwrap.views.jsondoc import dumps, status_json
from cronwrap.views.status import load_status
from tests.test_store import T0, add_run


def _kept(path: Path, job: str) -> object:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT heads FROM jobs WHERE name=?", (job,)).fetchone()
        return row[0] if row else "no job row"
    finally:
        conn.close()


def _truth(path: Path, job: str) -> str | None:
    """The summary the job's runs give now, read straight from the runs table."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT id, status, duration_s FROM runs WHERE job=? ORDER BY id DESC LIMIT 12", (job,)
        ).fetchall()
    finally:
        conn.close()
    return heads.summary(rows)


def _agrees(path: Path, job: str = "j") -> None:
    kept, truth = _kept(path, job), _truth(path, job)
    assert kept == truth, (kept, truth)
    assert kept is not None


def test_summary_after_record_start_and_record_end(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        add_run(store, "r1", status="running")
        _agrees(path)
        assert _kept(path, "j") == "1 1 1"  # newest 1, ran 1 (running is not a skip), running 1
        store.record_end(
            run_id="r1", ended_at=T0 + timedelta(seconds=2.5), status="failed", exit_code=3,
            signal=None, attempts=1, duration_s=2.5, output_tail=None, reason=None,
        )  # fmt: skip
        _agrees(path)
        assert _kept(path, "j") == "1 1 - 2.5"


def test_summary_after_many_runs_and_skips_keeps_the_newest_twelve(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        for i in range(20):
            status = "skipped" if i % 5 == 0 else "success"
            add_run(store, f"r{i}", at=T0 + timedelta(minutes=i), status=status)
            _agrees(path)
        add_run(store, "skip-last", at=T0 + timedelta(minutes=30), status="skipped")
        _agrees(path)
        brief = heads.parse(_kept(path, "j"), {})
        assert brief is not None and brief.ran is not None and brief.ran < brief.newest


def test_summary_after_mark_crashed(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        add_run(store, "ok")
        add_run(store, "dead", at=T0 + timedelta(minutes=1), status="running")
        store.mark_crashed("dead", reason="cronwrap died")
        _agrees(path)
        brief = heads.parse(_kept(path, "j"), {})
        assert brief is not None and brief.running == []


def test_summary_after_prune(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        for i in range(15):
            add_run(store, f"r{i}", at=T0 + timedelta(minutes=i))
        store.prune("j", keep_runs=3, keep_days=90, now=T0 + timedelta(hours=1))
        _agrees(path)
        brief = heads.parse(_kept(path, "j"), {})
        assert brief is not None and len(brief.durations) == 3


def test_summary_after_warnings_resolve_and_a_rerun(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        add_run(store, "bad", status="failed")
        store.set_warnings("bad", "ping to x failed")
        _agrees(path)
        store.record_start(
            run_id="again", job="j", host="h", pid=2, command="true",
            started_at=T0 + timedelta(minutes=5), schedule=None, tz=None, log_path=None,
            rerun_of="bad",
        )  # fmt: skip
        _agrees(path)
        store.record_end(
            run_id="again", ended_at=T0 + timedelta(minutes=6), status="success", exit_code=0,
            signal=None, attempts=1, duration_s=60.0, output_tail=None, reason=None,
        )  # fmt: skip
        _agrees(path)
        add_run(store, "bad2", at=T0 + timedelta(minutes=9), status="failed")
        assert store.resolve("bad2", by="me", at=T0 + timedelta(minutes=10))
        _agrees(path)


def test_forget_leaves_no_summary_behind(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        add_run(store, "r1")
        store.forget("j")
        assert _kept(path, "j") == "no job row"
        add_run(store, "r2")
        _agrees(path)


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE runs SET status='failed' WHERE run_id='r1'",
        "UPDATE runs SET duration_s=99 WHERE run_id='r1'",
        "DELETE FROM runs WHERE run_id='r1'",
        "INSERT INTO runs (run_id, job, host, pid, command, started_at, status)"
        " VALUES ('x', 'j', 'h', 1, 'true', '2026-01-02T00:00:00+00:00', 'success')",
        "UPDATE runs SET job='k' WHERE run_id='r1'",
    ],
    ids=["status", "duration", "delete", "insert", "job"],
)
def test_any_other_change_to_a_jobs_runs_clears_its_summary(tmp_path: Path, edit: str) -> None:
    """A hand edit or another tool: the summary goes (status then reads the runs), never lies."""
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        add_run(store, "r1")
        add_run(store, "r0", job="k")
    conn = sqlite3.connect(path)
    conn.execute(edit)
    conn.commit()
    conn.close()
    assert _kept(path, "j") is None


def test_a_change_to_what_a_summary_leaves_out_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        add_run(store, "r1")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET warnings='w', reason='x', dead=1 WHERE run_id='r1'")
    conn.commit()
    conn.close()
    _agrees(path)


def test_what_a_summary_cannot_say_is_not_kept() -> None:
    assert heads.summary([]) is None
    assert heads.summary([(3, "running", 1.5), (2, "success", 1.0)]) is None  # hand-written
    assert heads.summary([(3, "success", 7), (2, "success", 1.0)]) is None  # not a float
    assert heads.summary([(3, "success", "soon"), (2, "skipped", None)]) == "3 3 -"
    weird = [(5, "success", 0.1 + 0.2), (4, "running", None), (3, "skipped", 9.0)]
    text = heads.summary(weird)
    assert text == "5 5 4 0.30000000000000004"
    brief = heads.parse(text, {})
    assert brief is not None and brief.durations == [0.1 + 0.2] and brief.running == [4]
    for bad in (None, 7, "", "x y z", "1 2"):
        assert heads.parse(bad, {}) is None


def _v7_store(path: Path) -> None:
    """A store as cronwrap wrote it before summaries (schema 7), with runs of two jobs."""
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:7]:
        conn.executescript(migration)
    conn.execute("PRAGMA user_version = 7")
    for i in range(15):
        conn.execute(
            "INSERT INTO runs (run_id, job, host, pid, command, started_at, ended_at, status,"
            " duration_s) VALUES (?, ?, 'h', 1, 'true', ?, ?, ?, ?)",
            (
                f"r{i}",
                "j" if i % 3 else "k",
                (T0 + timedelta(minutes=i)).isoformat(),
                (T0 + timedelta(minutes=i, seconds=i)).isoformat(),
                "skipped" if i % 4 == 0 else "success",
                None if i % 4 == 0 else float(i),
            ),
        )
    conn.execute("INSERT INTO jobs (name, schedule) VALUES ('j', '* * * * *'), ('k', NULL)")
    conn.commit()
    conn.close()


def test_the_migration_fills_in_every_jobs_summary(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    _v7_store(path)
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    _agrees(path, "j")
    _agrees(path, "k")


def _statuses(home: Path) -> str:
    paths = resolve_paths({"CRONWRAP_HOME": str(home)})
    now = T0 + timedelta(hours=1)
    report = load_status(paths, [], now=now, grace=timedelta(minutes=5))
    return dumps([status_json(j) for j in report.jobs])


def test_a_store_before_summaries_is_read_as_it_is_and_says_the_same(tmp_path: Path) -> None:
    """status opens an old store read-only and does not migrate it: it reads the runs
    (slower), and says what it says once the store is migrated."""
    home = tmp_path / "home"
    ensure_dir(resolve_paths({"CRONWRAP_HOME": str(home)}).state_dir)
    path = resolve_paths({"CRONWRAP_HOME": str(home)}).db_file
    _v7_store(path)
    before = _statuses(home)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 7
    Store.open(path).close()
    assert _kept(path, "j") is not None
    assert _statuses(home) == before


def test_status_says_the_same_from_summaries_and_from_runs(tmp_path: Path) -> None:
    """Every shape of a job's newest rows: a running run whose cronwrap lives (this process)
    and one whose cronwrap died, skips after a failure, a row still marked running with a
    duration written by hand, only skips, a duration that is not a number."""
    home = tmp_path / "home"
    paths = resolve_paths({"CRONWRAP_HOME": str(home)})
    ensure_dir(paths.state_dir)
    me = os.uname().nodename
    # a live "cronwrap" (its command line names it) for the run that is still going
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "cronwrap"])
    try:
        _shapes(home, paths, me, alive.pid)
    finally:
        alive.kill()
        alive.wait()


def _shapes(home: Path, paths: Paths, me: str, live_pid: int) -> None:
    with Store.open(paths.db_file) as store:
        for job in ("plain", "live", "dead", "skips", "onlyskips", "handmade", "odd"):
            for i in range(14):
                at = T0 + timedelta(minutes=i)
                status = (
                    "skipped"
                    if (job == "onlyskips" or (job == "skips" and i > 9))
                    else ("failed" if i == 9 else "success")
                )
                add_run(store, f"{job}-{i}", job=job, at=at, status=status)
        for job, pid in (("live", live_pid), ("dead", 999_999_999), ("handmade", live_pid)):
            store.record_start(
                run_id=f"{job}-now", job=job, host=me, pid=pid, command="cronwrap run",
                started_at=T0 + timedelta(minutes=30), schedule=None, tz=None, log_path=None,
            )  # fmt: skip
    conn = sqlite3.connect(paths.db_file)
    conn.execute("UPDATE runs SET duration_s=4.5 WHERE run_id='handmade-now'")
    conn.execute("UPDATE runs SET duration_s='soon' WHERE run_id='odd-3'")
    conn.commit()
    with Store.open(paths.db_file) as store:  # the store's writers summarize them again
        add_run(store, "handmade-later", job="handmade", at=T0 + timedelta(minutes=31))
        add_run(store, "odd-later", job="odd", at=T0 + timedelta(minutes=31))
    kept = {name: _kept(paths.db_file, name) for name in ("plain", "live", "dead", "odd")}
    assert all(v is not None for v in kept.values()), kept
    assert _kept(paths.db_file, "handmade") is None  # a running row with a duration
    from_summaries = _statuses(home)
    conn.execute("UPDATE jobs SET heads = NULL")
    conn.commit()
    conn.close()
    assert _statuses(home) == from_summaries
    assert '"state": "running"' in from_summaries and '"state": "crashed"' in from_summaries


def test_a_summary_is_read_for_thousands_of_jobs_in_one_query_per_500(tmp_path: Path) -> None:
    """What makes status quick: the jobs' rows are read, not 12 runs of each."""
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        for n in range(30):
            add_run(store, f"r{n}", job=f"job{n}", at=T0 + timedelta(seconds=n))
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)
        found = store.newest_heads([f"job{n}" for n in range(30)])
        store._conn.set_trace_callback(None)
    assert len(found) == 30 and all(rows is None for _, rows in found.values())
    assert not [s for s in statements if "FROM runs" in s], statements


def test_most_jobs_are_read_in_one_scan_and_the_same(tmp_path: Path) -> None:
    """Over 500 jobs: their rows in one scan of the jobs table, as by name."""
    path = tmp_path / "runs.db"
    Store.open(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for n in range(700):
        conn.execute("INSERT INTO jobs (name) VALUES (?)", (f"job{n}",))
        for i in range(3):
            conn.execute(
                "INSERT INTO runs (run_id, job, host, pid, command, started_at, status,"
                " duration_s) VALUES (?, ?, 'h', 1, 'true', '2026-01-01T00:00:00+00:00', ?, ?)",
                (f"{n}-{i}", f"job{n}", "skipped" if i == 2 else "success", n + i / 4),
            )
    heads.refresh_all(conn)
    conn.execute("UPDATE jobs SET heads = NULL WHERE name = 'job7'")  # read from its runs
    conn.execute("COMMIT")
    names = [f"job{n}" for n in range(700)] + ["not-a-job"]
    scanned = heads.read(conn, names, kept=True)
    by_name = {}
    for at in range(0, len(names), 100):
        by_name.update(heads.read(conn, names[at : at + 100], kept=True))
    assert scanned.keys() == by_name.keys() == set(names[:-1])
    assert scanned["job7"][1] is not None and scanned["job8"][1] is None
    for name in names[:-1]:
        (a, _), (b, _) = scanned[name], by_name[name]
        assert (a.newest, a.ran, a.running, a.durations) == (
            b.newest,
            b.ran,
            b.running,
            b.durations,
        )
    assert scanned["job8"][0].durations == [8.0, 8.25]


def test_a_summary_edited_to_name_rows_that_are_not_there_is_read_from_the_runs(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    paths = resolve_paths({"CRONWRAP_HOME": str(home)})
    ensure_dir(paths.state_dir)
    with Store.open(paths.db_file) as store:
        for i in range(3):
            add_run(
                store, f"r{i}", at=T0 + timedelta(minutes=i), status="failed" if i else "success"
            )
    truth = _statuses(home)
    conn = sqlite3.connect(paths.db_file)
    conn.execute("UPDATE jobs SET heads = '999 998 997 1.0' WHERE name = 'j'")
    conn.commit()
    conn.close()
    assert _statuses(home) == truth


def test_a_summary_naming_a_row_that_now_belongs_to_another_job_is_read_from_the_runs(
    tmp_path: Path,
) -> None:
    """INSERT OR REPLACE by hand gives a row id to another job, and REPLACE's implicit delete
    fires no trigger: the summary of the job that had it still names it. Status showed that
    job as the other job's run (ok, while its own last run had failed)."""
    home = tmp_path / "home"
    paths = resolve_paths({"CRONWRAP_HOME": str(home)})
    ensure_dir(paths.state_dir)
    with Store.open(paths.db_file) as store:
        add_run(store, "a1", job="ea", at=T0)
        add_run(store, "b1", job="eb", at=T0 + timedelta(minutes=1), status="failed")
    conn = sqlite3.connect(paths.db_file)
    conn.execute(
        "INSERT OR REPLACE INTO runs (id, run_id, job, host, pid, command, started_at, status,"
        " attempts, exit_origin, dead) SELECT id, run_id || 'x', 'ea', host, pid, command,"
        " started_at, 'success', attempts, exit_origin, 0 FROM runs WHERE run_id = 'b1'"
    )
    conn.commit()
    conn.close()
    jobs = {j["name"]: j for j in json.loads(_statuses(home))}
    assert jobs["eb"]["last_run"] is None or jobs["eb"]["last_run"]["job"] == "eb", jobs["eb"]
    assert jobs["ea"]["last_run"]["job"] == "ea"
