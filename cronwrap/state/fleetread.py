"""Reading the fleet store: the queries status, history and logs make (one set of SQL, each
row shaped by PostgreSQL as one JSON array) and their rows as
RunRecords, over either connection: libpq through ctypes (state/libpq.py), or psycopg (the
FleetStore of state/fleetstore.py, which also writes and migrates). Never imports psycopg
itself: only to upgrade an older schema, or when libpq does not load."""

from __future__ import annotations

from datetime import datetime

from cronwrap.errors import ConfigError, CronwrapError
from cronwrap.redact import redact_url
from cronwrap.state.fleetschema import NEWEST_FIRST, SCHEMA_VERSION
from cronwrap.state.records import RUN_COLUMNS, AttemptRecord, RunRecord
from cronwrap.state.schema import DEAD_STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from cronwrap.state.libpq import Connection

DRIVERS = ("libpq", "psycopg")  # CRONWRAP_FLEET_DRIVER: force one (unset: libpq if it loads)


class FleetStoreError(CronwrapError):
    """The fleet store could not be reached or refused a statement."""


def check_url(url: str, what: str) -> None:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{what} {redact_url(url)}: expected a postgresql:// URL")
    try:
        url.encode()
    except UnicodeEncodeError as err:  # a byte of the environment or a file that is not UTF-8
        shown = redact_url(url).encode(errors="surrogateescape").decode(errors="replace")
        raise ConfigError(
            f"{what} {shown}: not UTF-8 (a byte at character {err.start + 1} of the URL)"
        ) from None


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    # libpq messages may quote the connection string's host but never its password; keep
    # only the first line, which says what went wrong
    return text[0] if text else type(err).__name__


def url_problem(url: str, err: BaseException) -> str:
    """What libpq says of a URL it refused, without the value it quotes (a token, or the whole
    URL) when that holds the URL's password."""
    message = first_line(err)
    head, quote, quoted = message.rpartition(': "')
    return head if quote and any(s in quoted for s in _passwords(url)) else message


def _passwords(url: str) -> list[str]:
    """The password of the URL's user info (libpq ends it at the first @ or /) and of its
    password parameters, as written."""
    import re

    found = re.findall(r"[?&]password=([^&#]*)", url)
    userinfo, at, _ = url.partition("://")[2].partition("@")
    if at and "/" not in userinfo:
        found.append(userinfo.partition(":")[2])
    return [s for s in found if s]


def pg_text(value: str) -> str:
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


def connect_settings(
    *, timeout_s: float, statement_timeout_s: float, extra_options: str = ""
) -> dict[str, str]:
    """What every connection to the store sets over its URL: connect and statements are
    bounded (connect_timeout is at least 2 s in libpq; statement_timeout is enforced by the
    server; tcp_user_timeout and keepalives end a connection whose server stopped answering)."""
    budget_ms = max(1, int(statement_timeout_s * 1000))
    # extra_float_digits=3: floats as text that reads back as the same double (the readers'
    # JSON), on every server version
    options = f"-c statement_timeout={budget_ms} -c TimeZone=UTC -c extra_float_digits=3"
    options = f"{options} {extra_options}".strip()
    return {
        "connect_timeout": str(max(2, round(timeout_s))),
        "options": options,
        "application_name": "cronwrap",
        "keepalives": "1",
        "keepalives_idle": str(max(1, int(statement_timeout_s))),
        "keepalives_interval": "1",
        "keepalives_count": "3",
        "tcp_user_timeout": str(max(1000, budget_ms)),
    }


def newer_schema(shown: str, version: int) -> FleetStoreError:
    return FleetStoreError(
        f"fleet store {shown} has schema {version}, newer than this cronwrap "
        f"({SCHEMA_VERSION}): upgrade cronwrap"
    )


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


# ---------------------------------------------------------------- the SQL

_RUN_TIMES = ("started_at", "ended_at", "slot", "resolved_at")
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
_STORED = {c: c for c in RUN_COLUMNS}
_SHOWN = {c: f"r.{c}" for c in RUN_COLUMNS} | _NOT_SHOWN
# what the summary in cronwrap_jobs holds of the newest run (as last_<column>), in the order
# jobs() unpacks them: the run's other columns are the job's key or not shown
_LAST = (
    "run_id", "pid", "started_at", "ended_at", "status", "exit_code", "signal", "attempts",
    "duration_s", "reason", "schedule", "tz", "log_path", "exit_origin", "flags", "warnings",
)  # fmt: skip


def _row(exprs: Sequence[str]) -> str:
    """Each row as one JSON array (text): one value to fetch per row, decoded in C."""
    return f"json_build_array({', '.join(exprs)})::text"


def _run_exprs(exprs: dict[str, str]) -> list[str]:
    """A run's columns (their expressions) in RunRecord's order."""
    return [exprs[c] for c in RUN_COLUMNS]


_RUN = _row(_run_exprs(_STORED))
# the run that ran is needed only under a skip: a NULL otherwise is one string less to decode
_JOB = [
    "j.host", "j.job", "j.schedule", "j.tz", "j.durations",
    "CASE WHEN j.last_status = 'skipped' THEN j.ran_run_id END",
    *(f"j.last_{c}" for c in _LAST),
]  # fmt: skip
# thousands of rows as one value: libpq hands over one value at a time, through ctypes
_JOBS_SQL = f"""
    SELECT coalesce(json_agg(json_build_array({", ".join(_JOB)})), '[]')::text
    FROM cronwrap_jobs j
    WHERE (%s::text IS NULL OR j.host = %s) AND (%s::text[] IS NULL OR j.job = ANY(%s::text[]))
"""
_SHOWN_BY_ID_SQL = (
    f"SELECT {_row(_run_exprs(_SHOWN))} FROM cronwrap_runs r WHERE r.run_id = ANY(%s::text[])"
)


def _runs_sql(order: str) -> str:
    return (
        f"SELECT {_RUN} FROM cronwrap_runs r WHERE (%s::text IS NULL OR job = %s) "
        f"AND (%s::text IS NULL OR host = %s) ORDER BY {order} LIMIT %s"
    )


_ATTEMPTS_SQL = (
    "SELECT json_build_array(run_id, attempt, started_at, ended_at, status, exit_code, signal, "
    "duration_s)::text FROM cronwrap_attempts WHERE run_id = %s ORDER BY attempt"
)


def failures_sql() -> str:
    """The newest failed runs, of one host (the first two parameters) or all, of some jobs
    (the next two: a list) or all, at most the fifth; cronwrap_runs_dead holds exactly
    these statuses (the failures a dashboard lists: cancelled runs are failures too)."""
    return (
        f"SELECT {_RUN} FROM cronwrap_runs WHERE status IN {DEAD_STATUSES!r} "
        "AND (%s::text IS NULL OR host = %s) AND (%s::text[] IS NULL OR job = ANY(%s::text[])) "
        "ORDER BY started_at DESC LIMIT %s"
    )


# ---------------------------------------------------------------- rows to values

# JSON writes a timestamptz as ISO 8601 in the session's zone (UTC: connect_settings), which
# fromisoformat reads exactly (to the microsecond) and fast, as aware UTC datetimes
_from_iso = datetime.fromisoformat
_AT = tuple(RUN_COLUMNS.index(c) for c in _RUN_TIMES)
_DURATION = RUN_COLUMNS.index("duration_s")


def _run(values: list[Any]) -> RunRecord:
    """A run's JSON array as a RunRecord: times as aware UTC datetimes, the duration as a
    float (JSON writes 2.0 as 2)."""
    for i in _AT:
        if values[i] is not None:
            values[i] = _from_iso(values[i])
    if type(values[_DURATION]) is int:
        values[_DURATION] = float(values[_DURATION])
    return RunRecord._make(values)


def _attempt(values: list[Any]) -> AttemptRecord:
    for i in (2, 3):
        if values[i] is not None:
            values[i] = _from_iso(values[i])
    if type(values[7]) is int:
        values[7] = float(values[7])
    return AttemptRecord._make(values)


class FleetReader:
    """What status, history and logs read of the fleet store. A subclass says how a query
    reaches the store (_query: its rows' JSON arrays, decoded) and how it is closed."""

    shown: str  # the URL as it may be shown

    def _rows(self, sql: str, params: Sequence[object]) -> list[list[Any]]:
        """The rows of `sql`, its text parameters as the shipper stores text (pg_text): a
        name typed with a byte that is not UTF-8 finds what was shipped of it."""
        return self._query(sql, [_stored(p) for p in params])

    def _query(self, sql: str, params: Sequence[object]) -> list[list[Any]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> FleetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        [[table]] = self._rows("SELECT json_build_array(to_regclass('cronwrap_schema'))::text", ())
        if table is None:
            return 0
        sql = "SELECT json_build_array(max(version))::text FROM cronwrap_schema"
        [[version]] = self._rows(sql, ())
        return int(version or 0)

    def jobs(
        self, *, host: str | None = None, names: Sequence[str] | None = None
    ) -> list[FleetJob]:
        """Every (host, job) (or those of one host, or of the jobs named) with its newest run,
        its newest run that was not a skip and the durations of its last finished runs (oldest
        first), from the summary rows upsert keeps: only what status shows of a run, and the
        run that ran read by its id only under a skip."""
        wanted = list(names) if names is not None else None
        [rows] = self._rows(_JOBS_SQL, (host, host, wanted, wanted))
        at, new, out, skipped = _from_iso, tuple.__new__, [], []
        # written out (not through _run): status decodes thousands of these
        for row in rows:
            host_, job, schedule, tz, durations, ran_id, run_id = row[:7]
            last = None
            if run_id is not None:
                (pid, started, ended, status, code, sig, attempts, took, reason, last_schedule,
                 last_tz, log_path, origin, flags, warnings) = row[7:]  # fmt: skip
                last = new(RunRecord, (
                    run_id, job, host_, pid, None, at(started),
                    None if ended is None else at(ended), status, code, sig, attempts,
                    float(took) if type(took) is int else took, None, reason, last_schedule,
                    last_tz, log_path, origin, flags, None, None, False, None, None, warnings,
                ))  # fmt: skip
                if status == "skipped":
                    skipped.append(ran_id)
            durations = list(map(float, durations))
            out.append(FleetJob(host_, job, schedule, tz, last, last, durations))
        if skipped:
            # the run that ran under a skip, read a moment later: a run's state only moves on
            ran_by_id = self._runs_by_id(skipped)
            for fj, row in zip(out, rows, strict=True):
                if fj.last is not None and fj.last.status == "skipped":
                    fj.last_ran = ran_by_id.get(row[5])
        return out

    def _runs_by_id(self, run_ids: list[str]) -> dict[str, RunRecord]:
        """What status shows of these runs, by id."""
        return {row[0]: _run(row) for row in self._rows(_SHOWN_BY_ID_SQL, (run_ids,))}

    def runs(self, job: str | None, *, host: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The job's (or every job's) newest runs first, on every host or one: one host's in
        the order it recorded them (as its own history), every host's by their clocks."""
        order = NEWEST_FIRST if host is not None else "r.started_at DESC"
        sql = _runs_sql(order)
        return [_run(row) for row in self._rows(sql, (job, job, host, host, limit))]

    def run(self, run_id: str) -> RunRecord | None:
        rows = self._rows(f"SELECT {_RUN} FROM cronwrap_runs WHERE run_id = %s", (run_id,))
        return _run(rows[0]) if rows else None

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        return [_attempt(row) for row in self._rows(_ATTEMPTS_SQL, (run_id,))]

    def failures(
        self, *, host: str | None = None, jobs: Sequence[str] = (), limit: int = 20
    ) -> list[RunRecord]:
        """The newest failed runs on every host, or `host`, of every job, or `jobs` (with
        their redacted output tails)."""
        named = list(jobs) or None
        rows = self._rows(failures_sql(), (host, host, named, named, limit))
        return [_run(row) for row in rows]

    def hosts(self) -> list[str]:
        """Every host that has shipped a run."""
        sql = "SELECT json_build_array(host)::text FROM cronwrap_jobs GROUP BY host ORDER BY host"
        return [str(row[0]) for row in self._rows(sql, ())]

    def job_names(self, *, host: str | None = None, limit: int = 10) -> list[str]:
        """The first job names in the store (of one host, or of all), in order."""
        sql = (
            "SELECT json_build_array(job)::text FROM cronwrap_jobs "
            "WHERE %s::text IS NULL OR host = %s GROUP BY job ORDER BY job LIMIT %s"
        )
        return [str(row[0]) for row in self._rows(sql, (host, host, limit))]

    def count_runs(self) -> int:
        [[count]] = self._rows("SELECT json_build_array(count(*))::text FROM cronwrap_runs", ())
        return int(count)


# ---------------------------------------------------------------- libpq


def _numbered(sql: str) -> str:
    """psycopg's %s placeholders as libpq's $1, $2, ... (the readers' SQL has no other %)."""
    parts = sql.split("%s")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]


def _param(value: object) -> str | None:
    """A parameter as libpq takes it, in text: a list as a text[] literal."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        # None as NULL, as psycopg sends it (a skipped job's run that ran may be none)
        quoted = (
            "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in value
        )
        return "{" + ",".join(quoted) + "}"
    return str(value)


def _stored(value: object) -> object:
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, list):
        return [pg_text(v) if isinstance(v, str) else v for v in value]
    return value


class LibpqReader(FleetReader):
    """The readers' queries through libpq itself (state/libpq.py)."""

    def __init__(self, conn: Connection, url: str) -> None:
        self.conn = conn
        self.shown = redact_url(url)

    def _query(self, sql: str, params: Sequence[object]) -> list[list[Any]]:
        import json

        from cronwrap.state.libpq import LibpqError

        try:
            texts = self.conn.first_column(_numbered(sql), [_param(p) for p in params])
        except LibpqError as err:
            raise FleetStoreError(f"fleet store {self.shown}: {first_line(err)}") from None
        return json.loads(b"[" + b",".join(texts) + b"]")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.conn.close()


def open_reader(
    url: str, *, timeout_s: float, statement_timeout_s: float, driver: str | None = None
) -> FleetReader:
    """A reader of the fleet store at `url`, its schema brought up to date (by psycopg,
    which an upgrade imports). Through libpq when it loads; through psycopg when it does
    not, or when `driver` says so."""
    check_url(url, "--fleet-store")
    if driver not in (None, "", *DRIVERS):
        raise ConfigError(f"CRONWRAP_FLEET_DRIVER={driver}: expected one of {', '.join(DRIVERS)}")
    from cronwrap.state import libpq

    lib = libpq.load() if driver != "psycopg" else None
    if lib is None and driver == "libpq":
        raise ConfigError("CRONWRAP_FLEET_DRIVER=libpq: libpq does not load (libpq.so.5)")
    if lib is None:
        from cronwrap.state.fleetstore import FleetStore

        return FleetStore.open(url, timeout_s=timeout_s, statement_timeout_s=statement_timeout_s)
    settings = connect_settings(timeout_s=timeout_s, statement_timeout_s=statement_timeout_s)
    settings["client_encoding"] = "UTF8"  # what json.loads reads, whatever PGCLIENTENCODING says
    shown = redact_url(url)
    try:
        # a statement's time on the server, and as long as a connect for its answer to come
        answer_s = statement_timeout_s + max(2.0, timeout_s)
        conn = libpq.Connection.open(lib, url, settings, answer_s=answer_s)
    except libpq.LibpqError as err:
        if err.bad_url:
            raise ConfigError(f"fleet store {shown}: {url_problem(url, err)}") from None
        raise FleetStoreError(f"fleet store {shown} unavailable: {first_line(err)}") from None
    reader = LibpqReader(conn, url)
    try:
        version = reader.schema_version
        if version > SCHEMA_VERSION:
            raise newer_schema(shown, version)
        if version < SCHEMA_VERSION:
            from cronwrap.state.fleetstore import FleetStore

            with FleetStore.open(url, timeout_s=timeout_s, statement_timeout_s=statement_timeout_s):
                pass
    except BaseException:
        reader.close()
        raise
    return reader
