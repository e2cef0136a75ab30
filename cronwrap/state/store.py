"""The run store: one SQLite file (WAL) holding every run and attempt, with versioned
forward migrations and cheap pruning. Standard library only; callers never see sqlite3 errors."""

from __future__ import annotations

import collections
import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cronwrap.errors import StoreError

# Each entry upgrades the schema from version i to i+1. Never edit one that has shipped;
# append a new one instead.
MIGRATIONS: tuple[str, ...] = (
    # 1: runs and attempts
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        job TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL,
        exit_code INTEGER,
        signal INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        duration_s REAL,
        output_tail TEXT,
        reason TEXT
    );
    CREATE INDEX runs_job_id ON runs (job, id);
    CREATE TABLE attempts (
        run_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT,
        exit_code INTEGER,
        signal INTEGER,
        duration_s REAL,
        PRIMARY KEY (run_id, attempt)
    );
    """,
    # 2: what status and history need: the schedule a run was started with, where its
    # output went, and whether the exit code came from the child or from cronwrap
    """
    ALTER TABLE runs ADD COLUMN schedule TEXT;
    ALTER TABLE runs ADD COLUMN tz TEXT;
    ALTER TABLE runs ADD COLUMN log_path TEXT;
    ALTER TABLE runs ADD COLUMN exit_origin TEXT NOT NULL DEFAULT 'child';
    ALTER TABLE runs ADD COLUMN state_dir TEXT;
    CREATE INDEX runs_started ON runs (started_at);
    """,
    # 3: one row per job, so `status` lists jobs without scanning a million runs
    """
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        schedule TEXT,
        tz TEXT,
        last_started_at TEXT
    );
    INSERT OR IGNORE INTO jobs (name, last_started_at)
        SELECT job, max(started_at) FROM runs GROUP BY job;
    """,
    # 4: alert state per job, result counters that outlive pruning (for Prometheus), and
    # marks on runs such as "slow"
    """
    ALTER TABLE jobs ADD COLUMN alert_open INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN last_alert_at TEXT;
    ALTER TABLE runs ADD COLUMN flags TEXT;
    CREATE TABLE counters (
        job TEXT NOT NULL,
        result TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (job, result)
    );
    """,
    # 5: job context and dead letters: the scheduled slot a run belongs to, what is needed
    # to run it again (spec: argv, flags, config path; never a secret in clear), dead
    # letters until resolved, reruns linked to their original, and per job the last
    # success (kept here so pruning cannot lose it) and the catch-up settings
    """
    ALTER TABLE runs ADD COLUMN slot TEXT;
    ALTER TABLE runs ADD COLUMN rerun_of TEXT;
    ALTER TABLE runs ADD COLUMN spec TEXT;
    ALTER TABLE runs ADD COLUMN dead INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN resolved_at TEXT;
    ALTER TABLE runs ADD COLUMN resolved_by TEXT;
    CREATE INDEX runs_dead ON runs (job) WHERE dead = 1;
    CREATE INDEX runs_job_slot ON runs (job, slot);
    ALTER TABLE jobs ADD COLUMN spec TEXT;
    ALTER TABLE jobs ADD COLUMN catch_up INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN catch_up_max_age REAL;
    ALTER TABLE jobs ADD COLUMN last_success_at TEXT;
    ALTER TABLE jobs ADD COLUMN last_success_slot TEXT;
    UPDATE jobs SET last_success_at = (
        SELECT max(started_at) FROM runs WHERE runs.job = jobs.name AND status = 'success');
    """,
    # 6: runs not yet shipped to the fleet store (PostgreSQL), oldest first; a run is queued
    # again each time it changes, and its newest state is what gets shipped
    """
    CREATE TABLE fleet_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        queued_at REAL NOT NULL DEFAULT (julianday('now'))
    );
    """,
    # 7: what went wrong with cronwrap's own reporting during a run (one line each): a run
    # with warnings is shown as degraded
    """
    ALTER TABLE runs ADD COLUMN warnings TEXT;
    """,
)
# Runs that end like this did not do their work: each stays a dead letter (listed by
# `cronwrap failed`, never pruned) until a rerun succeeds or someone resolves it.
DEAD_STATUSES = ("failed", "timeout", "crashed", "cancelled", "error")
SCHEMA_VERSION = len(MIGRATIONS)
PREPARE_BUDGET_S = 10.0  # most creating or migrating the store may wait for other processes


def iso(dt: datetime) -> str:
    """Aware datetime -> ISO 8601 UTC with microseconds (sorts as text)."""
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def from_iso(text: object) -> datetime | None:
    """A stored time, or None for one that is missing or not a time: one bad row (edited
    by hand, written by a broken tool) must never stop a run or `status`."""
    if not text or not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def _number(value: object) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    """Text as stored; a command stored as bytes (argv that is not UTF-8) comes back as the
    same str it was, surrogate escapes and all."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return None if value is None else str(value)


def _storable(text: str | None) -> str | bytes | None:
    """`text` as SQLite can hold it: a str with surrogate escapes (non-UTF-8 argv) becomes
    its original bytes, so nothing is lost and nothing raises."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


# namedtuples, not dataclasses: the run path must not pay for importing dataclasses
RunRecord = collections.namedtuple(
    "RunRecord",
    [
        "run_id",
        "job",
        "host",
        "pid",
        "command",
        "started_at",
        "ended_at",
        "status",
        "exit_code",
        "signal",
        "attempts",
        "duration_s",
        "output_tail",
        "reason",
        "schedule",
        "tz",
        "log_path",
        "exit_origin",
        "flags",
        "slot",
        "rerun_of",
        "dead",
        "resolved_at",
        "resolved_by",
        "warnings",
    ],
)
RUN_COLUMNS: tuple[str, ...] = RunRecord._fields
RunRecord.__doc__ = """One run as stored; started_at/ended_at are aware UTC datetimes.
status: running|success|failed|timeout|cancelled|skipped|error|crashed; slot: the scheduled
time (aware UTC) the run belongs to; dead: an unresolved dead letter."""

AttemptRecord = collections.namedtuple(
    "AttemptRecord",
    ("run_id", "attempt", "started_at", "ended_at", "status", "exit_code", "signal", "duration_s"),
)


_INT_COLUMNS = ("pid", "exit_code", "signal", "attempts")
_TEXT_COLUMNS = (
    "command",
    "output_tail",
    "reason",
    "schedule",
    "tz",
    "log_path",
    "flags",
    "rerun_of",
    "resolved_by",
    "warnings",
)


def _attempt_row(
    run_id: str,
    attempt: int,
    started_at: datetime,
    ended_at: datetime,
    status: str,
    exit_code: int | None,
    signal: int | None,
) -> tuple[object, ...]:
    duration = (ended_at - started_at).total_seconds()
    return (run_id, attempt, iso(started_at), iso(ended_at), status, exit_code, signal, duration)


def _row_to_run(row: sqlite3.Row) -> RunRecord:
    """A stored row as a RunRecord; a value of the wrong type reads as missing."""
    d = dict(zip(RUN_COLUMNS, row, strict=True))
    d["started_at"] = from_iso(d["started_at"]) or EPOCH
    d["ended_at"] = from_iso(d["ended_at"])
    for col in _INT_COLUMNS:
        number = _number(d[col])
        d[col] = int(number) if number is not None else None
    d["pid"] = d["pid"] or 0
    d["attempts"] = d["attempts"] or 0
    d["duration_s"] = _number(d["duration_s"])
    for col in _TEXT_COLUMNS:
        d[col] = _text(d[col])
    d["slot"] = from_iso(d["slot"])
    d["resolved_at"] = from_iso(d["resolved_at"])
    d["dead"] = bool(_number(d["dead"]))
    return RunRecord(**d)


def _queue_fleet(conn: sqlite3.Connection, run_id: str, queue: bool) -> None:
    """Queue the run for the fleet store, in the caller's transaction (--fleet-store)."""
    if queue:
        conn.execute("INSERT INTO fleet_outbox (run_id) VALUES (?)", (run_id,))


class _CorruptError(Exception):
    """The file is not an SQLite database or is damaged (SQLITE_NOTADB, SQLITE_CORRUPT)."""


def _is_corrupt(err: sqlite3.Error) -> bool:
    # SQLITE_NOTADB and SQLITE_CORRUPT arrive as the base DatabaseError class itself; every
    # other failure (busy, locked, read-only, I/O) is a subclass such as OperationalError
    return type(err) is sqlite3.DatabaseError


class StoreBusyError(StoreError):
    """Another process held the write lock for longer than the busy timeout."""


_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _is_busy(err: sqlite3.Error) -> bool:
    if not isinstance(err, sqlite3.OperationalError):
        return False
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)  # Python 3.10 has only the text


def _move_aside(path: Path) -> Path:
    """Rename a damaged store (and its -wal/-shm) out of the way, keeping it for forensics."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.replace(side, aside.with_name(aside.name + suffix))
    except OSError as err:
        raise StoreError(
            f"run store {path} is damaged and cannot be moved aside: {err.strerror}"
        ) from err
    return aside


JobRecord = collections.namedtuple(
    "JobRecord",
    (
        "name",
        "schedule",
        "tz",
        "last_started_at",
        "spec",
        "catch_up",
        "catch_up_max_age",
        "last_success_at",
        "last_success_slot",
    ),
)
JobRecord.__doc__ = """One job as last recorded: its schedule, how to run it again (spec, JSON),
its catch-up settings and its last success (start and slot, aware UTC)."""
_JOB_COLUMNS = ", ".join(JobRecord._fields)


def _row_to_job(row: sqlite3.Row) -> JobRecord:
    """A stored job row; as with runs, a value of the wrong type reads as missing."""
    name, schedule, tz, started, spec, catch_up, max_age, ok_at, ok_slot = row
    return JobRecord(
        name,
        schedule if isinstance(schedule, str) else None,
        tz if isinstance(tz, str) else None,
        from_iso(started),
        spec if isinstance(spec, str) else None,
        bool(_number(catch_up)),
        _number(max_age),
        from_iso(ok_at),
        from_iso(ok_slot),
    )


class Store:
    """A connection to the run store; open with `Store.open(path)` and close when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.recovered: Path | None = None  # where a damaged store was moved aside
        self._writable = True

    # ---------------------------------------------------------- opening

    @classmethod
    def open(cls, path: Path, *, busy_timeout_s: float = 60.0) -> Store:
        """Open (creating or migrating) the store for writing. A file that is not an SQLite
        database, or a damaged one, is moved aside as `<name>.corrupt-<time>` and a fresh
        store takes its place: `recovered` then names where the old file went."""
        try:
            return cls._open(path, busy_timeout_s)
        except _CorruptError:
            aside = _move_aside(path)
        store = cls._open(path, busy_timeout_s)
        store.recovered = aside
        return store

    @classmethod
    def _open(cls, path: Path, busy_timeout_s: float) -> Store:
        if path.is_symlink():
            raise StoreError(f"{path} is a symlink; refusing to open the run store through it")
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer takes the
            # write lock up front and waits on the busy timeout instead of failing mid-way
            conn = sqlite3.connect(
                str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise StoreError(f"cannot open run store {path}: {err}") from err
        store = cls(conn, path)
        try:
            store._prepare(busy_timeout_s)
        except sqlite3.Error as err:
            conn.close()
            if _is_corrupt(err):
                raise _CorruptError(str(err)) from err
            raise StoreError(f"run store {path}: {err}") from err
        return store

    @classmethod
    def open_readonly(cls, path: Path) -> Store:
        """Open for reading only (`status`, `history`): works on a store the reader cannot
        write (a read-only mount, another user's file), and never creates or migrates."""
        from urllib.parse import quote

        uri = "file:" + quote(str(path.absolute()))
        last: sqlite3.Error | None = None
        # mode=ro still needs the -shm file of a WAL store; immutable=1 reads the file as it
        # is, for when even that cannot be created (read-only directory or mount)
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(uri + query, uri=True, timeout=5.0, check_same_thread=False)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as err:
                last = err
                continue
            store = cls(conn, path)
            store._writable = False
            version = store.schema_version
            if version != SCHEMA_VERSION:
                conn.close()
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"run store {path} has schema {version}, newer than this cronwrap "
                        f"({SCHEMA_VERSION}): upgrade cronwrap"
                    )
                # an old schema: a writer migrates it; until then read what we can through
                # a normal connection
                return cls.open(path)
            return store
        if last is not None and _is_corrupt(last):
            raise StoreError(
                f"run store {path} is damaged ({last}); the next run moves it aside"
                " and starts a fresh one"
            )
        raise StoreError(f"cannot read run store {path}: {last}")

    def set_busy_timeout(self, seconds: float) -> None:
        """How long a write waits for another process's write lock before giving up."""
        self._conn.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")

    def _prepare(self, busy_timeout_s: float) -> None:
        conn = self._conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"run store {self.path} has schema {version}, newer than this cronwrap "
                f"({SCHEMA_VERSION}): upgrade cronwrap"
            )
        # Switching to WAL needs an exclusive moment: when many processes create the store at
        # once, some get SQLITE_BUSY without the busy handler, so retry here. Creating or
        # upgrading the store happens once, so it may take longer than a run's start budget.
        deadline = time.monotonic() + max(busy_timeout_s, PREPARE_BUDGET_S)
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                if version < SCHEMA_VERSION:
                    self._migrate()
                break
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01 + (os.getpid() % 10) * 0.002)
                version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute("PRAGMA synchronous=NORMAL")

    def _migrate(self) -> None:
        with self._write():
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _failed(self, err: sqlite3.Error) -> StoreError:
        """The StoreError for `err`. A writer that finds the file damaged moves it aside and
        carries on with a fresh store, so only this one operation is lost, and says so."""
        if _is_busy(err):
            return StoreBusyError(f"run store {self.path} is busy (another process is writing)")
        if not (_is_corrupt(err) and self._writable):
            return StoreError(f"run store {self.path}: {err}")
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        try:
            aside = _move_aside(self.path)
            fresh = Store._open(self.path, 5.0)
        except (StoreError, _CorruptError) as again:
            return StoreError(f"run store {self.path} is damaged ({err}): {again}")
        self._conn, self.recovered = fresh._conn, aside
        return StoreError(
            f"run store {self.path} was damaged ({err}): moved aside to {aside.name},"
            " a fresh store is used from now on"
        )

    @contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. In WAL mode with synchronous=NORMAL a commit is not synced;
        a `durable` one is (synchronous=FULL syncs the WAL at commit): the end of a run is,
        so the result survives a power cut, and the start need not be (a run lost with the
        machine is found by nobody either way)."""
        conn = self._conn
        if durable:
            conn.execute("PRAGMA synchronous=FULL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if durable:
                conn.execute("PRAGMA synchronous=NORMAL")

    def _exec_write(self, sql: str, params: tuple[object, ...]) -> None:
        try:
            with self._write() as conn:
                conn.execute(sql, params)
        except sqlite3.Error as err:
            raise self._failed(err) from err

    # ---------------------------------------------------------- writing

    def record_start(
        self,
        *,
        run_id: str,
        job: str,
        host: str,
        pid: int,
        command: str,
        started_at: datetime,
        schedule: str | None,
        tz: str | None,
        log_path: str | None,
        state_dir: str | None = None,
        status: str = "running",
        slot: datetime | None = None,
        rerun_of: str | None = None,
        spec: str | None = None,
        catch_up: bool = False,
        catch_up_max_age: float | None = None,
        queue_fleet: bool = False,
    ) -> None:
        """Insert the run's row and bring the job's row up to date (one transaction; with
        queue_fleet, the run is also queued for the fleet store in it, so no recorded change
        can miss the queue)."""
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO jobs (name, schedule, tz, last_started_at, spec, catch_up,"
                    " catch_up_max_age) VALUES (?,?,?,?,?,?,?) "
                    "ON CONFLICT (name) DO UPDATE SET "
                    "schedule=coalesce(excluded.schedule, schedule), "
                    "tz=coalesce(excluded.tz, tz), last_started_at=excluded.last_started_at, "
                    "spec=coalesce(excluded.spec, spec), catch_up=excluded.catch_up, "
                    "catch_up_max_age=excluded.catch_up_max_age",
                    (
                        job,
                        schedule,
                        tz,
                        iso(started_at),
                        spec,
                        int(catch_up),
                        catch_up_max_age,
                    ),
                )
                conn.execute(
                    "INSERT INTO runs (run_id, job, host, pid, command, started_at, status,"
                    " schedule, tz, log_path, state_dir, slot, rerun_of, spec)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        run_id,
                        job,
                        host,
                        pid,
                        _storable(command),
                        iso(started_at),
                        status,
                        schedule,
                        tz,
                        log_path,
                        state_dir,
                        iso(slot) if slot else None,
                        rerun_of,
                        spec,
                    ),
                )
                _queue_fleet(conn, run_id, queue_fleet)
        except sqlite3.Error as err:
            raise self._failed(err) from err

    def record_attempt(
        self,
        *,
        run_id: str,
        attempt: int,
        started_at: datetime,
        ended_at: datetime,
        status: str,
        exit_code: int | None,
        signal: int | None,
    ) -> None:
        self._exec_write(
            "INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?,?,?)",
            _attempt_row(run_id, attempt, started_at, ended_at, status, exit_code, signal),
        )

    def record_end(
        self,
        *,
        run_id: str,
        ended_at: datetime,
        status: str,
        exit_code: int | None,
        signal: int | None,
        attempts: int,
        duration_s: float,
        output_tail: str | None,
        reason: str | None,
        exit_origin: str = "child",
        flags: str | None = None,
        count_as: str | None = None,
        resolve_on_success: bool = False,
        last_attempt: tuple[int, datetime, datetime, str, int | None, int | None] | None = None,
        queue_fleet: bool = False,
        warnings: str | None = None,
    ) -> None:
        """Finish the run's row, record its last attempt (number, start, end, status, exit
        code, signal), count it in `counters`, and keep the dead letters true: one durable
        transaction, as this runs at the end of every run (with the start, the only writes
        of a successful run).

        A run ending in a DEAD_STATUSES status becomes a dead letter, unless it is a rerun
        (its original stays the dead letter). A success resolves the run it reruns (and
        that one's original), and with `resolve_on_success` every open one of the job."""
        try:
            with self._write(durable=True) as conn:
                if last_attempt is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?,?,?)",
                        _attempt_row(run_id, *last_attempt),
                    )
                conn.execute(
                    "UPDATE runs SET ended_at=?, status=?, exit_code=?, signal=?, attempts=?,"
                    " duration_s=?, output_tail=?, reason=?, exit_origin=?, flags=?, warnings=?"
                    " WHERE run_id=?",
                    (
                        iso(ended_at),
                        status,
                        exit_code,
                        signal,
                        attempts,
                        duration_s,
                        _storable(output_tail),
                        _storable(reason),
                        exit_origin,
                        flags,
                        _storable(warnings),
                        run_id,
                    ),
                )
                row = conn.execute(
                    "SELECT job, rerun_of, started_at, slot FROM runs WHERE run_id=?", (run_id,)
                ).fetchone()
                if row:
                    self._settle(conn, run_id, row, status, ended_at, resolve_on_success)
                if count_as and row:
                    conn.execute(
                        "INSERT INTO counters (job, result, n) VALUES (?,?,1) "
                        "ON CONFLICT (job, result) DO UPDATE SET n = n + 1",
                        (row[0], count_as),
                    )
                if queue_fleet:
                    conn.execute("INSERT INTO fleet_outbox (run_id) VALUES (?)", (run_id,))
        except sqlite3.Error as err:
            raise self._failed(err) from err

    @classmethod
    def _settle(
        cls,
        conn: sqlite3.Connection,
        run_id: str,
        row: tuple[str, str | None, str, str | None],
        status: str,
        ended_at: datetime,
        resolve_on_success: bool,
    ) -> None:
        """The dead letters and the job's last success after run `run_id` ended in `status`
        (row: its job, rerun_of, started_at, slot)."""
        job, rerun_of, started_at, slot = row
        if status in DEAD_STATUSES and rerun_of is None:
            conn.execute("UPDATE runs SET dead=1 WHERE run_id=?", (run_id,))
        if status != "success":
            return
        conn.execute(
            "UPDATE jobs SET last_success_at=?, last_success_slot=? WHERE name=?",
            (started_at, slot, job),
        )
        cls._resolve_chain(conn, rerun_of, by=run_id, at=ended_at)
        if resolve_on_success:
            conn.execute(
                "UPDATE runs SET dead=0, resolved_at=?, resolved_by=? WHERE job=? AND dead=1",
                (iso(ended_at), run_id, job),
            )

    @staticmethod
    def _resolve_chain(
        conn: sqlite3.Connection, run_id: str | None, *, by: str, at: datetime
    ) -> None:
        """Resolve `run_id` and the runs it reran in turn (a rerun of a failed rerun)."""
        seen: set[str] = set()
        while run_id is not None and run_id not in seen:
            seen.add(run_id)
            conn.execute(
                "UPDATE runs SET dead=0, resolved_at=?, resolved_by=? WHERE run_id=? AND dead=1",
                (iso(at), by, run_id),
            )
            row = conn.execute("SELECT rerun_of FROM runs WHERE run_id=?", (run_id,)).fetchone()
            run_id = row[0] if row else None

    def resolve(self, run_id: str, *, by: str, at: datetime) -> bool:
        """Acknowledge one dead letter; False if `run_id` is not an open one."""
        try:
            with self._write() as conn:
                cur = conn.execute(
                    "UPDATE runs SET dead=0, resolved_at=?, resolved_by=?"
                    " WHERE run_id=? AND dead=1",
                    (iso(at), by, run_id),
                )
                return cur.rowcount > 0
        except sqlite3.Error as err:
            raise StoreError(f"run store {self.path}: {err}") from err

    def dead_letters(self, job: str | None = None, *, resolved: bool = False) -> list[RunRecord]:
        """Open dead letters, oldest first (with `resolved`, the resolved ones too)."""
        cols = ", ".join(RUN_COLUMNS)
        where = "(dead=1 OR resolved_at IS NOT NULL)" if resolved else "dead=1"
        params: tuple[object, ...] = ()
        if job is not None:
            where += " AND job=?"
            params = (job,)
        rows = self._query(f"SELECT {cols} FROM runs WHERE {where} ORDER BY id", params)
        return [_row_to_run(r) for r in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        """Open dead letters per job (for status)."""
        rows = self._query("SELECT job, count(*) FROM runs WHERE dead=1 GROUP BY job")
        return {r[0]: int(r[1]) for r in rows}

    def find_run(self, prefix: str) -> RunRecord | None:
        """The run whose id is or starts with `prefix` (at least 4 characters, unambiguous)."""
        if len(prefix) < 4:
            raise StoreError(f"run id {prefix!r} is too short: give at least 4 characters")
        cols = ", ".join(RUN_COLUMNS)
        rows = self._query(
            f"SELECT {cols} FROM runs WHERE substr(run_id, 1, ?) = ? LIMIT 2",
            (len(prefix), prefix.lower()),
        )
        if len(rows) > 1:
            raise StoreError(f"run id {prefix!r} is ambiguous: give more characters")
        return _row_to_run(rows[0]) if rows else None

    def run_spec(self, run_id: str) -> str | None:
        rows = self._query("SELECT spec FROM runs WHERE run_id=?", (run_id,))
        return rows[0][0] if rows else None

    def job(self, name: str) -> JobRecord | None:
        rows = self._query(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE name=?", (name,))
        return _row_to_job(rows[0]) if rows else None

    def jobs(self) -> list[JobRecord]:
        return [
            _row_to_job(r) for r in self._query(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY name")
        ]

    def forget_catch_up(self, job: str) -> bool:
        """Stop catching up `job` (until a run of it says --catch-up again)."""
        try:
            with self._write() as conn:
                cur = conn.execute("UPDATE jobs SET catch_up=0 WHERE name=? AND catch_up=1", (job,))
                return cur.rowcount > 0
        except sqlite3.Error as err:
            raise StoreError(f"run store {self.path}: {err}") from err

    def has_run_for_slot(self, job: str, slot: datetime) -> bool:
        """True if any run of `job` (whatever its end, skipped too) belongs to `slot` or a
        later one; runs recorded before slots were, by their start."""
        rows = self._query(
            "SELECT 1 FROM runs WHERE job=? AND (slot >= ? OR (slot IS NULL AND started_at >= ?))"
            " LIMIT 1",
            (job, iso(slot), iso(slot)),
        )
        return bool(rows)

    def streak(self, job: str, *, limit: int = 1000) -> int:
        """Consecutive failed runs, newest first, up to the last success (skips ignored)."""
        rows = self._query(
            "SELECT status FROM runs WHERE job=? AND status NOT IN ('skipped', 'running') "
            "ORDER BY id DESC LIMIT ?",
            (job, limit),
        )
        n = 0
        for (status,) in rows:
            if status == "success":
                break
            n += 1
        return n

    def alert_state(self, job: str) -> tuple[bool, datetime | None]:
        rows = self._query("SELECT alert_open, last_alert_at FROM jobs WHERE name=?", (job,))
        if not rows:
            return False, None
        return bool(rows[0][0]), from_iso(rows[0][1])

    def set_alert_state(self, job: str, *, open_: bool, at: datetime | None) -> None:
        self._exec_write(
            "UPDATE jobs SET alert_open=?, last_alert_at=coalesce(?, last_alert_at) WHERE name=?",
            (int(open_), iso(at) if at else None, job),
        )

    def counters(self, job: str) -> dict[str, int]:
        return {
            r[0]: r[1] for r in self._query("SELECT result, n FROM counters WHERE job=?", (job,))
        }

    def recent_durations(
        self, job: str, *, limit: int = 20, exclude: str | None = None
    ) -> list[float]:
        """Durations of the job's last successful runs (for the slow-run check)."""
        rows = self._query(
            "SELECT duration_s FROM runs WHERE job=? AND status='success' AND run_id != ? "
            "AND duration_s IS NOT NULL ORDER BY id DESC LIMIT ?",
            (job, exclude or "", limit),
        )
        return [float(r[0]) for r in rows if _number(r[0]) is not None]

    def last_success_at(self, job: str) -> datetime | None:
        rows = self._query(
            "SELECT max(ended_at) FROM runs WHERE job=? AND status='success'", (job,)
        )
        return from_iso(rows[0][0]) if rows else None

    def last_failure_at(self, job: str) -> datetime | None:
        rows = self._query(
            "SELECT max(ended_at) FROM runs WHERE job=? AND status IN "
            "('failed', 'timeout', 'crashed', 'error')",
            (job,),
        )
        return from_iso(rows[0][0]) if rows else None

    def set_warnings(self, run_id: str, warnings: str, *, queue_fleet: bool = False) -> None:
        """A finished run's warnings, when reporting after its end record went wrong."""
        try:
            with self._write() as conn:
                conn.execute(
                    "UPDATE runs SET warnings=? WHERE run_id=?", (_storable(warnings), run_id)
                )
                _queue_fleet(conn, run_id, queue_fleet)
        except sqlite3.Error as err:
            raise self._failed(err) from err

    def mark_crashed(self, run_id: str, *, reason: str, queue_fleet: bool = False) -> None:
        try:
            with self._write() as conn:
                conn.execute(
                    "UPDATE runs SET status='crashed', reason=?, dead=(rerun_of IS NULL)"
                    " WHERE run_id=? AND status='running'",
                    (reason, run_id),
                )
                _queue_fleet(conn, run_id, queue_fleet)
        except sqlite3.Error as err:
            raise self._failed(err) from err

    def prune(self, job: str, *, keep_runs: int, keep_days: int, now: datetime) -> list[str]:
        """Drop the job's runs beyond the newest `keep_runs` or older than `keep_days`.

        Uses the (job, id) index, so it is cheap enough to run at the end of every run.
        Returns the log paths of the pruned runs so their files can be removed."""
        # clamped: a negative or enormous --keep-days must neither empty the history
        # nor overflow the date arithmetic
        cutoff = iso(now - timedelta(days=max(1, min(keep_days, 36500))))

        def doomed(conn: sqlite3.Connection) -> tuple[list[sqlite3.Row], str, tuple[object, ...]]:
            row = conn.execute(
                "SELECT id FROM runs WHERE job=? ORDER BY id DESC LIMIT 1 OFFSET ?",
                (job, max(keep_runs, 1)),
            ).fetchone()
            bound = row[0] + 1 if row else 0
            # a dead letter stays until it is resolved, however old
            where = "job=? AND (id < ? OR started_at < ?) AND status != 'running' AND dead = 0"
            params = (job, bound, cutoff)
            rows = conn.execute(f"SELECT run_id, log_path FROM runs WHERE {where}", params)
            return rows.fetchall(), where, params

        try:
            # look first, without the write lock: most runs have nothing to prune, and a
            # write transaction at the end of every run is what a burst of runs queues on
            if not doomed(self._conn)[0]:
                return []
            with self._write() as conn:
                gone, where, params = doomed(conn)
                if gone:
                    conn.executemany("DELETE FROM attempts WHERE run_id=?", [(r[0],) for r in gone])
                    conn.execute(f"DELETE FROM runs WHERE {where}", params)
        except sqlite3.Error as err:
            raise self._failed(err) from err
        return [r[1] for r in gone if r[1]]

    # ---------------------------------------------------------- reading

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise self._failed(err) from err

    def runs(self, job: str, *, limit: int = 20) -> list[RunRecord]:
        """The job's newest runs first."""
        cols = ", ".join(RUN_COLUMNS)
        rows = self._query(
            f"SELECT {cols} FROM runs WHERE job=? ORDER BY id DESC LIMIT ?",
            (job, limit),
        )
        return [_row_to_run(r) for r in rows]

    def recent_runs(self, *, limit: int = 20) -> list[RunRecord]:
        """The newest runs of every job, newest first."""
        cols = ", ".join(RUN_COLUMNS)
        rows = self._query(f"SELECT {cols} FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return [_row_to_run(r) for r in rows]

    def forget(self, job: str) -> list[str]:
        """Remove every trace of a job (runs, attempts, counters, its row); returns the log
        paths of its runs so their files can be removed."""
        try:
            with self._write() as conn:
                logs = [
                    r[0]
                    for r in conn.execute(
                        "SELECT log_path FROM runs WHERE job=? AND log_path IS NOT NULL", (job,)
                    )
                ]
                conn.execute(
                    "DELETE FROM attempts WHERE run_id IN (SELECT run_id FROM runs WHERE job=?)",
                    (job,),
                )
                conn.execute("DELETE FROM runs WHERE job=?", (job,))
                conn.execute("DELETE FROM counters WHERE job=?", (job,))
                conn.execute("DELETE FROM jobs WHERE name=?", (job,))
        except sqlite3.Error as err:
            raise StoreError(f"run store {self.path}: {err}") from err
        return logs

    def run(self, run_id: str) -> RunRecord | None:
        cols = ", ".join(RUN_COLUMNS)
        rows = self._query(f"SELECT {cols} FROM runs WHERE run_id=?", (run_id,))
        return _row_to_run(rows[0]) if rows else None

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        rows = self._query("SELECT * FROM attempts WHERE run_id=? ORDER BY attempt", (run_id,))
        return [
            AttemptRecord(r[0], r[1], from_iso(r[2]) or EPOCH, from_iso(r[3]), *r[4:]) for r in rows
        ]

    def job_names(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM jobs ORDER BY name")]

    def job_schedules(self) -> dict[str, tuple[str | None, str | None]]:
        """Each job's last recorded --schedule and --tz."""
        return {r[0]: (r[1], r[2]) for r in self._query("SELECT name, schedule, tz FROM jobs")}

    def failures(self, *, limit: int = 20) -> list[RunRecord]:
        """The newest failed runs of every job (for the HTML dashboard)."""
        cols = ", ".join(RUN_COLUMNS)
        rows = self._query(
            f"SELECT {cols} FROM runs WHERE status IN ('failed', 'timeout', 'crashed', 'error') "
            "ORDER BY started_at DESC LIMIT ?",
            (limit,),
        )
        return [_row_to_run(r) for r in rows]

    # ---------------------------------------------------------- fleet outbox

    def queue_for_fleet(self, run_id: str) -> None:
        """Remember that this run changed and its newest state is still to be shipped."""
        self._exec_write("INSERT INTO fleet_outbox (run_id) VALUES (?)", (run_id,))

    def fleet_pending(
        self, *, limit: int = 500, own: tuple[str, ...] = (), min_age_s: float = 0.0
    ) -> list[tuple[int, str]]:
        """(seq, run_id) still to ship, oldest first: the runs in `own` and every entry queued
        more than min_age_s ago (younger ones belong to runs still shipping them)."""
        marks = ",".join("?" * len(own)) or "NULL"
        rows = self._query(
            f"SELECT seq, run_id FROM fleet_outbox WHERE run_id IN ({marks}) "
            "OR queued_at <= julianday('now') - ? / 86400.0 ORDER BY seq LIMIT ?",
            (*own, min_age_s, limit),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def fleet_shipped(self, seqs: list[int]) -> None:
        """Forget queue entries whose run is now in the fleet store."""
        if not seqs:
            return
        try:
            with self._write() as conn:
                conn.executemany("DELETE FROM fleet_outbox WHERE seq=?", [(s,) for s in seqs])
        except sqlite3.Error as err:
            raise StoreError(f"run store {self.path}: {err}") from err

    def fleet_backlog(self) -> int:
        return int(self._query("SELECT count(*) FROM fleet_outbox")[0][0])

    def count_runs(self, job: str | None = None) -> int:
        if job is None:
            return int(self._query("SELECT count(*) FROM runs")[0][0])
        return int(self._query("SELECT count(*) FROM runs WHERE job=?", (job,))[0][0])
