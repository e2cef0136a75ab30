"""The click commands: parse, call the core, render, map errors to exit codes.
Core modules are imported inside the commands so `import cronwrap.cli.app` stays light."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from cronwrap import __version__
from cronwrap.errors import CronwrapError, ExitCode
from cronwrap.options import RUN_OPTIONS, Option


class CronwrapGroup(click.Group):
    """Turns CronwrapError into one line on stderr and its exit code, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CronwrapError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"cronwrap: {err}", err=True)
            caret = getattr(err, "caret", None)
            if callable(caret) and caret():
                click.echo(caret(), err=True)
            ctx.exit(err.exit_code)


@click.group(cls=CronwrapGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cronwrap")
@click.option(
    "--debug",
    is_flag=True,
    envvar="CRONWRAP_DEBUG",
    help="Show tracebacks for errors (also CRONWRAP_DEBUG=1).",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    envvar="CRONWRAP_CONFIG",
    help="Config file (default: see `cronwrap config`; also CRONWRAP_CONFIG).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, config_path: str | None) -> None:
    """Supervise cron jobs: overlap locks, timeouts, retries, logs, history and pings.

    \b
    Example crontab line:
      */15 * * * *  cronwrap run --name sync --timeout 10m -- /usr/local/bin/sync.sh
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["config_path"] = config_path


_color_option = click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    help="Colour output (NO_COLOR and FORCE_COLOR are honoured in auto).",
)


def _env() -> dict[str, str]:
    return dict(os.environ)


def _paths(ctx: click.Context) -> Any:

    from cronwrap.config import resolve_paths

    config_path = ctx.obj.get("config_path") if ctx.obj else None
    return resolve_paths(_env(), config_file=config_path)


# ------------------------------------------------------------------ run


def _click_option(opt: Option) -> Any:
    kwargs: dict[str, Any] = {"help": opt.help + f"  [env {opt.env}]", "default": None}
    if opt.kind == "flag":
        kwargs.update(is_flag=True, default=None)
    elif opt.kind == "list":
        kwargs.update(multiple=True, metavar=opt.metavar, default=())
    elif opt.kind == "choice":
        kwargs.update(type=click.Choice(opt.choices), metavar=opt.metavar or None)
    else:
        kwargs.update(metavar=opt.metavar or None)
    if opt.default not in (None, (), False):
        kwargs["help"] += f"  [default: {_show_default(opt)}]"
    if opt.name == "name":
        kwargs["shell_complete"] = lambda c, p, i: _complete_jobs(i)
    return click.option(opt.flag, opt.name, **kwargs)


def _show_default(opt: Option) -> str:
    from cronwrap.config import format_duration

    if opt.kind == "duration":
        return format_duration(float(opt.default))  # type: ignore[arg-type]
    if opt.kind == "size":
        return f"{int(opt.default) // (1024 * 1024)}M"  # type: ignore[call-overload]
    return str(opt.default)


def _run_command() -> click.Command:
    @click.command(
        "run",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": False},
    )
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    @click.pass_context
    def run(ctx: click.Context, /, command: tuple[str, ...], **flags: Any) -> None:
        """Run COMMAND under supervision.

        Takes the overlap lock, enforces the timeout, retries retryable failures, logs
        every start, attempt and end as JSON lines, records the run in the history, and
        exits with the command's own exit status (124 timeout, 125 cronwrap's own error,
        126 cannot execute, 127 not found, 128+N killed by signal N).

        \b
        Example:
          cronwrap run --name backup --timeout 2h --retries 2 -- /usr/local/bin/backup
        """
        from cronwrap.run import entry as runcmd

        config_path = ctx.obj.get("config_path") if ctx.obj else None
        ctx.exit(runcmd.execute(flags, list(command), _env(), config_path=config_path))

    for opt in RUN_OPTIONS:
        run = _click_option(opt)(run)
    return run


cli.add_command(_run_command())


# ------------------------------------------------------------------ config


@cli.command("config")
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

    paths = _paths(ctx)
    config = load_config(paths.config_file)
    env = _env()
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


# ------------------------------------------------------------------ explain


@cli.command("explain")
@click.argument("expression", nargs=-1, required=True)
@click.option("--tz", metavar="ZONE", help="Time zone for next runs (default: the system zone).")
@click.option(
    "--count",
    default=5,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="How many next run times to show.",
)
@click.option(
    "--after",
    metavar="DATETIME",
    help="Start from this moment (ISO 8601; without an offset it is in --tz).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead.")
@_color_option
def explain_cmd(
    expression: tuple[str, ...],
    tz: str | None,
    count: int,
    after: str | None,
    as_json: bool,
    color: str,
) -> None:
    """Explain a cron EXPRESSION (or a whole crontab line) exactly as cron runs it.

    Prints the meaning in plain words (including the day-of-month / day-of-week OR rule and
    its star exception), the fields, the next run times with UTC beside them, what the next
    12 months of DST changes do to the schedule, and pitfalls. Exits 1 for an invalid
    expression or one that can never run.

    \b
    Example:
      cronwrap explain "0 0 15 * 5" --tz Europe/Berlin --count 3
      cronwrap explain "*/15 * * * * /usr/local/bin/sync.sh"
    """
    from cronwrap.errors import UsageError
    from cronwrap.views.explain import explain_main

    try:
        explain_main(
            " ".join(expression),
            tz=tz,
            count=count,
            after=after,
            as_json=as_json,
            color=color,
            out=sys.stdout,
        )
    except UsageError as err:
        raise click.UsageError(str(err)) from None


# ------------------------------------------------------------------ flush


@cli.command("flush")
@click.option(
    "--budget",
    default="30s",
    show_default=True,
    metavar="DURATION",
    help="Stop replaying after this long.",
)
@click.pass_context
def flush_cmd(ctx: click.Context, budget: str) -> None:
    """Send the finish pings that could not be delivered, oldest first.

    `cronwrap run` replays them by itself at the start of its next run with a ping; this
    does it now (e.g. from its own crontab line). Exits 1 if some are still queued.

    \b
    Example:
      cronwrap flush --budget 1m
    """
    import time

    from cronwrap.config import parse_duration
    from cronwrap.notify.healthchecks import Outbox, Pinger, PingTarget

    try:
        seconds = parse_duration(budget)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--budget") from None
    paths = _paths(ctx)
    outbox = Outbox(paths.state_dir / "outbox")
    pinger = Pinger(PingTarget(""))
    deadline = time.monotonic() + seconds

    def send(url: str, body: bytes) -> Any:
        return pinger.send_url(url, body, budget_s=max(0.0, deadline - time.monotonic()))

    sent, left = outbox.replay(send, deadline=deadline)
    click.echo(f"{sent} ping{'s' if sent != 1 else ''} delivered, {left} still queued")
    if left:
        sys.exit(ExitCode.ERROR)


# ------------------------------------------------------------------ lint


@cli.command("lint")
@click.argument("files", nargs=-1, metavar="[FILE|-]...")
@click.option(
    "--system",
    is_flag=True,
    help="Files are in /etc/crontab format (a user field after the schedule); "
    "automatic for /etc/crontab and /etc/cron.d/*.",
)
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Hide info findings.")
def lint_cmd(files: tuple[str, ...], system: bool, as_json: bool, quiet: bool) -> None:
    """Check crontab files: schedules, environment lines, CRON_TZ, %, final newline, names.

    With no FILE, checks your crontab (crontab -l); - reads stdin. Each finding is
    FILE:LINE:COL: SEVERITY: MESSAGE [CODE]. Exits 1 if any error was found.

    \b
    Example:
      cronwrap lint /etc/crontab /etc/cron.d/*
      crontab -l | cronwrap lint -
    """
    from cronwrap.cron.crontab import is_system_path, parse_crontab, read_source
    from cronwrap.cron.lint import lint_crontab

    findings = []
    for source in files or ("",):
        text = read_source(source)
        name = source or "crontab -l"
        tab = parse_crontab(text, source=name, system=system or is_system_path(source))
        findings += lint_crontab(tab)
    zones = _hc_zones()
    if zones:
        from cronwrap.cron.crontab import wrapped_run
        from cronwrap.cron.lint import Finding

        for source in files or ("",):
            tab = parse_crontab(
                read_source(source),
                source=source or "crontab -l",
                system=system or is_system_path(source),
            )
            for line in tab.jobs:
                run = wrapped_run(line.command)
                if run is not None and run.name:
                    note = _zone_mismatch(run.name, run.tz or line.tz, zones)
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
    if quiet:
        findings = [f for f in findings if f.severity != "info"]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "file": f.file,
                        "line": f.line,
                        "col": f.col,
                        "severity": f.severity,
                        "code": f.code,
                        "message": f.message,
                    }
                    for f in findings
                ],
                indent=2,
            )
        )
    else:
        for f in findings:
            click.echo(str(f))
    if any(f.severity == "error" for f in findings):
        sys.exit(ExitCode.ERROR)


# ------------------------------------------------------------------ status, history, logs


def _now(value: str | None) -> Any:
    from datetime import datetime, timezone

    if not value:
        return datetime.now(timezone.utc)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date-time", param_hint="--now"
        ) from None
    return at if at.tzinfo else at.astimezone()


def _crontabs(files: tuple[str, ...]) -> list[Any]:
    """The crontabs to look in: --crontab files, else the user's (and the system's for root)."""
    import glob
    import shutil

    from cronwrap.cron.crontab import is_system_path, parse_crontab, read_source

    sources = list(files)
    if not sources:
        if shutil.which("crontab"):
            sources.append("")
        if os.geteuid() == 0:
            sources += [
                p
                for p in ["/etc/crontab", *sorted(glob.glob("/etc/cron.d/*"))]
                if os.path.isfile(p)
            ]
    tabs = []
    for source in sources:
        try:
            text = read_source(source)
        except CronwrapError:
            if source in files:
                raise
            continue  # an unreadable system file: the others still count
        tabs.append(
            parse_crontab(text, source=source or "crontab -l", system=is_system_path(source))
        )
    return tabs


def _hc_zones() -> dict[str, str] | None:
    """slug -> zone of the Healthchecks checks, when an API key is configured (for the
    time-zone sanity check of status and lint); None without a key or on errors."""
    key = os.environ.get("CRONWRAP_HC_API_KEY")
    if not key:
        return None
    from cronwrap.config import read_secret
    from cronwrap.notify.hcapi import Api

    url = os.environ.get("CRONWRAP_HC_API_URL", "https://healthchecks.io")
    try:
        return Api(url, read_secret(key), timeout=5.0, retries=0).zones()
    except CronwrapError as err:
        click.echo(f"cronwrap: warning: cannot compare zones with Healthchecks: {err}", err=True)
        return None


def _zone_mismatch(job: str, tz: str | None, zones: dict[str, str] | None) -> str | None:
    if not zones:
        return None
    from cronwrap.cron.schedule import local_zone, zone_name
    from cronwrap.notify.hcapi import slug_for

    theirs = zones.get(slug_for(job))
    ours = tz or zone_name(local_zone())
    if theirs is None or theirs == ours:
        return None
    return f"runs in {ours} but its Healthchecks check expects {theirs}"


def _iso(at: Any) -> str | None:
    return at.isoformat() if at is not None else None


def _run_json(r: Any) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "job": r.job,
        "host": r.host,
        "pid": r.pid,
        "started_at": _iso(r.started_at),
        "ended_at": _iso(r.ended_at),
        "status": r.status,
        "exit_code": r.exit_code,
        "signal": r.signal,
        "attempts": r.attempts,
        "duration_s": r.duration_s,
        "reason": r.reason,
        "exit_origin": r.exit_origin,
        "flags": r.flags,
        "log_path": r.log_path,
    }


@cli.command("status")
@click.option(
    "--job",
    "job_names",
    multiple=True,
    metavar="NAME",
    help="Only this job (repeatable).",
    shell_complete=lambda c, p, i: _complete_jobs(i),
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
@_color_option
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
    from cronwrap.views.status import job_statuses, open_store_readonly

    try:
        grace_td = timedelta(seconds=parse_duration(grace))
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--grace") from None
    now = _now(now_text)
    paths = _paths(ctx)
    store = open_store_readonly(paths)
    try:
        jobs = job_statuses(
            store,
            _crontabs(crontab_files),
            paths,
            now=now,
            grace=grace_td,
            include_unmonitored=include_all,
        )
    finally:
        if store is not None:
            store.close()
    zones = _hc_zones()
    for j in jobs:
        mismatch = _zone_mismatch(j.name, j.tz, zones) if j.schedule else None
        if mismatch:
            j.zone_note = mismatch
            click.echo(f"cronwrap: warning: {j.name} {mismatch}", err=True)
    if job_names:
        jobs = [j for j in jobs if j.name in job_names]
    if failed:
        jobs = [j for j in jobs if not j.healthy]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
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
                        "expected_at": _iso(j.expected),
                        "next_run": _iso(j.next_run),
                        "durations_s": j.durations,
                        "unmonitored": j.unmonitored,
                        "zone_note": j.zone_note,
                        "schedule_error": j.schedule_error,
                        "last_run": _run_json(j.last) if j.last else None,
                    }
                    for j in jobs
                ],
                indent=2,
            )
        )
    else:
        from cronwrap.views.table import render_status, terminal_width, use_color

        out = sys.stdout
        # not click.echo: it strips colour codes when stdout is not a terminal, and
        # --color always must keep them
        text = render_status(
            jobs, now, width=terminal_width(out), color=use_color(color, out), terminal=out.isatty()
        )
        out.write(text)
    if any(not j.healthy for j in jobs if not j.unmonitored):
        sys.exit(ExitCode.ERROR)


def _complete_jobs(incomplete: str) -> list[Any]:
    """Shell completion of job names from the run store."""
    from click.shell_completion import CompletionItem

    try:
        from cronwrap.config import resolve_paths
        from cronwrap.views.status import open_store_readonly

        store = open_store_readonly(resolve_paths(_env()))
        if store is None:
            return []
        with store:
            names = store.job_names()
    except Exception:
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


@cli.command("history")
@click.argument("name", shell_complete=lambda c, p, i: _complete_jobs(i))
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="How many runs to show, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_color_option
@click.pass_context
def history_cmd(ctx: click.Context, name: str, limit: int, as_json: bool, color: str) -> None:
    """Show the last runs of job NAME: start, duration, result, attempts, exit code.

    \b
    Example:
      cronwrap history backup --limit 50
    """
    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.status import open_store_readonly

    store = open_store_readonly(_paths(ctx))
    if store is None:
        raise JobNotFoundError(f"no runs recorded yet (no run store at {_paths(ctx).db_file})")
    with store:
        runs = store.runs(name, limit=limit)
        if not runs:
            raise JobNotFoundError(f"no runs recorded for job {name!r} (see cronwrap status)")
        if as_json:
            docs = []
            for r in runs:
                doc = _run_json(r)
                doc["attempts_detail"] = [
                    {
                        "attempt": a.attempt,
                        "started_at": _iso(a.started_at),
                        "ended_at": _iso(a.ended_at),
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

    from cronwrap.views.history import console, render_history

    render_history(console(color=color), runs, datetime.now(timezone.utc))


@cli.command("logs")
@click.argument("name", shell_complete=lambda c, p, i: _complete_jobs(i))
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
    import time

    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.status import open_store_readonly

    paths = _paths(ctx)
    store = open_store_readonly(paths)
    if store is None:
        raise JobNotFoundError("no runs recorded yet")
    with store:
        runs = [r for r in store.runs(name, limit=500) if r.log_path]
        if run_id:
            runs = [r for r in runs if r.run_id.startswith(run_id)]
        if not runs:
            raise JobNotFoundError(
                f"no captured output for job {name!r}" + (f" run {run_id!r}" if run_id else "")
            )
        run = runs[0]
        path = run.log_path
        if as_json:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as err:
                raise CronwrapError(f"cannot read {path}: {err.strerror} (pruned?)") from None
            doc = _run_json(run)
            doc["output"] = data.decode("utf-8", "replace")
            doc["output_bytes"] = len(data)
            click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
            return
        out = sys.stdout.buffer
        pos = 0
        while True:
            try:
                with open(path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
            except OSError as err:
                raise CronwrapError(f"cannot read {path}: {err.strerror} (pruned?)") from None
            out.write(chunk)
            out.flush()
            pos += len(chunk)
            if not follow:
                return
            current = store.run(run.run_id)
            if current is None or current.status != "running":
                if not chunk:
                    return
                continue
            time.sleep(0.2)


# ------------------------------------------------------------------ wrap


@cli.command("wrap")
@click.argument("source", required=False, metavar="[FILE|-]")
@click.option(
    "--system",
    is_flag=True,
    help="The crontab has a user field (/etc/crontab, /etc/cron.d); automatic for those paths.",
)
@click.option(
    "--cronwrap",
    "cronwrap_path",
    metavar="PATH",
    help="How the new lines call cronwrap (default: its full path, since cron's PATH is minimal).",
)
@click.option(
    "--apply",
    "apply_",
    is_flag=True,
    help="Install the result into your crontab "
    "with `crontab -`, after showing the diff and backing up the old one.",
)
@click.option("--undo", is_flag=True, help="Reinstall the crontab saved by the last --apply.")
@click.pass_context
def wrap_cmd(
    ctx: click.Context,
    source: str | None,
    system: bool,
    cronwrap_path: str | None,
    apply_: bool,
    undo: bool,
) -> None:
    """Print a crontab with every unwrapped job put behind `cronwrap run`.

    Reads FILE, - (stdin) or, by default, your crontab (crontab -l). Comments, environment
    lines, CRON_TZ and already wrapped lines are kept as they are; each job gets a stable,
    readable name that is unique in the file and its schedule as --schedule; a command that
    needs the shell (pipes, redirections, % for stdin) is kept whole behind --shell. Running
    wrap on its own output changes nothing.

    \b
    Example:
      cronwrap wrap                 # show the wrapped version of your crontab
      cronwrap wrap --apply         # install it (the old one is backed up)
      cronwrap wrap --undo          # put the old one back
    """
    import difflib
    import shutil
    import time
    from pathlib import Path

    from cronwrap.config import ensure_dir
    from cronwrap.cron.crontab import is_system_path, parse_crontab, read_source
    from cronwrap.cron.wrap import wrap_crontab

    paths = _paths(ctx)
    backups = Path(paths.state_dir) / "crontab-backups"
    if undo:
        saved = sorted(backups.glob("*.crontab")) if backups.is_dir() else []
        if not saved:
            raise CronwrapError(f"nothing to undo: no backup in {backups}")
        _install_crontab(saved[-1].read_text())
        click.echo(f"reinstalled {saved[-1]}")
        return
    if apply_ and source not in (None, ""):
        raise click.UsageError("--apply installs into your crontab: give no FILE")
    text = read_source(source or "")
    tab = parse_crontab(
        text, source=source or "crontab -l", system=system or is_system_path(source or "")
    )
    path = cronwrap_path or shutil.which("cronwrap") or "cronwrap"
    wrapped = wrap_crontab(text, tab, cronwrap=path)
    if not apply_:
        click.echo(wrapped, nl=False)
        return
    diff = list(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            wrapped.splitlines(keepends=True),
            "crontab (now)",
            "crontab (wrapped)",
        )
    )
    if not diff:
        click.echo("nothing to wrap: every job already runs under cronwrap")
        return
    click.echo("".join(diff), nl=False)
    ensure_dir(backups)
    backup = backups / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.crontab"
    backup.write_text(text)
    os.chmod(backup, 0o600)
    _install_crontab(wrapped)
    click.echo(f"installed; the old crontab is saved as {backup} (cronwrap wrap --undo)")


def _install_crontab(text: str) -> None:
    import subprocess

    try:
        out = subprocess.run(
            ["crontab", "-"], input=text, text=True, capture_output=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CronwrapError(f"cannot run crontab -: {err}") from err
    if out.returncode != 0:
        raise CronwrapError(f"crontab - refused the new crontab: {out.stderr.strip()}")


# ------------------------------------------------------------------ hc


@cli.group("hc")
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
    for j in crontab_jobs(_crontabs(crontab_files)):
        if j.wrapped:
            found[j.name] = (j.name, j.schedule, j.tz)
    config = load_config(_paths(ctx).config_file)
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
    store = open_store_readonly(_paths(ctx))
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
        target = Path(ping_urls) if ping_urls else Path(_paths(ctx).state_dir) / "hc-ping-urls.yaml"
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


# ------------------------------------------------------------------ metrics


@cli.group("metrics")
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
    """Remove the metric files of jobs that no longer exist.

    A job exists while it is in the run store, the config file or a crontab. Stale files
    never disappear by themselves: node_exporter keeps exporting their last values.

    \b
    Example:
      cronwrap metrics prune --metrics-dir /var/lib/prometheus/node-exporter --dry-run
    """
    import re as _re

    from cronwrap.config import load_config
    from cronwrap.state import metrics
    from cronwrap.views.status import crontab_jobs, open_store_readonly

    paths = _paths(ctx)
    keep: set[str] = set(load_config(paths.config_file).jobs)
    store = open_store_readonly(paths)
    if store is not None:
        with store:
            keep.update(store.job_names())
    keep.update(j.name for j in crontab_jobs(_crontabs(crontab_files)) if j.wrapped)
    if dry_run:
        labels = {metrics.label(k) for k in keep}
        for entry in sorted(os.listdir(metrics_dir)):
            m = _re.fullmatch(r"cronwrap_(.+)\.prom", entry)
            if m and m.group(1) not in labels:
                click.echo(f"would remove {entry}")
        return
    for entry in metrics.prune(metrics_dir, keep):
        click.echo(f"removed {entry}")


# ------------------------------------------------------------------ man, completion


@cli.command("man")
@click.argument("command", required=False)
def man_cmd(command: str | None) -> None:
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


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_cmd(shell: str) -> None:
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
    comp = cls(cli, {}, "cronwrap", "_CRONWRAP_COMPLETE")
    click.echo(comp.source())
