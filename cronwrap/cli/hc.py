"""`hc sync`: one Healthchecks check per job through the Management API."""

from __future__ import annotations

import os
import sys

import click

from cronwrap.cli.common import read_crontabs, state_paths
from cronwrap.errors import CronwrapError, ExitCode


@click.group("hc")
def hc_group() -> None:
    """Healthchecks Management API: keep one check per job in step with the crontab.

    \b
    Example:
      CRONWRAP_HC_API_KEY=file:/etc/cronwrap/hc-api-key cronwrap hc sync --dry-run
    """


def _hc_jobs(
    ctx: click.Context, crontab_files: tuple[str, ...]
) -> list[tuple[str, str, str | None]]:
    """(job, schedule, zone or None) for every job with a schedule: crontabs, then config."""
    from cronwrap.config import load_config
    from cronwrap.views.status import crontab_jobs

    found: dict[str, tuple[str, str, str | None]] = {}
    for j in crontab_jobs(read_crontabs(crontab_files)):
        if j.wrapped:
            found[j.name] = (j.name, j.schedule, j.tz)
    config = load_config(state_paths(ctx).config_file)
    for name, section in config.jobs.items():
        if name not in found and section.get("schedule"):
            found[name] = (name, section["schedule"], section.get("tz"))
        elif name in found and section.get("tz") and not found[name][2]:
            found[name] = (name, found[name][1], section["tz"])
    return sorted(found.values())


@hc_group.command("sync")
@click.option(
    "--api-url",
    default="https://healthchecks.io",
    show_default=True,
    envvar="CRONWRAP_HC_API_URL",
    metavar="URL",
    help="The Healthchecks site (self-hosted: its SITE_ROOT).",
)
@click.option(
    "--api-key",
    envvar="CRONWRAP_HC_API_KEY",
    metavar="KEY",
    help="Project API key (read-write); file:PATH reads it from a file.",
)
@click.option(
    "--crontab",
    "crontab_files",
    multiple=True,
    metavar="FILE",
    help="Crontabs to read jobs from (default: as for status).",
)
@click.option(
    "--grace",
    metavar="DURATION",
    help="Grace for every check (default: from the "
    "job's observed p95 run time plus margin; 1h without history).",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option(
    "--ping-urls",
    metavar="FILE",
    help="Where to write the checks' ping URLs as a "
    "config snippet (default: hc-ping-urls.yaml in the state dir, mode 0600).",
)
@click.pass_context
def hc_sync_cmd(
    ctx: click.Context,
    api_url: str,
    api_key: str | None,
    crontab_files: tuple[str, ...],
    grace: str | None,
    dry_run: bool,
    ping_urls: str | None,
) -> None:
    """Create or update one Healthchecks check per job: slug = job name, the job's schedule
    (macros expanded), the zone cron runs it in (CRON_TZ, --tz, config, else the host's
    zone), and a grace that covers its real run time.

    Uses POST /api/v3/checks/ with unique: [slug] as an upsert. Expressions the server
    cannot take are reported and skipped. Exits 1 if any job could not be synced.

    \b
    Example:
      cronwrap hc sync --api-url https://hc.example.com --api-key file:/etc/cronwrap/hc-key
    """
    from pathlib import Path

    from cronwrap.config import parse_duration, read_secret
    from cronwrap.cron.schedule import local_zone, zone, zone_name
    from cronwrap.notify.hcapi import Api, ApiError, CheckSpec, grace_for, server_schedule, slug_for
    from cronwrap.redact import redact_url
    from cronwrap.views.status import open_store_readonly

    if not api_key and not dry_run:
        raise CronwrapError("no API key: give --api-key or CRONWRAP_HC_API_KEY (file:PATH works)")
    key = read_secret(api_key) if api_key else None
    grace_s = None
    if grace:
        try:
            grace_s = parse_duration(grace)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--grace") from None
    host_zone = zone_name(local_zone())
    store = open_store_readonly(state_paths(ctx))
    api = Api(api_url, key) if key else None
    rows, problems, urls = [], 0, {}
    for job, expr, tz in _hc_jobs(ctx, crontab_files):
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
            problems += 1
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
            action = "send (no API key to compare)"
            if api is not None:
                try:
                    current = api.find(spec.slug)
                except ApiError as err:
                    raise CronwrapError(str(err)) from None
                if current is None:
                    action = "create"
                else:
                    changed = [
                        k for k in ("schedule", "tz", "grace") if current.get(k) != getattr(spec, k)
                    ]
                    action = f"update {', '.join(changed)}" if changed else "unchanged"
            rows.append((job, spec.slug, schedule, tz_name, str(spec.grace), action))
            continue
        assert api is not None
        try:
            action, check = api.upsert(spec)
        except ApiError as err:
            if "401" in str(err):
                raise CronwrapError(str(err)) from None
            rows.append((job, spec.slug, schedule, tz_name, str(spec.grace), f"failed: {err}"))
            problems += 1
            continue
        if check.get("ping_url"):
            urls[job] = str(check["ping_url"])
        rows.append((job, spec.slug, schedule, tz_name, str(spec.grace), action))
    if store is not None:
        store.close()
    header = ("JOB", "SLUG", "SCHEDULE", "TZ", "GRACE", "ACTION")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if urls:
        default = Path(state_paths(ctx).state_dir) / "hc-ping-urls.yaml"
        target = Path(ping_urls) if ping_urls else default
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# ping URLs of the checks made by cronwrap hc sync: merge into config\n")
            f.write("jobs:\n" + "".join(f"  {j}:\n    ping: {u}\n" for j, u in urls.items()))
        click.echo(
            f"ping URLs ({', '.join(redact_url(u) for u in urls.values())}) written to "
            f"{target}: merge its jobs: section into your config"
        )
    if problems:
        sys.exit(ExitCode.ERROR)
