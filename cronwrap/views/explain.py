"""`cronwrap explain` without click: people run it interactively and scripts run it in loops,
so it parses its few options itself and prints aligned plain text (ANSI colour only on a
terminal, honouring NO_COLOR, FORCE_COLOR and --color). The click command in cli/explain.py,
which provides --help and completion, calls `explain_main` with the same values."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone

from cronwrap.errors import CronwrapError, ExitCode, ScheduleError, UsageError
from cronwrap.redact import Redactor
from cronwrap.views import table as view
from cronwrap.views.humanize import printable, relative, stamp

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from typing import Any, TextIO

    from cronwrap.cron.explain import Explanation

UTC = timezone.utc
END_OF_CALENDAR = "No more runs: the calendar ends with the year 9999."
_VALUE_OPTIONS = ("--tz", "--count", "--after", "--color")


def parse_args(args: Sequence[str]) -> dict[str, Any]:
    """The same options as the click command; words that are not options form EXPRESSION."""
    opts: dict[str, Any] = {
        "tz": None,
        "count": 5,
        "after": None,
        "as_json": False,
        "color": "auto",
    }
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            words += args[i + 1 :]
            break
        key, eq, inline = arg.partition("=")
        if key in _VALUE_OPTIONS:
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise UsageError(f"option {key} requires an argument")
            opts[key[2:]] = value
        elif arg == "--json":
            opts["as_json"] = True
        elif arg.startswith("--") or (
            arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit() and arg[1] != "*"
        ):
            raise UsageError(f"no such option: {arg}")
        else:
            words.append(arg)
        i += 1
    if not words:
        raise UsageError("missing argument EXPRESSION")
    try:
        opts["count"] = int(opts["count"])
    except ValueError:
        raise UsageError(f"--count: {opts['count']!r} is not a whole number") from None
    if not 0 <= opts["count"] <= 1000:
        raise UsageError("--count: expected 0 to 1000")
    if opts["color"] not in ("auto", "always", "never"):
        raise UsageError("--color: expected auto, always or never")
    opts["expression"] = " ".join(words)
    return opts


def explain_main(
    expression: str,
    *,
    tz: str | None,
    count: int,
    after: str | None,
    as_json: bool,
    color: str,
    out: TextIO,
) -> None:
    """Explain and print; raises ScheduleError/CronwrapError/UsageError for bad input.
    A leading `CRON_TZ=Zone` (as in a crontab) sets the zone when --tz is not given."""
    from cronwrap.cron.explain import explain
    from cronwrap.cron.schedule import zone, zone_name

    first, _, rest = expression.strip().partition(" ")
    if first.startswith(("CRON_TZ=", "TZ=")) and rest:
        expression = rest
        tz = tz or first.split("=", 1)[1].strip("'\"")

    zone_info = zone(tz)
    now = datetime.now(UTC)
    start = now
    if after:
        try:
            start = datetime.fromisoformat(after)
        except ValueError:
            raise UsageError(f"--after: {after!r} is not an ISO 8601 date-time") from None
        if start.tzinfo is None:  # a wall time in the zone; at fall-back the first pass
            start = start.replace(tzinfo=zone_info)
        try:
            start.astimezone(UTC)
        except OverflowError:
            raise UsageError(
                f"--after: {after!r} in {zone_name(zone_info)} is outside years 1-9999 in UTC"
            ) from None
    x = explain(expression, tz=zone_info, after=start, count=count)
    ended = len(x.next_runs) < count and not x.schedule.reboot
    if as_json:
        doc = to_json(x)
        doc["runs_end"] = END_OF_CALENDAR if ended else None
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        # "in …" counts from now, also when --after starts the list elsewhere
        text = render(x, now, color=view.use_color(color, out))
        if ended:
            text += f"\n{END_OF_CALENDAR}\n"
        out.write(text)


def to_json(x: Explanation) -> dict[str, Any]:
    s = x.schedule
    return {
        "expression": s.text.strip(),
        "macro": s.macro,
        "expanded": s.expression if not s.reboot else None,
        "valid": True,
        "fields": x.fields,
        "day_rule": s.day_rule,
        "dst_class": None if s.reboot else ("wildcard" if s.wildcard else "fixed-time"),
        "description": x.description,
        "tz": x.tz,
        "next_runs": [
            {"at": at.isoformat(), "utc": at.astimezone(UTC).isoformat()} for at in x.next_runs
        ],
        "dst_notes": [
            {"at": n.at.isoformat(), "kind": n.kind, "message": n.message} for n in x.dst_notes
        ],
        "warnings": [
            {"code": w.code, "severity": w.severity, "message": w.message, "fix": w.fix}
            for w in x.warnings
        ],
        "command": Redactor()(x.command),  # an explained crontab line may hold a password
    }


def render(x: Explanation, now: datetime, *, color: bool) -> str:
    def paint(text: str, style: str) -> str:
        return view.paint(text, style, color=color)

    s = x.schedule
    rows: list[tuple[str, str]] = [("Expression", s.text.strip())]
    if s.macro and not s.reboot:
        rows.append(("Expands to", s.expression))
    rows.append(("Meaning", x.description))
    if not s.reboot:
        rows.append(("Day rule", _day_rule(x)))
        rows.append(
            (
                "DST class",
                "wildcard job (runs on the wall clock on DST nights)"
                if s.wildcard
                else "fixed-time job (DST-protected by cron)",
            )
        )
        rows.append(("Time zone", x.tz))
    if x.command is not None:
        rows.append(("Command", Redactor().text(x.command)))
    width = max(len(k) for k, _ in rows) + 1
    # what the crontab line says (its command, a zone) may hold escape sequences: shown, not
    # obeyed by the terminal
    lines = [f"{paint((k + ':').rjust(width), 'bold')} {printable(v)}" for k, v in rows]
    if x.fields:
        table = [("field", "text", "meaning")] + [
            (str(f["field"]), str(f["text"]), str(f["meaning"])) for f in x.fields
        ]
        w0 = max(len(r[0]) for r in table)
        w1 = max(len(r[1]) for r in table)
        lines.append("")
        for n, (a, b, c) in enumerate(table):
            line = f"  {a.ljust(w0)}  {b.ljust(w1)}  {c}"
            lines.append(paint(line, "bold") if n == 0 else line)
    if x.next_runs:
        lines += ["", paint("Next runs:", "bold")]
        cells = [
            (stamp(at), f"({stamp(at.astimezone(UTC))})", relative(at, now)) for at in x.next_runs
        ]
        if all(a == b[1:-1] for a, b, _ in cells):  # the zone is UTC: say it once
            cells = [(a, "", c) for a, _, c in cells]
        w0 = max(len(c[0]) for c in cells)
        w1 = max(len(c[1]) for c in cells)
        lines += [
            "  " + "  ".join(p for p in (a.ljust(w0), b.ljust(w1) if w1 else "", c) if p)
            for a, b, c in cells
        ]
    if x.dst_notes:
        lines += ["", paint("DST in the next 12 months:", "bold")]
        lines += [f"  - {n.message}" for n in x.dst_notes]
    if x.warnings:
        lines += ["", paint("Warnings:", "bold")]
        for w in x.warnings:
            style = {"error": "red", "warning": "yellow"}.get(w.severity, "cyan")
            lines.append(f"  {paint(w.severity, style)} [{w.code}] {w.message}")
            if w.fix:
                lines.append(f"      fix: {w.fix}")
    return "\n".join(lines) + "\n"


def _day_rule(x: Explanation) -> str:
    s = x.schedule
    if s.day_rule == "or":
        return "OR: either day field is enough"
    if s.dom.full and s.dow.full:
        return "every day"
    if s.dom.full or s.dow.full:
        return f"{'day-of-week' if s.dom.full else 'day-of-month'} only (the other is *)"
    return "AND: both day fields must match (one starts with *)"


def main(args: Sequence[str]) -> int:
    """The fast entry: `cronwrap explain ...` -> exit status."""
    try:
        opts = parse_args(args)
    except UsageError as err:
        sys.stderr.write(
            f"Usage: cronwrap explain [OPTIONS] EXPRESSION...\n"
            f"Try 'cronwrap explain --help' for help.\n\nError: {err}\n"
        )
        return ExitCode.USAGE
    expression = opts.pop("expression")
    try:
        explain_main(expression, out=sys.stdout, **opts)
    except UsageError as err:
        sys.stderr.write(f"cronwrap: {printable(str(err))}\n")
        return ExitCode.USAGE
    except ScheduleError as err:
        sys.stderr.write(f"cronwrap: {printable(str(err))}\n")
        caret = err.caret()
        if caret:
            sys.stderr.write(printable(caret, multiline=True) + "\n")
        return err.exit_code
    except CronwrapError as err:
        sys.stderr.write(f"cronwrap: {printable(str(err))}\n")
        return err.exit_code
    return ExitCode.OK
