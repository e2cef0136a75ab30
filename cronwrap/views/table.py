"""Plain-text tables with optional ANSI colour, for `status`, `history` and `explain`. No
table library: `status` must stay quick with hundreds of jobs (rich cost ~40 ms of import and
about a millisecond per row). Colour only on a terminal, honouring NO_COLOR, FORCE_COLOR and
--color."""

from __future__ import annotations

import os
from datetime import datetime, tzinfo
from itertools import islice

from cronwrap.views.humanize import duration, printable, relative

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Iterable
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
    """COLUMNS, else the terminal's width; 0 (no limit) when the output is not a terminal:
    piped output is for grep and mail, and cutting it would lose what it says."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if not stream.isatty():
            return 0
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


KEEP = "\x00"  # a space that cell wrapping never breaks at; printed as a plain space
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
        # cells wrap between words; a fold column may also break a word that is wider than
        # the column (at - . _ / when it can), the others stay as wide as their longest word
        self.fold = fold


def _longest(texts: Iterable[str], *, groups: bool) -> int:
    """The longest unit of the texts: a group (words joined by KEEP) or a single word."""
    # each distinct text once: thousands of rows share a few schedules, results, durations
    return max(
        (len(w) for t in set(texts) for w in (t.split(" ") if groups else _words(t))), default=0
    )


def _words(text: str) -> list[str]:
    return text.replace(KEEP, " ").split(" ")


def _fit(cols: list[_Col], texts: list[set[str]], width: int) -> list[int]:
    """Column widths: natural sizes, capped, then the widest shrunk until the row fits
    (width 0: no limit). Shrinking keeps every group of words whole (a cron expression, a
    time) while it can, and never breaks a word except in a fold column. `texts`: each
    column's distinct texts."""
    natural = [max([len(c.header), *map(len, texts[i])]) for i, c in enumerate(cols)]
    if not width:
        return natural
    widths = [min(c.max, n) for c, n in zip(cols, natural, strict=True)]
    least = [max(c.min, len(c.header)) for c in cols]  # never narrower than the header
    words = [max(least[i], _longest(texts[i], groups=False)) for i in range(len(cols))]
    groups = [max(words[i], _longest(texts[i], groups=True)) for i in range(len(cols))]
    # a fold column (a job name) breaks at its - . _ marks before another column's group of
    # words (a cron expression) is split
    floors = (
        [least[i] if c.fold else groups[i] for i, c in enumerate(cols)],
        [least[i] if c.fold else words[i] for i, c in enumerate(cols)],
    )
    widths = [max(w, f) for w, f in zip(widths, floors[1], strict=True)]
    gaps = 2 * (len(cols) - 1)
    for floor in floors:
        while (excess := sum(widths) + gaps - width) > 0:
            shrinkable = [i for i, w in enumerate(widths) if w > floor[i]]
            if not shrinkable:
                break
            first = min(cols[i].shrink for i in shrinkable)
            group = [i for i in shrinkable if cols[i].shrink == first]
            widest = max(group, key=lambda i: widths[i])  # the first of the widest
            # one column at a time, the widest of the group, until it is no longer the
            # widest: taken at once, as the steps of one would take it
            others = [widths[i] for i in group if i != widest]
            step = min(excess, widths[widest] - floor[widest])
            if others:
                step = min(step, max(1, widths[widest] - max(others)))
            widths[widest] -= step
    return widths


def _cell_lines(text: str, width: int, fold: bool) -> list[str]:
    """The cell's text on lines of at most `width`, wrapped between words (a KEEP group
    only when it does not fit on a line of its own)."""
    if len(text) <= width:
        return [text]
    pieces: list[tuple[str, str]] = []  # (the separator before it, a unit to place)
    for group in text.split(" "):
        if len(group) <= width:
            pieces.append((" ", group))
        else:
            pieces += [(" " if n == 0 else KEEP, w) for n, w in enumerate(group.split(KEEP))]
    lines: list[str] = []
    line = ""
    for sep, word in pieces:
        while len(word) > width:  # only in a fold column: break the word, at a mark if any
            room = width - len(line) - (1 if line else 0)
            if room < 2 and line:
                lines.append(line)
                line, room = "", width
            cut = max((word.rfind(m, 0, room) + 1 for m in "-._/:"), default=0) or room
            lines.append((line + sep if line else "") + word[:cut])
            line, word = "", word[cut:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += sep + word
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return [ln for ln in lines if ln] or [""]


def render_table(
    cols: list[_Col], rows: list[list[tuple[str, str]]], *, width: int, color: bool, terminal: bool
) -> list[str]:
    """The lines of a table: a bold header, a rule on a terminal, then the rows, whose cells are
    (text, style) pairs; columns shrink to fit width (0: no limit), wrapped between words.
    Cells hold stored text (names, host ids, reasons): made printable here, once for all.
    Thousands of rows share a few cells per column (schedules, results, times), so each
    distinct cell is made printable, wrapped and padded once."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in cols]
    distinct = [set(column) for column in columns]
    clean: dict[str, str] = {}
    for unique in distinct:
        for text, _ in unique:
            if text not in clean:
                clean[text] = printable(text, keep=KEEP)
    widths = _fit(cols, [{clean[t] for t, _ in unique} for unique in distinct], width)
    header = "  ".join(c.header.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()
    out = [paint(header, "bold", color=color)]
    if terminal:
        out.append(paint("─" * min(width, sum(widths) + 2 * (len(cols) - 1)), "dim", color=color))
    last = len(cols) - 1
    drawn_columns, drawn_cells = [], []
    for i, column in enumerate(columns):
        # the cell's lines as they stand in the row, the last column unpadded
        drawn = {
            (text, style): _draw_cell(
                clean[text], style, widths[i], cols[i].fold, color=color, pad=i < last
            )
            for text, style in distinct[i]
        }
        drawn_columns.append([drawn[cell] for cell in column])
        drawn_cells.append(drawn.values())
    # each row as tall as its tallest cell: every distinct cell is padded once with blank
    # lines to the tallest of all, and each row takes as many lines as it needs (a row of
    # cells padded per row was a third of drawing 5,000 rows)
    heights = list(map(max, zip(*[list(map(len, c)) for c in drawn_columns], strict=True)))
    tallest = max(heights, default=1)
    for i, cells in enumerate(drawn_cells):
        blank = " " * widths[i] if i < last else ""
        for lines in cells:
            lines += [blank] * (tallest - len(lines))
    for row, height in zip(zip(*drawn_columns, strict=True), heights, strict=True):
        out += map(str.rstrip, map("  ".join, islice(zip(*row, strict=True), height)))
    return out


def _draw_cell(
    text: str, style: str, width: int, fold: bool, *, color: bool, pad: bool
) -> list[str]:
    """A cell's lines as they stand in the row: wrapped to `width`, KEEP printed as a space,
    painted when `color` and padded to the width (outside the colour: escape codes take no
    room), except in the last column."""
    lines = [text] if len(text) <= width else _cell_lines(text, width, fold)
    out = []
    for line in lines:
        part = line.replace(KEEP, " ")
        if not color:
            out.append(part.ljust(width) if pad else part)
            continue
        painted = paint(part, style, color=color)
        out.append(painted + " " * (width - len(part)) if pad else painted)
    return out


def render_status(
    jobs: list[Any], now: datetime, *, width: int, color: bool, terminal: bool
) -> str:
    """The status table, one row per job, and a count of those that need attention."""
    wide = width >= 140
    fleet = any(getattr(s, "host", None) for s in jobs)  # a fleet view: one row per host's job
    cols = [
        _Col(
            "NAME",
            min=min(12, max((len(s.name) for s in jobs), default=4)),
            max=40 if wide else 24,
            fold=True,
            shrink=2,
        ),
        *([_Col("HOST", min=4, max=24, shrink=2)] if fleet else []),
        _Col("SCHEDULE", min=9, max=60 if wide else 14, shrink=1),
        _Col("LAST RUN", max=24),
        # a result is read whole: the name column gives up its width first
        _Col(
            "RESULT",
            min=min(max((len(s.result) + 2 for s in jobs), default=8), 28 if wide else 19),
            max=28 if wide else 19,
        ),
        _Col("DURATION", max=24),
        _Col("NEXT RUN", max=32),
    ]
    if wide and not fleet:
        cols.append(_Col("HOST", max=20))
    any_notes = any(
        s.missed
        or s.schedule_error
        or s.unmonitored
        or s.zone_note
        or s.tz_warning
        or s.state == "unknown"
        or s.degraded
        or _flags(s)
        for s in jobs
    )
    if any_notes:
        cols.append(_Col("NOTE", min=8, max=30, shrink=3))
    draw = _StatusRows(now, wide=wide, notes=any_notes, fleet=fleet)
    rows = [draw(st) for st in jobs]
    out = render_table(cols, rows, width=width, color=color, terminal=terminal)
    failing = sum(1 for s in jobs if not s.healthy and s.state != "unknown")
    unknown = sum(1 for s in jobs if s.state == "unknown")
    out.append(
        f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} listed"
        + (f", {failing} need attention" if failing else "")
        + (f", {unknown} unknown" if unknown else "")
        + "."
    )
    dead = [(s.name, s.dead_letters) for s in jobs if getattr(s, "dead_letters", 0)]
    if dead:
        import textwrap

        total = sum(n for _, n in dead)
        per_job = ", ".join(f"{printable(name)} {n}" for name, n in dead)
        note = f"{total} failed run{'s' if total != 1 else ''} not resolved ({per_job}):"
        wrap_at = max(20, width) if width else 10_000  # width 0: not a terminal, no limit
        for line in textwrap.wrap(f"{note} see cronwrap failed", wrap_at):
            out.append(paint(line, "bold red", color=color))
    for reason in dict.fromkeys(s.reason for s in jobs if s.state == "unknown" and s.reason):
        out.append(paint(f"unknown: {printable(reason)}", "bold red", color=color))
    out.append("")  # the last newline, in the one join (the table of thousands is a megabyte)
    return "\n".join(out)


def render_history(
    runs: list[Any],
    now: datetime,
    *,
    width: int,
    color: bool,
    terminal: bool,
    states: list[Any] | None = None,
    show_job: bool = False,
) -> str:
    """Runs, newest first; `states` are their views.runstate states (a dead cronwrap's row
    still says running), `show_job` adds the job's name for the runs of every job."""
    from cronwrap.views.runstate import result_text

    cols = [
        _Col("STARTED", max=40, fold=True),
        _Col("DURATION"),
        _Col("RESULT", max=30),
        _Col("ATTEMPTS"),
        _Col("EXIT"),
        _Col("HOST", max=30, shrink=1),
        _Col("RUN ID"),
    ]
    if show_job:
        cols.insert(0, _Col("JOB", max=40, fold=True, shrink=2))
    clock = _Clock()
    rows = []
    for n, r in enumerate(runs):
        state = states[n] if states is not None else None
        result = str(r.status)
        if state is not None and state.value != "success":  # history says success, not ok
            result = result_text(r, state)
        style = STATE_STYLE.get(_STATE_OF_RUN.get(state.value if state else r.status, ""), "")
        started = f"{clock(r.started_at, seconds=True)} ({relative(r.started_at, now)})"
        row = [
            (started, ""),
            (short_duration(r.duration_s), ""),
            (result, style),
            (str(r.attempts), ""),
            ("-" if r.exit_code is None else str(r.exit_code), ""),
            (r.host, ""),
            (r.run_id[:8], ""),
        ]
        if show_job:
            row.insert(0, (r.job, ""))
        rows.append(row)
    return "\n".join(render_table(cols, rows, width=width, color=color, terminal=terminal)) + "\n"


# a run's state -> the status-table state whose colour it takes
_STATE_OF_RUN = {
    "success": "ok",
    "running": "running",
    "skipped": "skipped",
    "ran-elsewhere": "skipped",
    "not-run": "failing",
    "failed": "failing",
    "timeout": "failing",
    "crashed": "failing",
    "cancelled": "failing",
    "error": "failing",
}


def local_time(at: datetime, *, seconds: bool = False, tz: tzinfo | None = None) -> str:
    """An instant on this host's clock (or `tz`), with the zone: the one rule for every
    absolute time in the tables (cron fires jobs on this clock, unless a cronie CRON_TZ says
    otherwise)."""
    if tz is None:
        from cronwrap.cron.schedule import local_zone

        tz = local_zone()
    fmt = "%Y-%m-%d %H:%M:%S %Z" if seconds else "%a %H:%M %Z"
    return at.astimezone(tz).strftime(fmt)


class _Clock:
    """local_time for one table: the host's zone found once (not once per cell), and each
    instant drawn once (thousands of jobs share a few next-run times)."""

    __slots__ = ("drawn", "tz")

    def __init__(self) -> None:
        from cronwrap.cron.schedule import local_zone

        self.tz = local_zone()
        self.drawn: dict[tuple[datetime, int, bool], str] = {}

    def __call__(self, at: datetime, *, seconds: bool = False) -> str:
        # keyed by the instant: aware datetimes of two zones compare as instants, but of one
        # zone by wall time, so the fold tells the two passes of a repeated hour apart (not
        # at.timestamp(), which costs a utcoffset call each time; a hash is kept)
        key = (at, at.fold, seconds)
        text = self.drawn.get(key)
        if text is None:
            text = self.drawn[key] = local_time(at, seconds=seconds, tz=self.tz)
        return text


def _flags(st: Any) -> list[str]:
    """Marks on the last run: slow, max-runtime, lock-lost."""
    flags = getattr(st.last, "flags", None) if st.last is not None else None
    return flags.split() if flags else []


def _whole(text: str) -> str:
    """Text the table wraps as one word (a cron expression, "in 3h", a time)."""
    return text.replace(" ", KEEP)


class _StatusRows:
    """The cells of status rows, for one table: what thousands of jobs share (a relative
    time, a drawn instant, a duration) is worked out once."""

    __slots__ = ("cap", "clock", "durations", "fleet", "notes", "now", "relative", "sparks", "wide")

    def __init__(self, now: datetime, *, wide: bool, notes: bool, fleet: bool) -> None:
        self.now, self.wide, self.notes, self.fleet = now, wide, notes, fleet
        self.clock = _Clock()
        self.relative: dict[tuple[datetime, int], str] = {}  # instant -> "in 8m", "6 years ago"
        self.durations: dict[float, str] = {}  # seconds -> "2s", "1m5s"
        self.sparks: dict[tuple[float, ...], str] = {}  # durations -> their sparkline
        from cronwrap.views.status import MISSED_COUNT_CAP

        self.cap = MISSED_COUNT_CAP

    def _when(self, at: datetime) -> str:
        """A time as the LAST RUN and NEXT RUN cells show it."""
        key = (at, at.fold)  # the instant, as _Clock keys it
        text = self.relative.get(key)
        if text is None:
            text = _whole(relative(at, self.now))
            if self.wide:
                text += f" ({_whole(self.clock(at))})"
            self.relative[key] = text
        return text

    def _duration(self, seconds: float | None) -> str:
        """short_duration, once per distinct number (not 0: -0.0 equals it and writes apart;
        floats only: 2 and 2.0 are equal too)."""
        if type(seconds) is not float or not seconds:
            return short_duration(seconds)
        text = self.durations.get(seconds)
        if text is None:
            text = self.durations[seconds] = short_duration(seconds)
        return text

    def __call__(self, st: Any) -> list[tuple[str, str]]:
        wide = self.wide
        sched = _whole(st.schedule or "-")
        if wide and st.description:
            sched = f"{sched}  {st.description}"
        last_run = st.last
        result = f"{STATE_SYMBOL.get(st.state, '')}{KEEP}{st.result}"
        dur = self._duration(last_run.duration_s if last_run is not None else None)
        if wide and len(st.durations) > 1:
            key = tuple(st.durations)  # equal numbers draw the same bars
            spark = self.sparks.get(key)
            if spark is None:
                spark = self.sparks[key] = sparkline(st.durations)
            dur = f"{dur} {spark}"
        row = [
            (st.name, ""),
            *([(st.host or "-", "")] if self.fleet else []),
            (sched, ""),
            (self._when(last_run.started_at) if last_run is not None else "-", ""),
            (result, STATE_STYLE.get(st.state, "")),
            (dur, ""),
            (self._when(st.next_run) if st.next_run is not None else "-", ""),
        ]
        if wide and not self.fleet:
            row.append((last_run.host if last_run is not None else "-", ""))
        if self.notes:
            row.append(self._note(st))
        return row

    def _note(self, st: Any) -> tuple[str, str]:
        parts = []
        if st.missed and st.missed_first is not None:
            first = _whole(self.clock(st.missed_first))
            count = f"{st.missed_count}{'+' if st.missed_count >= self.cap else ''}"
            parts.append(
                f"MISSED {first}" if st.missed_count == 1 else f"MISSED {count} since {first}"
            )
        if st.state == "unknown":
            parts.append("UNKNOWN (reason below)")
        if st.schedule_error:
            parts.append("bad schedule")
        if st.unmonitored:
            parts.append("not wrapped")
        if st.zone_note:
            parts.append("zone differs from Healthchecks")
        if st.tz_warning:
            parts.append("tz is not cron's zone")
        parts += _flags(st)
        degraded = st.degraded
        if degraded:
            parts.append(f"DEGRADED: {st.warnings[0]}")
        alarm = st.missed or st.schedule_error or st.state == "unknown" or degraded
        return ("; ".join(parts), "bold red" if alarm else "dim")
