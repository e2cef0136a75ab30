"""Fleet mode on PostgreSQL: the overlap lock as a session-level advisory lock held by one
connection for the whole run, and once-per-slot as a row in cronwrap_slots (committed, so it
outlives a server restart). The session is kept busy every ttl/3 and carries
idle_session_timeout = ttl, so the server ends the session of a host that died or was cut
off, and its lock with it. psycopg is imported (through the fleet store) only when a
postgresql:// lock URL is configured."""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime

from cronwrap.redact import redact_url
from cronwrap.run.lease import LockUnavailableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOCK_CLASS = 0x63726F6E  # the advisory-lock key space of cronwrap ("cron")


def lock_key(job: str) -> int:
    """A stable 32-bit key per job (as a signed int4 for pg_try_advisory_lock)."""
    key = zlib.crc32(f"cronwrap:lock:{job}".encode())
    return key - 2**32 if key >= 2**31 else key


def _bounded(fn: Callable[[], Any], timeout_s: float) -> tuple[bool, Any]:
    """Run fn in a helper thread and wait at most timeout_s: (done, result or exception).
    A server that stopped answering leaves the helper blocked; it is a daemon and is dropped."""
    box: list[tuple[bool, Any]] = []

    def call() -> None:
        try:
            box.append((True, fn()))
        except Exception as err:  # any error is handed back to the caller, who decides
            box.append((False, err))

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not box:
        return False, TimeoutError(f"no answer within {timeout_s:g}s")
    return box[0]


class PgLease:
    """One job's slot claims and lease on one PostgreSQL server (same interface as the
    Redis Fleet: claim_slot, acquire, holder, keep_alive, release)."""

    def __init__(
        self, url: str, job: str, *, host: str, run_id: str, ttl_s: float, timeout_s: float = 2.0
    ) -> None:
        self.url = url
        self.job = job
        self.host = host
        self.run_id = run_id
        self.ttl_s = max(1.0, ttl_s)
        self.timeout_s = timeout_s
        self.key = lock_key(job)
        self.fd: int | None = None  # no descriptor to pass to the child (see JobLock)
        self.lost: str | None = None
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.conn: Any = self._connect()

    def _unavailable(self, err: BaseException) -> LockUnavailableError:
        from cronwrap.state.fleetread import first_line

        return LockUnavailableError(
            f"lock server {redact_url(self.url)} unavailable: {first_line(err)}"
        )

    def _connect(self) -> Any:
        """A connection with the schema in place, within the time budget."""
        from cronwrap.errors import ConfigError
        from cronwrap.state.fleetschema import LEASE_SCHEMA
        from cronwrap.state.fleetstore import FleetStore, FleetStoreError, connect

        def open_() -> Any:
            conn = connect(
                self.url,
                timeout_s=self.timeout_s,
                statement_timeout_s=self.timeout_s,
                what="lock server",
                # a session that nobody keeps busy (a dead or cut-off host) is ended by the
                # server after the lease time, which releases its advisory lock
                extra_options=f"-c idle_session_timeout={int(self.ttl_s * 1000)}",
            )
            FleetStore(conn, self.url).migrate(lock_wait_s=self.timeout_s, needed=LEASE_SCHEMA)
            return conn

        # connect (libpq's 2 s at least), authenticate, check the schema: bounded as a whole
        done, value = _bounded(open_, self.timeout_s * 5 + 5)
        if done:
            return value
        if isinstance(value, ConfigError):
            # no psycopg, or not a postgresql:// URL: as unavailable as a dead server, so the
            # --lock-unavailable policy decides (as for Redis), not a blanket 125
            raise LockUnavailableError(str(value)) from None
        if isinstance(value, FleetStoreError | LockUnavailableError):
            raise LockUnavailableError(str(value).replace("fleet store", "lock server")) from None
        raise self._unavailable(value)

    def _query(self, sql: str, params: tuple[object, ...]) -> Any:
        def call() -> Any:
            cur = self.conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

        done, value = _bounded(call, self.timeout_s)
        if not done:
            raise self._unavailable(value)
        return value

    def claim_slot(self, slot: datetime, *, ttl_s: float) -> str | None:
        """Claim the scheduled slot; None if ours, else the host that claimed it first.
        Claims older than ttl_s are dropped on the way."""
        rows = self._query(
            "WITH gone AS (DELETE FROM cronwrap_slots WHERE job = %s "
            "AND slot < now() - make_interval(secs => %s)) "
            "INSERT INTO cronwrap_slots (job, slot, host, run_id) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (job, slot) DO NOTHING RETURNING host",
            (self.job, max(ttl_s, 86400.0), self.job, slot, self.host, self.run_id),
        )
        if rows:
            return None
        rows = self._query(
            "SELECT host FROM cronwrap_slots WHERE job = %s AND slot = %s", (self.job, slot)
        )
        return str(rows[0][0]) if rows else "another host"

    def _try_lock(self) -> bool:
        rows = self._query("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, self.key))
        if rows and rows[0][0]:
            self._query(
                "INSERT INTO cronwrap_leases (job, host, run_id) VALUES (%s, %s, %s) "
                "ON CONFLICT (job) DO UPDATE SET host = excluded.host, "
                "run_id = excluded.run_id, taken_at = now()",
                (self.job, self.host, self.run_id),
            )
            return True
        return False

    def acquire(self, *, wait_s: float = 0.0, sleep: Callable[[float], bool] | None = None) -> bool:
        """Take the lease, waiting up to `wait_s` (see lock.keep_trying)."""
        from cronwrap.run.lock import keep_trying

        self.held = keep_trying(self._try_lock, wait_s, sleep)
        return self.held

    def holder(self) -> str | None:
        """The host that took the lease last (as it recorded itself)."""
        try:
            rows = self._query("SELECT host FROM cronwrap_leases WHERE job = %s", (self.job,))
        except LockUnavailableError:
            return None
        return str(rows[0][0]) if rows else None

    def keep_alive(self, on_lost: Callable[[str], None]) -> None:
        """Keep the session busy every ttl/3. If the connection is lost (server restart,
        network), reconnect and take the lock again while the lease time lasts; call
        on_lost once if another host has it by then or the server stays unreachable."""

        def renew() -> None:
            expires = time.monotonic() + self.ttl_s
            broken = False
            while not self._stop.wait(self.ttl_s / 3):
                try:
                    if broken:
                        with contextlib.suppress(Exception):
                            self.conn.close()
                        self.conn = self._connect()
                        if not self._try_lock():
                            self._lost(
                                on_lost,
                                "another host took the lease while the lock server was away",
                            )
                            return
                        broken = False
                    else:
                        self._query("SELECT 1", ())
                except LockUnavailableError as err:
                    broken = True
                    if time.monotonic() < expires:
                        continue  # keep trying while the lease may still be ours
                    self._lost(
                        on_lost, f"the lock server did not answer for the lease time ({err})"
                    )
                    return
                expires = time.monotonic() + self.ttl_s

        self._thread = threading.Thread(target=renew, daemon=True)
        self._thread.start()

    def _lost(self, on_lost: Callable[[str], None], reason: str) -> None:
        self.lost = reason
        self.held = False
        on_lost(reason)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1)
        if self.held and not self.lost:
            with contextlib.suppress(LockUnavailableError):
                self._query("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, self.key))
        # closing the session releases the lock in any case
        _bounded(self.conn.close, self.timeout_s)
