"""`status` and `history` without click: the command bodies that the click commands in
cli/status.py call, and the parser of their common forms that `python -m cronwrap` uses to
skip importing click (about 40 ms). Anything the parser does not know goes to click."""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import datetime, timedelta, timezone

from cronwrap.errors import CronwrapError
from cronwrap.views.jsondoc import attempt_json, run_json

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

    from cronwrap.paths import Paths
    from cronwrap.views.jobstatus import StatusReport


def _line(stream: Any, text: str) -> None:
    """Write one line as click.echo does: escape sequences only to a terminal, then flush."""
    if "\x1b" in text and not stream.isatty():
        import re

        text = re.sub("\033\\[[0-?]*[ -/]*[@-~]", "", text)
    stream.write(text)  # not text + "\n": a status --json of thousands of jobs is megabytes
    stream.write("\n")
    stream.flush()


def warn(message: str) -> None:
    """One line on stderr (as click.echo(..., err=True) writes it)."""
    _line(sys.stderr, message)


def _echo(text: str) -> None:
    _line(sys.stdout, text)


def parse_instant(value: str | None) -> datetime:
    """--now: an ISO 8601 date-time (local time when it has no zone), else now; ValueError."""
    if not value:
        return datetime.now(timezone.utc)
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.astimezone()


def read_crontabs(files: tuple[str, ...]) -> list[Any]:
    """The crontabs to look in: --crontab files, else the user's (and the system's for root)."""
    from cronwrap.cron.crontab import (
        is_system_path,
        parse_crontab,
        read_source,
        system_crontab_paths,
    )

    sources = list(files)
    if not sources:
        import shutil

        if shutil.which("crontab"):
            sources.append("")
        if os.geteuid() == 0:
            sources += system_crontab_paths()
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


def hc_zones() -> dict[str, str] | None:
    """slug -> zone of the Healthchecks checks, when an API key is configured (for the
    time-zone sanity check of status and lint); None without a key or on errors."""
    if not os.environ.get("CRONWRAP_HC_API_KEY"):
        return None  # what fetch_zones says without one, and status need not import it
    from cronwrap.notify.hcsync import fetch_zones

    try:
        return fetch_zones(dict(os.environ))
    except CronwrapError as err:
        warn(f"cronwrap: warning: cannot compare zones with Healthchecks: {err}")
        return None


def fleet_store_url(paths: Paths, flag: str | None) -> str | None:
    """--fleet-store, else CRONWRAP_FLEET_STORE, else `fleet_store` in the config defaults."""
    from cronwrap.config import load_config, read_secret

    value = flag or os.environ.get("CRONWRAP_FLEET_STORE")
    if not value:  # as `run` reads it: a problem leaves the valid keys in force, and is said
        config = load_config(paths.config_path, strict=False)  # (it may hide the fleet store)
        for problem in config.problems if os.path.lexists(paths.config_path) else ():
            warn(f"cronwrap: warning: config {problem}")
        value = config.defaults.get("fleet_store")
    return read_secret(str(value)) if value else None


def open_fleet_store(url: str) -> Any:
    """A reader of the fleet store: through libpq, without importing psycopg, when it loads
    (CRONWRAP_FLEET_DRIVER=psycopg or libpq forces one)."""
    from cronwrap.state.fleetread import open_reader

    driver = os.environ.get("CRONWRAP_FLEET_DRIVER")
    return open_reader(url, timeout_s=10.0, statement_timeout_s=60.0, driver=driver)


def _warn_zones(jobs: list[Any]) -> None:
    """One warning per job whose zone differs from its Healthchecks check or from cron's."""
    zones = hc_zones()
    if zones:
        from cronwrap.notify.hcsync import zone_mismatch
    for j in jobs:
        mismatch = zone_mismatch(j.name, j.tz, zones) if zones and j.schedule else None
        if mismatch:
            j.zone_note = mismatch
            warn(f"cronwrap: warning: {j.name} {mismatch}")
        if j.tz_warning:
            warn(f"cronwrap: warning: {j.name}: {j.tz_warning}")


def _warn_fleet_backlog(paths: Paths, now: datetime) -> None:
    """One warning when this host's runs wait to be shipped to the fleet store (and why)."""
    from cronwrap.run.ship import backlog_note
    from cronwrap.views.runstate import open_store_readonly

    try:
        store = open_store_readonly(paths)
        if store is None:
            return
        with store:
            note = backlog_note(store, paths.state_path, now=now)
    except CronwrapError:
        return  # an unreadable store is reported by the status itself
    if note:
        warn(f"cronwrap: warning: {note}")


def _show(
    jobs: list[Any],
    failures: list[Any],
    now: datetime,
    *,
    html_file: str | None,
    fleet: bool,
    as_json: bool,
    color: str,
    clear: bool,
    problem: str | None = None,
    unreadable: bool = False,
    watching: bool = False,
) -> None:
    """The jobs as the HTML page, JSON or the table; nothing when the store could not be
    read and no crontab names a job to show (or, for --watch, the reason)."""
    if html_file:
        from cronwrap.views.html import render_page, write_atomic

        try:
            page = render_page(
                jobs, failures, now=now, fleet=fleet, problem=problem, unreadable=unreadable
            )
            write_atomic(html_file, page)
        except OSError as err:
            raise CronwrapError(f"cannot write {html_file}: {err.strerror}") from None
    elif unreadable and not jobs:
        # an empty table or `[]` would read as "no jobs, all fine": stdout stays empty (the
        # reason is on stderr), but a watched screen must not keep a table no longer true
        if watching and not as_json:
            if clear:
                sys.stdout.write("\x1b[H\x1b[2J")
            _echo(f"cronwrap: status unknown: {problem}")
            _echo(f"Checked {now.astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')}.")
    elif as_json:
        from cronwrap.views.jsondoc import status_document

        _echo(status_document(jobs))
    else:
        from cronwrap.views.table import render_status, terminal_width, use_color

        out = sys.stdout
        if clear:
            out.write("\x1b[H\x1b[2J")
        text = render_status(
            jobs,
            now,
            width=terminal_width(out),
            color=use_color(color, out),
            terminal=out.isatty(),
        )
        out.write(text)


@contextlib.contextmanager
def _without_gc() -> Iterator[None]:
    """The cyclic garbage collector off for a while: status builds values for every job
    (with 5,000 fleet host-jobs, hundreds of thousands of tuples, lists and strings) that
    live until they are printed and hold no cycles to find, and the collector's passes over
    them were about 6% of a fleet status. It runs again after (status --watch)."""
    import gc

    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def status_once(
    paths: Paths,
    *,
    now: datetime,
    job_names: tuple[str, ...],
    failed: bool,
    include_all: bool,
    crontab_files: tuple[str, ...],
    grace: timedelta,
    host_ids: tuple[str, ...],
    as_json: bool,
    color: str,
    clear: bool,
    fleet_url: str | None = None,
    host: str | None = None,
    html_file: str | None = None,
    watching: bool = False,
    drawing: list[int] | None = None,
) -> int:
    """Print the status once (or write the HTML page); returns the exit status, which goes
    into `drawing` first (--watch: Ctrl-C during a redraw ends with the code it draws)."""
    from cronwrap.views.status import exit_code_for

    with _without_gc():
        report, failures = _load_jobs(
            paths,
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
        jobs = report.jobs
        _warn_zones(jobs)
        _warn_fleet_backlog(paths, now)
        if failed:
            jobs = [j for j in jobs if not j.healthy]
        code = exit_code_for(report.jobs, problem=report.problem)
        if drawing is not None:
            drawing[:] = [code]
        _show(
            jobs,
            failures,
            now,
            html_file=html_file,
            fleet=bool(fleet_url),
            as_json=as_json,
            color=color,
            clear=clear,
            problem=report.problem,
            unreadable=report.unreadable,
            watching=watching,
        )
        return code


def _load_jobs(
    paths: Paths,
    *,
    now: datetime,
    grace: timedelta,
    job_names: tuple[str, ...],
    include_all: bool,
    crontab_files: tuple[str, ...],
    host_ids: tuple[str, ...],
    fleet_url: str | None,
    host: str | None,
    with_failures: bool,
) -> tuple[StatusReport, list[Any]]:
    """Every job's status (from the fleet store, or this host's store and crontabs) and what
    kept status from knowing, if any; for the HTML page, the recent failed runs."""
    from cronwrap.views.runstate import configured_host_ids, open_store_readonly
    from cronwrap.views.status import load_status

    if fleet_url:
        return _load_fleet(
            fleet_url,
            now=now,
            grace=grace,
            host=host,
            job_names=job_names,
            with_failures=with_failures,
        )
    failures: list[Any] = []
    report = load_status(
        paths,
        read_crontabs(crontab_files),
        now=now,
        grace=grace,
        include_unmonitored=include_all,
        host_ids=set(host_ids) | configured_host_ids(paths, dict(os.environ)),
        names=job_names,
    )
    if report.problem:
        warn(f"cronwrap: status unknown: {report.problem}")
    if with_failures and not report.problem:
        store = open_store_readonly(paths)
        if store is not None:
            with store:
                failures = store.failures(host=host, jobs=job_names)
    if host:
        hosts = {j.last.host for j in report.jobs if j.last is not None}
        report.jobs = [j for j in report.jobs if j.last is not None and j.last.host == host]
        if not report.jobs and not report.problem:
            report.problem = _unknown_host(host, hosts)
    return report, failures


def _load_fleet(
    url: str,
    *,
    now: datetime,
    grace: timedelta,
    host: str | None,
    job_names: tuple[str, ...],
    with_failures: bool,
) -> tuple[StatusReport, list[Any]]:
    """_load_jobs from the fleet store. A store that cannot be read (down, black-holed, an
    upgrade it could not make) is a status that cannot know: no jobs, and the problem."""
    from cronwrap.state.fleetread import FleetStoreError
    from cronwrap.views.fleet import load_fleet_status
    from cronwrap.views.jobstatus import StatusReport

    failures: list[Any] = []
    try:
        with open_fleet_store(url) as fleet:
            report = load_fleet_status(fleet, now=now, grace=grace, host=host, names=job_names)
            if with_failures:
                failures = fleet.failures(host=host, jobs=job_names)
            # a host the store does not know (a typo) is said as such, not as a job unknown
            # there (the jobs asked for are then not looked for), as local status does
            if host is not None and all(st.last is None for st in report.jobs):
                hosts = fleet.hosts()
                if host not in hosts:
                    return StatusReport([], _unknown_host(host, hosts)), failures
            if report.problem:
                warn(f"cronwrap: status unknown: {report.problem}")
    except FleetStoreError as err:
        warn(f"cronwrap: status unknown: {err}")
        return StatusReport([], str(err), unreadable=True), []
    return report, failures


def _unknown_host(host: str, known: set[str] | list[str]) -> str:
    """What `status --host` says of a host no job's last run came from (a typo must not read
    as a healthy, empty host), and warns it on stderr."""
    from cronwrap.views.humanize import printable

    names = ", ".join(printable(h) for h in sorted(known)[:10]) or "none"
    why = f"no job's last run was on host {printable(host)!r} (hosts: {names})"
    warn(f"cronwrap: status unknown: {why}")
    return why


def _history_source(paths: Paths, fleet_store: str | None) -> tuple[Any, Any, Any]:
    """(fleet URL or None, the store to read, how its runs are judged)."""
    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.runstate import local_host, open_store_readonly, remote_host

    url = fleet_store_url(paths, fleet_store)
    if url:
        return url, open_fleet_store(url), remote_host()
    store = open_store_readonly(paths)
    if store is None:
        raise JobNotFoundError(f"no runs recorded yet (no run store at {paths.db_path})")
    return None, store, local_host(paths, dict(os.environ))


def history(
    paths: Paths,
    name: str | None,
    *,
    limit: int,
    as_json: bool,
    fleet_store: str | None,
    host: str | None,
    color: str,
) -> None:
    """Print the last runs of job NAME (or of every job) as a table or JSON."""
    from cronwrap.errors import JobNotFoundError
    from cronwrap.views.runstate import run_state

    url, store, local = _history_source(paths, fleet_store)
    with store:
        if url:
            runs = store.runs(name, host=host, limit=limit)
        else:
            runs = (
                store.runs(name, limit=limit, host=host)
                if name
                else store.recent_runs(limit=limit, host=host)
            )
        if not runs:
            on = f" on host {host!r}" if host else ""
            if name:
                raise JobNotFoundError(
                    f"no runs recorded for job {name!r}{on} (see cronwrap status)"
                )
            raise JobNotFoundError(f"no runs recorded{on} yet")
        states = [run_state(r, local) for r in runs]
        if as_json:
            import json  # here: the table does not need it (start-up time)

            docs = []
            for r, state in zip(runs, states, strict=True):
                doc = run_json(r, state)
                doc["attempts_detail"] = [attempt_json(a) for a in store.attempts(r.run_id)]
                docs.append(doc)
            _echo(json.dumps(docs, indent=2))
            return
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


_COLORS = ("auto", "always", "never")
_REPEATED = ("job_names", "crontab_files", "host_ids")
_STATUS_VALUES = {
    "--job": "job_names",
    "--crontab": "crontab_files",
    "--host-id": "host_ids",
    "--grace": "grace",
    "--fleet-store": "fleet_store",
    "--host": "host",
    "--color": "color",
    "--now": "now_text",
    "--html": "html_file",
}
_STATUS_FLAGS = {"--failed": "failed", "--all": "include_all", "--json": "as_json"}
_HISTORY_VALUES = {
    "--limit": "limit",
    "--fleet-store": "fleet_store",
    "--host": "host",
    "--color": "color",
}
_HISTORY_FLAGS = {"--json": "as_json"}


def _parse(
    args: Sequence[str], values: dict[str, str], flags: dict[str, str]
) -> tuple[dict[str, Any], list[str]] | None:
    """The options as click reads them, and the other words; None for anything else (an
    option it does not know, --help, `--`, a value that looks like an option), which click
    then reads and reports as it always does."""
    from cronwrap.argv import option_value

    opts: dict[str, Any] = {}
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        dest = values.get(arg.partition("=")[0])
        if dest is not None:
            found = option_value(args, i)
            if found is None or found[0].startswith("-"):
                return None
            value, i = found
            # repeated: every value in order; otherwise the last one wins, as in click
            opts[dest] = (*opts.get(dest, ()), value) if dest in _REPEATED else value
            continue
        if arg in flags:
            opts[flags[arg]] = True
        elif arg.startswith("-"):
            return None
        else:
            words.append(arg)
        i += 1
    if opts.get("color", "auto") not in _COLORS:
        return None
    return opts, words


_STATUS_DEFAULTS: dict[str, Any] = {
    "job_names": (),
    "failed": False,
    "include_all": False,
    "crontab_files": (),
    "host_ids": (),
    "as_json": False,
    "color": "auto",
    "host": None,
    "html_file": None,
}
_HISTORY_DEFAULTS: dict[str, Any] = {
    "as_json": False,
    "fleet_store": None,
    "host": None,
    "color": "auto",
}


def _fast_status(args: Sequence[str]) -> int | None:
    """`status` as the click command runs it without --watch; None: ask click."""
    from cronwrap.config import parse_duration
    from cronwrap.paths import resolve_paths

    parsed = _parse(args, _STATUS_VALUES, _STATUS_FLAGS)
    if parsed is None or parsed[1]:
        return None
    options = _STATUS_DEFAULTS | parsed[0]
    now_text = options.pop("now_text", None)
    try:
        grace = timedelta(seconds=parse_duration(options.pop("grace", "5m")))
        parse_instant(now_text)
    except (ValueError, OverflowError):
        return None  # click says what is wrong with it
    paths = resolve_paths(dict(os.environ))
    fleet_url = fleet_store_url(paths, options.pop("fleet_store", None))
    now = parse_instant(now_text)
    return status_once(paths, now=now, grace=grace, clear=False, fleet_url=fleet_url, **options)


def _fast_history(args: Sequence[str]) -> int | None:
    """`history [NAME]` as the click command runs it; None: ask click."""
    from cronwrap.paths import resolve_paths

    parsed = _parse(args, _HISTORY_VALUES, _HISTORY_FLAGS)
    if parsed is None or len(parsed[1]) > 1:
        return None
    options = _HISTORY_DEFAULTS | parsed[0]
    limit = options.pop("limit", "20")
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 100000):
        return None
    name = parsed[1][0] if parsed[1] else None
    history(resolve_paths(dict(os.environ)), name, limit=int(limit), **options)
    return 0


def main(args: Sequence[str]) -> int | None:
    """Run `status ...` or `history ...` without click, with the click group's handling of
    errors, ^C and a closed pipe; None when click must run it (then nothing was printed)."""
    if os.environ.get("CRONWRAP_DEBUG") or os.environ.get("_CRONWRAP_COMPLETE"):
        return None  # tracebacks and shell completion are click's
    command = _fast_status if args[0] == "status" else _fast_history
    try:
        return command(args[1:])
    except CronwrapError as err:
        warn(f"cronwrap: {err}")
        caret = getattr(err, "caret", None)
        if callable(caret) and caret():
            warn(caret())
        return int(err.exit_code)
    except (EOFError, KeyboardInterrupt):
        warn("")
        warn("Aborted!")
        return 1
    except OSError as err:
        import errno

        if err.errno != errno.EPIPE:
            raise
        _quiet_closed_pipes()
        return 1


def _quiet_closed_pipes() -> None:
    """What click does on EPIPE: exit 1 without a second error when the buffers are flushed
    at exit (the output still buffered goes nowhere, as the reader has gone)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
