"""What one run carries while it is reported (Run), what it came to (Outcome), and the
one guard every reporter is called through: whatever a reporter raises becomes a warning on
the run, never a change to the job's exit code. Never imports click."""

from __future__ import annotations

import contextlib
import os

from cronwrap.redact import Redactor
from cronwrap.run.context import RunOrigin
from cronwrap.run.nowait import write_own
from cronwrap.state.events import EventLog

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime
    from typing import Protocol, TypeVar

    from cronwrap.options import Job
    from cronwrap.paths import Paths
    from cronwrap.run.process import AttemptResult, Canceller, OutputSink
    from cronwrap.state.records import RunRecord
    from cronwrap.state.store import Store

    T = TypeVar("T")

    class Reporter(Protocol):
        """One way a run is reported (store, event log, pings, alerts, metrics, cron mail).
        Each phase is called through the guard; a reporter may do nothing in a phase."""

        name: str

        def start(self, run: Run) -> None: ...

        def attempt(self, run: Run, attempt: Attempt) -> None: ...

        def end(self, run: Run, outcome: Outcome) -> None: ...


START_BUSY_S = 1.0  # most a busy store may delay the job's start (the row is written late)
# most a busy store may add at the end of the run (then it is skipped): the job is done by
# then, and its record is worth more than a quick exit (200 runs in one second all fit)
END_BUSY_S = 30.0


class Attempt:
    """One finished attempt: its number, times and result; `retrying` if another follows."""

    __slots__ = ("ended_at", "number", "result", "retrying", "started_at")

    def __init__(
        self,
        number: int,
        result: AttemptResult,
        started_at: datetime,
        ended_at: datetime,
        *,
        retrying: bool = False,
    ) -> None:
        self.number = number
        self.result = result
        self.started_at = started_at
        self.ended_at = ended_at
        self.retrying = retrying


class Outcome:
    """What a run came to; exit_code is what `cronwrap run` exits with."""

    __slots__ = (
        "attempts",
        "duration_s",
        "ended_at",
        "exit_code",
        "flags",
        "output",
        "output_err",
        "reason",
        "run_id",
        "signal",
        "slow",
        "started_at",
        "status",
        "tail",
        "warnings",
    )

    def __init__(
        self,
        run_id: str,
        status: str,
        exit_code: int,
        signal: int | None = None,
        attempts: int = 0,
        duration_s: float = 0.0,
        reason: str | None = None,
        warnings: list[str] | None = None,
        output: bytes = b"",
        output_err: bytes = b"",
    ) -> None:
        self.run_id = run_id
        self.status = status  # success|failed|timeout|cancelled|skipped
        self.exit_code = exit_code
        self.signal = signal
        self.attempts = attempts
        self.duration_s = duration_s  # the job's own time: first attempt start to last end
        self.reason = reason
        self.warnings = warnings if warnings is not None else []
        self.output = output  # for chronic mode: what to print on failure, stdout
        self.output_err = output_err  # and stderr
        self.flags: list[str] = []  # slow, max-runtime, lock-lost
        self.slow: str | None = None  # why the run counts as slow (--slow-factor)
        self.tail = ""  # redacted end of the output, for the store and alerts
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None

    @property
    def bad(self) -> bool:
        """A failure for pings and alerts alike. A cancelled run did not do its work, so
        it is one too (Healthchecks gets its exit status, 128+N); a skip is not."""
        return self.status in ("failed", "timeout", "cancelled")


class Run:
    """One run as its reporters see it: the job, where things live, warnings so far, and
    guarded access to the store. Reporters share it; only the guard catches broadly."""

    def __init__(self, job: Job, paths: Paths, run_id: str, host: str) -> None:
        self.job = job
        self.paths = paths
        self.run_id = run_id
        self.host = host
        self.warnings: list[str] = []
        self.redact = Redactor()
        self.child_env: Mapping[str, str] = {}
        self.started_at: datetime | None = None
        self.log_path: str | None = None
        self.sink: OutputSink | None = None
        self.crashed: list[RunRecord] = []  # earlier runs found dead at start (store)
        self.lock_lost_kill = False
        self.recorded_warnings: int | None = None  # how many the end row holds, once written
        self.withhold_output = False  # a --redact pattern was unusable: no output leaves the run
        self.canceller: Canceller | None = None
        self.origin = RunOrigin()  # how the run came about: cron, a rerun, a catch-up
        self.slot: datetime | None = None  # the scheduled slot it belongs to (CRONWRAP_SLOT)
        self.invoked_at: datetime | None = None  # when cron started cronwrap (before jitter)
        self.spec: str | None = None  # how to run it again (stored for rerun and catch-up)
        # called once the run's last write is done (the fleet store's hand-off to its shipper)
        self.at_close: list[Callable[[], None]] = []
        # called once every reporter has ended, before the late warnings are recorded (the
        # event log's run.end: a finish ping or an alert that failed is among its warnings)
        self.at_end: list[Callable[[], None]] = []
        log_path = job.log_file if job.log_file is not None else paths.event_log_path
        self.events = EventLog(log_path, fmt=job.log_format, job=job.name, run_id=run_id, host=host)
        self._store: Store | None = None
        self._store_tried = False
        self._streak: int | None = None

    def warn(self, message: str) -> None:
        """Say a problem of cronwrap's own once, as one `cronwrap: <job>: …` line on stderr
        (cron mails it), and keep it for the run's record."""
        if message in self.warnings:
            return
        self.warnings.append(message)
        with contextlib.suppress(OSError):  # stderr closed, or nobody reads it
            write_own(2, f"cronwrap: {self.job.name}: {message}\n".encode("utf-8", "replace"))

    def emit(self, event: str, message: str = "", **fields: object) -> None:
        """An event log record, redacted; any failure becomes a warning (through the guard)."""
        guard(self, "event log", self._emit, event, message, fields)

    def _emit(self, event: str, message: str, fields: dict[str, object]) -> None:
        clean = {k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        self.events.emit(event, self.redact.text(message), **clean)
        while self.events.errors:
            self.warn(self.events.errors.pop(0))

    @property
    def canceller_signum(self) -> int:
        """The signal that cancelled the run (only asked once one did)."""
        assert self.canceller is not None and self.canceller.signum is not None
        return self.canceller.signum

    @property
    def store(self) -> Store | None:
        """The run store, opened on first use; None (and one warning) if it cannot be."""
        if not self._store_tried:
            self._store_tried = True
            self._store = guard(self, "run history is not recorded", _open_store, self)
        return self._store

    def failure_streak(self, outcome: Outcome) -> int:
        """Consecutive failed runs up to this one (0 for a good one), read once for pings and
        alerts alike. Unknown (no store) counts as --alert-after: a failure nobody can count
        is never tolerated, it is told."""
        if not outcome.bad:
            return 0
        if self._streak is None:
            job = self.job
            self._streak = self.query("the failure streak", lambda s: s.streak(job.name))
            if self._streak is None:
                self._streak = max(job.alert_after, 1)
        return max(self._streak, 1)

    def query(self, what: str, fn: Callable[[Store], T]) -> T | None:
        """fn(store) through the guard: None when there is no store or it failed."""
        store = self.store
        if store is None:
            return None
        return guard(self, f"cannot record {what}", self._call, fn, store)

    def _call(self, fn: Callable[[Store], T], store: Store) -> T | None:
        from cronwrap.state.database import StoreBusyError

        try:
            return fn(store)
        except StoreBusyError as err:
            # one line for the whole run; from now on writes do not wait at all
            store.set_busy_timeout(0)
            self.warn(f"{err}: parts of this run are not recorded")
            return None

    def close(self) -> None:
        """Record what went wrong after the end row was written (a finish ping, an alert,
        metrics), so the run shows as degraded; then close the store."""
        ends, self.at_end = self.at_end, []
        for fn in ends:
            guard(self, "at the run's end", fn)
        if self._store is not None:
            if self.recorded_warnings is not None and len(self.warnings) > self.recorded_warnings:
                guard(self, "cannot record the run's warnings", self._record_late_warnings)
            guard(self, "cannot close the run history", self._store.close)
            self._store = None
        hooks, self.at_close = self.at_close, []
        for fn in hooks:
            guard(self, "after the run", fn)

    def _record_late_warnings(self) -> None:
        """Best effort, without waiting on a busy store: the warnings were said on stderr
        and in the event log already."""
        from cronwrap.state.database import StoreBusyError

        assert self._store is not None
        self._store.set_busy_timeout(0.2)
        text = self.redact.text("\n".join(self.warnings))
        with contextlib.suppress(StoreBusyError):
            self._store.set_warnings(self.run_id, text, queue_fleet=bool(self.job.fleet_store))


def _open_store(run: Run) -> Store:
    from cronwrap.paths import ensure_dir
    from cronwrap.state.store import Store

    ensure_dir(run.paths.state_path, private=True)
    # short: another process holding the write lock must not delay the job's start
    store = Store.open(run.paths.db_path, busy_timeout_s=START_BUSY_S)
    if store.recovered is not None:
        run.warn(
            f"run store {run.paths.db_path} was damaged: moved aside to "
            f"{os.path.basename(store.recovered)}, a fresh store is used from now on"
        )
    return store


def guard(run: Run, what: str, fn: Callable[..., T], *args: object) -> T | None:
    """Call fn(*args); any exception becomes one warning on the run and None.

    This is the one broad `except Exception` of the run path, on purpose: reporting (store,
    event log, pings, alerts, metrics) must never stop the job or change its exit code, and
    a bug in a reporter is a warning the operator sees, not a failed job."""
    try:
        return fn(*args)
    except Exception as err:
        from cronwrap.errors import CronwrapError

        detail = str(err) if isinstance(err, CronwrapError) else f"{type(err).__name__}: {err}"
        said = f": {run.redact(detail)}"
        base = what.split(" (", 1)[0]  # the same failure at start and end is one line
        if not any(w.startswith(f"{base} (") and w.endswith(said) for w in run.warnings):
            run.warn(what + said)
        return None


class Reporters:
    """The run's reporters, each phase called on each of them through the guard."""

    def __init__(self, run: Run, reporters: Sequence[Reporter]) -> None:
        self.run = run
        self.reporters = list(reporters)

    def start(self) -> None:
        for r in self.reporters:
            guard(self.run, f"{r.name} (start)", r.start, self.run)

    def attempt(self, attempt: Attempt) -> None:
        for r in self.reporters:
            guard(self.run, f"{r.name} (attempt)", r.attempt, self.run, attempt)

    def end(self, outcome: Outcome) -> None:
        for r in self.reporters:
            guard(self.run, f"{r.name} (end)", r.end, self.run, outcome)
