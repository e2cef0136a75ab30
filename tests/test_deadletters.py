"""Dead letters: failed runs stay listed (and unpruned) until a rerun or a person resolves
them; real `cronwrap run` processes write them, a fresh process reads them back."""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cronwrap.errors import StoreError
from cronwrap.state.schema import MIGRATIONS
from cronwrap.state.store import Store
from tests.conftest import cronwrap

PY = sys.executable
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)


def _run(store: Store, run_id: str, job: str, status: str, *, at: datetime, **kw: object) -> None:
    store.record_start(
        run_id=run_id,
        job=job,
        host="h",
        pid=1,
        command="x",
        started_at=at,
        schedule=None,
        tz=None,
        log_path=None,
        **kw,  # type: ignore[arg-type]
    )
    store.record_end(
        run_id=run_id,
        ended_at=at + timedelta(seconds=1),
        status=status,
        exit_code=0 if status == "success" else 1,
        signal=None,
        attempts=1,
        duration_s=1.0,
        output_tail="line 1\nline 2\n",
        reason=None,
    )


def test_failures_become_dead_letters_and_successes_do_not(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        for i, status in enumerate(["failed", "success", "timeout", "cancelled", "skipped"]):
            _run(store, f"r{i}", "j", status, at=T0 + timedelta(minutes=i))
        assert [r.run_id for r in store.dead_letters()] == ["r0", "r2", "r3"]
        assert store.dead_letter_counts() == {"j": 3}
        # a later success resolves nothing by default
        assert store.job("j").last_success_at == T0 + timedelta(minutes=1)  # type: ignore[union-attr]


def test_pruning_never_deletes_an_unresolved_dead_letter(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        _run(store, "dead", "j", "failed", at=T0 - timedelta(days=400))
        _run(store, "old-ok", "j", "success", at=T0 - timedelta(days=300))
        for i in range(5):
            _run(store, f"ok{i}", "j", "success", at=T0 + timedelta(minutes=i))
        store.prune("j", keep_runs=2, keep_days=90, now=T0 + timedelta(hours=1))
        assert store.run("old-ok") is None
        assert [r.run_id for r in store.dead_letters("j")] == ["dead"]
        assert store.resolve("dead", by="manual", at=T0) is True
        assert store.resolve("dead", by="manual", at=T0) is False
        store.prune("j", keep_runs=2, keep_days=90, now=T0 + timedelta(hours=1))
        assert store.run("dead") is None


def test_a_successful_rerun_resolves_its_original_and_the_chain(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        _run(store, "orig", "j", "failed", at=T0)
        _run(store, "rerun1", "j", "failed", at=T0 + timedelta(minutes=1), rerun_of="orig")
        # a failed rerun is not a second dead letter: the original still is one
        assert [r.run_id for r in store.dead_letters()] == ["orig"]
        _run(store, "rerun2", "j", "success", at=T0 + timedelta(minutes=2), rerun_of="rerun1")
        assert store.dead_letters() == []
        orig = store.run("orig")
        assert orig is not None and orig.resolved_by == "rerun2" and not orig.dead


def test_resolve_on_success_resolves_every_open_one_of_the_job(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        _run(store, "a", "j", "failed", at=T0)
        _run(store, "b", "j", "crashed", at=T0 + timedelta(minutes=1))
        _run(store, "other", "k", "failed", at=T0)
        store.record_start(
            run_id="ok",
            job="j",
            host="h",
            pid=1,
            command="x",
            started_at=T0 + timedelta(minutes=2),
            schedule=None,
            tz=None,
            log_path=None,
        )
        store.record_end(
            run_id="ok",
            ended_at=T0 + timedelta(minutes=3),
            status="success",
            exit_code=0,
            signal=None,
            attempts=1,
            duration_s=1.0,
            output_tail=None,
            reason=None,
            resolve_on_success=True,
        )
        assert [r.run_id for r in store.dead_letters()] == ["other"]


def test_a_crashed_run_is_a_dead_letter(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        store.record_start(
            run_id="c",
            job="j",
            host="h",
            pid=1,
            command="x",
            started_at=T0,
            schedule=None,
            tz=None,
            log_path=None,
        )
        store.mark_crashed("c", reason="cronwrap died")
        assert [r.run_id for r in store.dead_letters()] == ["c"]


def test_migration_from_schema_4_keeps_runs_and_learns_the_last_success(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    conn = sqlite3.connect(db)
    for migration in MIGRATIONS[:4]:
        conn.executescript(migration)
    conn.execute(
        "INSERT INTO runs (run_id, job, host, pid, command, started_at, status)"
        " VALUES ('old', 'j', 'h', 1, 'x', '2026-01-01T00:00:00.000000+00:00', 'success')"
    )
    conn.execute("INSERT INTO jobs (name) VALUES ('j')")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with Store.open(db) as store:
        job = store.job("j")
        assert job is not None
        assert job.last_success_at == datetime(2026, 1, 1, tzinfo=timezone.utc)
        assert store.dead_letters() == []  # old failures are not turned into dead letters


def test_find_run_by_prefix(tmp_path: Path) -> None:
    with Store.open(tmp_path / "runs.db") as store:
        _run(store, "abcd1234", "j", "failed", at=T0)
        _run(store, "abce9999", "j", "failed", at=T0)
        assert store.find_run("abcd").run_id == "abcd1234"  # type: ignore[union-attr]
        assert store.find_run("ffff") is None
        _run(store, "abcd5678", "j", "failed", at=T0)
        with pytest.raises(StoreError, match="ambiguous"):
            store.find_run("abcd")
        with pytest.raises(StoreError, match="too short"):
            store.find_run("ab")


# ---------------------------------------------------------------- real processes


def test_dead_letters_survive_pruning_and_restarts_and_can_be_resolved(home: Path) -> None:
    failed = cronwrap(
        home,
        "run",
        "--name",
        "etl",
        "--retries",
        "1",
        "--retry-delay",
        "0",
        "--keep-runs",
        "1",
        "--",
        PY,
        "-c",
        "print('batch 7 of 9: upstream said 503'); raise SystemExit(3)",
    )
    assert failed.returncode == 3, failed.stderr
    for _ in range(3):
        ok = cronwrap(home, "run", "--name", "etl", "--keep-runs", "1", "--", "true")
        assert ok.returncode == 0, ok.stderr
    listed = cronwrap(home, "failed", "--json")
    assert listed.returncode == 0, listed.stderr
    [letter] = json.loads(listed.stdout)
    assert letter["job"] == "etl" and letter["attempts"] == 2 and letter["exit_code"] == 3
    assert "upstream said 503" in letter["output_tail"]
    text = cronwrap(home, "failed")
    assert text.returncode == 0, text.stderr
    assert letter["run_id"][:8] in text.stdout and "| batch 7 of 9" in text.stdout
    status = cronwrap(home, "status", "--json")
    [row] = [j for j in json.loads(status.stdout) if j["name"] == "etl"]
    assert row["dead_letters"] == 1
    table = cronwrap(home, "status", "--crontab", "/dev/null")
    assert "1 failed run not resolved (etl 1): see cronwrap failed" in table.stdout
    resolved = cronwrap(home, "failed", "--resolve", letter["run_id"][:8])
    assert resolved.returncode == 0, resolved.stderr
    assert json.loads(cronwrap(home, "failed", "--json").stdout) == []
    again = cronwrap(home, "failed", "--resolve", letter["run_id"])
    assert again.returncode == 1 and "not an open dead letter" in again.stderr
    missing = cronwrap(home, "failed", "--resolve", "ffffffff")
    assert missing.returncode == 1 and "no run" in missing.stderr


def test_failed_for_a_job_that_never_ran_says_so(home: Path) -> None:
    """`failed --job nosuch` said "no dead letters: every failed run is resolved", exit 0:
    a mistyped name read as all clear."""
    assert cronwrap(home, "run", "--name", "real", "--", "false").returncode == 1
    r = cronwrap(home, "failed", "--job", "nosuch")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "cronwrap: no job 'nosuch' in the run store (see cronwrap status)\n"
    listed = cronwrap(home, "failed", "--job", "real")
    assert listed.returncode == 0 and "real" in listed.stdout
