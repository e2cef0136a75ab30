"""Shipping this host's runs to the fleet store without the run ever waiting for PostgreSQL:
the run queues its changes in the local store (fleet_outbox, in the same transaction as the
change) and hands the queue to a detached shipper process, one per host at a time. The run's
own process never imports psycopg; only the shipper (`main`) and `cronwrap flush` do."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from datetime import datetime, timezone

from cronwrap.errors import CronwrapError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cronwrap.run.reporting import Attempt, Outcome, Run
    from cronwrap.state.fleetstore import FleetStore
    from cronwrap.state.store import Store

LOCK_FILE = "fleet-ship.lock"  # held by the one shipper at work on this host
FAILURE_FILE = "fleet-ship.failed"  # the last shipment that failed: when, and why
URL_ENV = "CRONWRAP_FLEET_STORE"  # how the shipper gets the URL (never on its command line)
LOCK_FD = 3  # where the shipper finds the lock its run took for it
SHIP_FOR_S = 30.0  # a shipper starts no new batch after this long; the rest goes next time
LOCAL_BUSY_S = 30.0  # how long the shipper waits for the local store when runs are writing
STALE_S = 60.0  # a change queued this long and not shipped is worth a line in `status`
# how long a shipper waits for another host's schema upgrade of the fleet store to finish (an
# upgrade of millions of runs takes seconds; the shipper delays nobody, and giving up left the
# host's runs queued until its next run, a day later for a daily job)
UPGRADE_WAIT_S = 30.0


def shipper_bound_s(budget_s: float) -> float:
    """The most a shipper lives: its batches, then one connect and one statement that may each
    take the budget (libpq's connect timeout is at least 2 s), one wait for another host's
    upgrade of the store, one wait for the local store, and a margin. Past it the kernel ends
    it (SIGALRM): nothing keeps one alive for longer."""
    return SHIP_FOR_S + 2 * max(2.0, budget_s) + UPGRADE_WAIT_S + LOCAL_BUSY_S + 5.0


# ------------------------------------------------------------------ the run's side


class FleetReporter:
    """The run path's reporter for --fleet-store: the store reporter queues each change of
    the run; this hands the queue to the shipper after the start and after the run's last
    write. It never waits for the shipper, so it adds no time to the run, and it says nothing
    about the fleet store on the run: `status` says what is not shipped, and why."""

    name = "fleet store"

    def __init__(self, run: Run) -> None:
        from cronwrap.state.fleetstore import check_url

        assert run.job.fleet_store is not None
        check_url(run.job.fleet_store, "--fleet-store")  # a wrong URL is one warning, now

    def start(self, run: Run) -> None:
        # so `status --fleet-store` shows the run as running while its job runs
        hand_off(run)

    def attempt(self, run: Run, attempt: Attempt) -> None:
        pass  # attempts go with the run's end

    def end(self, run: Run, outcome: Outcome) -> None:
        # after the run's last write (its late warnings too), so nothing it queues is left
        # for a shipper that already looked
        run.at_close.append(lambda: hand_off(run))


def hand_off(run: Run) -> None:
    """Start the shipper unless one is at work on this host: that one ships what this run
    queued too, as it looks at the queue again after letting go of the lock."""
    job = run.job
    assert job.fleet_store is not None
    fd = take_lock(run.paths.state_path)
    if fd is None:
        return
    try:
        _spawn(job.fleet_store, run.paths.state_path, run.paths.db_path, job.fleet_budget, fd)
    finally:
        os.close(fd)  # the shipper has its own copy: the lock is its now (or free, if none)


def take_lock(state_dir: str) -> int | None:
    """The host's shipping lock (a descriptor), or None while another process holds it."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(os.path.join(state_dir, LOCK_FILE), flags, 0o600)
    except OSError as err:
        where = os.path.join(state_dir, LOCK_FILE)
        raise CronwrapError(f"cannot open {where}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _spawn(url: str, state_dir: str, db_file: str, budget_s: float, lock_fd: int) -> None:
    """posix_spawn the shipper: its own session, /dev/null for stdin, stdout and stderr (cron
    mails a run's output once every holder of the pipe closed it, so the shipper must not
    hold it), the lock on LOCK_FD and nothing else of ours."""
    import signal
    import sys

    import cronwrap

    if not sys.executable:
        raise CronwrapError("cannot start the fleet shipper: no Python interpreter known")
    # the shipper imports the very cronwrap this run is, whatever the working directory holds,
    # and leaves the CPU to the jobs first (nice 10): it is background work
    root = os.path.dirname(os.path.dirname(os.path.abspath(cronwrap.__file__)))
    code = (
        f"import os, sys; os.nice(10); sys.path[0] = {root!r}; "
        "from cronwrap.run.ship import main; sys.exit(main(sys.argv[1:]))"
    )
    # above 2, so that setting up 0-2 in the child cannot overwrite them first
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    high = fcntl.fcntl(null, fcntl.F_DUPFD_CLOEXEC, 10)
    lock = fcntl.fcntl(lock_fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(null)
    actions = [
        (os.POSIX_SPAWN_DUP2, high, 0),
        (os.POSIX_SPAWN_DUP2, high, 1),
        (os.POSIX_SPAWN_DUP2, high, 2),
        (os.POSIX_SPAWN_DUP2, lock, LOCK_FD),
    ]
    argv = [sys.executable, "-c", code, state_dir, db_file, repr(budget_s)]
    env = {**os.environ, URL_ENV: url}
    defaults = {signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE}
    try:
        try:
            os.posix_spawn(
                sys.executable, argv, env, file_actions=actions, setsid=True, setsigdef=defaults
            )
        except NotImplementedError:  # a libc without POSIX_SPAWN_SETSID
            os.posix_spawn(
                sys.executable, argv, env, file_actions=actions, setpgroup=0, setsigdef=defaults
            )
    except OSError as err:
        raise CronwrapError(f"cannot start the fleet shipper: {err.strerror}") from None
    finally:
        os.close(high)
        os.close(lock)


# ------------------------------------------------------------------ the shipper


def main(argv: list[str]) -> int:
    """The detached shipper, started by hand_off holding the host's lock on LOCK_FD: ship
    the whole queue, let go of the lock, and look again (a run that found the lock held
    may have queued something meanwhile). 0 when the queue went, 1 when it failed."""
    import signal

    state_dir, db_file, budget_s = argv[0], argv[1], float(argv[2])
    bound = shipper_bound_s(budget_s)
    signal.alarm(int(bound) + 1)  # the kernel's end, whatever the interpreter is doing
    os.closerange(LOCK_FD + 1, 1 << 16)  # nothing of the run's may live on in the shipper
    url = os.environ.get(URL_ENV, "")
    _give_up_after(bound - 1.0, state_dir, url)
    shipper = _Shipper(url, state_dir, db_file, budget_s)
    try:
        return 0 if shipper.ship_all() else 1
    except Exception as err:  # a failure no layer put into words: said all the same
        from cronwrap.redact import Redactor, redact_url

        said = Redactor(secrets=[url]).text(f"{type(err).__name__}: {err}")
        note_failure(state_dir, f"the shipper failed ({said}) with fleet store {redact_url(url)}")
        return 1
    finally:
        shipper.close()


def _give_up_after(seconds: float, state_dir: str, url: str) -> None:
    """Just before the alarm: a note for `status` that says why the backlog stays, then the
    end (a thread, as the main one may be inside libpq, which retries an interrupted wait)."""
    import threading

    def give_up() -> None:
        from cronwrap.redact import redact_url

        note_failure(
            state_dir,
            f"the shipper was stopped after {seconds:.0f}s, its bound, with fleet store "
            f"{redact_url(url)}: a connection or a statement outlived its budget",
        )
        os._exit(1)

    timer = threading.Timer(max(0.0, seconds), give_up)
    timer.daemon = True
    timer.start()


class _Shipper:
    def __init__(self, url: str, state_dir: str, db_file: str, budget_s: float) -> None:
        self.url = url
        self.state_dir = state_dir
        self.db_file = db_file
        self.budget_s = budget_s
        self.deadline = time.monotonic() + SHIP_FOR_S
        self.local: Store | None = None
        self.fleet: FleetStore | None = None
        self.shipped = 0  # queue entries shipped by this process

    def ship_all(self) -> bool:
        lock_fd: int | None = LOCK_FD
        while lock_fd is not None:
            try:
                if self._ship_queue():  # the time is up, the queue is not empty
                    if self.shipped:  # the server answers: a fresh shipper goes on
                        _spawn(self.url, self.state_dir, self.db_file, self.budget_s, lock_fd)
                    return True
                self._close_fleet()  # one connection per host at a time, even in passing
            except CronwrapError as err:
                note_failure(self.state_dir, str(err))  # under the lock: the newest word
                return False
            finally:
                os.close(lock_fd)
            # let go, then look again: a run that found the lock held before now queued
            # its changes before it tried, so they are in the queue now or shipped already
            assert self.local is not None
            if self.local.fleet_backlog() == 0:
                return True
            lock_fd = take_lock(self.state_dir)  # None: the holder ships the rest
        return True

    def _ship_queue(self) -> int:
        """Ship until the queue is empty or the time is up; how many changes are left."""
        from cronwrap.state.fleetstore import FleetStore, ship_pending
        from cronwrap.state.store import Store

        if self.local is None:
            # patient: the shipper delays nobody, and many runs may be writing at once
            self.local = Store.open(self.db_file, busy_timeout_s=LOCAL_BUSY_S)
        local = self.local
        left = local.fleet_backlog()
        while left and time.monotonic() < self.deadline:
            if self.fleet is None:
                self.fleet = FleetStore.open(
                    self.url,
                    timeout_s=self.budget_s,
                    statement_timeout_s=self.budget_s,
                    upgrade_wait_s=UPGRADE_WAIT_S,
                )
            self.shipped += ship_pending(local, self.fleet, max_batches=1)
            left = local.fleet_backlog()
        if left == 0:
            clear_failure(self.state_dir)
        return left

    def _close_fleet(self) -> None:
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None

    def close(self) -> None:
        self._close_fleet()
        if self.local is not None:
            self.local.close()


# ------------------------------------------------------------------ what is not shipped


def note_failure(state_dir: str, message: str, *, now: datetime | None = None) -> None:
    """Keep the last failed shipment (when, why) for `status`; best effort."""
    at = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    path = os.path.join(state_dir, FAILURE_FILE)
    tmp = os.path.join(state_dir, f".{FAILURE_FILE}.{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{at}\t{message}\n")
        os.replace(tmp, path)
    except OSError:
        pass  # status still shows the backlog, which is the truth that matters


def clear_failure(state_dir: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(state_dir, FAILURE_FILE))


def last_failure(state_dir: str) -> tuple[datetime, str] | None:
    """The last failed shipment, if it is not followed by a successful one."""
    try:
        with open(os.path.join(state_dir, FAILURE_FILE), encoding="utf-8") as f:
            text = f.read()
        at, _, message = text.strip().partition("\t")
        return datetime.fromisoformat(at), message
    except (OSError, ValueError):
        return None


def backlog_note(store: Store, state_dir: str, *, now: datetime) -> str | None:
    """One line for `status` when run changes of this host wait to be shipped (longer than a
    shipper normally takes, or after a failed shipment); None when nothing is behind."""
    count = store.fleet_backlog()
    oldest = store.fleet_oldest_queued_at()
    if not count or oldest is None:
        return None
    failure = last_failure(state_dir)
    age = (now - oldest).total_seconds()
    if age < STALE_S and failure is None:
        return None
    note = (
        f"fleet store: {count} run change{'s' if count != 1 else ''} not shipped yet, "
        f"the oldest queued {_ago(age)} ago"
    )
    if failure is not None:
        at, message = failure
        note += f"; the last shipment ({_ago((now - at).total_seconds())} ago) failed: {message}"
    return note + "; `cronwrap flush --fleet-store URL` ships them now"


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def flush(
    url: str, state_dir: str, db_file: str, *, budget_s: float
) -> tuple[int, int, str | None]:
    """Ship the whole queue now (for `cronwrap flush`): (shipped, still queued, error). It
    may run beside a shipper: both upsert by run id, so nothing arrives twice."""
    from cronwrap.state.fleetstore import FleetStore, ship_pending
    from cronwrap.state.store import Store

    deadline = time.monotonic() + budget_s
    local = Store.open(db_file)
    shipped, error = 0, None
    try:
        opened = FleetStore.open(
            url, timeout_s=budget_s, statement_timeout_s=budget_s, upgrade_wait_s=budget_s
        )
        with opened as fleet:
            while time.monotonic() < deadline:
                n = ship_pending(local, fleet, max_batches=1)
                shipped += n
                if n == 0:
                    break
    except CronwrapError as err:
        error = str(err)
    left = local.fleet_backlog()
    local.close()
    if error is not None:
        note_failure(state_dir, error)
    elif left == 0:
        clear_failure(state_dir)
    return shipped, left, error
