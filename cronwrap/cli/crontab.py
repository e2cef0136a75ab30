"""`lint` and `wrap`: check a crontab, put cronwrap in front of its jobs."""

from __future__ import annotations

import json
import sys

import click

from cronwrap.cli.common import hc_zones, state_paths
from cronwrap.errors import CronwrapError, ExitCode


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
def lint_cmd(
    files: tuple[str, ...], system: bool, no_check_programs: bool, as_json: bool, quiet: bool
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

    sources: list[str] = list(files) or (system_crontab_paths() if system else [""])
    if not sources:
        raise CronwrapError("no /etc/crontab and nothing in /etc/cron.d to check")
    findings = []
    tabs = []
    for source in sources:
        text = read_source(source)  # once: stdin cannot be read again
        name = source or "crontab -l"
        tab = parse_crontab(text, source=name, system=system or is_system_path(source))
        findings += lint_crontab(tab, check_programs=not no_check_programs)
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
        for f in findings:
            click.echo(str(f))
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
    import shutil

    from cronwrap.cron.crontab import is_system_path, parse_crontab, read_source
    from cronwrap.cron.wrap import wrap_crontab
    from cronwrap.state import crontabs

    backups = crontabs.backup_dir(state_paths(ctx).state_dir)
    if undo:
        click.echo(f"reinstalled {crontabs.undo(backups)}")
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
    diff = crontabs.diff(text, wrapped)
    if not diff:
        click.echo("nothing to wrap: every job already runs under cronwrap")
        return
    click.echo(diff, nl=False)
    backup = crontabs.apply(text, wrapped, backups)
    click.echo(f"installed; the old crontab is saved as {backup} (cronwrap wrap --undo)")
