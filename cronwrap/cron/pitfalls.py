"""Pitfalls of a schedule or a crontab command, as warnings with stable codes (shown by
`explain`, reported by `lint`). Returns values; never prints. Standard library only."""

from __future__ import annotations

import re
import shlex

from cronwrap.cron.explain import MONTH_WORDS, _dom_words, _numbers
from cronwrap.cron.schedule import Schedule


class Warning_:
    """A pitfall: a stable code, what is wrong, and how to fix it."""

    __slots__ = ("code", "fix", "message", "severity")

    def __init__(
        self, code: str, message: str, fix: str | None = None, severity: str = "warning"
    ) -> None:
        self.code = code
        self.message = message
        self.fix = fix
        self.severity = severity  # warning | info | error


def warnings_for(s: Schedule) -> list[Warning_]:
    out: list[Warning_] = []
    if s.reboot:
        out.append(
            Warning_(
                "reboot",
                "@reboot runs when crond starts, not necessarily at boot "
                "and not again on a daemon restart; the network and other services "
                "may not be up yet",
                "add a delay or a readiness check to the command",
                "info",
            )
        )
        return out
    if s.never:
        out.append(
            Warning_(
                "never-fires",
                "no date ever matches: cron accepts this silently and never runs it",
                "check the day-of-month against the months",
                "error",
            )
        )
    out += _time_warnings(s)
    out += _day_warnings(s)
    if re.search(r"(^|[,-])7($|[,/-])", s.dow.text):
        out.append(
            Warning_(
                "dow-7",
                "7 in day-of-week is Sunday (same as 0); some tools do not accept it",
                "write 0 or SUN",
                "info",
            )
        )
    return out


def _time_warnings(s: Schedule) -> list[Warning_]:
    """Pitfalls of the minute and hour fields."""
    out: list[Warning_] = []
    m, h = s.minute, s.hour
    if m.full and not h.full:
        hours = sorted(h.values)
        fix = f"0 {h.text} {s.dom.text} {s.month.text} {s.dow.text}"
        out.append(
            Warning_(
                "every-minute-in-hour",
                f"runs {60 * len(hours)} times (every minute of hour"
                f"{'s' if len(hours) > 1 else ''} {_numbers(hours)})",
                f"did you mean `{fix}`?",
            )
        )
    for f, cycle, unit in ((m, 60, "minute"), (h, 24, "hour")):
        step = _step_of(f.text)
        if step and f.text.startswith("*/") and cycle % step:
            values = sorted(f.values)
            gap = cycle - values[-1] + values[0]
            out.append(
                Warning_(
                    "uneven-step",
                    f"{unit} step {f.text} is uneven across the {unit}'s cycle: "
                    f"{values[-1]} is followed by {values[0]} ({gap} {unit}s later,"
                    f" not {step})",
                    f"use a step that divides {cycle}, or list the values",
                )
            )
    return out


def _day_warnings(s: Schedule) -> list[Warning_]:
    """Pitfalls of the day fields: month-day steps, the OR rule, short months, leap days."""
    out: list[Warning_] = []
    if _step_of(s.dom.text) and s.dom.text.startswith("*/"):
        out.append(
            Warning_(
                "dom-step",
                f"{s.dom.text} in day-of-month means "
                f"{_dom_words(s.dom)}, not every {_step_of(s.dom.text)} days: the "
                "rhythm restarts every month (Jan 31 and Feb 1 both run)",
                "accept the month-end restart, or check the date in the command",
            )
        )
    if s.day_rule == "or":
        out.append(
            Warning_(
                "dom-dow-or",
                "day-of-month and day-of-week are both restricted, "
                "so cron runs on either (OR), not on days that match both",
                "to require both, make one field start with * and test the other "
                'in the command, e.g. [ "$(date +\\%u)" = 5 ]',
                "info",
            )
        )
    elif not s.dom.full and not s.dow.full:
        starred = "day-of-month" if s.dom.star else "day-of-week"
        out.append(
            Warning_(
                "star-and",
                f"the {starred} field starts with `*`, so cron requires "
                "both day fields (AND), unlike the usual OR",
                None,
                "info",
            )
        )
    if not s.never and not s.dom.full and (s.day_rule == "and" or s.dow.full):
        skipped = [
            MONTH_WORDS[mo - 1][:3]
            for mo in sorted(s.month.values)
            if not any(d <= _days_in(mo) for d in s.dom.values)
        ]
        if skipped:
            out.append(
                Warning_(
                    "short-months",
                    f"day {_numbers(sorted(s.dom.values))} does not "
                    f"exist in every month: no run at all in {', '.join(skipped)}",
                    "use a day up to 28, or test for the month's last day in the command",
                )
            )
        if 2 in s.month.values and {d for d in s.dom.values if d <= 29} == {29}:
            out.append(
                Warning_(
                    "leap-day",
                    "in February this runs only on the 29th, so only in "
                    "leap years (8 years apart across 2100)",
                    None,
                    "info",
                )
            )
    return out


def _step_of(text: str) -> int | None:
    m = re.fullmatch(r"[^,]*/(\d{1,19})", text)  # int() stops at 4300 digits
    return int(m.group(1)) if m else None


def _days_in(month: int) -> int:
    return (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]


# ---------------------------------------------------------------------- DST


def command_warnings(command: str) -> list[Warning_]:
    out: list[Warning_] = []
    if re.search(r"(?<!\\)%", command):
        out.append(
            Warning_(
                "percent",
                "an unescaped % in a crontab command is a newline: "
                "everything after it goes to the command's stdin",
                "escape it as \\% (e.g. date +\\%F)",
            )
        )
    try:
        words = shlex.split(command.split("%", maxsplit=1)[0]) if command else []
    except ValueError:
        words = command.split()
    if not words:
        return out
    if (
        "cronwrap" in words[0]
        and "run" in words[1:2]
        and "--name" not in " ".join(words)
        and not any(w.startswith("--name=") for w in words)
    ):
        out.append(
            Warning_(
                "no-name",
                "cronwrap run without --name: the job gets a derived "
                "name that changes when the command changes",
                "add --name NAME",
                "info",
            )
        )
    first = words[0]
    if "=" not in first and "/" not in first and first not in _SHELL_WORDS:
        out.append(
            Warning_(
                "relative-command",
                f"{first!r} is found through cron's minimal PATH (/usr/bin:/bin), not your shell's",
                f"use the full path (e.g. $(command -v {first})) or set PATH= in the crontab",
                "info",
            )
        )
    return out


_SHELL_WORDS = {
    "cd",
    "test",
    "[",
    "echo",
    "true",
    "false",
    "exec",
    "if",
    "for",
    "while",
    "sleep",
    "sh",
    "bash",
    "date",
    "printf",
    "cat",
    "env",
}
