"""The connection under the run store: opening (creating, migrating, moving a damaged file
aside), read-only opening for readers, write transactions and the errors callers see. What is
kept, and how, is the store's (`state/store.py`); this module only knows SQLite."""

from __future__ import annotations

import contextlib
import os
import time
from contextlib import contextmanager

from cronwrap.errors import StoreError
from cronwrap.state.schema import MIGRATIONS, READABLE_SINCE, SCHEMA_VERSION
from cronwrap.stdlib import datetime, sqlite3, timezone

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import TypeVar

    from cronwrap.paths import StrPath

    _D = TypeVar("_D", bound="Database")

PREPARE_BUDGET_S = 10.0  # most creating or migrating the store may wait for other processes


_URI_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def uri_quote(path: str) -> str:
    """urllib.parse.quote(os.fsencode(path)), the same text, without importing urllib.parse
    and ipaddress (start-up time of every `status` and `history`): the path's bytes outside
    the unreserved characters and "/" as %XX. Its bytes, not its str as UTF-8: a name that
    is not UTF-8 holds surrogates, which SQLite gets as the bytes when `run` opens it."""
    raw = os.fsencode(path)
    if all(b in _URI_SAFE for b in raw):
        return path
    return "".join(chr(b) if b in _URI_SAFE else f"%{b:02X}" for b in raw)


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


def _move_aside(path: str) -> str:
    """Rename a damaged store (and its -wal/-shm) out of the way, keeping it for forensics."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = f"{path}.corrupt-{stamp}"
    n = 1
    while os.path.exists(aside):
        n += 1
        aside = f"{path}.corrupt-{stamp}-{n}"
    try:
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.replace(path + suffix, aside + suffix)
    except OSError as err:
        raise StoreError(
            f"run store {path} is damaged and cannot be moved aside: {err.strerror}"
        ) from err
    return aside


def _refuse_odd_file(path: str) -> None:
    """A reader's store must be a regular file, checked before SQLite opens it: opening a
    FIFO blocks until a writer comes (status would hang), and `run` refuses a symlink, so
    what is behind one is not what runs record."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except OSError as err:
        raise StoreError(f"cannot read run store {path}: {err.strerror}") from err
    if stat.S_ISREG(mode):
        return
    what = "a symlink" if stat.S_ISLNK(mode) else "a directory" if stat.S_ISDIR(mode) else None
    what = what or ("a FIFO" if stat.S_ISFIFO(mode) else "not a regular file")
    raise StoreError(
        f"run store {path} is {what}; cronwrap run refuses it, so no runs are recorded:"
        " remove it (the next run creates a fresh store)"
    )


class Database:
    """One SQLite connection to the run store file; `Store` adds what is kept in it."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path  # a str: the run path does not import pathlib (start-up time)
        self.recovered: str | None = None  # where a damaged store was moved aside
        self._writable = True
        self._recover = True  # a damaged file is moved aside (see open)

    # ---------------------------------------------------------- opening

    @classmethod
    def open(
        cls: type[_D], path: StrPath, *, busy_timeout_s: float = 60.0, recover: bool = True
    ) -> _D:
        """Open (creating or migrating) the store for writing. A file that is not an SQLite
        database, or a damaged one, is moved aside as `<name>.corrupt-<time>` and a fresh
        store takes its place: `recovered` then names where the old file went. Without
        `recover` (forget, failed --resolve: a command about the runs it holds) it is left
        as it is, and StoreError says so: status goes on saying the store is damaged."""
        path = os.fspath(path)
        try:
            store = cls._open(path, busy_timeout_s)
        except _CorruptError as err:
            if not recover:
                raise StoreError(
                    f"run store {path} is damaged ({err}); left as it is (cronwrap run moves "
                    "a damaged store aside and starts a fresh one)"
                ) from None
            aside = _move_aside(path)
        else:
            store._recover = recover
            return store
        store = cls._open(path, busy_timeout_s)
        store.recovered = aside
        return store

    @classmethod
    def _open(cls: type[_D], path: str, busy_timeout_s: float) -> _D:
        if os.path.islink(path):
            raise StoreError(f"{path} is a symlink; refusing to open the run store through it")
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer takes the
            # write lock up front and waits on the busy timeout instead of failing mid-way
            conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
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
    def open_readonly(cls: type[_D], path: StrPath) -> _D:
        """Open for reading only (`status`, `history`): works on a store the reader cannot
        write (a read-only mount, another user's file), and never creates or migrates."""
        path = os.fspath(path)
        _refuse_odd_file(path)
        uri = "file:" + uri_quote(os.path.abspath(path))
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
            if not READABLE_SINCE <= version <= SCHEMA_VERSION:
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
                if not _is_busy(err):
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
                statement = ""
                # one statement at a time (a trigger's body holds semicolons of its own)
                for piece in MIGRATIONS[number].split(";"):
                    statement += piece + ";"
                    if sqlite3.complete_statement(statement):
                        if statement.strip(" \n;"):
                            self._conn.execute(statement)
                        statement = ""
            if version < 8:  # schema 8: the summaries of the runs recorded before it
                from cronwrap.state import heads

                heads.refresh_all(self._conn)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self: _D) -> _D:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _failed(self, err: sqlite3.Error) -> StoreError:
        """The StoreError for `err`. A writer that finds the file damaged moves it aside and
        carries on with a fresh store, so only this one operation is lost, and says so."""
        if _is_busy(err):
            return StoreBusyError(f"run store {self.path} is busy (another process is writing)")
        if not (_is_corrupt(err) and self._writable and self._recover):
            return StoreError(f"run store {self.path}: {err}")
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        try:
            aside = _move_aside(self.path)
            fresh = type(self)._open(self.path, 5.0)
        except (StoreError, _CorruptError) as again:
            return StoreError(f"run store {self.path} is damaged ({err}): {again}")
        self._conn, self.recovered = fresh._conn, aside
        return StoreError(
            f"run store {self.path} was damaged ({err}): moved aside to {os.path.basename(aside)},"
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

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise self._failed(err) from err
