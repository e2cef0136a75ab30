"""What `status` shows: every job from the run store and the crontabs, the state of its
current run (views.runstate), its next run, and the scheduled runs that never started. Every
time comparison is made on UTC instants, never on wall clocks (DST). Returns values; never
prints."""

from __future__ import annotations

import collections
import contextlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from cronwrap.config import Paths, derive_name, dir_refusal
from cronwrap.cron.schedule import Schedule, local_zone, parse, same_zone, zone, zone_name
from cronwrap.errors import CronwrapError, ScheduleError, StoreError
from cronwrap.paths import is_absent
from cronwrap.redact import Redactor
from cronwrap.state.heads import DEPTH, Heads, Rows, from_rows
from cronwrap.state.records import RunRecord
from cronwrap.views.humanize import duration
from cronwrap.views.jobstatus import JobStatus as JobStatus  # noqa: PLC0414 (named here too)
from cronwrap.views.jobstatus import StatusReport as StatusReport  # noqa: PLC0414
from cronwrap.views.runstate import (
    LocalHost,
    RunState,
    is_verified,
    open_store_readonly,
    result_text,
    run_state,
)

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from cronwrap.cron.crontab import Crontab
    from cronwrap.state.store import Store

UTC = timezone.utc
MISSED_COUNT_CAP = 10  # counted up to this, then shown as "10+": status must stay quick
HISTORY_DEPTH = DEPTH  # runs read per job: the duration sparkline and the current run


# a job found in a crontab; tz: --tz of the line, else its CRON_TZ (what hc sync and status
# report); cron_tz: the CRON_TZ/TZ in force for the line; declared_tz: the line's `cronwrap
# run --tz`; host_id: the line's `cronwrap run --host-id`
CrontabJob = collections.namedtuple(
    "CrontabJob",
    (
        "name", "schedule", "tz", "location", "command", "wrapped", "cron_tz", "declared_tz",
        "host_id",
    ),
    defaults=(None, None, None),
)  # fmt: skip


def crontab_jobs(tabs: list[Crontab]) -> list[CrontabJob]:
    """Jobs found in crontab files: wrapped ones by their cronwrap name, the rest unmonitored."""
    from cronwrap.cron.crontab import wrapped_run

    out = []
    shown: set[str] = set()
    redact = Redactor()
    for tab in tabs:
        for line in tab.jobs:
            run = wrapped_run(line.command)
            where = f"{tab.source}:{line.number}"
            if run is None:
                # an unmonitored line has no job name: it is shown by what it runs, masked
                # before it is cut (a cut must not leave part of a password to see)
                name = _shorten(redact.text(line.command))
                name = name if name not in shown else f"{name} ({where})"
                shown.add(name)
                out.append(
                    CrontabJob(name, line.schedule, line.tz, where, line.command, False, line.tz)
                )
                continue
            # the name run itself derives, from the command run's own parser finds
            name = run.name or derive_name(run.argv.command or ["job"])
            out.append(
                CrontabJob(
                    name,
                    line.schedule,
                    run.tz or line.tz,
                    where,
                    line.command,
                    True,
                    cron_tz=line.tz,
                    declared_tz=run.tz,
                    host_id=run.argv.value("host_id"),
                )
            )
    return out


def _shorten(command: str, width: int = 60) -> str:
    text = " ".join(command.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def load_status(
    paths: Paths,
    tabs: list[Crontab],
    *,
    now: datetime,
    grace: timedelta,
    include_unmonitored: bool = False,
    default_tz: str | None = None,
    host_ids: Iterable[str] = (),
    names: Iterable[str] = (),
) -> StatusReport:
    """Open the store read-only and build every job's status; what keeps status from knowing
    (a state dir cronwrap refuses, a store it cannot read, an unknown --job) is reported as
    the `problem` and as `unknown` jobs, never as healthy ones."""
    problem = None
    store = None
    wanted = list(dict.fromkeys(names))
    jobs: list[JobStatus] = []
    # a symlink (dangling or a loop) or a path lstat fails on is where run records nothing
    if not is_absent(paths.state_path):
        problem = dir_refusal(paths.state_path, owner=True)  # as run, for its owner
        if problem:
            problem += "; cronwrap run refuses it, so no runs are recorded"
    if problem is None:
        try:
            store = open_store_readonly(paths)
        except StoreError as err:
            problem = str(err)

    def statuses(source: Store | None) -> list[JobStatus]:
        return job_statuses(
            source,
            tabs,
            paths,
            now=now,
            grace=grace,
            include_unmonitored=include_unmonitored,
            default_tz=default_tz,
            host_ids=host_ids,
            only=wanted,
        )

    try:
        jobs = statuses(store)
    except StoreError as err:  # a store that opens but whose rows cannot be read
        problem = str(err)
        jobs = statuses(None)  # the crontab's jobs, each marked unknown below
    finally:
        known_names: set[str] = set()
        if any(name not in {st.name for st in jobs} for name in wanted):
            known_names = _known_names(store, tabs, include_unmonitored=include_unmonitored)
        if store is not None:
            store.close()
    unreadable = problem is not None  # so far, only the store keeps status from knowing
    if problem:
        for st in jobs:
            if not st.unmonitored:
                st.state, st.result, st.reason = "unknown", "unknown", problem
                st.missed = False
    if wanted:
        found = {st.name: st for st in jobs}
        jobs = []
        for name in wanted:
            if name in found:
                jobs.append(found[name])
                continue
            if unreadable:  # a store status could not read cannot say the name is not in it
                continue
            known = ", ".join(sorted(known_names)[:10]) or "none"
            why = f"no job named {name!r} in the run store or the crontabs (known: {known})"
            problem = problem or why
            jobs.append(unknown_job(name, why))
    return StatusReport(jobs, problem, unreadable=unreadable)


def unknown_job(name: str, why: str, *, host: str | None = None) -> JobStatus:
    """A `--job NAME` that status does not know: shown as unknown, never left out."""
    missing = JobStatus(name, source="none", state="unknown", result="unknown job")
    missing.reason, missing.host = why, host
    return missing


def _known_names(
    store: Store | None, tabs: list[Crontab], *, include_unmonitored: bool
) -> set[str]:
    """Every job name status knows of (for the message about one it does not)."""
    names = {cj.name for cj in crontab_jobs(tabs) if cj.wrapped or include_unmonitored}
    if store is not None:
        with contextlib.suppress(StoreError):
            names.update(store.job_names())
    return names


def job_statuses(
    store: Store | None,
    tabs: list[Crontab],
    paths: Paths,
    *,
    now: datetime,
    grace: timedelta,
    include_unmonitored: bool = False,
    default_tz: str | None = None,
    host_ids: Iterable[str] = (),
    only: Iterable[str] = (),
) -> list[JobStatus]:
    """Every job's status at `now` (or only the jobs named in `only`: the others are not
    computed at all, so `status --job NAME` costs the same with 10 jobs or 10,000); raises
    StoreError when the store cannot be read."""
    now = now.astimezone(UTC)
    jobs: dict[str, JobStatus] = {}
    declared: dict[str, str | None] = {}
    ids = set(host_ids)
    wanted = set(only)
    # only the jobs asked for are read: `status --job NAME` costs the same in any store
    schedules = store.job_schedules(sorted(wanted) or None) if store is not None else {}
    for name, (sched, tz) in schedules.items():
        jobs[name] = JobStatus(name, schedule=sched, tz=tz)
        declared[name] = tz
    system_tz = default_tz or zone_name(local_zone())
    cron_zone: dict[str, str] = {}
    for cj in crontab_jobs(tabs):
        if not cj.wrapped and not include_unmonitored:
            continue
        st = jobs.get(cj.name)
        if st is None:
            st = jobs[cj.name] = JobStatus(cj.name, source="crontab")
        else:
            st.source = "both"
        st.schedule, st.location, st.command = cj.schedule, cj.location, cj.command
        st.unmonitored = not cj.wrapped
        if cj.declared_tz:
            declared[cj.name] = cj.declared_tz
        if cj.host_id:
            ids.add(cj.host_id)
        # cron fires the line in its CRON_TZ (cronie) or in the daemon's own zone
        cron_zone[cj.name] = cj.cron_tz or system_tz
    if wanted:
        jobs = {name: st for name, st in jobs.items() if name in wanted}
    local = LocalHost(paths.lock_path, frozenset(ids))
    seen: dict[tuple[str | None, str | None], Timing] = {}
    # one snapshot: a run recorded meanwhile must not leave a job half read
    with store.reading() if store is not None else contextlib.nullcontext():
        dead = store.dead_letter_counts() if store is not None else {}
        todo = list(jobs.values())
        heads = store.newest_heads([st.name for st in todo if not st.unmonitored]) if store else {}
        for at in range(0, len(todo), 500):  # whole rows for 500 jobs at a time, theirs only
            batch = todo[at : at + 500]
            whole = _shown_rows(store, [heads[st.name] for st in batch if st.name in heads])
            for st in batch:
                _zone_of(st, declared.get(st.name), cron_zone.get(st.name), system_tz)
                _fill(st, heads.get(st.name), whole, store, local, now=now, grace=grace, seen=seen)
                st.dead_letters = dead.get(st.name, 0)
    return sorted(
        jobs.values(),
        key=lambda s: (s.next_run is None, _utc(s.next_run), s.name),
    )


def _utc(at: datetime | None) -> datetime:
    return at.astimezone(UTC) if at is not None else _NEVER


_NEVER = datetime.max.replace(tzinfo=UTC)


def _zone_of(st: JobStatus, declared: str | None, cron: str | None, system_tz: str) -> None:
    """The zone that says when the job runs is the one cron fires it in; a different
    `--tz`/`tz:` is reported, not believed (Debian cron has no per-job zone)."""
    if cron is not None:
        st.tz = cron
        if declared and not same_zone(declared, cron):
            st.tz_warning = (
                f"tz {declared} is not the zone cron fires this line in ({cron}"
                + (", the daemon's zone" if cron == system_tz else ", its CRON_TZ")
                + f"); status uses {cron}: drop the tz or set CRON_TZ (cronie only)"
            )
        return
    st.tz = declared or system_tz
    if declared and not same_zone(declared, system_tz):
        st.tz_warning = (
            f"tz {declared} differs from this host's zone ({system_tz}), which cron fires jobs"
            " in unless the line sets CRON_TZ (cronie only); no crontab line was found to"
            f" check, so status uses {declared}"
        )


def _shown_rows(
    store: Store | None, found: list[tuple[Heads, Rows | None]]
) -> dict[int, RunRecord]:
    """Whole, the rows status shows of jobs whose newest rows are `found` (in brief,
    state/heads.py): the newest, the newest that ran (not a skip) and running ones (whether
    they still run is checked against their host, pid and lock). The others are never
    decoded."""
    if store is None:
        return {}
    wanted: set[int] = set()
    for brief, _ in found:
        wanted.add(brief.newest)
        if brief.ran is not None:
            wanted.add(brief.ran)
        wanted.update(brief.running)
    return store.runs_by_id(sorted(wanted))


def _fill(
    st: JobStatus,
    found: tuple[Heads, Rows | None] | None,
    whole: dict[int, RunRecord],
    store: Store | None,
    local: LocalHost,
    *,
    now: datetime,
    grace: timedelta,
    seen: dict[tuple[str | None, str | None], Timing],
) -> None:
    """The job's state from its newest rows (in brief, and whole those _shown_rows read)."""
    if st.unmonitored:
        st.state, st.result = "unmonitored", "unmonitored"
    if found is not None and store is not None:
        brief, rows = found
        states = _states(_shown_ids(brief), whole, st.name, local)
        if states is None:  # a summary naming rows that are not there, or another job's
            found = store.newest_heads([st.name], kept=False).get(st.name)
            if found is None:
                fill_schedule(st, now=now, grace=grace, seen=seen)
                return
            brief, rows = found
            ids = _shown_ids(brief)
            whole = store.runs_by_id(sorted(ids))
            states = {i: run_state(whole[i], local) for i in ids}
        st.durations = brief.durations
        if brief.running:
            still = frozenset(i for i in brief.running if states.get(i) is RunState.RUNNING)
            if rows is not None and still:
                # a run still going has no duration yet; one written by hand is left out
                # while its cronwrap lives (a kept summary never holds such a row)
                again = from_rows(rows, still_running=still)
                st.durations = again.durations if again is not None else []
        st.last, st.last_state = whole[brief.newest], states[brief.newest]
        if not st.schedule:
            st.schedule = store.recent_schedule(st.name, limit=HISTORY_DEPTH)
        ran = brief.ran
        current = (whole[ran], states[ran]) if ran is not None else None
        judge(st, (st.last, st.last_state), current, local, now)
    fill_schedule(st, now=now, grace=grace, seen=seen)


def _shown_ids(brief: Heads) -> set[int]:
    """The rows of a job status shows: its newest, its newest that ran, its running ones."""
    ids = {brief.newest, *brief.running}
    if brief.ran is not None:
        ids.add(brief.ran)
    return ids


def _states(
    ids: set[int], whole: dict[int, RunRecord], name: str, local: LocalHost
) -> dict[int, RunState] | None:
    """The state of each of the job's rows `ids`; None when one is not in `whole` or is
    another job's (a summary edited by hand)."""
    states = {}
    for i in ids:
        run = whole.get(i)
        if run is None or run.job != name:
            return None
        states[i] = run_state(run, local)
    return states


# what one (schedule, zone) gives at a given now: schedule, zone, description, next, expected,
# and the runs missed since each minute a last start fell in, by the minute's number since
# the epoch (_count_missed)
_Missed = dict[int, tuple[list[datetime], list[datetime], date, bool]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
Timing = tuple[Schedule, tzinfo, "str | None", "datetime | None", "datetime | None", _Missed]


def fill_schedule(
    st: JobStatus,
    *,
    now: datetime,
    grace: timedelta,
    seen: dict[tuple[str | None, str | None], Timing] | None = None,
) -> None:
    """Next run, the description, and the runs the schedule expected that never started.
    `seen` keeps what one (schedule, zone) gives at `now`, for views of thousands of jobs
    that share a few schedules (the fleet store)."""
    key = (st.schedule, st.tz)
    missed: _Missed | None = None
    timing = seen.get(key) if seen is not None else None
    if timing is not None:
        schedule, tz, st.description, st.next_run, st.expected, missed = timing
    else:
        parsed = _schedule(st)
        if parsed is None or parsed.reboot:
            return
        schedule = parsed
        st.description = _describe(schedule)
        found = _zone(st.tz) if st.tz is not None else local_zone()
        if isinstance(found, str):
            st.schedule_error = found
            return
        tz = found
        nxt = schedule.next_runs(now, tz, 1)
        st.next_run = nxt[0] if nxt else None
        prev = schedule.prev_runs(now - grace, tz, 1)
        st.expected = prev[0] if prev else None
        if seen is not None:
            missed = {}
            seen[key] = (schedule, tz, st.description, st.next_run, st.expected, missed)
    due_by = now - grace
    if st.last is not None and not st.unmonitored and st.state not in ("running", "unknown"):
        # while a run is going on, a later slot may be waiting for its lock (--on-overlap
        # wait) without a row yet: it is not missed
        _count_missed(st, schedule, tz, st.last.started_at, due_by, missed)


def judge(
    st: JobStatus,
    newest: tuple[RunRecord, RunState],
    ran: tuple[RunRecord, RunState] | None,
    local: LocalHost,
    now: datetime,
) -> None:
    """The job's state from its newest row and its newest row that was not a skip: a skip
    says the previous run still held the lock, so the run that holds it (or last ran)
    decides, not the skipped attempt."""
    if ran is not None and ran[1] is RunState.RUNNING:
        run, state = ran
        elapsed = max(0.0, (now - run.started_at).total_seconds())
        where = "" if is_verified(run, local) else f" on {run.host}"
        st.current, st.run_state = run, state
        st.result, st.state = f"running {duration(elapsed)}{where}", "running"
        return
    run, state = newest
    st.current, st.run_state = run, state
    st.result = result_text(run, state)
    if state.is_skip:
        if state is RunState.NOT_RUN:
            st.state = "unknown"
            st.reason = (
                f"the last run did not start ({run.reason}): nobody can tell whether any"
                " host ran it"
            )
        elif ran is not None and ran[1].is_problem:
            st.state = "failing"
        else:
            st.state = "ok" if state is RunState.RAN_ELSEWHERE else "skipped"
        return
    st.state = "failing" if state.is_problem else "ok"


def _count_missed(
    st: JobStatus,
    schedule: Schedule,
    tz: tzinfo,
    last_start: datetime,
    due_by: datetime,
    memo: _Missed | None = None,
) -> None:
    """The scheduled runs after the one the last start answered, due by `due_by`.

    A start answers the latest fire time at or before it: cron starts a job a moment
    after its minute, and --jitter or a lock wait only delay it further, so the tolerance
    runs after a fire time and never before it. All in UTC instants.

    `memo` (one schedule and zone, one due_by): the fire times after the start of the
    minute a last start fell in, so thousands of jobs started in one minute are counted
    once. Those after the start itself are the ones after it in that list, as the search
    yields later instants in the same order from the same local day on: so the list is
    used only when the start and its minute fall on one local day, and when it holds enough
    (one more than counted, or all there are)."""
    missed = None
    if memo is not None:
        start = last_start.astimezone(UTC)
        # the minute by its number: datetime.replace(second=0, microsecond=0) parses its
        # keywords at 2 us a call, a third of counting a job's missed runs
        number = (start - _EPOCH) // _MINUTE
        found = memo.get(number)
        if found is None:
            minute = _EPOCH + number * _MINUTE
            later = schedule.runs_between(minute, due_by, tz, MISSED_COUNT_CAP + 1)
            utc = [at.astimezone(UTC) for at in later]
            day = minute.astimezone(tz).date()
            found = memo[number] = (later, utc, day, _one_local_day(minute, tz))
        later, utc, day, whole = found
        # a minute on one local day at one offset holds no local midnight: any start in it
        # falls on its day, without converting each start to the zone
        if whole or start.astimezone(tz).date() == day:
            first = bisect_right(utc, start)  # the ones after the start, compared in UTC
            if len(later) <= MISSED_COUNT_CAP or len(later) - first >= MISSED_COUNT_CAP:
                missed = later[first : first + MISSED_COUNT_CAP]
    if missed is None:
        missed = schedule.runs_between(last_start, due_by, tz, MISSED_COUNT_CAP)
    st.missed_first = missed[0] if missed else None
    st.missed_count, st.missed = len(missed), bool(missed)


def _one_local_day(minute: datetime, tz: tzinfo) -> bool:
    """Whether the UTC minute from `minute` is on one local date at one offset in `tz`: its
    first and last microsecond are (a zone changes its offset at most once in a minute)."""
    try:
        first, last = minute.astimezone(tz), (minute + _LAST_MICROSECOND).astimezone(tz)
    except OverflowError:  # the last minute of year 9999
        return False
    return first.utcoffset() == last.utcoffset() and first.date() == last.date()


_LAST_MICROSECOND = timedelta(seconds=59, microseconds=999999)


def _schedule(st: JobStatus) -> Schedule | None:
    if not st.schedule:
        return None
    try:
        return _parse(st.schedule)
    except ScheduleError as err:
        st.schedule_error = str(err)
        return None


@lru_cache(maxsize=256)
def _parse(text: str) -> Schedule:
    """Parsed once per distinct text: many jobs share a schedule (Schedule is immutable)."""
    return parse(text)


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo | str:
    """The zone, or why it is none, once per name: a name the system lacks was looked for in
    every tzdata directory again (0.07 ms) for each job that names it."""
    try:
        return zone(name)
    except CronwrapError as err:
        return str(err)


@lru_cache(maxsize=256)
def _describe(schedule: Schedule) -> str:
    from cronwrap.cron.explain import describe

    return describe(schedule)


def exit_code_for(jobs: list[JobStatus], *, problem: str | None = None) -> int:
    """0 all healthy; 1 a job is failing or missed a run; 3 nothing is known to be wrong but
    some state is unknown (like Nagios UNKNOWN), or status could not read what it reports
    (`problem`: even with no job to mark unknown). A known problem wins over an unknown."""
    from cronwrap.errors import ExitCode

    monitored = [j for j in jobs if not j.unmonitored]
    if any(not j.healthy and j.known for j in monitored):
        return int(ExitCode.ERROR)
    if problem or any(not j.known for j in monitored):
        return int(ExitCode.UNKNOWN)
    return int(ExitCode.OK)


def config_zones(paths: Paths) -> dict[str, str]:
    """The config file's tz per job name ("" for defaults); a broken config gives none
    (`config` and `run` report it)."""
    from cronwrap.config import load_config

    try:
        config = load_config(paths.config_path, strict=False)  # the part `run` uses too
    except CronwrapError:
        return {}
    out = {"": str(config.defaults["tz"])} if config.defaults.get("tz") else {}
    for name, section in config.jobs.items():
        if section.get("tz"):
            out[name] = str(section["tz"])
    return out


def zone_warnings(zones: Mapping[str, str], system_tz: str) -> list[str]:
    """Config tz values cron cannot honour: Debian cron fires every job in its own zone."""
    out = []
    for name, tz in sorted(zones.items()):
        if not same_zone(tz, system_tz):
            key = f"jobs.{name}.tz" if name else "defaults.tz"
            out.append(
                f"{key} {tz} is not this host's zone ({system_tz}): cron fires jobs in the"
                " daemon's zone unless their crontab line sets CRON_TZ (cronie only), so"
                " status would expect runs at other times"
            )
    return out
