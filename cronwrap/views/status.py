"""What `status`, `history` and `logs` show: every job from the run store and the crontabs,
its last result (checked against the lock and the pid, so `running` is true), its next run,
and whether a run the schedule expected never happened. Returns values; never prints."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from cronwrap.config import Paths, derive_name
from cronwrap.cron.crontab import Crontab, wrapped_run
from cronwrap.cron.schedule import Schedule, local_zone, parse, zone, zone_name
from cronwrap.errors import CronwrapError, ScheduleError
from cronwrap.run.lock import is_locked
from cronwrap.state.store import RunRecord, Store

UTC = timezone.utc
PROBLEMS = frozenset({"failed", "timeout", "crashed", "cancelled", "error"})
START_TOLERANCE = timedelta(seconds=90)  # cron starts jobs a little after the minute


@dataclass(slots=True)
class JobStatus:
    name: str
    schedule: str | None = None
    tz: str | None = None
    description: str | None = None
    source: str = "store"  # store | crontab | both
    location: str | None = None  # file:line of the crontab entry
    command: str | None = None
    last: RunRecord | None = None
    result: str = "never run"
    state: str = "never"  # ok | failing | running | skipped | never | unmonitored
    durations: list[float] = field(default_factory=list)
    next_run: datetime | None = None
    expected: datetime | None = None  # the latest fire time the schedule wanted
    missed: bool = False
    unmonitored: bool = False
    schedule_error: str | None = None
    zone_note: str | None = None  # the Healthchecks check expects another zone

    @property
    def healthy(self) -> bool:
        return self.state not in ("failing",) and not self.missed


@dataclass(frozen=True, slots=True)
class CrontabJob:
    name: str
    schedule: str
    tz: str | None
    location: str
    command: str
    wrapped: bool


def crontab_jobs(tabs: list[Crontab]) -> list[CrontabJob]:
    """Jobs found in crontab files: wrapped ones by their cronwrap name, the rest unmonitored."""
    out = []
    for tab in tabs:
        for line in tab.jobs:
            run = wrapped_run(line.command)
            where = f"{tab.source}:{line.number}"
            if run is None:
                out.append(
                    CrontabJob(f"({where})", line.schedule, line.tz, where, line.command, False)
                )
                continue
            name = run.name or _derived_name(line.command)
            out.append(
                CrontabJob(name, line.schedule, run.tz or line.tz, where, line.command, True)
            )
    return out


def _derived_name(command: str) -> str:
    import shlex

    try:
        words = shlex.split(command.split("%", maxsplit=1)[0])
    except ValueError:
        words = command.split()
    if "--" in words:
        argv = words[words.index("--") + 1 :]
    else:  # options up to the first non-option after `run`
        i = words.index("run") + 1 if "run" in words else 0
        argv = words[i:]
        from cronwrap.options import OPTIONS_BY_FLAG

        j = 0
        while j < len(argv) and argv[j].startswith("--"):
            opt = OPTIONS_BY_FLAG.get(argv[j].split("=")[0])
            j += 1 if (opt is None or opt.kind == "flag" or "=" in argv[j]) else 2
        argv = argv[j:]
    return derive_name(argv or ["job"])


def _result(run: RunRecord) -> str:
    if run.status == "success":
        return "ok"
    if run.status == "failed":
        if run.signal:
            import signal as _signal

            try:
                return f"failed ({_signal.Signals(run.signal).name})"
            except ValueError:
                return f"failed (signal {run.signal})"
        return f"failed (exit {run.exit_code})"
    return str(run.status)


def _is_running(run: RunRecord, paths: Paths, host: str) -> bool | None:
    """True/False on this host; None when the run belongs to another host (cannot check)."""
    if run.host != host:
        return None
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return is_locked(paths.lock_dir / f"{run.job}.lock") or _lockless(run)


def _lockless(run: RunRecord) -> bool:
    # a run with --on-overlap allow has no lock; the live pid must be a cronwrap
    try:
        with open(f"/proc/{run.pid}/cmdline", "rb") as f:
            return b"cronwrap" in f.read()
    except OSError:
        return False


def job_statuses(
    store: Store | None,
    tabs: list[Crontab],
    paths: Paths,
    *,
    now: datetime,
    grace: timedelta,
    include_unmonitored: bool = False,
    default_tz: str | None = None,
) -> list[JobStatus]:
    host = socket.gethostname()
    jobs: dict[str, JobStatus] = {}
    schedules = store.job_schedules() if store is not None else {}
    for name, (sched, tz) in schedules.items():
        jobs[name] = JobStatus(name, schedule=sched, tz=tz)
    for cj in crontab_jobs(tabs):
        if not cj.wrapped and not include_unmonitored:
            continue
        st = jobs.get(cj.name)
        if st is None:
            st = jobs[cj.name] = JobStatus(cj.name, source="crontab")
        else:
            st.source = "both"
        st.schedule, st.location, st.command = cj.schedule, cj.location, cj.command
        st.tz = cj.tz or st.tz
        st.unmonitored = not cj.wrapped
    system_tz = default_tz or zone_name(local_zone())
    for st in jobs.values():
        _fill(st, store, paths, host, now=now, grace=grace, system_tz=system_tz)
    return sorted(
        jobs.values(),
        key=lambda s: (s.next_run is None, s.next_run or datetime.max.replace(tzinfo=UTC), s.name),
    )


def _fill(
    st: JobStatus,
    store: Store | None,
    paths: Paths,
    host: str,
    *,
    now: datetime,
    grace: timedelta,
    system_tz: str,
) -> None:
    runs = store.runs(st.name, limit=12) if store is not None and not st.unmonitored else []
    st.tz = st.tz or system_tz
    if runs:
        st.last = runs[0]
        if not st.schedule:
            st.schedule = next((r.schedule for r in runs if r.schedule), None)
    st.durations = [
        r.duration_s
        for r in reversed(runs)
        if r.duration_s is not None and r.status not in ("skipped", "running")
    ][-12:]
    if st.unmonitored:
        st.state, st.result = "unmonitored", "unmonitored"
    elif st.last is not None:
        last = st.last
        if last.status == "running":
            alive = _is_running(last, paths, host)
            if alive is False:
                st.result, st.state = "crashed", "failing"
            else:
                elapsed = (now - last.started_at).total_seconds()
                where = "" if alive else f" on {last.host}"
                from cronwrap.config import format_duration

                st.result = f"running {format_duration(max(0.0, elapsed))}{where}"
                st.state = "running"
        else:
            st.result = _result(last)
            real = next((r for r in runs if r.status not in ("skipped", "running")), None)
            if last.status == "skipped":
                st.state = "skipped"
                if last.reason and last.reason.startswith("ran on "):  # fleet mode
                    st.result = f"skipped ({last.reason.split(' (slot')[0]})"
                if real is not None and real.status in PROBLEMS:
                    st.state = "failing"
            else:
                st.state = "failing" if last.status in PROBLEMS else "ok"
    schedule = _schedule(st)
    if schedule is None or schedule.reboot:
        return
    from cronwrap.cron.explain import describe

    st.description = describe(schedule)
    try:
        tz = zone(st.tz)
    except CronwrapError as err:
        st.schedule_error = str(err)
        return
    nxt = schedule.next_runs(now, tz, 1)
    st.next_run = nxt[0] if nxt else None
    prev = schedule.prev_runs(now - grace, tz, 1)
    st.expected = prev[0] if prev else None
    if st.expected is not None and st.last is not None and not st.unmonitored:
        # a run that the schedule expected (plus grace) never started
        st.missed = st.last.started_at < st.expected - START_TOLERANCE


def _schedule(st: JobStatus) -> Schedule | None:
    if not st.schedule:
        return None
    try:
        return parse(st.schedule)
    except ScheduleError as err:
        st.schedule_error = str(err)
        return None


def open_store_readonly(paths: Paths) -> Store | None:
    """The run store if it exists (status never creates one)."""
    if not paths.db_file.exists():
        return None
    return Store.open(paths.db_file)
