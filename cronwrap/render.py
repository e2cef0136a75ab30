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


SPARKS = "▁▂▃▄▅▆▇█"
STATE_STYLE = {
    "ok": "green",
    "failing": "bold red",
    "running": "cyan",
    "skipped": "yellow",
    "never": "dim",
    "unmonitored": "dim",
}
STATE_SYMBOL = {
    "ok": "✓",
    "failing": "✗",
    "running": "▶",
    "skipped": "↷",
    "never": "·",
    "unmonitored": "?",
}


def sparkline(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[int((v - lo) / (hi - lo) * (len(SPARKS) - 1))] for v in values)


def short_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    from cronwrap.config import format_duration

    return format_duration(seconds)


def render_status(con: Console, jobs: list[Any], now: datetime) -> None:
    wide = con.width >= 140
    plain = not con.is_terminal
    table = Table(
        box=None if plain else box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        header_style="bold",
        expand=False,
        padding=(0, 1) if wide else (0, 1, 0, 0),
    )
    longest = max((len(s.name) for s in jobs), default=4)
    table.add_column(
        "NAME", overflow="fold", min_width=min(longest, 14), max_width=40 if wide else 24
    )
    table.add_column("SCHEDULE", overflow="ellipsis", no_wrap=True, max_width=44 if wide else 14)
    table.add_column("LAST RUN", no_wrap=True)
    table.add_column("RESULT", no_wrap=True, overflow="ellipsis", max_width=28 if wide else 19)
    table.add_column("DURATION", no_wrap=True)
    table.add_column("NEXT RUN", no_wrap=wide, overflow="fold")
    if wide:
        table.add_column("HOST", no_wrap=True, overflow="ellipsis", max_width=20)
    any_notes = any(s.missed or s.schedule_error or s.unmonitored for s in jobs)
    if any_notes:
        table.add_column("NOTE", overflow="fold", min_width=8)
    for st in jobs:
        sched = st.schedule or "-"
        if wide and st.description:
            sched = f"{sched}  {st.description}"
        last = "-"
        if st.last is not None:
            last = relative(st.last.started_at, now)
            if wide:
                last += f" ({st.last.started_at.astimezone():%a %H:%M})"
        symbol = STATE_SYMBOL.get(st.state, "")
        result = Text(f"{symbol} {st.result}", style=STATE_STYLE.get(st.state, ""))
        dur = short_duration(st.last.duration_s if st.last else None)
        spark = sparkline(st.durations)
        if spark and wide:
            dur = f"{dur} {spark}"
        nxt = "-"
        if st.next_run is not None:
            nxt = relative(st.next_run, now)
            if wide:
                nxt += f" ({st.next_run:%a %H:%M %Z})"
        row: list[Any] = [st.name, sched, last, result, dur, nxt]
        if wide:
            row.append(st.last.host if st.last else "-")
        if any_notes:
            notes = []
            if st.missed and st.expected is not None:
                notes.append(Text(f"MISSED {st.expected:%a %H:%M}", style="bold red"))
            if st.schedule_error:
                notes.append(Text("bad schedule", style="red"))
            if st.unmonitored:
                notes.append(Text("not wrapped", style="dim"))
            row.append(Text(" ").join(notes))
        table.add_row(*row)
    con.print(table)
    failing = sum(1 for s in jobs if not s.healthy)
    con.print(
        f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} listed"
        + (f", {failing} need attention." if failing else ".")
    )


def render_history(con: Console, runs: list[Any], now: datetime) -> None:
    plain = not con.is_terminal
    table = Table(
        box=None if plain else box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold"
    )
    for col in ("STARTED", "DURATION", "RESULT", "ATTEMPTS", "EXIT", "HOST", "RUN ID"):
        table.add_column(col, no_wrap=True)
    for r in runs:
        table.add_row(
            f"{r.started_at.astimezone():%Y-%m-%d %H:%M:%S} ({relative(r.started_at, now)})",
            short_duration(r.duration_s),
            r.status
            if r.status != "failed"
            else f"failed{f' (signal {r.signal})' if r.signal else ''}",
            str(r.attempts),
            "-" if r.exit_code is None else str(r.exit_code),
            r.host,
            r.run_id[:8],
        )
    con.print(table)
