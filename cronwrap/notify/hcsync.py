"""`hc sync` without the command line: which jobs get a check, what each check should be, and
what the server has (dry run) or is told (upsert); plus the zone check `status` and `lint` do
against the checks that exist."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cronwrap.errors import CronwrapError

if TYPE_CHECKING:
    from cronwrap.config import ConfigFile
    from cronwrap.cron.crontab import Crontab
    from cronwrap.cron.lint import Finding
    from cronwrap.notify.hcapi import Api
    from cronwrap.state.store import Store

Row = tuple[str, str, str, str, str, str]  # job, slug, schedule, tz, grace, action
HEADER: Row = ("JOB", "SLUG", "SCHEDULE", "TZ", "GRACE", "ACTION")


class SyncJob:
    """A job that gets a check: its name, schedule and zone, and what the check's
    description, tags and grace are made from."""

    __slots__ = ("command", "host", "name", "schedule", "timeout", "tz")

    def __init__(
        self,
        name: str,
        schedule: str,
        tz: str | None,
        *,
        command: str = "",
        host: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.name = name
        self.schedule = schedule
        self.tz = tz
        self.command = command
        self.host = host
        self.timeout = timeout


class SyncOptions:
    """How checks are made: channels ("*" = all integrations), methods ("" or "POST"),
    what happens to checks of jobs no longer in the crontab (keep | pause | delete)."""

    __slots__ = ("channels", "grace_s", "host", "methods", "removed")

    def __init__(
        self,
        *,
        channels: str = "*",
        methods: str = "",
        removed: str = "keep",
        grace_s: float | None = None,
        host: str | None = None,
    ) -> None:
        self.channels = channels
        self.methods = methods
        self.removed = removed
        self.grace_s = grace_s
        self.host = host or os.uname().nodename  # the tag that marks this host's checks


class SyncResult:
    __slots__ = ("problems", "rows", "urls", "warnings")

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.problems = 0
        self.urls: dict[str, str] = {}  # job -> ping URL of its check
        self.warnings: list[str] = []


def sync_jobs(tabs: list[Crontab], config: ConfigFile) -> list[SyncJob]:
    """Every job with a schedule: crontabs, then config."""
    from cronwrap.views.status import crontab_jobs

    found: dict[str, SyncJob] = {}
    for j in crontab_jobs(tabs):
        if j.wrapped:
            found[j.name] = SyncJob(
                j.name,
                j.schedule,
                j.tz,
                command=j.command,
                host=j.host_id,
                timeout=_timeout_of(j.command),
            )
    for name, section in config.jobs.items():
        if name not in found and section.get("schedule"):
            found[name] = SyncJob(name, section["schedule"], section.get("tz"))
        elif name in found and section.get("tz") and not found[name].tz:
            found[name].tz = section["tz"]
        if name in found and found[name].timeout is None and section.get("timeout"):
            found[name].timeout = _seconds(str(section["timeout"]))
    return [found[k] for k in sorted(found)]


def _timeout_of(command: str) -> float | None:
    from cronwrap.cron.crontab import wrapped_run

    run = wrapped_run(command)
    timeout = run.argv.value("timeout") if run is not None else None
    return _seconds(timeout) if timeout is not None else None


def _seconds(text: str) -> float | None:
    from cronwrap.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        return None


def sync(
    jobs: Iterable[SyncJob],
    *,
    api: Api | None,
    store: Store | None,
    options: SyncOptions,
    dry_run: bool,
) -> SyncResult:
    """Create or update one check per job, only where something differs (with dry_run:
    say what would change); then keep, pause or delete the checks of removed jobs."""
    from cronwrap.cron.schedule import local_zone, zone_name
    from cronwrap.notify.hcapi import ApiError, CheckSpec, slug_for
    from cronwrap.redact import Redactor

    host_zone = zone_name(local_zone())
    this_host = options.host
    result = SyncResult()
    rows = result.rows
    existing, channel_ids = _server_state(api)
    redact = Redactor()
    seen: set[str] = set()
    for job in jobs:
        tz_name = job.tz or host_zone
        try:
            schedule = _server_schedule(job, tz_name)
        except CronwrapError as err:
            rows.append((job.name, "-", job.schedule, tz_name, "-", f"skipped: {err}"))
            result.problems += 1
            continue
        grace = _grace(job, store, options, result)
        host = job.host or this_host
        spec = CheckSpec(
            job.name,
            slug_for(job.name),
            schedule,
            tz_name,
            grace,
            channels=options.channels,
            desc=redact.text(f"cronwrap job {job.name} on {host}: {job.command}".strip(": ")),
            tags=f"cronwrap {host}",
            methods=options.methods,
        )
        seen.add(spec.slug)
        row = (job.name, spec.slug, schedule, tz_name, str(spec.grace))
        current = existing.get(spec.slug)
        if api is None:
            rows.append((*row, "send (no API key to compare)"))
            continue
        changed = spec.changes(current, channel_ids) if current is not None else []
        if current is not None and "schedule" in changed and current.get("schedule"):
            result.warnings.append(
                f"{job.name}: the server's schedule {current.get('schedule')!r} differs from "
                f"the crontab's {schedule!r}" + (" (dry run: not changed)" if dry_run else "")
            )
        if current is not None and not changed:
            rows.append((*row, "unchanged"))
            if current.get("ping_url"):
                result.urls[job.name] = str(current["ping_url"])
            continue
        plan = "create" if current is None else f"update {', '.join(changed)}"
        if dry_run:
            rows.append((*row, plan))
            continue
        try:
            action, check = api.upsert(spec)
        except ApiError as err:
            if "401" in str(err) or "--api-url" in str(err):
                raise CronwrapError(str(err)) from None
            rows.append((*row, f"failed: {err}"))
            result.problems += 1
            continue
        if check.get("ping_url"):
            result.urls[job.name] = str(check["ping_url"])
        rows.append((*row, "created" if action == "created" else f"updated {', '.join(changed)}"))
    _removed(existing, seen, api, options, dry_run, this_host, result)
    return result


def _server_state(api: Api | None) -> tuple[dict[str, dict[str, object]], dict[str, str]]:
    """The project's checks by slug and its channels (name -> id); empty without a key."""
    from cronwrap.notify.hcapi import ApiError

    if api is None:
        return {}, {}
    try:
        existing = {str(c.get("slug")): c for c in api.list_checks() if c.get("slug")}
        return existing, api.channels()
    except ApiError as err:
        raise CronwrapError(str(err)) from None


def _server_schedule(job: SyncJob, tz_name: str) -> str:
    """The job's schedule as the server reads it; CronwrapError when the server cannot take
    it or its zone."""
    from cronwrap.cron.schedule import zone
    from cronwrap.notify.hcapi import server_schedule

    schedule = server_schedule(job.schedule)
    zone(tz_name)
    if "/" not in tz_name and tz_name != "UTC":
        raise CronwrapError(
            f"the zone {tz_name!r} is not an IANA name: set CRON_TZ or --tz for this job"
        )
    return schedule


def _grace(job: SyncJob, store: Store | None, options: SyncOptions, result: SyncResult) -> int:
    """--grace, else from the job's observed run times; never shorter than its --timeout."""
    from cronwrap.notify.hcapi import grace_for

    durations = (
        [
            r.duration_s
            for r in store.runs(job.name, limit=50)
            if r.status == "success" and r.duration_s is not None
        ]
        if store
        else []
    )
    grace = grace_for(durations, override=options.grace_s)
    if job.timeout is not None and grace < job.timeout + 60:
        # after /start the server waits only `grace` for the end: it must outlast the
        # job's --timeout, or a long run that cronwrap allows is "down"
        if options.grace_s is None:
            grace = grace_for([], override=job.timeout + 120)
        else:
            result.warnings.append(
                f"{job.name}: --grace {grace}s is shorter than its --timeout "
                f"{job.timeout:g}s: a long run will show as down before it ends"
            )
    return grace


def _removed(
    existing: dict[str, dict[str, object]],
    seen: set[str],
    api: Api | None,
    options: SyncOptions,
    dry_run: bool,
    host: str,
    result: SyncResult,
) -> None:
    """Checks made by hc sync for this host whose job is gone from the crontab."""
    from cronwrap.notify.hcapi import ApiError

    for slug, check in sorted(existing.items()):
        tags = str(check.get("tags") or "").split()
        if slug in seen or "cronwrap" not in tags or host not in tags:
            continue
        name = str(check.get("name") or slug)
        row = (name, slug, str(check.get("schedule", "-")), str(check.get("tz", "-")), "-")
        if options.removed == "keep" or api is None:
            result.rows.append((*row, "not in the crontab: kept (--removed pause|delete)"))
            continue
        if check.get("status") == "paused" and options.removed == "pause":
            result.rows.append((*row, "not in the crontab: paused already"))
            continue
        if dry_run:
            result.rows.append((*row, f"not in the crontab: {options.removed}"))
            continue
        try:
            uuid = str(check.get("uuid") or "")
            if options.removed == "delete":
                api.delete(uuid)
            else:
                api.pause(uuid)
        except ApiError as err:
            result.rows.append((*row, f"failed: {err}"))
            result.problems += 1
            continue
        done = "deleted" if options.removed == "delete" else "paused"
        result.rows.append((*row, f"not in the crontab: {done}"))


def write_ping_urls(target: Path, urls: dict[str, str]) -> None:
    """The checks' ping URLs as a config snippet, mode 0600 (they are secrets)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# ping URLs of the checks made by cronwrap hc sync: merge into config\n")
        f.write("jobs:\n" + "".join(f"  {j}:\n    ping: {u}\n" for j, u in urls.items()))


# ------------------------------------------------------------------ zone check


def fetch_zones(env: dict[str, str]) -> dict[str, str] | None:
    """slug -> zone of the Healthchecks checks when an API key is configured, else None.
    Raises CronwrapError when the server cannot be asked."""
    key = env.get("CRONWRAP_HC_API_KEY")
    if not key:
        return None
    from cronwrap.config import read_secret
    from cronwrap.notify.hcapi import Api

    url = env.get("CRONWRAP_HC_API_URL", "https://healthchecks.io")
    return Api(url, read_secret(key), timeout=5.0, retries=0).zones()


def zone_mismatch(job: str, tz: str | None, zones: dict[str, str] | None) -> str | None:
    """Why job's check would alert at the wrong time (its zone differs from cron's), or None."""
    if not zones:
        return None
    from cronwrap.cron.schedule import local_zone, zone_name
    from cronwrap.notify.hcapi import slug_for

    theirs = zones.get(slug_for(job))
    ours = tz or zone_name(local_zone())
    if theirs is None or theirs == ours:
        return None
    return f"runs in {ours} but its Healthchecks check expects {theirs}"


def zone_findings(tabs: list[Crontab], zones: dict[str, str] | None) -> list[Finding]:
    """lint's hc-tz-mismatch warnings: wrapped jobs whose check expects another zone."""
    from cronwrap.cron.crontab import wrapped_run
    from cronwrap.cron.lint import Finding

    findings = []
    for tab in tabs:
        for line in tab.jobs:
            run = wrapped_run(line.command)
            if run is not None and run.name:
                note = zone_mismatch(run.name, run.tz or line.tz, zones)
                if note:
                    findings.append(
                        Finding(
                            tab.source,
                            line.number,
                            1,
                            "warning",
                            "hc-tz-mismatch",
                            f"job {run.name} {note}",
                        )
                    )
    return findings
