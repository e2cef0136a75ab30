"""`lint` and `wrap`: check a crontab, put cronwrap in front of its jobs."""

from __future__ import annotations

import json
import os
import sys

import click

from cronwrap.cli.common import hc_zones, state_paths, zone_mismatch
from cronwrap.errors import CronwrapError, ExitCode


@click.command("lint")
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
    zones = hc_zones()
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
                    note = zone_mismatch(run.name, run.tz or line.tz, zones)
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


@click.command("wrap")
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

    paths = state_paths(ctx)
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
