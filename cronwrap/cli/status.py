"""`status`, `history` and `logs`: what ran, how it went, what it printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cronwrap.cli.common import (
    color_option,
    complete_jobs,
    environment,
    fleet_store_option,
    fleet_store_url,
    host_option,
    open_fleet_store,
    parse_now,
    read_crontabs,
    state_paths,
)
from cronwrap.errors import CronwrapError
from cronwrap.views.jsondoc import run_json


@click.command("status")
@click.option(
    "--job",
    "job_names",
    multiple=True,
    metavar="NAME",
    help="Only this job (repeatable); a name found nowhere is unknown (exit 3).",
    shell_complete=lambda c, p, i: complete_jobs(i),
)
@click.option("--failed", is_flag=True, help="Only jobs that need attention (or are unknown).")
@click.option(
    "--all",
    "include_all",
    is_flag=True,
    help="Also list crontab lines not wrapped by cronwrap (unmonitored).",
)
@click.option(
    "--crontab",
    "crontab_files",
    multiple=True,
    metavar="FILE",
    help="Read jobs from this crontab (repeatable; - for stdin) instead of the "
    "user's (and, for root, /etc/crontab and /etc/cron.d).",
)
@click.option(
    "--grace",
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="How late a scheduled run may start before it counts as missed.",
)
@click.option(
    "--host-id",
    "host_ids",
    multiple=True,
    metavar="NAME",
    help="Another name runs on this machine record (as `run --host-id`; repeatable). "
    "CRONWRAP_HOST_ID and the config's host_id count too.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--watch",
    "watch",
    default=None,
    is_flag=False,
    flag_value="5s",
    metavar="[DURATION]",
    help="Redraw every DURATION (default 5s) until interrupted.",
)
@fleet_store_option
@host_option
@click.option(
    "--html",
    "html_file",
    metavar="FILE",
    help="Write a self-contained HTML dashboard to FILE (atomically) instead of the table.",
)
@color_option
@click.option("--now", "now_text", hidden=True, help="Pretend it is this time (for tests).")
@click.pass_context
def status_cmd(
    ctx: click.Context,
    /,
    grace: str,
    watch: str | None,
    fleet_store: str | None,
    now_text: str | None,
    **options: Any,
) -> None:
    """Show every job: last run, result, duration, next run, and missed runs.

    Jobs come from the run store and from `cronwrap run` lines in the crontabs; with
    --fleet-store, every job of every host from the shared PostgreSQL store, each host's job
    judged by that host's own records. --html FILE writes a static dashboard instead. Exits 0
    when every job is healthy, 1 when any is failing or missed a run, and 3 when status
    cannot know (an unknown --job or --host, a store it cannot read, a state dir cronwrap refuses, a
    run that did not start because the fleet lock was unavailable), so this command can
    itself be monitored.

    \b
    Example:
      cronwrap status
      cronwrap status --failed --json
      cronwrap status --watch 10s
      cronwrap status --fleet-store file:/etc/cronwrap/fleet-url --host db1
      cronwrap status --fleet-store "$URL" --html /var/www/html/cron.html
    """
    from datetime import timedelta

    from cronwrap.config import parse_duration

    try:
        grace_td = timedelta(seconds=parse_duration(grace))
        every = parse_duration(watch) if watch is not None else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--grace/--watch") from None
    if every is not None and every <= 0:
        raise click.BadParameter("expected a duration above 0", param_hint="--watch")

    drawn = [0]  # the exit code of each redraw, set before it draws

    def once() -> int:
        from cronwrap.views.report import status_once

        now = parse_now(now_text)
        clear = every is not None and sys.stdout.isatty()
        return status_once(
            state_paths(ctx),
            now=now,
            grace=grace_td,
            clear=clear,
            fleet_url=fleet_url,
            watching=every is not None,
            drawing=drawn,
            **options,
        )

    fleet_url = fleet_store_url(ctx, fleet_store)

    if every is None:
        sys.exit(once())
    import time

    try:
        while True:
            once()
            sys.stdout.flush()
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    sys.exit(drawn[-1])


@click.command("history")
@click.argument("name", required=False, shell_complete=lambda c, p, i: complete_jobs(i))
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="How many runs to show, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@fleet_store_option
@host_option
@color_option
@click.pass_context
def history_cmd(ctx: click.Context, /, name: str | None, **options: Any) -> None:
    """Show the last runs of job NAME (or of every job): start, duration, result, attempts,
    exit code. A run whose cronwrap died shows `crashed`, as in `status`. With
    --fleet-store, the runs of every host (or of --host) from the shared store, as their
    hosts recorded them.

    \b
    Example:
      cronwrap history backup --limit 50
      cronwrap history
      cronwrap history backup --fleet-store "$URL" --host db1
    """
    from cronwrap.views.report import history

    history(state_paths(ctx), name, **options)


@click.command("logs")
@click.argument("name", shell_complete=lambda c, p, i: complete_jobs(i))
@click.argument("run_id", required=False)
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the run is going on.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run and its output (decoded as UTF-8 with replacement characters) as JSON.",
)
@fleet_store_option
@host_option
@click.pass_context
def logs_cmd(
    ctx: click.Context,
    name: str,
    run_id: str | None,
    follow: bool,
    as_json: bool,
    fleet_store: str | None,
    host: str | None,
) -> None:
    """Print the captured output of job NAME's last run (or of RUN_ID, or a prefix of it).

    The output is printed byte for byte as the job wrote it (binary included); --json wraps
    it with the run's facts. With --fleet-store, the redacted output tail (the last 4 KiB)
    that the run's host shipped, for a run on any host (or on --host).

    \b
    Example:
      cronwrap logs backup
      cronwrap logs backup 3f2a --follow
      cronwrap logs backup --fleet-store "$URL" --host db1
    """
    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.logs import copy_output, find_run, read_output
    from cronwrap.views.runstate import local_host, open_store_readonly, run_state

    paths = state_paths(ctx)
    local = local_host(paths, environment())
    url = fleet_store_url(ctx, fleet_store)
    if url:
        _fleet_tail(url, name, run_id, host, as_json=as_json, local=local)
        return
    store = open_store_readonly(paths)
    if store is None:
        raise JobNotFoundError("no runs recorded yet")
    with store:
        run = find_run(store, name, run_id, host=host)
        if as_json:
            assert run.log_path is not None
            data = read_output(run.log_path)
            doc = run_json(run, run_state(run, local))  # crashed, as history says it
            doc["output"] = data.decode("utf-8", "replace")
            doc["output_bytes"] = len(data)
            click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
            return
        copy_output(store, run, sys.stdout.buffer, follow=follow, local=local)


def _fleet_tail(
    url: str, name: str, run_id: str | None, host: str | None, *, as_json: bool, local: Any
) -> None:
    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.runstate import run_state

    with open_fleet_store(url) as fleet:
        recorded = fleet.runs(name, host=host, limit=500)
    on = f" on host {host!r}" if host else ""
    if not recorded and not run_id:
        raise JobNotFoundError(f"no runs in the fleet store for job {name!r}{on}")
    runs = [r for r in recorded if r.output_tail is not None]
    if run_id:
        runs = [r for r in runs if r.run_id.startswith(run_id)]
    if not runs:
        raise JobNotFoundError(
            f"no output tail in the fleet store for job {name!r}{on}"
            + (f" run {run_id!r}" if run_id else "")
        )
    run = runs[0]
    if as_json:
        doc = run_json(run, run_state(run, local))
        doc["output"] = run.output_tail
        doc["output_is_tail"] = True
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    sys.stdout.write(run.output_tail)
    sys.stdout.flush()


@click.command("forget")
@click.argument("name", shell_complete=lambda c, p, i: complete_jobs(i))
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--crontab",
    "crontab_files",
    multiple=True,
    metavar="FILE",
    help="Crontabs to check for the job (default: as for status).",
)
@click.pass_context
def forget_cmd(ctx: click.Context, name: str, yes: bool, crontab_files: tuple[str, ...]) -> None:
    """Remove job NAME from the run store: its runs, attempts, counters and captured output,
    so `status` stops listing a job that no longer exists. Asks first unless --yes.

    \b
    Example:
      cronwrap forget old-report --yes
    """
    import contextlib

    from cronwrap.errors import JobNotFoundError
    from cronwrap.state.store import Store
    from cronwrap.views.runstate import RunState, local_host, run_state
    from cronwrap.views.status import crontab_jobs

    paths = state_paths(ctx)
    if not paths.db_file.exists():
        raise JobNotFoundError(f"no run store at {paths.db_file}: nothing to forget")
    store = Store.open(paths.db_file, recover=False)
    with store:
        if name not in store.job_names():
            raise JobNotFoundError(f"no job {name!r} in the run store (see cronwrap status)")
        local = local_host(paths, environment())
        if any(run_state(r, local) is RunState.RUNNING for r in store.runs(name, limit=5)):
            raise CronwrapError(f"job {name!r} is running: forget it when it has finished")
        count = store.count_runs(name)
        for cj in crontab_jobs(read_crontabs(crontab_files)):
            if cj.wrapped and cj.name == name:
                click.echo(
                    f"cronwrap: warning: {name} is still in {cj.location}; "
                    "status will list it again (never run)",
                    err=True,
                )
        if not yes:
            if not sys.stdin.isatty():
                raise CronwrapError(f"not forgetting {name!r} without confirmation: add --yes")
            click.confirm(f"Forget job {name!r} and its {count} recorded runs?", abort=True)
        logs = store.forget(name)
    output = paths.output_dir.resolve()
    for log in logs:
        path = Path(log).resolve()
        if output in path.parents:  # only files cronwrap wrote under its own output dir
            with contextlib.suppress(OSError):
                path.unlink()
    with contextlib.suppress(OSError):
        (paths.output_dir / name).rmdir()
    click.echo(f"forgot {name}: {count} run{'s' if count != 1 else ''} removed")
