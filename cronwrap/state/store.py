"""The run store: every run, attempt and job in one SQLite file (WAL), written by the run
path in two transactions (start and a durable end) and read by the views. The schema is in
`state/schema.py`, the values in `state/records.py`, the connection in `state/database.py`;
callers never see sqlite3 errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from cronwrap.errors import StoreError
from cronwrap.state import heads
from cronwrap.state.database import Database
from cronwrap.state.records import (
    EPOCH,
    JOB_COLUMNS,
    RUN_COLUMNS,
    AttemptRecord,
    JobRecord,
    RunRecord,
    as_number,
    as_text,
    attempt_row,
    from_iso,
    in_chunks,
    iso,
    row_to_job,
    row_to_run,
    storable,
)
from cronwrap.state.schema import DEAD_STATUSES
from cronwrap.stdlib import datetime, sqlite3, timedelta, timezone

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker


def _queue_fleet(conn: sqlite3.Connection, run_id: str, queue: bool) -> None:
    """Queue the run for the fleet store, in the caller's transaction (--fleet-store)."""
    if queue:
        conn.execute("INSERT INTO fleet_outbox (run_id) VALUES (?)", (run_id,))


class Store(Database):
    """The run store; open with `Store.open(path)` (or `open_readonly`) and close when done."""

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
                    (job, schedule, tz, iso(started_at), spec, int(catch_up), catch_up_max_age),
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
                        storable(command),
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
                heads.refresh(conn, job)
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
            attempt_row(run_id, attempt, started_at, ended_at, status, exit_code, signal),
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
                        attempt_row(run_id, *last_attempt),
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
                        storable(output_tail),
                        storable(reason),
                        exit_origin,
                        flags,
                        storable(warnings),
                        run_id,
                    ),
                )
                row = conn.execute(
                    "SELECT job, rerun_of, started_at, slot FROM runs WHERE run_id=?", (run_id,)
                ).fetchone()
                if row:
                    heads.refresh(conn, row[0])
                    self._settle(conn, run_id, row, status, ended_at, resolve_on_success)
                if count_as and row:
                    conn.execute(
                        "INSERT INTO counters (job, result, n) VALUES (?,?,1) "
                        "ON CONFLICT (job, result) DO UPDATE SET n = n + 1",
                        (row[0], count_as),
                    )
                _queue_fleet(conn, run_id, queue_fleet)
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
        return [row_to_run(r) for r in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        """Open dead letters per job (for status): read through their partial index, so
        as quick for one job as for all (a `job IN` filter would walk the job's runs)."""
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
        return row_to_run(rows[0]) if rows else None

    def run_spec(self, run_id: str) -> str | None:
        rows = self._query("SELECT spec FROM runs WHERE run_id=?", (run_id,))
        return rows[0][0] if rows else None

    def job(self, name: str) -> JobRecord | None:
        rows = self._query(f"SELECT {JOB_COLUMNS} FROM jobs WHERE name=?", (name,))
        return row_to_job(rows[0]) if rows else None

    def jobs(self) -> list[JobRecord]:
        return [row_to_job(r) for r in self._query(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY name")]

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
        return [float(r[0]) for r in rows if as_number(r[0]) is not None]

    def last_success_at(self, job: str) -> datetime | None:
        sql = "SELECT max(ended_at) FROM runs WHERE job=? AND status='success'"
        rows = self._query(sql, (job,))
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
                    "UPDATE runs SET warnings=? WHERE run_id=?", (storable(warnings), run_id)
                )
                _queue_fleet(conn, run_id, queue_fleet)
        except sqlite3.Error as err:
            raise self._failed(err) from err

    def mark_crashed(self, run_id: str, *, reason: str, queue_fleet: bool = False) -> None:
        try:
            with self._write() as conn:
                cur = conn.execute(
                    "UPDATE runs SET status='crashed', reason=?, dead=(rerun_of IS NULL)"
                    " WHERE run_id=? AND status='running'",
                    (reason, run_id),
                )
                if cur.rowcount:  # counted like every other end (Prometheus' runs_total)
                    conn.execute(
                        "INSERT INTO counters (job, result, n) SELECT job, 'crashed', 1"
                        " FROM runs WHERE run_id=? "
                        "ON CONFLICT (job, result) DO UPDATE SET n = n + 1",
                        (run_id,),
                    )
                    job = conn.execute("SELECT job FROM runs WHERE run_id=?", (run_id,))
                    heads.refresh(conn, job.fetchone()[0])
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
                    heads.refresh(conn, job)
        except sqlite3.Error as err:
            raise self._failed(err) from err
        return [r[1] for r in gone if r[1]]

    # ---------------------------------------------------------- reading

    def runs(self, job: str, *, limit: int = 20, host: str | None = None) -> list[RunRecord]:
        """The job's newest runs first (those recorded under `host`, if given)."""
        cols = ", ".join(RUN_COLUMNS)
        rows = self._query(
            f"SELECT {cols} FROM runs WHERE job=? AND (? IS NULL OR host=?) "
            "ORDER BY id DESC LIMIT ?",
            (job, host, host, limit),
        )
        return [row_to_run(r) for r in rows]

    def newest_heads(
        self, names: list[str], *, kept: bool = True
    ) -> dict[str, tuple[heads.Heads, heads.Rows | None]]:
        """Each named job's newest rows in brief, and the rows when read (state/heads.py)."""
        try:
            return heads.read(self._conn, names, kept=kept and self.schema_version >= 8)
        except sqlite3.Error as err:
            raise self._failed(err) from err

    def recent_schedule(self, job: str, *, limit: int) -> str | None:
        """The schedule of the newest of the job's last `limit` runs that recorded one."""
        rows = self._query(
            "SELECT schedule FROM runs WHERE job=? ORDER BY id DESC LIMIT ?", (job, limit)
        )
        return next((t for t in (as_text(r[0]) for r in rows) if t), None)

    def runs_by_id(self, ids: list[int]) -> dict[int, RunRecord]:
        """Runs by their row id, without their output tails (what `status` shows of a run
        leaves them out, and a job's tail may be large)."""
        cols = ", ".join("NULL" if c == "output_tail" else c for c in RUN_COLUMNS)
        out: dict[int, RunRecord] = {}
        for marks, chunk in in_chunks(ids):
            rows = self._query(f"SELECT id, {cols} FROM runs WHERE id IN ({marks})", chunk)
            out.update((int(r[0]), row_to_run(r[1:])) for r in rows)
        return out

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One read transaction around many queries: one snapshot (a run ending meanwhile is
        seen before or after, never half), one lock taken instead of one per query."""
        self._query("BEGIN")
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("COMMIT")

    def recent_runs(self, *, limit: int = 20, host: str | None = None) -> list[RunRecord]:
        """The newest runs of every job (recorded under `host`, if given), newest first."""
        cols = ", ".join(RUN_COLUMNS)
        rows = self._query(
            f"SELECT {cols} FROM runs WHERE ? IS NULL OR host=? ORDER BY id DESC LIMIT ?",
            (host, host, limit),
        )
        return [row_to_run(r) for r in rows]

    def forget(self, job: str) -> list[str]:
        """Remove every trace of a job (runs, attempts, counters, row); returns its log paths."""
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
        return row_to_run(rows[0]) if rows else None

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        rows = self._query("SELECT * FROM attempts WHERE run_id=? ORDER BY attempt", (run_id,))
        return [
            AttemptRecord(r[0], r[1], from_iso(r[2]) or EPOCH, from_iso(r[3]), *r[4:]) for r in rows
        ]

    def job_names(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM jobs ORDER BY name")]

    def job_schedules(
        self, names: list[str] | None = None
    ) -> dict[str, tuple[str | None, str | None]]:
        """Each job's (or each named job's) last recorded --schedule and --tz."""
        if names is None:
            rows = self._query("SELECT name, schedule, tz FROM jobs")
        else:
            rows = [
                r
                for marks, chunk in in_chunks(names)
                for r in self._query(
                    f"SELECT name, schedule, tz FROM jobs WHERE name IN ({marks})", chunk
                )
            ]
        return {r[0]: (r[1], r[2]) for r in rows}

    def failures(
        self, *, limit: int = 20, host: str | None = None, jobs: Sequence[str] = ()
    ) -> list[RunRecord]:
        """The newest failed runs (of `host`, of `jobs`, if given) for the HTML dashboard: each
        status that makes a dead letter, cancelled included, as `cronwrap failed` does."""
        named = f"AND job IN ({', '.join('?' * len(jobs))}) " if jobs else ""
        rows = self._query(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE status IN {DEAD_STATUSES!r} "
            f"AND (? IS NULL OR host = ?) {named}ORDER BY started_at DESC LIMIT ?",
            (host, host, *jobs, limit),
        )
        return [row_to_run(r) for r in rows]

    # ---------------------------------------------------------- fleet outbox

    def queue_for_fleet(self, run_id: str) -> None:
        """Remember that this run changed and its newest state is still to be shipped."""
        self._exec_write("INSERT INTO fleet_outbox (run_id) VALUES (?)", (run_id,))

    def fleet_pending(self, *, limit: int = 500) -> list[tuple[int, str]]:
        """(seq, run_id) still to ship, oldest first (one shipper per host ships them all)."""
        rows = self._query("SELECT seq, run_id FROM fleet_outbox ORDER BY seq LIMIT ?", (limit,))
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

    def fleet_oldest_queued_at(self) -> datetime | None:
        """When the oldest change still to ship was queued (None: nothing is queued)."""
        row = self._query("SELECT min(queued_at) FROM fleet_outbox")[0]
        if row[0] is None:
            return None
        # julianday: days since noon UTC, 24 November 4714 BC; the Unix epoch is day 2440587.5
        return datetime.fromtimestamp((float(row[0]) - 2440587.5) * 86400.0, timezone.utc)

    def count_runs(self, job: str | None = None) -> int:
        if job is None:
            return int(self._query("SELECT count(*) FROM runs")[0][0])
        return int(self._query("SELECT count(*) FROM runs WHERE job=?", (job,))[0][0])
