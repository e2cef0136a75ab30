"""Shipping this host's runs to the fleet store from the run path, without ever making the
job wait for PostgreSQL: a background thread (its own SQLite and PostgreSQL connections)
uploads the queue while the job runs, and the end of the run waits for it at most the budget.
What is not shipped stays queued in the local store for the next run or `cronwrap flush`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from cronwrap.errors import CronwrapError
from cronwrap.redact import redact_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cronwrap.run.reporting import Attempt, Outcome, Run
    from cronwrap.state.fleetstore import FleetStore


class FleetShipper:
    """begin() when the run's start is queued, finish() when its end is; problems() says
    what went wrong, for one warning line."""

    def __init__(self, url: str, db_file: Path, *, budget_s: float, run_id: str) -> None:
        self.url = url
        self.own = [run_id]  # this run, and crashed runs it marked: shipped whatever their age
        self.db_file = db_file
        self.budget_s = budget_s
        self.shipped = 0
        self.error: str | None = None
        self._end_queued = threading.Event()
        self._thread: threading.Thread | None = None
        self._fleet: FleetStore | None = None

    def adopt(self, run_id: str) -> None:
        """Ship this other run's entries too (a crashed run this run just marked)."""
        self.own.append(run_id)

    def begin(self) -> None:
        """Connect and ship what is queued (this run's start too), in the background."""
        self._thread = threading.Thread(target=self._work, name="cronwrap-ship", daemon=True)
        self._thread.start()

    def end_queued(self) -> None:
        """The run's end is in the queue: ship it as soon as the connection is there."""
        if self._thread is None:
            self.begin()
        self._end_queued.set()

    def finish(self) -> bool:
        """Wait for the upload at most the budget. True when everything queued went."""
        self.end_queued()
        assert self._thread is not None
        self._thread.join(self.budget_s)
        if self._thread.is_alive():
            self.error = self.error or (
                f"fleet store {redact_url(self.url)}: no answer within --fleet-budget "
                f"{self.budget_s:g}s"
            )
            return False
        return self.error is None

    def _work(self) -> None:
        from cronwrap.state.fleetstore import FleetStore, connect, ship_pending
        from cronwrap.state.store import Store

        # this run's entries, and those older than the budget: their own runs have given up
        # on them by then (many runs at once then do not all upload each other's)
        stale = self.budget_s + 1.0
        try:
            conn = connect(self.url, timeout_s=self.budget_s, statement_timeout_s=self.budget_s)
            self._fleet = fleet = FleetStore(conn, self.url)
            try:
                fleet.migrate()
                local = Store.open(self.db_file, busy_timeout_s=self.budget_s)
                try:
                    self.shipped += ship_pending(local, fleet, own=tuple(self.own), min_age_s=stale)
                    # the job runs meanwhile; its end is queued when it is over
                    self._end_queued.wait()
                    self.shipped += ship_pending(local, fleet, own=tuple(self.own), min_age_s=stale)
                finally:
                    local.close()
            finally:
                fleet.close()
        except CronwrapError as err:
            self.error = str(err)


def flush(url: str, db_file: Path, *, budget_s: float) -> tuple[int, int, str | None]:
    """Ship the whole queue now (for `cronwrap flush`): (shipped, still queued, error)."""
    from cronwrap.state.fleetstore import FleetStore, ship_pending
    from cronwrap.state.store import Store

    deadline = time.monotonic() + budget_s
    local = Store.open(db_file)
    shipped, error = 0, None
    try:
        with FleetStore.open(url, timeout_s=budget_s, statement_timeout_s=budget_s) as fleet:
            while time.monotonic() < deadline:
                n = ship_pending(local, fleet, max_batches=1)
                shipped += n
                if n == 0:
                    break
    except CronwrapError as err:
        error = str(err)
    left = local.fleet_backlog()
    local.close()
    return shipped, left, error


class FleetReporter:
    """The run path's reporter for --fleet-store: the store reporter queues each change of
    the run in the local store (in the same transaction as the change); this ships the queue
    from a background thread and waits for it at the end at most --fleet-budget."""

    name = "fleet store"

    def __init__(self, run: Run) -> None:
        job = run.job
        assert job.fleet_store is not None
        self.shipper = FleetShipper(
            job.fleet_store, run.paths.db_file, budget_s=job.fleet_budget, run_id=run.run_id
        )
        self.begun = False

    def start(self, run: Run) -> None:
        for rec in run.crashed:  # marked crashed by the store reporter just now: ship them too
            self.shipper.adopt(rec.run_id)
        self.shipper.begin()
        self.begun = True

    def attempt(self, run: Run, attempt: Attempt) -> None:
        pass  # attempts go with the run's end

    def end(self, run: Run, outcome: Outcome) -> None:
        if self.shipper.finish():
            return
        error = self.shipper.error
        left = run.query("the fleet queue", lambda s: s.fleet_backlog())
        kept = f"{left} run change{'s' if left != 1 else ''}" if left is not None else "runs"
        run.emit("fleet.error", f"fleet store not updated: {error}", error=error)
        run.warn(f"{error}; {kept} kept for the next run or `cronwrap flush`")
