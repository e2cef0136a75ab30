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
    hc_zones,
    host_option,
    open_fleet_store,
    parse_now,
    read_crontabs,
    state_paths,
)
from cronwrap.errors import CronwrapError
from cronwrap.views.jsondoc import attempt_json, run_json, status_json


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
    job_names: tuple[str, ...],
    failed: bool,
    include_all: bool,
    crontab_files: tuple[str, ...],
    grace: str,
    host_ids: tuple[str, ...],
    as_json: bool,
    watch: str | None,
    fleet_store: str | None,
    host: str | None,
    html_file: str | None,
    color: str,
    now_text: str | None,
) -> None:
    """Show every job: last run, result, duration, next run, and missed runs.

    Jobs come from the run store and from `cronwrap run` lines in the crontabs; with
    --fleet-store, every job of every host from the shared PostgreSQL store, each host's job
    judged by that host's own records. --html FILE writes a static dashboard instead. Exits 0
    when every job is healthy, 1 when any is failing or missed a run, and 3 when status
    cannot know (an unknown --job, a store it cannot read, a state dir cronwrap refuses, a
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
            fleet_url=fleet_url,
            host=host,
            html_file=html_file,
        )

    fleet_url = fleet_store_url(ctx, fleet_store)

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


def _warn_zones(jobs: list[Any]) -> None:
    """One warning per job whose zone differs from its Healthchecks check or from cron's."""
    from cronwrap.notify.hcsync import zone_mismatch

    zones = hc_zones()
    for j in jobs:
        mismatch = zone_mismatch(j.name, j.tz, zones) if j.schedule else None
        if mismatch:
            j.zone_note = mismatch
            click.echo(f"cronwrap: warning: {j.name} {mismatch}", err=True)
        if j.tz_warning:
            click.echo(f"cronwrap: warning: {j.name}: {j.tz_warning}", err=True)


def _warn_fleet_backlog(ctx: click.Context, now: Any) -> None:
    """One warning when this host's runs wait to be shipped to the fleet store (and why)."""
    from cronwrap.run.ship import backlog_note
    from cronwrap.views.runstate import open_store_readonly

    paths = state_paths(ctx)
    try:
        store = open_store_readonly(paths)
        if store is None:
            return
        with store:
            note = backlog_note(store, paths.state_path, now=now)
    except CronwrapError:
        return  # an unreadable store is reported by the status itself
    if note:
        click.echo(f"cronwrap: warning: {note}", err=True)


def _show(
    jobs: list[Any],
    failures: list[Any],
    now: Any,
    *,
    html_file: str | None,
    fleet: bool,
    as_json: bool,
    color: str,
    clear: bool,
) -> None:
    """The jobs as the HTML page, JSON or the table."""
    if html_file:
        from cronwrap.views.html import render_page, write_atomic

        try:
            write_atomic(html_file, render_page(jobs, failures, now=now, fleet=fleet))
        except OSError as err:
            raise CronwrapError(f"cannot write {html_file}: {err.strerror}") from None
    elif as_json:
        from cronwrap.views.jsondoc import dumps

        click.echo(dumps([status_json(j) for j in jobs]))
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
    fleet_url: str | None = None,
    host: str | None = None,
    html_file: str | None = None,
) -> int:
    """Print the status once (or write the HTML page); returns the exit status."""
    from cronwrap.views.status import exit_code_for

    now = parse_now(now_text)
    jobs, failures, problem = _load_jobs(
        ctx,
        now=now,
        grace=grace,
        job_names=job_names,
        include_all=include_all,
        crontab_files=crontab_files,
        host_ids=host_ids,
        fleet_url=fleet_url,
        host=host,
        with_failures=bool(html_file),
    )
    judged = list(jobs)
    _warn_zones(jobs)
    _warn_fleet_backlog(ctx, now)
    if failed:
        jobs = [j for j in jobs if not j.healthy]
    _show(
        jobs,
        failures,
        now,
        html_file=html_file,
        fleet=bool(fleet_url),
        as_json=as_json,
        color=color,
        clear=clear,
    )
    return exit_code_for(judged, problem=problem)


def _load_jobs(
    ctx: click.Context,
    *,
    now: Any,
    grace: Any,
    job_names: tuple[str, ...],
    include_all: bool,
    crontab_files: tuple[str, ...],
    host_ids: tuple[str, ...],
    fleet_url: str | None,
    host: str | None,
    with_failures: bool,
) -> tuple[list[Any], list[Any], str | None]:
    """Every job's status (from the fleet store, or this host's store and crontabs), for the
    HTML page the recent failed runs, and what kept status from reading the store, if any."""
    from cronwrap.views.runstate import configured_host_ids, open_store_readonly
    from cronwrap.views.status import fleet_statuses, load_status

    paths = state_paths(ctx)
    failures: list[Any] = []
    problem = None
    if fleet_url:
        with open_fleet_store(fleet_url) as fleet:
            jobs = fleet_statuses(fleet.jobs(host=host), now=now, grace=grace)
            if with_failures:
                failures = fleet.failures(host=host)
        if job_names:
            jobs = [j for j in jobs if j.name in job_names]
    else:
        report = load_status(
            paths,
            read_crontabs(crontab_files),
            now=now,
            grace=grace,
            include_unmonitored=include_all,
            host_ids=set(host_ids) | configured_host_ids(paths, environment()),
            names=job_names,
        )
        jobs, problem = report.jobs, report.problem
        if report.problem:
            click.echo(f"cronwrap: status unknown: {report.problem}", err=True)
        if host:
            jobs = [j for j in jobs if j.last is not None and j.last.host == host]
        if with_failures and not report.problem:
            store = open_store_readonly(paths)
            if store is not None:
                with store:
                    failures = [f for f in store.failures() if host is None or f.host == host]
    return jobs, failures, problem


def _history_source(ctx: click.Context, fleet_store: str | None) -> tuple[Any, Any, Any]:
    """(fleet URL or None, the store to read, how its runs are judged)."""
    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.runstate import local_host, open_store_readonly, remote_host

    url = fleet_store_url(ctx, fleet_store)
    if url:
        return url, open_fleet_store(url), remote_host()
    paths = state_paths(ctx)
    store = open_store_readonly(paths)
    if store is None:
        raise JobNotFoundError(f"no runs recorded yet (no run store at {paths.db_file})")
    return None, store, local_host(paths, environment())


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
def history_cmd(
    ctx: click.Context,
    name: str | None,
    limit: int,
    as_json: bool,
    fleet_store: str | None,
    host: str | None,
    color: str,
) -> None:
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
    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.runstate import run_state

    url, store, local = _history_source(ctx, fleet_store)
    with store:
        if url:
            runs = store.runs(name, host=host, limit=limit)
        else:
            runs = store.runs(name, limit=limit) if name else store.recent_runs(limit=limit)
            runs = [r for r in runs if host is None or r.host == host]
        if not runs:
            if name:
                raise JobNotFoundError(f"no runs recorded for job {name!r} (see cronwrap status)")
            raise JobNotFoundError("no runs recorded yet")
        states = [run_state(r, local) for r in runs]
        if as_json:
            docs = []
            for r, state in zip(runs, states, strict=True):
                doc = run_json(r, state)
                doc["attempts_detail"] = [attempt_json(a) for a in store.attempts(r.run_id)]
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
    url = fleet_store_url(ctx, fleet_store)
    if url:
        _fleet_tail(url, name, run_id, host, as_json=as_json)
        return

    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.logs import copy_output, find_run, read_output
    from cronwrap.views.runstate import local_host, open_store_readonly

    paths = state_paths(ctx)
    store = open_store_readonly(paths)
    if store is None:
        raise JobNotFoundError("no runs recorded yet")
    with store:
        run = find_run(store, name, run_id, host=host)
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


def _fleet_tail(
    url: str, name: str, run_id: str | None, host: str | None, *, as_json: bool
) -> None:
    from cronwrap.errors import JobNotFoundError

    with open_fleet_store(url) as fleet:
        runs = [r for r in fleet.runs(name, host=host, limit=500) if r.output_tail is not None]
    if run_id:
        runs = [r for r in runs if r.run_id.startswith(run_id)]
    if not runs:
        raise JobNotFoundError(
            f"no output tail in the fleet store for job {name!r}"
            + (f" run {run_id!r}" if run_id else "")
        )
    run = runs[0]
    if as_json:
        doc = run_json(run)
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

    from cronwrap.errors import CronwrapError, JobNotFoundError
    from cronwrap.state.store import Store
    from cronwrap.views.runstate import RunState, local_host, run_state
    from cronwrap.views.status import crontab_jobs

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
