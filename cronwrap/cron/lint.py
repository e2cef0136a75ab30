"""Checks over crontab files: every schedule as `explain` reads it, environment lines, CRON_TZ,
`%`, the missing final newline, /etc/cron.d names cron ignores, unwrapped jobs, duplicate
names, the `cronwrap run` options of wrapped lines (read by run's own parser, cronwrap/argv.py, and
checked by run's own converters, config.convert) and, when asked, whether each command exists
and is executable for the line's user with the line's PATH. Returns findings; never prints."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cronwrap.cron import programs
from cronwrap.cron.crontab import Crontab, Line, WrappedRun, wrapped_run
from cronwrap.cron.pitfalls import command_warnings, warnings_for
from cronwrap.cron.schedule import parse, same_zone
from cronwrap.errors import ScheduleError

_RUN_PARTS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    line: int
    col: int  # 1-based
    severity: str  # error | warning | info
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message} [{self.code}]"


def lint_crontab(
    tab: Crontab,
    *,
    check_programs: bool = False,
    daemon_tz: str | None = None,
    config_tz: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every finding of the crontab. With check_programs, also look up each command on this
    machine (a crontab meant for another machine is linted without). daemon_tz is the zone
    the cron daemon runs in; config_tz the config file's tz per job name ("" for defaults)."""
    out: list[Finding] = []

    def add(line: int, col: int, severity: str, code: str, message: str) -> None:
        out.append(Finding(tab.source, line, col, severity, code, message))

    if tab.source.startswith("/etc/cron.d/"):
        base = os.path.basename(tab.source)
        if not _RUN_PARTS_NAME.match(base):
            add(
                1,
                1,
                "warning",
                "cron-d-name",
                f"cron ignores /etc/cron.d/{base}: names may "
                "hold only letters, digits, _ and - (no dots)",
            )
    names: dict[str, int] = {}
    path_set = False
    cron_tz: str | None = None  # TZ= does not move the schedule, only CRON_TZ= (cronie)
    for ln in tab.lines:
        if ln.kind == "env" and ln.name == "PATH":
            path_set = True
        if ln.kind == "env" and ln.name == "CRON_TZ":
            cron_tz = ln.value or None
        if ln.kind == "junk":
            add(
                ln.number,
                1,
                "error",
                "syntax",
                "neither a job, an environment setting nor a comment: cron rejects this line",
            )
        elif ln.kind == "env":
            _lint_env(tab, ln, add)
        elif ln.kind == "job":
            _lint_job(tab, ln, add, names, path_set=path_set, check_programs=check_programs)
            _lint_zone(ln, add, cron_tz, daemon_tz, config_tz or {})
    if tab.lines and not tab.ends_with_newline:
        last = tab.lines[-1]
        add(
            last.number,
            len(last.text) + 1,
            "error",
            "no-final-newline",
            "the file does not end with a newline: cron ignores this last line",
        )
    return sorted(out, key=lambda f: (f.file, f.line, f.col))


def _lint_env(tab: Crontab, ln: Line, add: Callable[[int, int, str, str, str], None]) -> None:
    if "$" in ln.value and ln.name not in ("MAILTO",):
        add(
            ln.number,
            ln.text.find("=") + 2,
            "warning",
            "env-expansion",
            f"{ln.name}={ln.value}: cron does not expand variables in environment lines",
        )
    if ln.name in ("CRON_TZ", "TZ"):
        from cronwrap.cron.schedule import zone
        from cronwrap.errors import CronwrapError

        try:
            zone(ln.value)
        except CronwrapError as err:
            add(ln.number, ln.text.find("=") + 2, "error", "bad-tz", str(err))
            return
        if ln.name == "CRON_TZ":
            add(
                ln.number,
                1,
                "info",
                "cron-tz",
                "CRON_TZ works on cronie only (Debian cron "
                "ignores it), and even there DST nights are not protected for these jobs",
            )
        else:
            add(
                ln.number,
                1,
                "info",
                "tz-line",
                "TZ= changes the commands' zone, not when "
                "cron runs them (that is the daemon's zone)",
            )


def _lint_job(
    tab: Crontab,
    ln: Line,
    add: Callable[[int, int, str, str, str], None],
    names: dict[str, int],
    *,
    path_set: bool,
    check_programs: bool = False,
) -> None:
    try:
        schedule = parse(ln.schedule)
    except ScheduleError as err:
        col = ln.schedule_col + (err.column or 0) + 1
        add(ln.number, col, "error", "schedule", str(err))
        return
    if tab.system and not ln.user:
        add(
            ln.number,
            ln.command_col + 1,
            "error",
            "no-user",
            "a system crontab line needs a user field after the schedule",
        )
        return
    if not ln.command:
        add(ln.number, ln.command_col + 1, "error", "no-command", "the line has no command")
        return
    if ln.command.startswith("*"):
        add(
            ln.number,
            ln.command_col + 1,
            "error",
            "bad-command",
            "the command starts with "
            "'*': a sixth schedule field? cron has no seconds or year field",
        )
    for w in warnings_for(schedule):
        sev = "error" if w.code == "never-fires" else w.severity
        add(
            ln.number, ln.schedule_col + 1, sev, w.code, w.message + (f"; {w.fix}" if w.fix else "")
        )
    run = wrapped_run(ln.command)
    for w in command_warnings(ln.command):
        if w.code == "relative-command" and path_set:
            continue  # the crontab sets PATH itself
        if w.code == "no-name":
            continue  # decided below from the parsed run options
        col = ln.command_col + 1
        percent = re.search(r"(?<!\\)%", ln.command) if w.code == "percent" else None
        if percent is not None:
            col += percent.start()
        add(ln.number, col, w.severity, w.code, w.message + (f"; {w.fix}" if w.fix else ""))
    if check_programs:
        for col, code, message in programs.problems(tab, ln, run):
            add(ln.number, ln.command_col + col + 1, "error", code, message)
    if run is None:
        add(
            ln.number,
            ln.command_col + 1,
            "info",
            "unwrapped",
            "not monitored: prefix the command with `cronwrap run --name NAME --`",
        )
        return
    _lint_run_options(ln, run, add)
    if run.name:
        if run.name in names:
            add(
                ln.number,
                ln.command_col + 1,
                "warning",
                "duplicate-name",
                f"job name {run.name!r} is also used on line {names[run.name]}: the two "
                "share a lock, history and pings",
            )
        else:
            names[run.name] = ln.number


def _lint_zone(
    ln: Line,
    add: Callable[[int, int, str, str, str], None],
    cron_tz: str | None,
    daemon_tz: str | None,
    config_tz: Mapping[str, str],
) -> None:
    """A job's --tz (or the config's tz) must be the zone cron fires the line in: status
    computes next and missed runs in it, so a different one reports every run as missed."""
    run = wrapped_run(ln.command)
    if run is None:
        return
    declared = run.tz or config_tz.get(run.name or "") or config_tz.get("")
    where = "--tz" if run.tz else "the config's tz"
    fired_in = cron_tz or daemon_tz
    if not declared or (fired_in and same_zone(declared, fired_in)):
        return
    col = ln.command_col + 1
    if cron_tz:
        why = f"its CRON_TZ ({cron_tz}, cronie only)"
    elif daemon_tz:
        why = f"the cron daemon's zone ({daemon_tz}; Debian cron has no per-line zone)"
    else:
        why = "the cron daemon's zone (Debian cron has no per-line zone)"
    add(
        ln.number,
        col,
        "warning",
        "tz-not-cron",
        f"{where} {declared} is not the zone cron fires this line in, {why}: cronwrap status"
        " would expect runs at other times; drop the tz, or set CRON_TZ above the line"
        " (cronie only)",
    )


def _lint_run_options(
    ln: Line, run: WrappedRun, add: Callable[[int, int, str, str, str], None]
) -> None:
    """What `cronwrap run` itself would reject in this line, found by its own parser and
    converters. Once the command is known, run leaves a bad option out (and says so on stderr);
    without `--` an unknown option makes the command unknowable and every run exits 125."""
    from cronwrap.config import convert, validate_name
    from cronwrap.errors import CronwrapError
    from cronwrap.options import OPTIONS_BY_NAME

    col = ln.command_col + max(ln.command.find(run.program), 0) + 1
    argv = run.argv
    if argv.separator:
        effect = "cronwrap leaves it out at every run"
    else:
        effect = "without `--` every run exits 125 and the job never starts"
    for problem in argv.problems:
        add(ln.number, col, "error", "run-option", f"cronwrap run: {problem}: {effect}")
    for name, value in argv.flags.items():
        opt = OPTIONS_BY_NAME[name]
        try:
            if name == "name" and isinstance(value, str):
                validate_name(value)
            else:
                convert(opt, value)
        except (ValueError, CronwrapError) as err:
            shown = "" if opt.secret else f" {value if isinstance(value, str) else ''}".rstrip()
            add(
                ln.number,
                col,
                "error",
                "run-value",
                f"cronwrap run {opt.flag}{shown}: {err}: cronwrap leaves it out at every run",
            )
    if run.name is None:
        add(
            ln.number,
            col,
            "info",
            "no-name",
            "cronwrap run without --name: the job gets a derived name that changes when the "
            "command changes; add --name NAME",
        )
