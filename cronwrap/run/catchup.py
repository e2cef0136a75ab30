"""Catch-up (like systemd's Persistent= and anacron): which jobs with --catch-up missed their
most recent scheduled slot, decided from the run store and the time passed in. Running them
is the caller's (`cronwrap catch-up`); never imports click."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cronwrap.errors import CronwrapError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cronwrap.state.records import JobRecord
    from cronwrap.state.store import Store


class CatchUp:
    """One job's verdict: `due` to run now for `slot`, or not, and why."""

    __slots__ = ("due", "job", "reason", "slot", "spec")

    def __init__(
        self, job: str, slot: datetime | None, *, due: bool, reason: str, spec: str | None
    ) -> None:
        self.job = job
        self.slot = slot
        self.due = due
        self.reason = reason
        self.spec = spec

    def __repr__(self) -> str:
        return f"CatchUp({self.job}, {self.slot}, due={self.due}, {self.reason!r})"


def missed_slot(record: JobRecord, store: Store, *, now: datetime, grace: timedelta) -> CatchUp:
    """Whether `record`'s job missed its most recent slot (one at least `grace` old: a newer
    one may still be starting under cron) and should be run once now for it."""
    from cronwrap.cron.schedule import parse, zone

    name = record.name
    if not record.schedule:
        return CatchUp(name, None, due=False, reason="no --schedule recorded", spec=None)
    try:
        prev = parse(record.schedule).prev_runs(now - grace, zone(record.tz), 1)
    except CronwrapError as err:
        return CatchUp(name, None, due=False, reason=f"bad schedule: {err}", spec=None)
    if not prev:
        return CatchUp(name, None, due=False, reason="the schedule has no past slot", spec=None)
    slot = prev[0].astimezone(timezone.utc)
    if store.has_run_for_slot(name, slot):
        return CatchUp(name, slot, due=False, reason="ran for its most recent slot", spec=None)
    age = now - slot
    if record.catch_up_max_age is not None and age.total_seconds() > record.catch_up_max_age:
        return CatchUp(
            name,
            slot,
            due=False,
            reason=f"missed slot is older than --catch-up-max-age ({_age(age)} old)",
            spec=None,
        )
    return CatchUp(name, slot, due=True, reason=f"missed ({_age(age)} ago)", spec=record.spec)


def plan(
    store: Store, *, now: datetime, grace: timedelta, only: tuple[str, ...] = ()
) -> list[CatchUp]:
    """The verdict for every job recorded with --catch-up (or the `only` ones)."""
    return [
        missed_slot(record, store, now=now, grace=grace)
        for record in store.jobs()
        if record.catch_up and (not only or record.name in only)
    ]


def _age(age: timedelta) -> str:
    """`3d4h`, `5h12m`, `7m`: enough to tell how old a slot is."""
    minutes = max(0, int(age.total_seconds()) // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{mins}m" if mins else f"{hours}h"
    return f"{mins}m"
