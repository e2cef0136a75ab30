"""`status`, `history` and `logs`: what ran, how it went, what it printed."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from cronwrap.cli.common import (
    color_option,
    complete_jobs,
    hc_zones,
    iso,
    parse_now,
    read_crontabs,
    run_json,
    state_paths,
)
from cronwrap.errors import ExitCode


@click.command("status")
@click.option(
    "--job",
    "job_names",
    multiple=True,
    metavar="NAME",
    help="Only this job (repeatable).",
    shell_complete=lambda c, p, i: complete_jobs(i),
)
@click.option("--failed", is_flag=True, help="Only jobs that are failing or missed a run.")
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@color_option
@click.option("--now", "now_text", hidden=True, help="Pretend it is this time (for tests).")
@click.pass_context
def status_cmd(
    ctx: click.Context,
    job_names: tuple[str, ...],
    failed: bool,
    include_all: bool,
    crontab_files: tuple[str, ...],
    grace: str,
    as_json: bool,
    color: str,
    now_text: str | None,
) -> None:
    """Show every job: last run, result, duration, next run, and missed runs.

    Jobs come from the run store and from `cronwrap run` lines in the crontabs. Exits 0
    when every job is healthy and 1 when any is failing or missed a run, so this command
    can itself be monitored.

    \b
    Example:
      cronwrap status
      cronwrap status --failed --json
    """
    from datetime import timedelta

    from cronwrap.config import parse_duration
    from cronwrap.notify.hcsync import zone_mismatch
    from cronwrap.views.status import job_statuses, open_store_readonly

    try:
        grace_td = timedelta(seconds=parse_duration(grace))
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--grace") from None
    now = parse_now(now_text)
    paths = state_paths(ctx)
    store = open_store_readonly(paths)
    try:
        jobs = job_statuses(
            store,
            read_crontabs(crontab_files),
            paths,
            now=now,
            grace=grace_td,
            include_unmonitored=include_all,
        )
    finally:
        if store is not None:
            store.close()
    zones = hc_zones()
    for j in jobs:
        mismatch = zone_mismatch(j.name, j.tz, zones) if j.schedule else None
        if mismatch:
            j.zone_note = mismatch
            click.echo(f"cronwrap: warning: {j.name} {mismatch}", err=True)
    if job_names:
        jobs = [j for j in jobs if j.name in job_names]
    if failed:
        jobs = [j for j in jobs if not j.healthy]
    if as_json:
        click.echo(json.dumps([_status_json(j) for j in jobs], indent=2))
    else:
        from cronwrap.views.table import render_status

        _write_table(render_status, jobs, now, color)
    if any(not j.healthy for j in jobs if not j.unmonitored):
        sys.exit(ExitCode.ERROR)


@click.command("history")
@click.argument("name", shell_complete=lambda c, p, i: complete_jobs(i))
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="How many runs to show, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@color_option
@click.pass_context
def history_cmd(ctx: click.Context, name: str, limit: int, as_json: bool, color: str) -> None:
    """Show the last runs of job NAME: start, duration, result, attempts, exit code.

    \b
    Example:
      cronwrap history backup --limit 50
    """
    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.status import open_store_readonly

    store = open_store_readonly(state_paths(ctx))
    if store is None:
        raise JobNotFoundError(f"no runs recorded yet (no run store at {state_paths(ctx).db_file})")
    with store:
        runs = store.runs(name, limit=limit)
        if not runs:
            raise JobNotFoundError(f"no runs recorded for job {name!r} (see cronwrap status)")
        if as_json:
            docs = []
            for r in runs:
                doc = run_json(r)
                doc["attempts_detail"] = [
                    {
                        "attempt": a.attempt,
                        "started_at": iso(a.started_at),
                        "ended_at": iso(a.ended_at),
                        "status": a.status,
                        "exit_code": a.exit_code,
                        "signal": a.signal,
                        "duration_s": a.duration_s,
                    }
                    for a in store.attempts(r.run_id)
                ]
                docs.append(doc)
            click.echo(json.dumps(docs, indent=2))
            return
    from datetime import datetime, timezone

    from cronwrap.views.table import render_history

    _write_table(render_history, runs, datetime.now(timezone.utc), color)


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
@click.pass_context
def logs_cmd(
    ctx: click.Context, name: str, run_id: str | None, follow: bool, as_json: bool
) -> None:
    """Print the captured output of job NAME's last run (or of RUN_ID, or a prefix of it).

    The output is printed byte for byte as the job wrote it (binary included); --json wraps
    it with the run's facts.

    \b
    Example:
      cronwrap logs backup
      cronwrap logs backup 3f2a --follow
    """

    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.logs import copy_output, find_run, read_output
    from cronwrap.views.status import open_store_readonly

    store = open_store_readonly(state_paths(ctx))
    if store is None:
        raise JobNotFoundError("no runs recorded yet")
    with store:
        run = find_run(store, name, run_id)
        if as_json:
            assert run.log_path is not None
            data = read_output(run.log_path)
            doc = run_json(run)
            doc["output"] = data.decode("utf-8", "replace")
            doc["output_bytes"] = len(data)
            click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
            return
        copy_output(store, run, sys.stdout.buffer, follow=follow)


def _write_table(render: Any, rows: list[Any], now: Any, color: str) -> None:
    """A table from views.table on stdout, sized and coloured for it. Not click.echo: that
    strips colour codes when stdout is not a terminal, and --color always must keep them."""
    from cronwrap.views.table import terminal_width, use_color

    out = sys.stdout
    out.write(
        render(
            rows, now, width=terminal_width(out), color=use_color(color, out), terminal=out.isatty()
        )
    )


def _status_json(j: Any) -> dict[str, Any]:
    """One job of `status --json`."""
    return {
        "name": j.name,
        "schedule": j.schedule,
        "tz": j.tz,
        "description": j.description,
        "source": j.source,
        "location": j.location,
        "result": j.result,
        "state": j.state,
        "healthy": j.healthy,
        "missed": j.missed,
        "expected_at": iso(j.expected),
        "next_run": iso(j.next_run),
        "durations_s": j.durations,
        "unmonitored": j.unmonitored,
        "zone_note": j.zone_note,
        "schedule_error": j.schedule_error,
        "dead_letters": j.dead_letters,
        "last_run": run_json(j.last) if j.last else None,
    }
