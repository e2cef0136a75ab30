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
    from cronwrap.notify.hcapi import Api, CheckSpec
    from cronwrap.state.store import Store

Row = tuple[str, str, str, str, str, str]  # job, slug, schedule, tz, grace, action
HEADER: Row = ("JOB", "SLUG", "SCHEDULE", "TZ", "GRACE", "ACTION")


class SyncResult:
    __slots__ = ("problems", "rows", "urls")

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.problems = 0
        self.urls: dict[str, str] = {}  # job -> ping URL of its check


def sync_jobs(tabs: list[Crontab], config: ConfigFile) -> list[tuple[str, str, str | None]]:
    """(job, schedule, zone or None) for every job with a schedule: crontabs, then config."""
    from cronwrap.views.status import crontab_jobs

    found: dict[str, tuple[str, str, str | None]] = {}
    for j in crontab_jobs(tabs):
        if j.wrapped:
            found[j.name] = (j.name, j.schedule, j.tz)
    for name, section in config.jobs.items():
        if name not in found and section.get("schedule"):
            found[name] = (name, section["schedule"], section.get("tz"))
        elif name in found and section.get("tz") and not found[name][2]:
            found[name] = (name, found[name][1], section["tz"])
    return sorted(found.values())


def sync(
    jobs: Iterable[tuple[str, str, str | None]],
    *,
    api: Api | None,
    store: Store | None,
    grace_s: float | None,
    dry_run: bool,
) -> SyncResult:
    """Create or update one check per job (or, with dry_run, say what would change)."""
    from cronwrap.cron.schedule import local_zone, zone, zone_name
    from cronwrap.notify.hcapi import ApiError, CheckSpec, grace_for, server_schedule, slug_for

    host_zone = zone_name(local_zone())
    result = SyncResult()
    rows = result.rows
    for job, expr, tz in jobs:
        tz_name = tz or host_zone
        try:
            schedule = server_schedule(expr)
            zone(tz_name)
            if "/" not in tz_name and tz_name != "UTC":
                raise CronwrapError(
                    f"the zone {tz_name!r} is not an IANA name: set CRON_TZ or --tz for this job"
                )
        except CronwrapError as err:
            rows.append((job, "-", expr, tz_name, "-", f"skipped: {err}"))
            result.problems += 1
            continue
        durations = (
            [
                r.duration_s
                for r in store.runs(job, limit=50)
                if r.status == "success" and r.duration_s is not None
            ]
            if store
            else []
        )
        spec = CheckSpec(
            job, slug_for(job), schedule, tz_name, grace_for(durations, override=grace_s)
        )
        if dry_run:
            rows.append((job, spec.slug, schedule, tz_name, str(spec.grace), _diff(api, spec)))
            continue
        assert api is not None
        try:
            action, check = api.upsert(spec)
        except ApiError as err:
            if "401" in str(err):
                raise CronwrapError(str(err)) from None
            rows.append((job, spec.slug, schedule, tz_name, str(spec.grace), f"failed: {err}"))
            result.problems += 1
            continue
        if check.get("ping_url"):
            result.urls[job] = str(check["ping_url"])
        rows.append((job, spec.slug, schedule, tz_name, str(spec.grace), action))
    return result


def _diff(api: Api | None, spec: CheckSpec) -> str:
    """What an upsert of spec would do to the server's check: create, update FIELDS, unchanged."""
    from cronwrap.notify.hcapi import ApiError

    if api is None:
        return "send (no API key to compare)"
    try:
        current = api.find(spec.slug)
    except ApiError as err:
        raise CronwrapError(str(err)) from None
    if current is None:
        return "create"
    changed = [k for k in ("schedule", "tz", "grace") if current.get(k) != getattr(spec, k)]
    return f"update {', '.join(changed)}" if changed else "unchanged"


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
