"""The fleet store: every host's runs, attempts and redacted output tails in one shared
PostgreSQL database, keyed by host and job. The local SQLite store stays the source of truth:
runs are queued there (fleet_outbox) and shipped from it, in order, by idempotent upserts keyed
by run id. psycopg is imported here only, and only when a fleet store is configured; what it
reads is state/fleetread.py's, which status also reads through libpq without psycopg."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timezone

from cronwrap.errors import ConfigError
from cronwrap.redact import redact_url

# FleetJob, FleetStoreError, check_url and failures_sql are named here too (by the shipper,
# the lease and the tests)
from cronwrap.state.fleetread import FleetJob as FleetJob  # noqa: PLC0414
from cronwrap.state.fleetread import (
    FleetReader,
    connect_settings,
    first_line,
    newer_schema,
    pg_text,
    url_problem,
)
from cronwrap.state.fleetread import FleetStoreError as FleetStoreError  # noqa: PLC0414
from cronwrap.state.fleetread import check_url as check_url  # noqa: PLC0414
from cronwrap.state.fleetread import failures_sql as failures_sql  # noqa: PLC0414
from cronwrap.state.fleetschema import (
    MIGRATE_LOCK,
    MIGRATE_TIMEOUT_MS,
    MIGRATIONS,
    NEWEST_FIRST,
    OLDEST_FIRST,
    SCHEMA_VERSION,
)
from cronwrap.state.records import RUN_COLUMNS, AttemptRecord, RunRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cronwrap.state.store import Store

SUMMARY_DURATIONS = 12  # durations kept per (host, job): status's sparkline and trend
# the newest run's columns the summary holds (as last_<column>), beside last_run_id and
# last_started_at: what status shows of a run, less what the job's key already says
LAST_COPIED = (
    "pid", "ended_at", "status", "exit_code", "signal", "attempts", "duration_s", "reason",
    "schedule", "tz", "log_path", "exit_origin", "flags", "warnings",
)  # fmt: skip
# One (host, job)'s summary from its runs as they are now (so it cannot drift from them,
# whatever order runs arrive in): the newest run, the newest that was not a skip, the newest
# finished runs' durations, and the newest schedule and zone a run gave. Migrations 3 and 4
# fill the rest alike.
SUMMARY_SQL = f"""
    UPDATE cronwrap_jobs j SET
        last_run_id = l.run_id,
        last_started_at = l.started_at,
        {", ".join(f"last_{c} = l.{c}" for c in LAST_COPIED)},
        schedule = coalesce((
            SELECT r.schedule FROM cronwrap_runs r
            WHERE r.host = j.host AND r.job = j.job AND r.schedule IS NOT NULL
            ORDER BY {NEWEST_FIRST} LIMIT 1), j.schedule),
        tz = coalesce((
            SELECT r.tz FROM cronwrap_runs r
            WHERE r.host = j.host AND r.job = j.job AND r.tz IS NOT NULL
            ORDER BY {NEWEST_FIRST} LIMIT 1), j.tz),
        ran_run_id = (
            SELECT r.run_id FROM cronwrap_runs r
            WHERE r.host = j.host AND r.job = j.job AND r.status <> 'skipped'
            ORDER BY {NEWEST_FIRST} LIMIT 1),
        durations = coalesce((
            SELECT array_agg(y.duration_s ORDER BY {OLDEST_FIRST.replace("r.", "y.")}) FROM (
                SELECT r.duration_s, r.seq, r.started_at, r.run_id FROM cronwrap_runs r
                WHERE r.host = j.host AND r.job = j.job AND r.duration_s IS NOT NULL
                AND r.status NOT IN ('skipped', 'running')
                ORDER BY {NEWEST_FIRST} LIMIT {SUMMARY_DURATIONS}) y), '{{}}')
    FROM (
        SELECT r.run_id, r.started_at, {", ".join(f"r.{c}" for c in LAST_COPIED)}
        FROM cronwrap_runs r WHERE r.host = %s AND r.job = %s
        ORDER BY {NEWEST_FIRST} LIMIT 1) l
    WHERE j.host = %s AND j.job = %s
"""
_RUN_SQL = (
    f"INSERT INTO cronwrap_runs ({', '.join(RUN_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(RUN_COLUMNS))}) "
    "ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "run_id")
    + ", shipped_at = now() "
    "WHERE cronwrap_runs.host = excluded.host AND cronwrap_runs.job = excluded.job "
    "AND (cronwrap_runs.status = 'running' OR excluded.status <> 'running')"
)
# an attempt is written only beside its run as stored (the last three parameters: the host
# and job of its run in this batch, NULL for a run shipped before); its end is never replaced
# by its running state
_ATTEMPT_SQL = """
    INSERT INTO cronwrap_attempts
    SELECT %s, %s, %s::timestamptz, %s::timestamptz, %s, %s::integer, %s::integer,
        %s::double precision
    WHERE EXISTS (SELECT 1 FROM cronwrap_runs r WHERE r.run_id = %s
        AND (%s::text IS NULL OR (r.host = %s AND r.job = %s)))
    ON CONFLICT (run_id, attempt) DO UPDATE SET ended_at = excluded.ended_at,
        status = excluded.status, exit_code = excluded.exit_code,
        signal = excluded.signal, duration_s = excluded.duration_s
    WHERE cronwrap_attempts.ended_at IS NULL OR excluded.ended_at IS NOT NULL
"""
# the row is locked (inserted or updated) until the commit; its summary follows
_JOB_SQL = (
    "INSERT INTO cronwrap_jobs (host, job, schedule, tz) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (host, job) DO UPDATE SET host = excluded.host"
)
# after the summary: a job row with no run (its only run id was refused) goes
_NO_RUN_SQL = "DELETE FROM cronwrap_jobs WHERE host = %s AND job = %s AND last_run_id IS NULL"


def _psycopg(what: str = "--fleet-store") -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            f"{what} needs psycopg, cronwrap's postgres extra: reinstall cronwrap from its "
            "checkout with pip install '.[postgres]' (or from its wheel: "
            "pip install 'cronwrap_cli-VERSION-py3-none-any.whl[postgres]')"
        ) from None
    return psycopg


def connect(
    url: str,
    *,
    timeout_s: float,
    statement_timeout_s: float,
    what: str = "fleet store",
    extra_options: str = "",
) -> Any:
    """A psycopg connection with connect_settings (its connect and statements bounded)."""
    option = "--lock-url" if what == "lock server" else "--fleet-store"
    check_url(url, option)
    psycopg = _psycopg(option)
    settings = connect_settings(
        timeout_s=timeout_s, statement_timeout_s=statement_timeout_s, extra_options=extra_options
    )
    try:
        return psycopg.connect(url, autocommit=True, **settings)
    except psycopg.ProgrammingError as err:  # a malformed URL
        raise ConfigError(f"{what} {redact_url(url)}: {url_problem(url, err)}") from None
    except psycopg.Error as err:
        raise FleetStoreError(f"{what} {redact_url(url)} unavailable: {first_line(err)}") from None


def _ts(value: datetime | None) -> datetime | None:
    return value.astimezone(timezone.utc) if value is not None else None


class FleetStore(FleetReader):
    """A psycopg connection to the shared PostgreSQL store, which writes, upgrades the schema
    and reads as FleetReader says; open with FleetStore.open(url)."""

    def __init__(self, conn: Any, url: str) -> None:
        self.conn = conn
        self.url = url
        self.shown = redact_url(url)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        timeout_s: float = 10.0,
        statement_timeout_s: float = 30.0,
        upgrade_wait_s: float = 0.0,
    ) -> FleetStore:
        store = cls(connect(url, timeout_s=timeout_s, statement_timeout_s=statement_timeout_s), url)
        try:
            store.migrate(lock_wait_s=min(statement_timeout_s, 5.0), upgrade_wait_s=upgrade_wait_s)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection may fail to close
            self.conn.close()

    def __enter__(self) -> FleetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, err: BaseException) -> FleetStoreError:
        return FleetStoreError(f"fleet store {self.shown}: {first_line(err)}")

    def _run(self, fn: Any) -> Any:
        psycopg = _psycopg()
        try:
            return fn(self.conn)
        except psycopg.Error as err:
            raise self._error(err) from None

    def _query(self, sql: str, params: Sequence[object]) -> list[list[Any]]:
        import json

        rows = self._run(lambda c: c.execute(sql, params).fetchall())
        return json.loads("[" + ",".join(row[0] for row in rows) + "]")  # type: ignore[no-any-return]

    # ---------------------------------------------------------- schema

    def migrate(
        self, *, lock_wait_s: float, needed: int = SCHEMA_VERSION, upgrade_wait_s: float = 0.0
    ) -> None:
        """Bring the schema up to this cronwrap's version; refuse a newer one. A store at
        `needed` or later (a caller that uses only older tables) is left as it is. The upgrade
        waits at most `lock_wait_s` for each lock: behind another session's open transaction
        on a table it alters, it gives up (FleetStoreError) rather than queue, since every
        later statement on that table would queue behind it, the leases' included. For
        another session's upgrade (the advisory lock, which holds up nobody else) it waits
        `upgrade_wait_s` if that is longer: a patient caller then finds the work done."""
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise newer_schema(self.shown, version)
        if version >= needed:
            return

        def upgrade(conn: Any) -> None:
            with conn.transaction():
                # an upgrade may fill what it adds from millions of runs (schema 3: about 3 s
                # for 5M): more than a shipper's --fleet-budget allows each statement
                conn.execute(f"SET LOCAL statement_timeout = {MIGRATE_TIMEOUT_MS}")
                patience = max(lock_wait_s, upgrade_wait_s)
                conn.execute(f"SET LOCAL lock_timeout = {max(1, int(patience * 1000))}")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
                conn.execute(f"SET LOCAL lock_timeout = {max(1, int(lock_wait_s * 1000))}")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS cronwrap_schema "
                    "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                row = conn.execute("SELECT max(version) FROM cronwrap_schema").fetchone()
                current = int(row[0] or 0)
                for number in range(current, SCHEMA_VERSION):
                    conn.execute(MIGRATIONS[number])
                    conn.execute("INSERT INTO cronwrap_schema (version) VALUES (%s)", (number + 1,))

        self._run(upgrade)

    # ---------------------------------------------------------- writing

    def upsert(self, runs: Sequence[RunRecord], attempts: Sequence[AttemptRecord]) -> None:
        """Write runs (in the order the host recorded them: the first arrival of each sets its
        place, see NEWEST_FIRST) and attempts in one transaction, with the summary of each
        (host, job) they belong to; running again writes nothing new. A run's newer state
        replaces an older one, never the reverse (two hosts' shippers may race). A run id
        already stored under another host or job is refused: the run stays where it is, the
        attempts of the other are not written over its own, and no job row is left for a
        (host, job) that then has no run (status would show it as a job that never ran). The
        job rows are taken first, in key order: a second shipper writing the same job waits
        for this one and then sums up its runs with this one's, and none can deadlock another."""
        jobs: dict[tuple[str, str], RunRecord] = {}
        for r in runs:
            jobs[r.host, r.job] = r  # the job row starts with its newest run's schedule
        keys = sorted(jobs)
        owner = {r.run_id: (r.host, r.job) for r in runs}
        atts = sorted(attempts, key=lambda a: (a.run_id, a.attempt))
        att_rows = [_attempt_params(a, *owner.get(a.run_id, (None, None))) for a in atts]

        def write(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cur:
                if keys:
                    cur.executemany(
                        _JOB_SQL, [(h, j, jobs[h, j].schedule, jobs[h, j].tz) for h, j in keys]
                    )
                    cur.executemany(_RUN_SQL, [_run_params(r) for r in runs])
                if att_rows:
                    cur.executemany(_ATTEMPT_SQL, att_rows)
                if keys:
                    cur.executemany(SUMMARY_SQL, [(h, j, h, j) for h, j in keys])
                    cur.executemany(_NO_RUN_SQL, keys)

        self._run(write)


def _attempt_params(a: AttemptRecord, host: str | None, job: str | None) -> tuple[object, ...]:
    """_ATTEMPT_SQL's parameters: the attempt, then its run's id, host and job (or NULLs)."""
    return (
        *(a.run_id, a.attempt, _ts(a.started_at), _ts(a.ended_at), a.status, a.exit_code),
        *(a.signal, a.duration_s, a.run_id, host, host, job),
    )


def _run_params(r: RunRecord) -> tuple[object, ...]:
    d = r._asdict()
    for col in ("started_at", "ended_at", "slot", "resolved_at"):
        d[col] = _ts(d[col])
    d["dead"] = bool(d["dead"])
    for col, value in d.items():
        if isinstance(value, str):
            d[col] = pg_text(value)
    return tuple(d[c] for c in RUN_COLUMNS)


def ship_pending(
    local: Store, fleet: FleetStore, *, batch: int = 500, max_batches: int = 20
) -> int:
    """Ship queued runs (their newest state and attempts) oldest first; an entry leaves the
    queue only after PostgreSQL committed it, so a failure part-way ships it again next time
    (the upserts make that harmless, and never put a run in twice). Returns how many queue
    entries were shipped."""
    shipped = 0
    for _ in range(max_batches):
        pending = local.fleet_pending(limit=batch)
        if not pending:
            break
        runs: list[RunRecord] = []
        attempts: list[AttemptRecord] = []
        seen: set[str] = set()
        for _seq, run_id in pending:
            if run_id in seen:
                continue
            seen.add(run_id)
            rec = local.run(run_id)
            if rec is None:  # pruned before it could be shipped: nothing left to send
                continue
            runs.append(rec)
            attempts.extend(local.attempts(run_id))
        fleet.upsert(runs, attempts)
        local.fleet_shipped([seq for seq, _ in pending])
        shipped += len(pending)
        if len(pending) < batch:
            break
    return shipped
