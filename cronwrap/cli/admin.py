"""Housekeeping commands: config, flush, metrics prune, man, completion."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from cronwrap.cli.common import (
    environment,
    fleet_store_option,
    fleet_store_url,
    read_crontabs,
    state_paths,
)
from cronwrap.errors import CronwrapError, ExitCode


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--job", "job_name", metavar="NAME", help="Show the effective options of one job.")
@click.pass_context
def config_cmd(ctx: click.Context, as_json: bool, job_name: str | None) -> None:
    """Show the resolved paths and the effective configuration.

    Validates the config file exactly as `run` does: exits 78 if it is invalid.

    \b
    Example:
      cronwrap config --job backup
    """
    from cronwrap.config import load_config, resolve_job
    from cronwrap.cron.schedule import local_zone, zone_name
    from cronwrap.views.status import config_zones, zone_warnings

    paths = state_paths(ctx)
    config = load_config(paths.config_file)
    env = environment()
    for warning in zone_warnings(config_zones(paths), zone_name(local_zone())):
        click.echo(f"cronwrap: warning: {paths.config_file}: {warning}", err=True)
    names = [job_name] if job_name else sorted(config.jobs)
    jobs = {}
    for name in names:
        job = resolve_job({"name": name}, ["true"], env, config, read_secrets=False)
        jobs[name] = {k: _plain(v, k) for k, v in job.options.items()}
    doc = {
        "paths": {
            "config_file": str(paths.config_file),
            "config_exists": config.path is not None,
            "state_dir": str(paths.state_dir),
            "lock_dir": str(paths.lock_dir),
            "run_store": str(paths.db_file),
            "event_log": str(paths.event_log),
            "chosen_by": paths.origin,
        },
        "defaults": {k: _plain(v, k) for k, v in config.defaults.items()},
        "jobs": jobs,
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo("paths:")
    for key, value in doc["paths"].items():
        click.echo(f"  {key}: {value}")
    click.echo("defaults:" + ("" if doc["defaults"] else " {}"))
    for key, value in doc["defaults"].items():
        click.echo(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    click.echo("jobs:" + ("" if jobs else " {}"))
    for name, options in jobs.items():
        click.echo(f"  {name}:")
        for key, value in options.items():
            click.echo(f"    {key}: {json.dumps(value, ensure_ascii=False)}")


def _plain(value: Any, key: str) -> Any:
    from cronwrap.options import OPTIONS_BY_NAME

    opt = OPTIONS_BY_NAME.get(key)
    if opt is not None and opt.secret and value and not str(value).startswith("file:"):
        from cronwrap.redact import redact_url

        return redact_url(str(value))
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


@click.command("flush")
@click.option(
    "--budget",
    default="30s",
    show_default=True,
    metavar="DURATION",
    help="Stop replaying after this long.",
)
@fleet_store_option
@click.pass_context
def flush_cmd(ctx: click.Context, budget: str, fleet_store: str | None) -> None:
    """Send the finish pings (and alerts) that could not be delivered, oldest first, and
    ship the runs not yet in the fleet store (when one is configured), in order.

    `cronwrap run` replays them by itself at the start of its next run with a ping (kept
    alerts: at the end of the job's next run; its fleet queue with a fleet store); this does
    it now (e.g. from its own crontab line). Only 200 OK / 201 Created count as delivered;
    pings the server refuses (404, 400) are kept in outbox/rejected, malformed records in
    outbox/quarantine. A kept alert for an --alert-cmd waits for its job's next run. Exits 1
    if some are still queued or were refused.

    \b
    Example:
      cronwrap flush --budget 1m
      cronwrap flush --fleet-store file:/etc/cronwrap/fleet-url
    """
    import time

    from cronwrap.config import parse_duration
    from cronwrap.notify.healthchecks import Pinger, PingTarget
    from cronwrap.notify.outbox import Outbox
    from cronwrap.notify.spool import quarantine_note

    try:
        seconds = parse_duration(budget)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--budget") from None
    paths = state_paths(ctx)
    outbox = Outbox(paths.state_dir / "outbox")
    pinger = Pinger(PingTarget(""))
    deadline = time.monotonic() + seconds

    def send(url: str, body: bytes) -> Any:
        return pinger.send_url(url, body, budget_s=max(0.0, deadline - time.monotonic()))

    done = outbox.replay(send, deadline=deadline)
    if done.quarantined:
        click.echo(f"cronwrap: warning: {quarantine_note(done.quarantined)}", err=True)
    parts = [f"{done.sent} ping{'s' if done.sent != 1 else ''} delivered"]
    if done.refused:
        reasons = ", ".join(sorted(set(done.refused)))
        parts.append(
            f"{len(done.refused)} refused by the server ({reasons}; kept in {outbox.dir}/rejected)"
        )
    parts.append(
        f"{done.left} still queued"
        + (" (another cronwrap is replaying the outbox now)" if done.busy else "")
    )
    click.echo(", ".join(parts))
    queued = 0
    url = fleet_store_url(ctx, fleet_store)
    if url and paths.db_file.exists():
        from cronwrap.run.ship import flush

        shipped, queued, error = flush(
            url, paths.state_path, paths.db_path, budget_s=max(1.0, deadline - time.monotonic())
        )
        click.echo(
            f"{shipped} run change{'s' if shipped != 1 else ''} shipped to the fleet store, "
            f"{queued} still queued"
        )
        if error:
            click.echo(f"cronwrap: {error}", err=True)
    alerts_left = _flush_alerts(paths.state_dir / "alert-outbox", deadline)
    if done.left or done.refused or queued or alerts_left:
        sys.exit(ExitCode.ERROR)


def _flush_alerts(directory: Any, deadline: float) -> int:
    """Kept alerts to webhooks and Apprise; returns how many are still kept."""
    from cronwrap.notify.alerts import AlertQueue

    queue = AlertQueue(directory)
    if not queue.spool.entries():
        return 0
    errors = queue.replay(None, [], None, deadline=deadline, env=environment(), blocked=set())
    for err in errors:
        click.echo(f"cronwrap: warning: alert not delivered: {err}", err=True)
    sent = queue.sent
    click.echo(f"{sent} kept alert{'s' if sent != 1 else ''} delivered, {queue.left} still kept")
    return queue.left


@click.group("metrics")
def metrics_group() -> None:
    """Prometheus textfile metrics (see `run --metrics-dir`).

    \b
    Example:
      cronwrap metrics prune --metrics-dir /var/lib/prometheus/node-exporter
    """


@metrics_group.command("prune")
@click.option(
    "--metrics-dir",
    required=True,
    metavar="DIR",
    help="The textfile collector directory cronwrap writes to.",
)
@click.option(
    "--crontab",
    "crontab_files",
    multiple=True,
    metavar="FILE",
    help="Crontabs whose jobs still exist (default: as for status).",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.pass_context
def metrics_prune_cmd(
    ctx: click.Context, metrics_dir: str, crontab_files: tuple[str, ...], dry_run: bool
) -> None:
    """Remove the metric files of jobs that no longer exist, and say which.

    A job exists while a crontab (wrapped by cronwrap) or the config file has it, or while it
    is in the run store without a schedule (started by something other than cron). A
    scheduled job that no crontab or config lists any more is gone: its file would keep its
    missed-run alert firing. Stale files never disappear by themselves: node_exporter keeps
    exporting their last values. Run it as the user whose crontab runs the jobs, or name the
    crontabs with --crontab.

    \b
    Example:
      cronwrap metrics prune --metrics-dir /var/lib/prometheus/node-exporter --dry-run
    """
    from cronwrap.config import load_config
    from cronwrap.state import metrics
    from cronwrap.views.runstate import open_store_readonly
    from cronwrap.views.status import crontab_jobs

    paths = state_paths(ctx)
    keep: set[str] = set(load_config(paths.config_file).jobs)
    keep.update(j.name for j in crontab_jobs(read_crontabs(crontab_files)) if j.wrapped)
    store = open_store_readonly(paths)
    if store is not None:
        with store:
            for name in store.job_names():
                last = store.runs(name, limit=1)
                if name not in keep and not (last and last[0].schedule):
                    keep.add(name)
    try:
        gone = metrics.stale(metrics_dir, keep) if dry_run else metrics.prune(metrics_dir, keep)
    except OSError as err:
        raise CronwrapError(f"cannot prune {metrics_dir}: {err.strerror or err}") from None
    for entry in gone:
        job = metrics.job_of(entry)
        what = f"job {job}" if job is not None else "not a cronwrap job name"
        click.echo(f"{'would remove' if dry_run else 'removed'} {entry} ({what})")
    if not gone:
        click.echo(f"nothing to remove: every metrics file in {metrics_dir} belongs to a job")


@click.command("man")
@click.argument("command", required=False)
@click.pass_context
def man_cmd(ctx: click.Context, command: str | None) -> None:
    """Show the manual page of cronwrap, or of one COMMAND (e.g. run).

    The pages are also installed with the package (share/man/man1) where pip allows, so
    `man cronwrap-run` works too.

    \b
    Example:
      cronwrap man run
    """
    import shutil
    import subprocess

    from cronwrap.cli.manpage import pages

    cli = _root(ctx)
    all_pages = pages(cli)
    key = "cronwrap.1" if not command else f"cronwrap-{command}.1"
    if command in ("config-file", "yaml", "cronwrap.yaml"):
        key = "cronwrap.yaml.5"
    if key not in all_pages:
        raise CronwrapError(
            f"no manual page for {command!r}: commands are " + ", ".join(sorted(cli.commands))
        )
    text = all_pages[key]
    if shutil.which("man") and sys.stdout.isatty():
        subprocess.run(["man", "-l", "-"], input=text, text=True, check=False)
    elif shutil.which("groff"):
        out = subprocess.run(
            ["groff", "-man", "-Tutf8", "-P-cbou"],
            input=text,
            text=True,
            capture_output=True,
            check=False,
        )
        click.echo(out.stdout, nl=False)
    else:
        click.echo(text, nl=False)


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion_cmd(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    Completes commands, options and, for --job, --name, history and logs, the job names in
    the run store.

    \b
    Example:
      cronwrap completion bash > /etc/bash_completion.d/cronwrap
      cronwrap completion zsh > "${fpath[1]}/_cronwrap"
      cronwrap completion fish > ~/.config/fish/completions/cronwrap.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    comp = cls(_root(ctx), {}, "cronwrap", "_CRONWRAP_COMPLETE")
    click.echo(comp.source())


def _root(ctx: click.Context) -> click.Group:
    """The cronwrap group this command runs under (passed in, so no import of cli.app)."""
    group = ctx.find_root().command
    assert isinstance(group, click.Group)
    return group
