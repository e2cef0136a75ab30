"""The fleet store: every host's runs, attempts and redacted output tails in one shared
PostgreSQL database, keyed by host and job. The local SQLite store stays the source of truth:
runs are queued there (fleet_outbox) and shipped from it, in order, by idempotent upserts keyed
by run id. psycopg is imported here only, and only when a fleet store is configured."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timezone

from cronwrap.errors import ConfigError, CronwrapError
from cronwrap.redact import redact_url
from cronwrap.state.fleetschema import (
    MIGRATE_LOCK,
    MIGRATE_TIMEOUT_MS,
    MIGRATIONS,
    SCHEMA_VERSION,
)
from cronwrap.state.records import RUN_COLUMNS, AttemptRecord, RunRecord
from cronwrap.state.schema import DEAD_STATUSES

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
# A (host, job)'s runs newest first: in the order they first arrived (schema 5), which is
# the order the host recorded them in (it ships its queue in that order), so a clock stepped
# back cannot put an older run on top; runs stored before schema 5 come after, by started_at.
NEWEST_FIRST = "r.seq DESC NULLS LAST, r.started_at DESC, r.run_id DESC"
OLDEST_FIRST = "r.seq NULLS FIRST, r.started_at, r.run_id"
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
_PROBLEMS = DEAD_STATUSES  # the failures a dashboard lists: cancelled runs are failures too


class FleetStoreError(CronwrapError):
    """The fleet store could not be reached or refused a statement."""


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


def check_url(url: str, what: str) -> None:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{what} {redact_url(url)}: expected a postgresql:// URL")


def connect(
    url: str,
    *,
    timeout_s: float,
    statement_timeout_s: float,
    what: str = "fleet store",
    extra_options: str = "",
) -> Any:
    """A psycopg connection whose connect and statements are bounded (connect_timeout is at
    least 2 s in libpq; statement_timeout is enforced by the server; tcp_user_timeout and
    keepalives end a connection whose server stopped answering)."""
    option = "--lock-url" if what == "lock server" else "--fleet-store"
    check_url(url, option)
    psycopg = _psycopg(option)
    budget_ms = max(1, int(statement_timeout_s * 1000))
    try:
        return psycopg.connect(
            url,
            connect_timeout=max(2, round(timeout_s)),
            options=f"-c statement_timeout={budget_ms} -c TimeZone=UTC {extra_options}".strip(),
            application_name="cronwrap",
            autocommit=True,
            keepalives=1,
            keepalives_idle=max(1, int(statement_timeout_s)),
            keepalives_interval=1,
            keepalives_count=3,
            tcp_user_timeout=max(1000, budget_ms),
        )
    except psycopg.ProgrammingError as err:  # a malformed URL
        raise ConfigError(f"{what} {redact_url(url)}: {_first_line(err)}") from None
    except psycopg.Error as err:
        raise FleetStoreError(f"{what} {redact_url(url)} unavailable: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    # libpq messages may quote the connection string's host but never its password; keep
    # only the first line, which says what went wrong
    return text[0] if text else type(err).__name__


def _ts(value: datetime | None) -> datetime | None:
    return value.astimezone(timezone.utc) if value is not None else None


class FleetStore:
    """A connection to the shared PostgreSQL store; open with FleetStore.open(url)."""

    def __init__(self, conn: Any, url: str) -> None:
        self.conn = conn
        self.url = url
        self.shown = redact_url(url)

    @classmethod
    def open(
        cls, url: str, *, timeout_s: float = 10.0, statement_timeout_s: float = 30.0
    ) -> FleetStore:
        store = cls(connect(url, timeout_s=timeout_s, statement_timeout_s=statement_timeout_s), url)
        try:
            store.migrate(lock_wait_s=min(statement_timeout_s, 5.0))
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
        return FleetStoreError(f"fleet store {self.shown}: {_first_line(err)}")

    def _run(self, fn: Any) -> Any:
        psycopg = _psycopg()
        try:
            return fn(self.conn)
        except psycopg.Error as err:
            raise self._error(err) from None

    # ---------------------------------------------------------- schema

    @property
    def schema_version(self) -> int:
        def get(conn: Any) -> int:
            row = conn.execute("SELECT to_regclass('cronwrap_schema')").fetchone()
            if row[0] is None:
                return 0
            return int(conn.execute("SELECT max(version) FROM cronwrap_schema").fetchone()[0] or 0)

        return int(self._run(get))

    def migrate(self, *, lock_wait_s: float, needed: int = SCHEMA_VERSION) -> None:
        """Bring the schema up to this cronwrap's version; refuse a newer one. A store at
        `needed` or later (a caller that uses only older tables) is left as it is. The upgrade
        waits at most `lock_wait_s` for each lock: behind another session's open transaction
        on a table it alters, it gives up (FleetStoreError) rather than queue, since every
        later statement on that table would queue behind it, the leases' included."""
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise FleetStoreError(
                f"fleet store {self.shown} has schema {version}, newer than this cronwrap "
                f"({SCHEMA_VERSION}): upgrade cronwrap"
            )
        if version >= needed:
            return

        def upgrade(conn: Any) -> None:
            with conn.transaction():
                # an upgrade may fill what it adds from millions of runs (schema 3: about 3 s
                # for 5M): more than a shipper's --fleet-budget allows each statement
                conn.execute(f"SET LOCAL statement_timeout = {MIGRATE_TIMEOUT_MS}")
                conn.execute(f"SET LOCAL lock_timeout = {max(1, int(lock_wait_s * 1000))}")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
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

    # ---------------------------------------------------------- reading

    def jobs(
        self, *, host: str | None = None, names: Sequence[str] | None = None
    ) -> list[FleetJob]:
        """Every (host, job) (or those of one host, or of the jobs named) with its newest run,
        its newest run that was not a skip and the durations of its last finished runs (oldest
        first), from the summary rows upsert keeps: only what status shows of a run, and the
        run that ran read by its id only under a skip."""
        sql = f"""
            SELECT j.host, j.job, j.schedule, j.tz, j.durations, j.ran_run_id, {_LAST}
            FROM cronwrap_jobs j
            WHERE (%s::text IS NULL OR j.host = %s) AND (%s::text[] IS NULL OR j.job = ANY(%s))
        """
        wanted = list(names) if names is not None else None
        # binary: 5,000 rows of times and numbers decode faster than their text
        rows = self._run(
            lambda c: c.cursor(binary=True).execute(sql, (host, host, wanted, wanted)).fetchall()
        )
        make = RunRecord._make
        lasts = [make(row[6:]) if row[6] is not None else None for row in rows]
        # the run that ran under a skip, read a moment later: a run's state only moves on
        skipped = [
            row[5]
            for row, last in zip(rows, lasts, strict=True)
            if last and last.status == "skipped"
        ]
        ran_by_id = self._runs_by_id(skipped) if skipped else {}
        out = []
        for row, last in zip(rows, lasts, strict=True):
            ran = last if last is None or last.status != "skipped" else ran_by_id.get(row[5])
            out.append(FleetJob(row[0], row[1], row[2], row[3], last, ran, row[4]))
        return out

    def _runs_by_id(self, run_ids: list[str]) -> dict[str, RunRecord]:
        """What status shows of these runs, by id."""
        sql = f"SELECT {_shown('r')} FROM cronwrap_runs r WHERE r.run_id = ANY(%s)"
        rows = self._run(lambda c: c.cursor(binary=True).execute(sql, (run_ids,)).fetchall())
        return {row[0]: RunRecord._make(row) for row in rows}

    def runs(self, job: str | None, *, host: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The job's (or every job's) newest runs first, on every host or one: one host's in
        the order it recorded them (as its own history), every host's by their clocks."""
        cols = ", ".join(RUN_COLUMNS)
        order = NEWEST_FIRST if host is not None else "r.started_at DESC"
        sql = (
            f"SELECT {cols} FROM cronwrap_runs r WHERE (%s::text IS NULL OR job = %s) "
            f"AND (%s::text IS NULL OR host = %s) ORDER BY {order} LIMIT %s"
        )
        rows = self._run(lambda c: c.execute(sql, (job, job, host, host, limit)).fetchall())
        return [RunRecord(*r) for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        cols = ", ".join(RUN_COLUMNS)
        rows = self._run(
            lambda c: c.execute(
                f"SELECT {cols} FROM cronwrap_runs WHERE run_id = %s", (run_id,)
            ).fetchall()
        )
        return RunRecord(*rows[0]) if rows else None

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT run_id, attempt, started_at, ended_at, status, exit_code, signal, "
                "duration_s FROM cronwrap_attempts WHERE run_id = %s ORDER BY attempt",
                (run_id,),
            ).fetchall()
        )
        return [AttemptRecord(*r) for r in rows]

    def failures(
        self, *, host: str | None = None, jobs: Sequence[str] = (), limit: int = 20
    ) -> list[RunRecord]:
        """The newest failed runs on every host, or `host`, of every job, or `jobs` (with
        their redacted output tails)."""
        sql = failures_sql()
        named = list(jobs) or None
        rows = self._run(lambda c: c.execute(sql, (host, host, named, named, limit)).fetchall())
        return [RunRecord(*r) for r in rows]

    def hosts(self) -> list[str]:
        """Every host that has shipped a run."""
        rows = self._run(
            lambda c: c.execute("SELECT DISTINCT host FROM cronwrap_jobs ORDER BY host").fetchall()
        )
        return [str(r[0]) for r in rows]

    def job_names(self, *, host: str | None = None, limit: int = 10) -> list[str]:
        """The first job names in the store (of one host, or of all), in order."""
        sql = (
            "SELECT DISTINCT job FROM cronwrap_jobs WHERE %s::text IS NULL OR host = %s "
            "ORDER BY job LIMIT %s"
        )
        rows = self._run(lambda c: c.execute(sql, (host, host, limit)).fetchall())
        return [str(r[0]) for r in rows]

    def count_runs(self) -> int:
        return int(
            self._run(lambda c: c.execute("SELECT count(*) FROM cronwrap_runs").fetchone()[0])
        )


def failures_sql() -> str:
    """The newest failed runs, of one host (the first two parameters) or all, of some jobs
    (the next two: a list) or all, at most the fifth; cronwrap_runs_dead holds exactly
    these statuses."""
    return (
        f"SELECT {', '.join(RUN_COLUMNS)} FROM cronwrap_runs WHERE status IN {_PROBLEMS!r} "
        "AND (%s::text IS NULL OR host = %s) AND (%s::text[] IS NULL OR job = ANY(%s)) "
        "ORDER BY started_at DESC LIMIT %s"
    )


# what status shows of a run; the other columns of a RunRecord read as None (dead as False)
_NOT_SHOWN = {
    "command": "NULL",
    "output_tail": "NULL",
    "slot": "NULL",
    "rerun_of": "NULL",
    "dead": "false",
    "resolved_at": "NULL",
    "resolved_by": "NULL",
}


def _shown(alias: str) -> str:
    """A run's columns in RunRecord's order, those status does not show as constants: the
    rows then become RunRecords as they are (no per-row mapping of names)."""
    return ", ".join(_NOT_SHOWN.get(c, f"{alias}.{c}") for c in RUN_COLUMNS)


# the same of the newest run, from the summary in cronwrap_jobs j
_FROM_KEY = {"run_id": "j.last_run_id", "job": "j.job", "host": "j.host"}
_LAST = ", ".join(_NOT_SHOWN.get(c) or _FROM_KEY.get(c) or f"j.last_{c}" for c in RUN_COLUMNS)


class FleetJob:
    """One (host, job) as the fleet store knows it."""

    __slots__ = ("durations", "host", "last", "last_ran", "name", "schedule", "tz")

    def __init__(
        self,
        host: str,
        name: str,
        schedule: str | None,
        tz: str | None,
        last: RunRecord | None,
        last_ran: RunRecord | None,
        durations: list[float],
    ) -> None:
        self.host = host
        self.name = name
        self.schedule = schedule
        self.tz = tz
        self.last = last  # the newest row, a skip included
        self.last_ran = last_ran  # the newest row that is not a skip
        self.durations = durations


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
            d[col] = _pg_text(value)
    return tuple(d[c] for c in RUN_COLUMNS)


def _pg_text(value: str) -> str:
    """What PostgreSQL text can hold of a value: a NUL (an output tail may have one: find
    -print0) and the bytes that are not UTF-8, which the local store keeps as they are (a
    command naming a Latin-1 file), each go as U+FFFD, as the tail's such bytes do. One run
    PostgreSQL refused would fail every shipment of its host's queue, for good."""
    if "\0" in value:
        value = value.replace("\0", "\ufffd")
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the bytes surrogateescape kept
        value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


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
