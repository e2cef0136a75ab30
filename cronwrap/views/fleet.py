"""`status --fleet-store`: every host's jobs from the fleet store, judged as local status
judges them (views.status) but by each host's own records, and the jobs asked for that the
store does not hold. Returns values; never prints."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from cronwrap.cron.schedule import local_zone, zone_name
from cronwrap.views.runstate import remote_host, run_state
from cronwrap.views.status import (
    JobStatus,
    StatusReport,
    Timing,
    fill_schedule,
    judge,
    unknown_job,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cronwrap.state.fleetread import FleetJob, FleetReader

UTC = timezone.utc
_NEVER = datetime.max.replace(tzinfo=UTC)


def load_fleet_status(
    fleet: FleetReader,
    *,
    now: datetime,
    grace: timedelta,
    host: str | None = None,
    names: Iterable[str] = (),
) -> StatusReport:
    """Every job on every host (or on `host`, or only the jobs named) from the fleet store; a
    name it does not hold is an `unknown` job and the report's problem, as in load_status."""
    wanted = list(dict.fromkeys(names))
    jobs = fleet_statuses(fleet.jobs(host=host, names=wanted or None), now=now, grace=grace)
    if not wanted:
        return StatusReport(jobs)
    by_name: dict[str, list[JobStatus]] = {}
    for st in jobs:
        by_name.setdefault(st.name, []).append(st)
    problem = None
    jobs = []
    for name in wanted:
        if name in by_name:
            jobs += by_name[name]
            continue
        known = ", ".join(fleet.job_names(host=host, limit=10)) or "none"
        where = f" on host {host!r}" if host is not None else ""
        why = f"no job named {name!r} in the fleet store{where} (known: {known})"
        problem = problem or why
        jobs.append(unknown_job(name, why, host=host))
    return StatusReport(jobs, problem)


def fleet_statuses(
    jobs: list[FleetJob],
    *,
    now: datetime,
    grace: timedelta,
    default_tz: str | None = None,
) -> list[JobStatus]:
    """Every job on every host from the fleet store. Each host's job is judged by that host's
    own records: a pid or lock cannot be checked from here, so a run recorded as running is
    shown as `running ... on HOST` until that host records its end (or, when its cronwrap
    died, marks it crashed on its next run and ships that)."""
    now = now.astimezone(UTC)
    elsewhere = remote_host()
    system_tz = default_tz or zone_name(local_zone())
    out = []
    seen: dict[tuple[str | None, str | None], Timing] = {}
    for fj in jobs:
        st = JobStatus(fj.name, schedule=fj.schedule, tz=fj.tz or system_tz, source="fleet")
        st.host = fj.host
        st.durations = fj.durations
        newest = fj.last or fj.last_ran
        if newest is not None:
            state = run_state(newest, elsewhere)
            st.last, st.last_state = newest, state
            ran = None
            if not state.is_skip:
                ran = (newest, state)
            elif fj.last_ran is not None:
                ran_state = run_state(fj.last_ran, elsewhere)
                ran = None if ran_state.is_skip else (fj.last_ran, ran_state)
            st.schedule = st.schedule or next(
                (r.schedule for r in (fj.last, fj.last_ran) if r is not None and r.schedule), None
            )
            judge(st, (newest, state), ran, elsewhere, now)
        fill_schedule(st, now=now, grace=grace, seen=seen)
        out.append(st)
    return sorted(out, key=lambda s: (s.next_run or _NEVER, s.name, s.host or ""))
