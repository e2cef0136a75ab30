"""The fleet store on a real PostgreSQL cluster: schema versions, idempotent shipping from
the SQLite queue, and reading every host's jobs back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cronwrap.errors import ConfigError
from cronwrap.state import fleetstore
from cronwrap.state.fleetstore import FleetStore, FleetStoreError, ship_pending
from cronwrap.state.store import Store
from tests.pgserver import PASSWORD, BlackHole, require_postgres

require_postgres()

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)


def record(
    store: Store, run_id: str, job: str, host: str, *, end: bool = True, at=T0, status="failed"
) -> None:
    store.record_start(
        run_id=run_id,
        job=job,
        host=host,
        pid=1,
        command="true",
        started_at=at,
        schedule="0 3 * * *",
        tz="UTC",
        log_path=None,
    )
    store.queue_for_fleet(run_id)
    if end:
        store.record_attempt(
            run_id=run_id,
            attempt=1,
            started_at=at,
            ended_at=at + timedelta(seconds=2),
            status="failed",
            exit_code=3,
            signal=None,
        )
        store.record_end(
            run_id=run_id,
            ended_at=at + timedelta(seconds=2),
            status=status,
            exit_code=3,
            signal=None,
            attempts=1,
            duration_s=2.0,
            output_tail="boom [REDACTED]\n",
            reason=None,
        )
        store.queue_for_fleet(run_id)


def test_failures_are_every_dead_letter_status_cancelled_included(
    tmp_path: Path, pg_url: str
) -> None:
    """As `cronwrap failed` and the local store list them: the dashboard's recent failures."""
    local = Store.open(tmp_path / "runs.db")
    statuses = ["failed", "timeout", "crashed", "cancelled", "error", "success", "skipped"]
    for n, status in enumerate(statuses):
        record(local, f"r{n}", "job", "a", at=T0 + timedelta(hours=n), status=status)
    with FleetStore.open(pg_url) as fleet:
        ship_pending(local, fleet)
        shipped = {f.run_id for f in fleet.failures()}
    assert {f.run_id for f in local.failures()} == shipped == {"r0", "r1", "r2", "r3", "r4"}
    local.close()


def test_schema_is_versioned_and_migrates_once(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        assert fleet.schema_version == fleetstore.SCHEMA_VERSION
    with FleetStore.open(pg_url) as fleet:  # a second open changes nothing
        assert fleet.schema_version == fleetstore.SCHEMA_VERSION
        rows = fleet.conn.execute("SELECT version FROM cronwrap_schema").fetchall()
        assert [r[0] for r in rows] == list(range(1, fleetstore.SCHEMA_VERSION + 1))


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        fleet.conn.execute("INSERT INTO cronwrap_schema (version) VALUES (999)")
    with pytest.raises(FleetStoreError, match="newer than this cronwrap"):
        FleetStore.open(pg_url)


def test_shipping_is_in_order_and_exactly_once(tmp_path: Path, pg_url: str) -> None:
    local = Store.open(tmp_path / "runs.db")
    record(local, "r1", "backup", "a")
    record(local, "r2", "backup", "a", at=T0 + timedelta(days=1))
    record(local, "r3", "sync", "a", end=False)
    assert local.fleet_backlog() == 5
    with FleetStore.open(pg_url) as fleet:
        assert ship_pending(local, fleet) == 5
        assert local.fleet_backlog() == 0
        assert ship_pending(local, fleet) == 0
        # the same entries again (as after a crash between the two commits): no duplicates
        local.queue_for_fleet("r1")
        local.queue_for_fleet("r3")
        assert ship_pending(local, fleet) == 2
        assert fleet.count_runs() == 3
        [r2, r1] = fleet.runs("backup")
        assert (r1.run_id, r2.run_id) == ("r1", "r2")
        assert r1.status == "failed" and r1.exit_code == 3 and r1.output_tail.startswith("boom")
        assert r1.started_at == T0
        assert [a.exit_code for a in fleet.attempts("r1")] == [3]
        jobs = {(j.host, j.name): j for j in fleet.jobs()}
        assert set(jobs) == {("a", "backup"), ("a", "sync")}
        assert jobs["a", "backup"].last.run_id == "r2"
        assert jobs["a", "backup"].durations == [2.0, 2.0]
        assert jobs["a", "sync"].last.status == "running"
        assert [f.run_id for f in fleet.failures()] == ["r2", "r1"]
    local.close()


def test_an_older_state_never_replaces_a_newer_one(tmp_path: Path, pg_url: str) -> None:
    local = Store.open(tmp_path / "runs.db")
    record(local, "r1", "job", "a")
    with FleetStore.open(pg_url) as fleet:
        ship_pending(local, fleet)
        stale = local.run("r1")._replace(status="running", ended_at=None)
        fleet.upsert([stale], [])  # a slow shipper with the start state arrives late
        assert fleet.run("r1").status == "failed"


def test_a_pruned_run_leaves_the_queue(tmp_path: Path, pg_url: str) -> None:
    local = Store.open(tmp_path / "runs.db")
    local.queue_for_fleet("gone")
    with FleetStore.open(pg_url) as fleet:
        assert ship_pending(local, fleet) == 1
        assert fleet.count_runs() == 0
    assert local.fleet_backlog() == 0


def test_unreachable_and_black_holed_servers_fail_within_the_budget() -> None:
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    hole = BlackHole()
    try:
        for url in (f"postgresql://u:{PASSWORD}@127.0.0.1:{dead}/x", hole.url()):
            t = time.monotonic()
            with pytest.raises(FleetStoreError, match="unavailable") as info:
                fleetstore.connect(url, timeout_s=2, statement_timeout_s=1)
            assert time.monotonic() - t < 10
            assert PASSWORD not in str(info.value)
    finally:
        hole.close()


def test_a_wrong_password_is_reported_without_it(pg_url: str) -> None:
    bad = pg_url.replace(PASSWORD, "wrong-pw-value")
    with pytest.raises(FleetStoreError) as info:
        FleetStore.open(bad)
    assert "wrong-pw-value" not in str(info.value) and PASSWORD not in str(info.value)


def test_only_postgresql_urls() -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        fleetstore.check_url("mysql://x/y", "--fleet-store")


def test_a_skip_on_top_is_judged_by_the_run_under_it(tmp_path: Path, pg_url: str) -> None:
    """jobs() reads the newest run that ran only when the newest row is a skip; either way
    status judges a host's job by the run that ran."""
    from cronwrap.views.fleet import fleet_statuses

    local = Store.open(tmp_path / "runs.db")
    record(local, "f1", "nightly", "a")
    local.record_start(
        run_id="s1",
        job="nightly",
        host="a",
        pid=1,
        command="true",
        started_at=T0 + timedelta(hours=1),
        schedule="0 3 * * *",
        tz="UTC",
        log_path=None,
        status="skipped",
    )
    local.queue_for_fleet("s1")
    record(local, "g1", "plain", "a")
    with FleetStore.open(pg_url) as fleet:
        ship_pending(local, fleet)
        jobs = {j.name: j for j in fleet.jobs(host="a")}
    local.close()
    assert (jobs["nightly"].last.run_id, jobs["nightly"].last_ran.run_id) == ("s1", "f1")
    assert jobs["plain"].last_ran is jobs["plain"].last
    got = {
        s.name: s
        for s in fleet_statuses(
            list(jobs.values()), now=T0 + timedelta(hours=2), grace=timedelta(0)
        )
    }
    assert got["nightly"].state == "failing" and got["nightly"].last.status == "skipped"
    assert got["nightly"].durations == [2.0]
    assert got["plain"].state == "failing" and got["plain"].result == "failed (exit 3)"
