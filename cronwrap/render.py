"""rich output for explain, lint, status and history. Imported only by the CLI."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from cronwrap.explain import Explanation

UTC = timezone.utc


def console(*, stderr: bool = False, color: str = "auto") -> Console:
    """NO_COLOR/FORCE_COLOR are honoured by rich; --color beats them; no TTY means plain."""
    kwargs: dict[str, Any] = {"stderr": stderr, "highlight": False}
    if color == "never":
        kwargs["no_color"] = True
    elif color == "always":
        kwargs["force_terminal"] = True
    return Console(**kwargs)


def span(seconds: float) -> str:
    """A short span like systemd's: 42s, 5min, 3h 2min, 2 days 4h."""
    s = abs(int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h {m}min" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d} day{'s' if d != 1 else ''} {h}h" if h else f"{d} day{'s' if d != 1 else ''}"


def relative(at: datetime, now: datetime) -> str:
    delta = (at - now).total_seconds()
    return f"in {span(delta)}" if delta >= 0 else f"{span(delta)} ago"


def stamp(at: datetime) -> str:
    return at.strftime("%a %Y-%m-%d %H:%M %Z")


def render_explanation(con: Console, x: Explanation, now: datetime) -> None:
    s = x.schedule
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right", style="bold")
    grid.add_column()
    grid.add_row("Expression:", s.text.strip())
    if s.macro and not s.reboot:
        grid.add_row("Expands to:", s.expression)
    grid.add_row("Meaning:", Text(x.description))
    if not s.reboot:
        if s.day_rule == "or":
            rule = "OR: either day field is enough"
        elif s.dom.full and s.dow.full:
            rule = "every day"
        elif s.dom.full or s.dow.full:
            rule = f"{'day-of-week' if s.dom.full else 'day-of-month'} only (the other is *)"
        else:
            rule = "AND: both day fields must match (one starts with *)"
        grid.add_row("Day rule:", rule)
        cls = (
            "wildcard job (runs on the wall clock on DST nights)"
            if s.wildcard
            else "fixed-time job (DST-protected by cron)"
        )
        grid.add_row("DST class:", cls)
        grid.add_row("Time zone:", x.tz)
    if x.command is not None:
        grid.add_row("Command:", Text(x.command))
    con.print(grid)
    if x.fields:
        table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
        for col in ("field", "text", "meaning"):
            table.add_column(col)
        for row in x.fields:
            table.add_row(str(row["field"]), str(row["text"]), Text(str(row["meaning"])))
        con.print(table)
    if x.next_runs:
        con.print(Text("Next runs:", style="bold"))
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 2))
        for _ in range(3):
            table.add_column()
        for at in x.next_runs:
            table.add_row(stamp(at), "(" + stamp(at.astimezone(UTC)) + ")", relative(at, now))
        con.print(table)
    if x.dst_notes:
        con.print(Text("DST in the next 12 months:", style="bold"))
        for note in x.dst_notes:
            con.print(Text("  - " + note.message))
    if x.warnings:
        con.print(Text("Warnings:", style="bold"))
        for w in x.warnings:
            style = {"error": "red", "warning": "yellow"}.get(w.severity, "cyan")
            line = Text("  ")
            line.append(f"{w.severity}", style=style)
            line.append(f" [{w.code}] {w.message}")
            con.print(line)
            if w.fix:
                con.print(Text(f"      fix: {w.fix}"))
