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
    hc_zones,
    iso,
    parse_now,
    read_crontabs,
    run_json,
    state_paths,
)


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
    host_ids: tuple[str, ...],
    as_json: bool,
    watch: str | None,
    color: str,
    now_text: str | None,
) -> None:
    """Show every job: last run, result, duration, next run, and missed runs.

    Jobs come from the run store and from `cronwrap run` lines in the crontabs. Exits 0
    when every job is healthy, 1 when any is failing or missed a run, and 3 when status
    cannot know (an unknown --job, a store it cannot read, a state dir cronwrap refuses, a
    run that did not start because the fleet lock was unavailable), so this command can
    itself be monitored.

    \b
    Example:
      cronwrap status
      cronwrap status --failed --json
      cronwrap status --watch 10s
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

    def once() -> int:
        return _status_once(
            ctx,
            job_names=job_names,
            failed=failed,
            include_all=include_all,
            crontab_files=crontab_files,
            grace=grace_td,
            host_ids=host_ids,
            as_json=as_json,
            color=color,
            now_text=now_text,
            clear=every is not None and sys.stdout.isatty(),
        )

    if every is None:
        sys.exit(once())
    import time

    code = 0
    try:
        while True:
            code = once()
            sys.stdout.flush()
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    sys.exit(code)


def _status_once(
    ctx: click.Context,
    *,
    job_names: tuple[str, ...],
    failed: bool,
    include_all: bool,
    crontab_files: tuple[str, ...],
    grace: Any,
    host_ids: tuple[str, ...],
    as_json: bool,
    color: str,
    now_text: str | None,
    clear: bool,
) -> int:
    """Print the status once; returns the exit status."""
    from cronwrap.notify.hcsync import zone_mismatch
    from cronwrap.views.status import configured_host_ids, exit_code_for, load_status

    now = parse_now(now_text)
    paths = state_paths(ctx)
    report = load_status(
        paths,
        read_crontabs(crontab_files),
        now=now,
        grace=grace,
        include_unmonitored=include_all,
        host_ids=set(host_ids) | configured_host_ids(paths, environment()),
        names=job_names,
    )
    jobs = report.jobs
    if report.problem:
        click.echo(f"cronwrap: status unknown: {report.problem}", err=True)
    zones = hc_zones()
    for j in jobs:
        mismatch = zone_mismatch(j.name, j.tz, zones) if j.schedule else None
        if mismatch:
            j.zone_note = mismatch
            click.echo(f"cronwrap: warning: {j.name} {mismatch}", err=True)
        if j.tz_warning:
            click.echo(f"cronwrap: warning: {j.name}: {j.tz_warning}", err=True)
    if failed:
        jobs = [j for j in jobs if not j.healthy]
    if as_json:
        click.echo(json.dumps([_status_json(j) for j in jobs], indent=2))
    else:
        from cronwrap.views.table import render_status, terminal_width, use_color

        out = sys.stdout
        if clear:
            out.write("\x1b[H\x1b[2J")
        # not click.echo: it strips colour codes when stdout is not a terminal, and
        # --color always must keep them
        text = render_status(
            jobs,
            now,
            width=terminal_width(out),
            color=use_color(color, out),
            terminal=out.isatty(),
        )
        out.write(text)
    return exit_code_for(report.jobs)


def _status_json(j: Any) -> dict[str, Any]:
    return {
        "name": j.name,
        "schedule": j.schedule,
        "tz": j.tz,
        "description": j.description,
        "source": j.source,
        "location": j.location,
        "result": j.result,
        "state": j.state,
        "reason": j.reason,
        "healthy": j.healthy,
        "missed": j.missed,
        "missed_first_at": iso(j.missed_first),
        "missed_count": j.missed_count,
        "expected_at": iso(j.expected),
        "next_run": iso(j.next_run),
        "durations_s": j.durations,
        "unmonitored": j.unmonitored,
        "zone_note": j.zone_note,
        "tz_warning": j.tz_warning,
        "schedule_error": j.schedule_error,
        "dead_letters": j.dead_letters,
        "run_state": j.run_state.value if j.run_state is not None else None,
        "current_run": run_json(j.current, j.run_state) if j.current else None,
        "last_run": run_json(j.last, j.last_state) if j.last else None,
    }


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
@color_option
@click.pass_context
def history_cmd(
    ctx: click.Context, name: str | None, limit: int, as_json: bool, color: str
) -> None:
    """Show the last runs of job NAME (or of every job): start, duration, result, attempts,
    exit code. A run whose cronwrap died shows `crashed`, as in `status`.

    \b
    Example:
      cronwrap history backup --limit 50
      cronwrap history
    """
    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.runstate import run_state
    from cronwrap.views.status import local_host, open_store_readonly

    paths = state_paths(ctx)
    store = open_store_readonly(paths)
    if store is None:
        raise JobNotFoundError(f"no runs recorded yet (no run store at {paths.db_file})")
    local = local_host(paths, environment())
    with store:
        runs = store.runs(name, limit=limit) if name else store.recent_runs(limit=limit)
        if not runs:
            if name:
                raise JobNotFoundError(f"no runs recorded for job {name!r} (see cronwrap status)")
            raise JobNotFoundError("no runs recorded yet")
        states = [run_state(r, local) for r in runs]
        if as_json:
            docs = []
            for r, state in zip(runs, states, strict=True):
                doc = run_json(r, state)
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

    from cronwrap.views.table import render_history, terminal_width, use_color

    out = sys.stdout
    out.write(
        render_history(
            runs,
            datetime.now(timezone.utc),
            width=terminal_width(out),
            color=use_color(color, out),
            terminal=out.isatty(),
            states=states,
            show_job=not name,
        )
    )


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
    from cronwrap.views.status import local_host, open_store_readonly

    paths = state_paths(ctx)
    store = open_store_readonly(paths)
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
        copy_output(
            store, run, sys.stdout.buffer, follow=follow, local=local_host(paths, environment())
        )


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

    from cronwrap.errors import CronwrapError, JobNotFoundError
    from cronwrap.state.store import Store
    from cronwrap.views.runstate import RunState, run_state
    from cronwrap.views.status import crontab_jobs, local_host

    paths = state_paths(ctx)
    if not paths.db_file.exists():
        raise JobNotFoundError(f"no run store at {paths.db_file}: nothing to forget")
    store = Store.open(paths.db_file)
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
