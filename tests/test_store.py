"""The run store on a real SQLite file: migrations, recording, pruning, and 200 cronwrap
processes writing at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cronwrap.errors import StoreError
from cronwrap.state.schema import MIGRATIONS, SCHEMA_VERSION
from cronwrap.state.store import Store
from tests.conftest import cw_env

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def add_run(
    store: Store,
    run_id: str,
    job: str = "j",
    at: datetime = T0,
    status: str = "success",
    log_path: str | None = None,
) -> None:
    store.record_start(
        run_id=run_id,
        job=job,
        host="h",
        pid=1,
        command="true",
        started_at=at,
        schedule=None,
        tz=None,
        log_path=log_path,
    )
    if status != "running":
        store.record_end(
            run_id=run_id,
            ended_at=at + timedelta(seconds=1),
            status=status,
            exit_code=0,
            signal=None,
            attempts=1,
            duration_s=1.0,
            output_tail="ok",
            reason=None,
        )


def test_new_store_is_wal_and_current(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "runs.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_record_and_read_back(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        add_run(store, "r1")
        store.record_attempt(
            run_id="r1",
            attempt=1,
            started_at=T0,
            ended_at=T0 + timedelta(seconds=1),
            status="success",
            exit_code=0,
            signal=None,
        )
        [run] = store.runs("j")
        assert run.run_id == "r1" and run.status == "success" and run.duration_s == 1.0
        assert run.started_at == T0
        assert store.run("r1") == run
        assert [a.attempt for a in store.attempts("r1")] == [1]
        assert store.job_names() == ["j"]


def test_migrates_forward_from_version_1_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute(
        "INSERT INTO runs (run_id, job, host, pid, command, started_at, status) "
        "VALUES ('old', 'legacy', 'h', 1, 'true', ?, 'success')",
        (T0.isoformat(),),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        [run] = store.runs("legacy")
        assert run.run_id == "old"
        assert run.exit_origin == "child"  # the column added by migration 2, defaulted
        assert run.schedule is None
        assert store.job_names() == ["legacy"]  # backfilled by migration 3


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="upgrade cronwrap"):
        Store.open(path)


def test_refuses_a_symlinked_store(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.db").touch()
    (tmp_path / "runs.db").symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(StoreError, match="symlink"):
        Store.open(tmp_path / "runs.db")


def test_prune_keeps_the_newest_runs(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        for i in range(12):
            add_run(store, f"r{i}", at=T0 + timedelta(minutes=i), log_path=f"/x/r{i}.log")
        add_run(store, "other", job="k")
        removed = store.prune("j", keep_runs=5, keep_days=90, now=T0 + timedelta(hours=1))
        assert sorted(removed) == sorted(f"/x/r{i}.log" for i in range(7))
        assert [r.run_id for r in store.runs("j", limit=100)] == [f"r{i}" for i in range(11, 6, -1)]
        assert store.count_runs("k") == 1


def test_prune_drops_runs_older_than_keep_days_but_not_running_ones(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        add_run(store, "ancient", at=T0 - timedelta(days=100))
        add_run(store, "stuck", at=T0 - timedelta(days=100), status="running")
        add_run(store, "recent", at=T0 - timedelta(days=1))
        store.prune("j", keep_runs=500, keep_days=90, now=T0)
        assert {r.run_id for r in store.runs("j")} == {"stuck", "recent"}


def test_prune_with_nothing_to_prune_takes_no_write_lock(tmp_path: Path) -> None:
    """Another process holds the write lock: a prune that finds nothing returns at once
    instead of queueing on it (and timing out), and one that finds something still waits."""
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        for i in range(3):
            add_run(store, f"r{i}", at=T0 + timedelta(minutes=i))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store.open(path, busy_timeout_s=0.2) as store:
            assert store.prune("j", keep_runs=10, keep_days=90, now=T0) == []
            with pytest.raises(StoreError, match=r"busy|locked"):
                store.prune("j", keep_runs=1, keep_days=90, now=T0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_end_records_the_last_attempt_in_the_same_write(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        add_run(store, "a", status="running")
        store.record_end(
            run_id="a",
            ended_at=T0 + timedelta(seconds=3),
            status="failed",
            exit_code=4,
            signal=None,
            attempts=2,
            duration_s=3.0,
            output_tail="",
            reason="exit code 4",
            last_attempt=(
                2,
                T0 + timedelta(seconds=1),
                T0 + timedelta(seconds=3),
                "failed",
                4,
                None,
            ),
        )
        [att] = store.attempts("a")
        assert (att.attempt, att.status, att.exit_code, att.duration_s) == (2, "failed", 4, 2.0)


def test_mark_crashed_only_touches_running(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        add_run(store, "a", status="running")
        add_run(store, "b")
        store.mark_crashed("a", reason="died")
        store.mark_crashed("b", reason="died")
        assert store.run("a").status == "crashed"  # type: ignore[union-attr]
        assert store.run("b").status == "success"  # type: ignore[union-attr]


@pytest.mark.slow
def test_200_cronwrap_processes_at_once_lose_no_run(home: Path) -> None:
    """Many cron jobs start in the same second against one fresh store: all recorded."""
    n = 200
    env = cw_env(home)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cronwrap", "run", "--name", f"job{i}", "--", "true"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(n)
    ]
    failures = []
    for p in procs:
        _, err = p.communicate(timeout=240)
        if p.returncode != 0 or err:
            failures.append((p.returncode, err.decode()[-300:]))
    assert not failures, failures[:3]
    with Store.open(home / "runs.db") as store:
        assert store.count_runs() == n
        assert len(store.job_names()) == n
        for name in ("job0", f"job{n - 1}"):
            [run] = store.runs(name)
            assert run.status == "success" and run.ended_at is not None


def _wal_commits(wal: Path) -> int:
    """Committed write transactions in a WAL file: frames whose header says "commit" (a
    non-zero database size) and whose salts match the WAL header's (not left-overs)."""
    import struct

    data = wal.read_bytes()
    if len(data) < 32:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    commits = 0
    for offset in range(32, len(data) - 24, 24 + page_size):
        frame = data[offset : offset + 24]
        if frame[8:16] != salts:
            break
        commits += struct.unpack(">I", frame[4:8])[0] != 0
    return commits


def test_a_successful_run_writes_the_store_twice(tmp_path: Path) -> None:
    """Start and end: no attempt row of its own, no prune transaction, no WAL set-up."""
    from tests.conftest import cronwrap

    home = tmp_path / "home"
    assert cronwrap(home, "run", "--name", "w", "--", "true").returncode == 0
    db = home / "runs.db"
    # an open connection keeps the run's WAL from being checkpointed away when it closes
    holder = sqlite3.connect(db)
    holder.execute("SELECT count(*) FROM runs").fetchone()
    try:
        before = _wal_commits(Path(f"{db}-wal"))
        assert cronwrap(home, "run", "--name", "w", "--", "true").returncode == 0
        assert _wal_commits(Path(f"{db}-wal")) - before == 2
    finally:
        holder.close()
    with Store.open(db) as store:
        [newest, _] = store.runs("w")
        assert newest.status == "success"
        assert [a.status for a in store.attempts(newest.run_id)] == ["success"]


def test_a_row_of_odd_values_reads_as_missing_not_as_an_error() -> None:
    """A row edited by hand or written by a broken tool: every value of the wrong type reads
    as missing (text stored as bytes comes back as the str it was)."""
    from cronwrap.state.records import EPOCH, RUN_COLUMNS, row_to_run

    row: dict[str, object] = {c: None for c in RUN_COLUMNS}
    row.update(
        run_id="r", job="j", host="h", pid="x", command=b"caf\xc3\xa9 \xff", started_at=7,
        ended_at="not a time", status="success", exit_code=2.0, signal=True, attempts=b"3",
        duration_s="1.5", output_tail=5, reason=b"why", slot="2026-01-01T00:00:00",
        dead="yes", resolved_at=3.5, warnings=1.0,
    )  # fmt: skip
    run = row_to_run(tuple(row[c] for c in RUN_COLUMNS))
    assert (run.pid, run.started_at, run.ended_at, run.exit_code, run.signal) == (
        0, EPOCH, None, 2, None,
    )  # fmt: skip
    assert (run.attempts, run.duration_s, run.dead, run.resolved_at) == (0, None, False, None)
    assert run.command == "café \udcff" and run.reason == "why" and run.output_tail == "5"
    assert run.warnings == "1.0" and run.slot == datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "path",
    ["/plain/runs.db", "/a b/c?d#e%f&g=h;i/runs.db", "/zoné ☃/日本/runs.db", "/~user/.x_y-z", ""],
    ids=["plain", "uri-marks", "unicode", "unreserved", "empty"],
)
def test_the_read_only_uri_quotes_a_path_as_urllib_does(path: str) -> None:
    from urllib.parse import quote

    from cronwrap.state.database import uri_quote

    assert uri_quote(path) == quote(path)


def test_every_character_is_quoted_as_urllib_quotes_it() -> None:
    from urllib.parse import quote

    from cronwrap.state.database import uri_quote

    text = "".join(chr(c) for c in range(1, 0x3000) if not 0xD800 <= c < 0xE000)
    assert uri_quote(text) == quote(text)


def test_a_store_under_a_directory_named_like_a_uri_opens_read_only(tmp_path: Path) -> None:
    path = tmp_path / "a b?c#d%e" / "runs.db"
    path.parent.mkdir()
    with Store.open(path) as store:
        add_run(store, "r1")
    with Store.open_readonly(path) as store:
        assert [r.run_id for r in store.runs("j")] == ["r1"]


def test_a_store_under_a_directory_not_named_in_utf_8_opens_read_only(tmp_path: Path) -> None:
    """A directory named in Latin-1 (b"caf\\xe9") is a str with a surrogate to Python: its
    bytes are quoted, as SQLite opens it for `run`; encoding the str as UTF-8 raised a
    UnicodeEncodeError out of status and history."""
    import os

    path = tmp_path / os.fsdecode(b"caf\xe9") / "runs.db"
    path.parent.mkdir()
    with Store.open(path) as store:
        add_run(store, "r1")
    with Store.open_readonly(path) as store:
        assert [r.run_id for r in store.runs("j")] == ["r1"]
