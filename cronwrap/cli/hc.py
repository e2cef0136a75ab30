"""`hc sync`: one Healthchecks check per job through the Management API."""

from __future__ import annotations

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
@click.option(
    "--channels",
    default="*",
    show_default=True,
    metavar="LIST",
    help='Integrations that notify for the checks: "*" all of the project\'s, "" none, or '
    "comma-separated integration names or UUIDs.",
)
@click.option(
    "--post-only",
    is_flag=True,
    help='Set the checks\' methods to "POST": HEAD/GET requests (link previews, crawlers) '
    "are then ignored. cronwrap always POSTs.",
)
@click.option(
    "--removed",
    type=click.Choice(["keep", "pause", "delete"]),
    default="keep",
    show_default=True,
    help="What to do with checks this host's hc sync made for jobs no longer in the crontab.",
)
@click.option(
    "--host-id",
    envvar="CRONWRAP_HOST_ID",
    metavar="NAME",
    help="This host's name in the checks' tags and descriptions (default: the host name).",
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
    channels: str,
    post_only: bool,
    removed: str,
    host_id: str | None,
    dry_run: bool,
    ping_urls: str | None,
) -> None:
    """Create or update one Healthchecks check per job: slug from the job name, the job's
    schedule (macros expanded), the zone cron runs it in (CRON_TZ, --tz, config, else the
    host's zone), a grace that covers its real run time and its --timeout, all integrations
    (--channels), a description (host, command) and the tags "cronwrap HOST".

    Uses POST /api/v3/checks/ with unique: [slug] as an upsert, only for checks that
    differ ("unchanged" otherwise). Expressions the server cannot take are reported and
    skipped; a server schedule that differs from the crontab is warned about. Exits 1 if
    any job could not be synced.

    \b
    Example:
      cronwrap hc sync --api-url https://hc.example.com --api-key file:/etc/cronwrap/hc-key
    """
    from pathlib import Path

    from cronwrap.config import load_config, parse_duration, read_secret
    from cronwrap.notify.hcapi import Api
    from cronwrap.notify.hcsync import HEADER, SyncOptions, sync, sync_jobs, write_ping_urls
    from cronwrap.redact import redact_url
    from cronwrap.views.runstate import open_store_readonly

    if not api_key and not dry_run:
        raise CronwrapError("no API key: give --api-key or CRONWRAP_HC_API_KEY (file:PATH works)")
    key = read_secret(api_key) if api_key else None
    grace_s = None
    if grace:
        try:
            grace_s = parse_duration(grace)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--grace") from None
    paths = state_paths(ctx)
    store = open_store_readonly(paths)
    api = Api(api_url, key) if key else None
    try:
        jobs = sync_jobs(read_crontabs(crontab_files), load_config(paths.config_file))
        options = SyncOptions(
            channels=channels,
            methods="POST" if post_only else "",
            removed=removed,
            grace_s=grace_s,
            host=host_id,
        )
        result = sync(jobs, api=api, store=store, options=options, dry_run=dry_run)
    finally:
        if store is not None:
            store.close()
    for warning in result.warnings:
        click.echo(f"cronwrap: warning: {warning}", err=True)
    rows = [HEADER, *result.rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(HEADER))]
    for row in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if result.urls:
        default = Path(paths.state_dir) / "hc-ping-urls.yaml"
        target = Path(ping_urls) if ping_urls else default
        write_ping_urls(target, result.urls)
        click.echo(
            f"ping URLs ({', '.join(redact_url(u) for u in result.urls.values())}) written to "
            f"{target}: merge its jobs: section into your config"
        )
    if result.problems:
        sys.exit(ExitCode.ERROR)
