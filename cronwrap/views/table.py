"""Plain-text tables with optional ANSI colour, for `status`, `history` and `explain`. No
table library: `status` must stay quick with hundreds of jobs (rich cost ~40 ms of import and
about a millisecond per row). Colour only on a terminal, honouring NO_COLOR, FORCE_COLOR and
--color."""

from __future__ import annotations

import os
from datetime import datetime

from cronwrap.views.humanize import duration, relative

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from typing import Any, TextIO

STYLES = {
    "bold": "1",
    "red": "31",
    "yellow": "33",
    "cyan": "36",
    "dim": "2",
    "green": "32",
    "bold red": "1;31",
}


def use_color(choice: str, stream: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty()


def paint(text: str, style: str, *, color: bool) -> str:
    if not color or not style or not text:
        return text
    return f"\x1b[{STYLES[style]}m{text}\x1b[0m"


def terminal_width(stream: TextIO) -> int:
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80


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
    return "-" if seconds is None else duration(seconds)


class _Col:
    __slots__ = ("fold", "header", "max", "min", "shrink")

    def __init__(
        self, header: str, *, min: int = 0, max: int = 200, fold: bool = False, shrink: int = 9
    ) -> None:
        self.header = header
        self.shrink = shrink  # columns with a lower number give up their width first
        self.min = min or len(header)
        self.max = max
        self.fold = fold  # wrap onto more lines instead of cutting with an ellipsis


def _fit(cols: list[_Col], rows: list[list[tuple[str, str]]], width: int) -> list[int]:
    """Column widths: natural sizes, capped, then the widest shrunk until the row fits."""
    widths = [
        min(c.max, max([len(c.header)] + [len(r[i][0]) for r in rows])) for i, c in enumerate(cols)
    ]
    gaps = 2 * (len(cols) - 1)
    while sum(widths) + gaps > width:
        shrinkable = [i for i, w in enumerate(widths) if w > cols[i].min]
        if not shrinkable:
            break
        first = min(cols[i].shrink for i in shrinkable)
        widest = max((i for i in shrinkable if cols[i].shrink == first), key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _cell_lines(text: str, width: int, fold: bool) -> list[str]:
    if len(text) <= width:
        return [text]
    if fold:
        return [text[i : i + width] for i in range(0, len(text), width)]
    return [text[: max(0, width - 1)] + "…"]


def render_table(
    cols: list[_Col], rows: list[list[tuple[str, str]]], *, width: int, color: bool, terminal: bool
) -> list[str]:
    """The lines of a table: a bold header, a rule on a terminal, then the rows, whose cells are
    (text, style) pairs; columns shrink to fit width, cut with an ellipsis or folded."""
    widths = _fit(cols, rows, width)
    header = "  ".join(c.header.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()
    out = [paint(header, "bold", color=color)]
    if terminal:
        out.append(paint("─" * min(width, sum(widths) + 2 * (len(cols) - 1)), "dim", color=color))
    for row in rows:
        cells = [
            _cell_lines(text, w, c.fold) for (text, _), w, c in zip(row, widths, cols, strict=True)
        ]
        for n in range(max(len(c) for c in cells)):
            parts = []
            for i, ((_, style), w) in enumerate(zip(row, widths, strict=True)):
                part = cells[i][n] if n < len(cells[i]) else ""
                last = i == len(row) - 1
                # pad outside the colour so the escape codes do not count as width
                parts.append(
                    paint(part, style, color=color) + ("" if last else " " * (w - len(part)))
                )
            out.append("  ".join(parts).rstrip())
    return out


def render_status(
    jobs: list[Any], now: datetime, *, width: int, color: bool, terminal: bool
) -> str:
    """The status table, one row per job, and a count of those that need attention."""
    wide = width >= 140
    cols = [
        _Col(
            "NAME",
            min=min(12, max((len(s.name) for s in jobs), default=4)),
            max=40 if wide else 24,
            fold=True,
            shrink=2,
        ),
        _Col("SCHEDULE", min=9, max=60 if wide else 14, shrink=1),
        _Col("LAST RUN", max=24),
        _Col("RESULT", min=8, max=28 if wide else 19),
        _Col("DURATION", max=24),
        _Col("NEXT RUN", max=32, fold=True),
    ]
    if wide:
        cols.append(_Col("HOST", max=20))
    any_notes = any(
        s.missed or s.schedule_error or s.unmonitored or s.zone_note or _flags(s) for s in jobs
    )
    if any_notes:
        cols.append(_Col("NOTE", min=8, max=30, fold=True, shrink=3))
    rows = [_status_row(st, now, wide=wide, notes=any_notes) for st in jobs]
    out = render_table(cols, rows, width=width, color=color, terminal=terminal)
    failing = sum(1 for s in jobs if not s.healthy)
    out.append(
        f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} listed"
        + (f", {failing} need attention." if failing else ".")
    )
    dead = [(s.name, s.dead_letters) for s in jobs if getattr(s, "dead_letters", 0)]
    if dead:
        import textwrap

        total = sum(n for _, n in dead)
        per_job = ", ".join(f"{name} {n}" for name, n in dead)
        note = f"{total} failed run{'s' if total != 1 else ''} not resolved ({per_job}):"
        for line in textwrap.wrap(f"{note} see cronwrap failed", max(20, width)):
            out.append(paint(line, "bold red", color=color))
    return "\n".join(out) + "\n"


RESULT_STYLE = {"success": "green", "failed": "bold red", "timeout": "bold red"}


def render_history(
    runs: list[Any], now: datetime, *, width: int, color: bool, terminal: bool
) -> str:
    """The runs of one job, newest first."""
    cols = [
        _Col("STARTED", max=40, fold=True),
        _Col("DURATION"),
        _Col("RESULT", max=30),
        _Col("ATTEMPTS"),
        _Col("EXIT"),
        _Col("HOST", max=30, shrink=1),
        _Col("RUN ID"),
    ]
    rows = []
    for r in runs:
        result = r.status
        if r.status == "failed" and r.signal:
            result = f"failed (signal {r.signal})"
        started = f"{r.started_at.astimezone():%Y-%m-%d %H:%M:%S} ({relative(r.started_at, now)})"
        rows.append(
            [
                (started, ""),
                (short_duration(r.duration_s), ""),
                (result, RESULT_STYLE.get(r.status, "")),
                (str(r.attempts), ""),
                ("-" if r.exit_code is None else str(r.exit_code), ""),
                (r.host, ""),
                (r.run_id[:8], ""),
            ]
        )
    return "\n".join(render_table(cols, rows, width=width, color=color, terminal=terminal)) + "\n"


def _flags(st: Any) -> list[str]:
    """Marks on the last run: slow, max-runtime, lock-lost."""
    flags = getattr(st.last, "flags", None) if st.last is not None else None
    return flags.split() if flags else []


def _status_row(st: Any, now: datetime, *, wide: bool, notes: bool) -> list[tuple[str, str]]:
    sched = st.schedule or "-"
    if wide and st.description:
        sched = f"{sched}  {st.description}"
    last = "-"
    if st.last is not None:
        last = relative(st.last.started_at, now)
        if wide:
            last += f" ({st.last.started_at.astimezone():%a %H:%M})"
    result = f"{STATE_SYMBOL.get(st.state, '')} {st.result}"
    dur = short_duration(st.last.duration_s if st.last else None)
    spark = sparkline(st.durations)
    if spark and wide:
        dur = f"{dur} {spark}"
    nxt = "-"
    if st.next_run is not None:
        nxt = relative(st.next_run, now)
        if wide:
            nxt += f" ({st.next_run:%a %H:%M %Z})"
    row = [
        (st.name, ""),
        (sched, ""),
        (last, ""),
        (result, STATE_STYLE.get(st.state, "")),
        (dur, ""),
        (nxt, ""),
    ]
    if wide:
        row.append((st.last.host if st.last else "-", ""))
    if notes:
        parts = []
        if st.missed and st.expected is not None:
            parts.append(f"MISSED {st.expected:%a %H:%M}")
        if st.schedule_error:
            parts.append("bad schedule")
        if st.unmonitored:
            parts.append("not wrapped")
        if st.zone_note:
            parts.append("zone differs from Healthchecks")
        parts += _flags(st)
        row.append((" ".join(parts), "bold red" if st.missed or st.schedule_error else "dim"))
    return row
