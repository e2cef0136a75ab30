"""rich output for status and history. Imported only by the CLI."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cronwrap.humanize import relative

UTC = timezone.utc


def console(*, stderr: bool = False, color: str = "auto") -> Console:
    """NO_COLOR/FORCE_COLOR are honoured by rich; --color beats them; no TTY means plain."""
    kwargs: dict[str, Any] = {"stderr": stderr, "highlight": False}
    if color == "never":
        kwargs["no_color"] = True
    elif color == "always":
        kwargs["force_terminal"] = True
    return Console(**kwargs)


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
