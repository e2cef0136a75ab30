"""`lint` and `wrap`: check a crontab, put cronwrap in front of its jobs."""

from __future__ import annotations

import json
import sys

import click

from cronwrap.cli.common import hc_zones, state_paths
from cronwrap.errors import CronwrapError, ExitCode
from cronwrap.views.humanize import printable


@click.command("lint")
@click.argument("files", nargs=-1, metavar="[FILE|-]...", type=click.Path())
@click.option(
    "--system",
    is_flag=True,
    help="Files are in /etc/crontab format (a user field after the schedule); "
    "automatic for /etc/crontab and /etc/cron.d/*. With no FILE: check /etc/crontab and "
    "/etc/cron.d/*.",
)
@click.option(
    "--no-check-programs",
    is_flag=True,
    help="Do not look the commands up on this machine (for a crontab meant for another one).",
)
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Hide info findings.")
@click.pass_context
def lint_cmd(
    ctx: click.Context,
    files: tuple[str, ...],
    system: bool,
    no_check_programs: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Check crontab files: schedules, environment lines, CRON_TZ, %, final newline, names,
    the options of each `cronwrap run` and whether each command can be started.

    With no FILE, checks your crontab (crontab -l), or with --system /etc/crontab and
    /etc/cron.d/*; - reads stdin. The `cronwrap run` options of each line are read by run's
    own parser, so an unknown option or a bad value is found before cron runs it. Commands
    are looked up for the line's user with the line's PATH. Each finding is
    FILE:LINE:COL: SEVERITY: MESSAGE [CODE]. Exits 1 if any error was found.

    \b
    Example:
      cronwrap lint
      sudo cronwrap lint --system
      crontab -l | cronwrap lint -
    """
    from cronwrap.cron.crontab import (
        is_system_path,
        parse_crontab,
        read_source,
        system_crontab_paths,
    )
    from cronwrap.cron.lint import lint_crontab
    from cronwrap.cron.schedule import local_zone, zone_name
    from cronwrap.views.status import config_zones

    sources: list[str] = list(files) or (system_crontab_paths() if system else [""])
    if not sources:
        raise CronwrapError("no /etc/crontab and nothing in /etc/cron.d to check")
    findings = []
    tabs = []
    for source in sources:
        text = read_source(source)  # once: stdin cannot be read again
        name = source or "crontab -l"
        tab = parse_crontab(text, source=name, system=system or is_system_path(source))
        findings += lint_crontab(
            tab,
            check_programs=not no_check_programs,
            # a crontab for another machine: its daemon's zone is not known here
            daemon_tz=None if no_check_programs else zone_name(local_zone()),
            config_tz=config_zones(state_paths(ctx)),
        )
        tabs.append(tab)
    zones = hc_zones()
    if zones:
        from cronwrap.notify.hcsync import zone_findings

        findings += zone_findings(tabs, zones)
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
        for f in findings:  # a finding quotes the line: its escapes are not for the terminal
            click.echo(printable(str(f)))
    if any(f.severity == "error" for f in findings):
        sys.exit(ExitCode.ERROR)


@click.command("wrap")
@click.argument("source", required=False, metavar="[FILE|-]", type=click.Path())
@click.option(
    "--system",
    is_flag=True,
    help="The crontab has a user field (/etc/crontab, /etc/cron.d); automatic for those paths.",
)
@click.option(
    "--cronwrap",
    "cronwrap_path",
    metavar="PATH",
    type=click.Path(),
    help="The absolute path the new lines call cronwrap by (default: the installed cronwrap "
    "program running now, never a pyenv shim; cron's PATH is minimal).",
)
@click.option(
    "--apply",
    "apply_",
    is_flag=True,
    help="Install the result into your crontab with `crontab -`: shows the diff, asks "
    "(--yes to skip), keeps a timestamped backup of the old one.",
)
@click.option(
    "--undo",
    is_flag=True,
    help="Take back the last --apply: only the lines it changed, keeping every edit made "
    "since (shows the diff, asks, keeps a backup).",
)
@click.option(
    "--yes", "-y", is_flag=True, help="Install without asking (needed when not on a terminal)."
)
@click.pass_context
def wrap_cmd(
    ctx: click.Context,
    source: str | None,
    system: bool,
    cronwrap_path: str | None,
    apply_: bool,
    undo: bool,
    yes: bool,
) -> None:
    """Print a crontab with every unwrapped job put behind `cronwrap run`.

    Reads FILE, - (stdin) or, by default, your crontab (crontab -l). Comments, environment
    lines, CRON_TZ and already wrapped lines are kept as they are; each job gets a stable,
    readable name that is unique in the file and its schedule as --schedule; a command that
    needs the shell (pipes, redirections, % for stdin) is kept whole and run by the
    crontab's own SHELL, as cron ran it. The new lines call cronwrap by its absolute path.
    Running wrap on its own output changes nothing.

    \b
    Example:
      cronwrap wrap                 # show the wrapped version of your crontab
      cronwrap wrap --apply         # show the diff, ask, install (the old one is backed up)
      cronwrap wrap --undo          # take back only what --apply changed
    """
    from cronwrap.cron.crontab import is_system_path, parse_crontab, read_source
    from cronwrap.cron.wrap import wrap_crontab
    from cronwrap.state import crontabs

    if (apply_ or undo) and source not in (None, ""):
        raise click.UsageError("--apply and --undo change your crontab: give no FILE")
    if apply_ and undo:
        raise click.UsageError("--apply or --undo, not both")
    backups = crontabs.backup_dir(state_paths(ctx).state_dir)
    if undo:
        record = crontabs.last_apply(backups)
        current = read_source("")
        plan = crontabs.plan_undo(current, record)
        for number in plan.edited:
            click.echo(
                f"cronwrap: line {number} was wrapped by --apply and edited since: kept as it is",
                err=True,
            )
        if not _confirmed(crontabs.diff(current, plan.text, new_label="crontab (undone)"), yes):
            return
        backup = crontabs.undo(current, plan, backups)
        click.echo(f"undone; the crontab before the undo is saved as {backup}")
        return
    text = read_source(source or "")
    tab = parse_crontab(
        text, source=source or "crontab -l", system=system or is_system_path(source or "")
    )
    wrapped = wrap_crontab(text, tab, cronwrap=_cronwrap_program(cronwrap_path, installing=apply_))
    if not apply_:  # the crontab as it is to be installed: every byte as is (click.echo
        sys.stdout.write(wrapped)  # would drop what looks like a colour code off a terminal)
        return
    if not _confirmed(crontabs.diff(text, wrapped), yes):
        return
    backup = crontabs.apply(text, wrapped, backups)
    click.echo(f"installed; the old crontab is saved as {backup} (cronwrap wrap --undo)")


def _confirmed(diff: str, yes: bool) -> bool:
    """Show the diff and ask on a terminal; False when there is nothing to change."""
    if not diff:
        click.echo("nothing to change: every job already runs under cronwrap")
        return False
    click.echo(diff, nl=False)
    if yes:
        return True
    if not sys.stdin.isatty():
        raise click.UsageError("not on a terminal, so nothing was installed: add --yes")
    if not click.confirm("install this crontab?", default=False):
        raise CronwrapError("not installed: your crontab is unchanged")
    return True


def _cronwrap_program(given: str | None, *, installing: bool) -> str:
    """The absolute path of the cronwrap program the new lines will call (a given one must
    exist when the result is installed here, not when it is printed for another machine)."""
    import os
    import shutil
    from pathlib import Path

    if given is not None:
        if not os.path.isabs(given):
            raise click.BadParameter(
                f"{given!r} is not an absolute path: cron's PATH is minimal",
                param_hint="--cronwrap",
            )
        if installing and not os.access(given, os.X_OK):
            raise click.BadParameter(
                f"{given} is not an executable here, so every wrapped job would fail",
                param_hint="--cronwrap",
            )
        return given
    candidates = [
        sys.argv[0],  # the console script running now (pyenv shims exec the real one)
        str(Path(sys.executable).parent / "cronwrap"),  # python -m cronwrap in a venv
        shutil.which("cronwrap") or "",
    ]
    for candidate in candidates:
        if (
            os.path.basename(candidate) == "cronwrap"
            and os.path.isfile(candidate)
            and os.access(candidate, os.X_OK)
            and not _is_shim(candidate)
        ):
            return os.path.abspath(candidate)
    raise CronwrapError(
        "cannot find the installed cronwrap program (only a pyenv shim, or nothing): "
        "give its absolute path with --cronwrap PATH"
    )


def _is_shim(path: str) -> bool:
    """A pyenv-style shim: a shell script that picks a Python on every call."""
    if "/shims/" in path:
        return True
    with open(path, "rb") as f:
        head = f.read(512)
    return head.startswith(b"#!") and b"pyenv" in head and b"python" not in head.split(b"\n")[0]
