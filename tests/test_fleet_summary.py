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
from cronwrap.state.records import RUN_COLUMNS, AttemptRecord, RunRecord
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


def attempt(run_id: str, exit_code: int | None) -> AttemptRecord:
    """Attempt 1 of a run: finished with exit_code, or running (None)."""
    end = None if exit_code is None else T0 + timedelta(seconds=2)
    status = None if exit_code is None else ("success" if exit_code == 0 else "failed")
    took = None if end is None else 2.0
    return AttemptRecord(run_id, 1, T0, end, status, exit_code, None, took)


def expected(fleet: FleetStore) -> dict[tuple[str, str], tuple[object, ...]]:
    """(newest run, newest that ran, durations, schedule, zone) per (host, job), from the
    runs (the schedule and zone: the newest that a run gave). Newest: the run that arrived
    last (seq), then, for runs stored before schema 5 (no seq), the latest started."""
    rows = fleet.conn.execute(
        "SELECT host, job, run_id, started_at, status, duration_s, schedule, tz, seq "
        "FROM cronwrap_runs"
    ).fetchall()
    by_key: dict[tuple[str, str], list[tuple[object, ...]]] = {}
    for row in rows:
        by_key.setdefault((row[0], row[1]), []).append(row)
    out = {}
    for key, runs in by_key.items():
        # newest first, ties by run id
        runs.sort(key=lambda r: (r[8] is not None, r[8] or 0, r[3], r[2]), reverse=True)
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


def test_the_run_recorded_last_is_on_top_whatever_its_clock_said(pg_url: str) -> None:
    """A host ships its runs in the order it recorded them: after its clock stepped back an
    hour, the run it recorded last started "before" the others, and is still the newest (as
    the host's own status says, by its record order), its duration the last of the trend."""
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("r1", at=60, took=1.0)], [])
        fleet.upsert([rec("r2", at=70, took=2.0, schedule="0 4 * * *")], [])
        fleet.upsert([rec("r3", at=5, took=3.0, status="failed")], [])  # the clock stepped back
        [job] = fleet.jobs()
        assert (job.last.run_id, job.last.status, job.durations) == (
            "r3",
            "failed",
            [1.0, 2.0, 3.0],
        )
        assert job.schedule == "0 3 * * *"  # the newest run's, not the latest started one's
        assert_agrees(fleet)


def test_a_batch_keeps_the_order_the_host_recorded_its_runs_in(pg_url: str) -> None:
    """Runs queued while the store was down go in one batch: their order is the host's, not
    that of their (random) run ids or of their clocks."""
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("zz", at=50, took=1.0), rec("mm", at=10, took=2.0), rec("aa", at=30)], [])
        [job] = fleet.jobs()
        assert (job.last.run_id, job.durations) == ("aa", [1.0, 2.0, 2.0])
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
        # the last 12 to arrive, in the order they did, whatever their clocks said
        assert job.durations == [r.duration_s for r in runs[-12:]]
        assert job.durations != sorted(job.durations)
        assert_agrees(fleet)


def test_a_run_id_under_another_host_is_refused_and_leaves_no_job_row(pg_url: str) -> None:
    """A run never moves: the run and its attempts stay as the first host shipped them, and
    the other (host, job), which then has no run, has no row either (status showed it as a job
    that never ran, a job the store knows nothing of)."""
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("r1", host="a", at=0)], [attempt("r1", exit_code=0)])
        fleet.upsert([rec("r1", host="b", at=5), rec("r1", job="sync", at=5)], [attempt("r1", 9)])
        assert fleet.run("r1").host == "a"
        assert [a.exit_code for a in fleet.attempts("r1")] == [0]
        assert summaries(fleet) == expected(fleet)
        assert [(j.host, j.name) for j in fleet.jobs()] == [("a", "backup")]
        assert fleet.hosts() == ["a"]


def test_an_attempts_end_is_never_replaced_by_its_running_state(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([rec("r1", status="failed")], [attempt("r1", exit_code=4)])
        fleet.upsert([rec("r1", status="running")], [attempt("r1", exit_code=None)])  # stale
        [got] = fleet.attempts("r1")
        assert (got.status, got.exit_code, got.ended_at is not None) == ("failed", 4, True)


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


@pytest.mark.parametrize("version", [2, 3, 4], ids=["schema-2", "schema-3", "schema-4"])
def test_migrations_fill_the_summary_of_a_store_written_before_them(
    pg_url: str, version: int
) -> None:
    """A store of an older schema, with runs written as cronwrap wrote them then, upgraded on
    open: the summary (schema 3) and the newest run's columns in it (schema 4) are filled,
    the runs already stored are ordered by started_at (they have no seq, schema 5) and a job
    row without runs goes."""
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
        # a job row without runs, as an upsert of a run id of another host left it (schema 5
        # removes it)
        conn.execute("INSERT INTO cronwrap_jobs (host, job) VALUES ('c', 'ghost')")
        upgrade(version)
    with FleetStore.open(pg_url) as fleet:
        assert fleet.schema_version == fleetstore.SCHEMA_VERSION
        got = summaries(fleet)
        assert got == expected(fleet) and ("c", "ghost") not in got
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
