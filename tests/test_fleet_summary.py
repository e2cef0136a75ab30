"""The per-(host, job) summary the fleet store keeps beside the runs (schema 3): whatever order
runs arrive in, however often, from however many shippers at once, what `jobs()` reads from it
is what the runs table says. Checked on a real PostgreSQL cluster against a reference computed
here from the runs themselves."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone

import pytest

from cronwrap.state import fleetstore
from cronwrap.state.fleetstore import FleetStore
from cronwrap.state.records import RUN_COLUMNS, RunRecord
from tests.pgserver import require_postgres

require_postgres()

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)
FINISHED = ("success", "failed", "timeout", "crashed", "cancelled", "error")


def rec(
    run_id: str,
    *,
    host: str = "a",
    job: str = "backup",
    at: int = 0,
    status: str = "success",
    took: float | None = 2.0,
    schedule: str | None = "0 3 * * *",
) -> RunRecord:
    """A run `at` minutes after T0; a running or skipped run has no end or duration."""
    fields = dict.fromkeys(RUN_COLUMNS) | {
        "run_id": run_id,
        "host": host,
        "job": job,
        "pid": 1,
        "command": "true",
        "started_at": T0 + timedelta(minutes=at),
        "status": status,
        "attempts": 1,
        "schedule": schedule,
        "tz": "UTC",
        "exit_origin": "child",
        "dead": False,
    }
    if status not in ("running", "skipped"):
        fields["ended_at"] = T0 + timedelta(minutes=at, seconds=took or 0)
        fields["duration_s"] = took
    return RunRecord(**fields)


def expected(fleet: FleetStore) -> dict[tuple[str, str], tuple[object, ...]]:
    """(newest run, newest that ran, durations, schedule, zone) per (host, job), from the
    runs (the schedule and zone: the newest that a run gave)."""
    rows = fleet.conn.execute(
        "SELECT host, job, run_id, started_at, status, duration_s, schedule, tz FROM cronwrap_runs"
    ).fetchall()
    by_key: dict[tuple[str, str], list[tuple[object, ...]]] = {}
    for row in rows:
        by_key.setdefault((row[0], row[1]), []).append(row)
    out = {}
    for key, runs in by_key.items():
        runs.sort(key=lambda r: (r[3], r[2]), reverse=True)  # newest first, ties by run id
        ran = next((r[2] for r in runs if r[4] != "skipped"), None)
        finished = [r[5] for r in runs if r[5] is not None and r[4] not in ("skipped", "running")]
        schedule = next((r[6] for r in runs if r[6] is not None), None)
        tz = next((r[7] for r in runs if r[7] is not None), None)
        out[key] = (runs[0][2], ran, finished[: fleetstore.SUMMARY_DURATIONS][::-1], schedule, tz)
    return out


def summaries(fleet: FleetStore) -> dict[tuple[str, str], tuple[object, ...]]:
    """What status reads: jobs(), in the same shape."""
    return {
        (j.host, j.name): (
            j.last.run_id if j.last else None,
            j.last_ran.run_id if j.last_ran else None,
            j.durations,
            j.schedule,
            j.tz,
        )
        for j in fleet.jobs()
    }


def assert_agrees(fleet: FleetStore) -> None:
    assert summaries(fleet) == expected(fleet)
    assert_runs_as_stored(fleet)


def assert_runs_as_stored(fleet: FleetStore) -> None:
    """What jobs() gives of a job's newest run (and of the run that ran, under a skip) is that
    run as stored, but for the columns status never shows."""
    hidden = ("command", "output_tail", "slot", "rerun_of", "dead", "resolved_at", "resolved_by")
    for job in fleet.jobs():
        for got in {job.last, job.last_ran} - {None}:
            stored = fleet.run(got.run_id)._replace(**dict.fromkeys(hidden))
            assert got._replace(dead=None) == stored, got.run_id


def test_runs_arriving_out_of_order_leave_the_newest_on_top(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("r3", at=30, took=3.0)], [])
        fleet.upsert([rec("r1", at=10, took=1.0, schedule="0 4 * * *")], [])  # a late batch
        fleet.upsert([rec("r2", at=20, took=2.0)], [])
        [job] = fleet.jobs()
        assert (job.last.run_id, job.durations) == ("r3", [1.0, 2.0, 3.0])
        assert job.schedule == "0 3 * * *"  # the newest run's, not the late batch's
        assert_agrees(fleet)


def test_a_running_row_replaced_by_its_end_and_never_back(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("r1", at=0)], [])
        fleet.upsert([rec("r2", at=10, status="running")], [])
        [job] = fleet.jobs()
        assert (job.last.status, job.durations) == ("running", [2.0])
        fleet.upsert([rec("r2", at=10, status="failed", took=5.0)], [])
        fleet.upsert([rec("r2", at=10, status="running")], [])  # a slow shipper's start state
        [job] = fleet.jobs()
        assert (job.last.status, job.durations) == ("failed", [2.0, 5.0])
        assert_agrees(fleet)


def test_duplicates_in_a_batch_and_across_batches_count_once(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        batch = [rec("r1", at=0, took=1.0), rec("r2", at=5, took=2.0)]
        fleet.upsert([*batch, *batch], [])
        fleet.upsert(batch, [])
        [job] = fleet.jobs()
        assert job.durations == [1.0, 2.0]
        assert_agrees(fleet)


def test_two_hosts_with_one_job_name_are_two_summaries(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("a1", host="a", at=0, took=1.0), rec("b1", host="b", at=5, took=9.0)], [])
        jobs = {j.host: j for j in fleet.jobs()}
        assert (jobs["a"].last.run_id, jobs["a"].durations) == ("a1", [1.0])
        assert (jobs["b"].last.run_id, jobs["b"].durations) == ("b1", [9.0])
        assert [j.host for j in fleet.jobs(host="b")] == ["b"]
        assert_agrees(fleet)


def test_a_skip_after_a_run_keeps_the_run_that_ran(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("r1", at=0, status="failed")], [])
        fleet.upsert([rec("s1", at=10, status="skipped")], [])
        [job] = fleet.jobs()
        assert (job.last.run_id, job.last_ran.run_id, job.durations) == ("s1", "r1", [2.0])
        fleet.upsert([rec("r0", at=-10, status="skipped")], [])  # an older skip, late
        fleet.upsert([rec("r2", at=20)], [])
        [job] = fleet.jobs()
        assert job.last.run_id == job.last_ran.run_id == "r2"
        assert_agrees(fleet)


def test_a_job_with_only_skips_has_no_run_that_ran(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("s1", at=0, status="skipped")], [])
        [job] = fleet.jobs()
        assert (job.last.run_id, job.last_ran, job.durations) == ("s1", None, [])
        assert_agrees(fleet)


def test_only_the_newest_durations_are_kept(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        runs = [rec(f"r{n:02}", at=n, took=float(n)) for n in range(30)]
        random.Random(1).shuffle(runs)
        for at in range(0, 30, 7):
            fleet.upsert(runs[at : at + 7], [])
        [job] = fleet.jobs()
        assert job.durations == [float(n) for n in range(18, 30)]
        assert_agrees(fleet)


def test_a_run_id_under_another_host_is_left_alone(pg_url: str) -> None:
    """A run never moves: the summary of the job it was shipped under stays right."""
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("r1", host="a", at=0)], [])
        fleet.upsert([rec("r1", host="b", at=5)], [])
        assert fleet.run("r1").host == "a"
        got = summaries(fleet)
        assert got.pop(("b", "backup"))[:3] == (None, None, [])  # as a job that never ran
        assert got == expected(fleet)


def test_the_same_runs_in_any_order_and_any_batches_agree(pg_url: str) -> None:
    """Every run's states (running, then its end) shipped in shuffled batches, some twice."""
    rnd = random.Random(19)
    states = []
    for n in range(60):
        host, job, at = rnd.choice("ab"), rnd.choice(("backup", "sync")), rnd.randrange(40)
        status = rnd.choice((*FINISHED, "skipped", "skipped"))
        if status != "skipped":
            states.append(rec(f"r{n}", host=host, job=job, at=at, status="running"))
        states.append(rec(f"r{n}", host=host, job=job, at=at, status=status, took=n / 10))
    with FleetStore.open(pg_url) as fleet:
        for _ in range(3):  # three shipments of everything, each in another order
            rnd.shuffle(states)
            at = 0
            while at < len(states):
                size = rnd.randrange(1, 9)
                fleet.upsert(states[at : at + size], [])
                assert_agrees(fleet)
                at += size
        assert len(fleet.jobs()) == 4


def test_concurrent_shippers_lose_no_update_and_never_deadlock(pg_url: str) -> None:
    """Eight connections at once, two per host, each shipping its own runs of the same jobs in
    batches that span several jobs: no deadlock, and the summaries agree with the runs."""
    errors: list[BaseException] = []

    def ship(worker: int) -> None:
        host = "ab"[worker % 2]
        rnd = random.Random(worker)
        try:
            with FleetStore.open(pg_url) as fleet:
                for n in range(25):
                    batch = [
                        rec(
                            f"w{worker}-{n}-{job}",
                            host=host,
                            job=job,
                            at=rnd.randrange(100),
                            took=rnd.random(),
                        )
                        for job in rnd.sample(["j1", "j2", "j3", "j4"], 3)
                    ]
                    fleet.upsert(batch, [])
        except BaseException as err:  # reported by the test thread
            errors.append(err)

    with FleetStore.open(pg_url):
        pass  # the schema first: the workers then only write
    workers = [threading.Thread(target=ship, args=(n,)) for n in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not errors, errors
    with FleetStore.open(pg_url) as fleet:
        assert fleet.count_runs() == 8 * 25 * 3
        assert_agrees(fleet)


@pytest.mark.parametrize("version", [2, 3], ids=["schema-2", "schema-3"])
def test_migrations_fill_the_summary_of_a_store_written_before_them(
    pg_url: str, version: int
) -> None:
    """A store of an older schema, with runs written as cronwrap wrote them then, upgraded on
    open: the summary (schema 3) and the newest run's columns in it (schema 4) are filled."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE cronwrap_schema "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )

        def upgrade(to: int) -> None:
            for number in range(int(conn.execute("SELECT count(*) FROM cronwrap_schema")
                                    .fetchone()[0]), to):  # fmt: skip
                conn.execute(fleetstore.MIGRATIONS[number])
                conn.execute("INSERT INTO cronwrap_schema (version) VALUES (%s)", (number + 1,))

        upgrade(2)
        for n in range(20):
            status = ("success", "skipped", "failed", "running")[n % 4] if n < 19 else "skipped"
            r = rec(f"r{n:02}", host="ab"[n % 2], at=n, status=status, took=float(n))
            conn.execute(
                "INSERT INTO cronwrap_runs (run_id, host, job, started_at, ended_at, status, "
                "exit_code, duration_s, schedule, tz, reason) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'UTC', 'why')",
                (r.run_id, r.host, r.job, r.started_at, r.ended_at, r.status, n, r.duration_s,
                 r.schedule),
            )  # fmt: skip
        conn.execute(
            "INSERT INTO cronwrap_jobs (host, job, schedule, tz, last_started_at) "
            "SELECT host, job, max(schedule), 'UTC', max(started_at) FROM cronwrap_runs "
            "GROUP BY 1, 2"
        )
        upgrade(version)
    with FleetStore.open(pg_url) as fleet:
        assert fleet.schema_version == fleetstore.SCHEMA_VERSION
        got = summaries(fleet)
        assert got == expected(fleet)
        assert got["b", "backup"][:2] == ("r19", "r15")  # skips on top of a running run
        assert_runs_as_stored(fleet)
        assert {j.last.reason for j in fleet.jobs()} == {"why"}


@pytest.mark.parametrize("names", [["backup"], ["backup", "nope"], []], ids=["one", "two", "none"])
def test_jobs_reads_only_the_names_asked_for(pg_url: str, names: list[str]) -> None:
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("r1"), rec("r2", job="sync")], [])
        assert [j.name for j in fleet.jobs(names=names)] == [n for n in names if n != "nope"]


def test_the_dashboards_failures_are_read_through_an_index(pg_url: str) -> None:
    """Every status failures() asks for is in the index (cancelled too): never a full scan of
    millions of runs for the page's 20 newest failures."""
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec(f"r{n}", at=n, status=s) for n, s in enumerate(FINISHED)], [])
        assert {f.status for f in fleet.failures()} == set(FINISHED) - {"success"}
        fleet.conn.execute("SET enable_seqscan = off")
        sql = fleetstore.failures_sql()
        plan = fleet.conn.execute("EXPLAIN " + sql, (None, None, None, None, 20)).fetchall()
        assert "cronwrap_runs_dead" in "\n".join(r[0] for r in plan)
        # one host's, one job's (the page of --host H --job J): through an index too
        args = ("h1", "h1", ["sync"], ["sync"], 20)
        plan = fleet.conn.execute("EXPLAIN " + sql, args).fetchall()
        assert "Index" in "\n".join(r[0] for r in plan) and "Seq Scan" not in str(plan)
