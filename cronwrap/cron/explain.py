"""What a schedule means, in words: the sentence, the field table, next runs, DST notes and
the pitfalls (cron/pitfalls.py). Returns values; never prints. Standard library only."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo

from cronwrap.cron.schedule import (
    CORRECTION,
    DAY_NAMES,
    MONTH_NAMES,
    Field,
    Schedule,
    parse,
    zone_name,
)
from cronwrap.errors import ScheduleError

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from cronwrap.cron.pitfalls import Warning_

UTC = timezone.utc
DAY_WORDS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTH_WORDS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class DstNote:
    """What one clock change does to the schedule."""

    __slots__ = ("at", "kind", "message")

    def __init__(self, at: datetime, kind: str, message: str) -> None:
        self.at = at  # the transition instant
        self.kind = kind  # "forward" | "back"
        self.message = message


class Explanation:
    """Everything `explain` shows (plain class: explain must start fast)."""

    __slots__ = (
        "command",
        "description",
        "dst_notes",
        "fields",
        "next_runs",
        "schedule",
        "tz",
        "warnings",
    )

    def __init__(
        self,
        *,
        schedule: Schedule,
        description: str,
        tz: str,
        next_runs: list[datetime],
        dst_notes: list[DstNote],
        warnings: list[Warning_],
        command: str | None = None,
        fields: list[dict[str, object]] | None = None,
    ) -> None:
        self.schedule = schedule
        self.description = description
        self.tz = tz
        self.next_runs = next_runs
        self.dst_notes = dst_notes
        self.warnings = warnings
        self.command = command
        self.fields = fields or []


# ---------------------------------------------------------------------- words


def _join(words: list[str], last: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + f" {last} " + words[-1]


def _runs(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def _numbers(values: list[int], fmt: Callable[[int], str] = str) -> str:
    """Name the values: '0, 7, …, 56' for long progressions, '9-17' for runs, else a list."""
    if len(values) > 4:
        steps = {b - a for a, b in itertools.pairwise(values)}
        if len(steps) == 1 and steps != {1}:
            return f"{fmt(values[0])}, {fmt(values[1])}, …, {fmt(values[-1])}"
    parts = [
        fmt(a) if a == b else f"{fmt(a)}-{fmt(b)}" if b > a + 1 else f"{fmt(a)}, {fmt(b)}"
        for a, b in _runs(values)
    ]
    return _join(parts)


def _time_part(s: Schedule) -> str:
    minutes = sorted(s.minute.values)
    hours = sorted(s.hour.values)
    all_min, all_hr = s.minute.full, s.hour.full
    if all_min and all_hr:
        return "every minute"
    if all_min:
        if len(hours) == 1:
            return f"every minute from {hours[0]:02d}:00 through {hours[0]:02d}:59"
        return f"every minute of hours {_numbers(hours)}"
    if all_hr:
        if len(minutes) == 1:
            return f"at minute {minutes[0]} of every hour"
        return f"at minutes {_numbers(minutes)} of every hour"
    if len(hours) * len(minutes) <= 6:
        return "at " + _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    if len(minutes) == 1:
        return f"at minute {minutes[0]} of hours {_numbers(hours)}"
    return f"at minutes {_numbers(minutes)} of hours {_numbers(hours)}"


def _dom_words(f: Field) -> str:
    values = sorted(f.values)
    if values == list(range(1, 32, 2)):
        return "odd-numbered days of the month (1, 3, …, 31)"
    if values == list(range(2, 31, 2)):
        return "even-numbered days of the month (2, 4, …, 30)"
    if len(values) == 1:
        return f"day {values[0]} of the month"
    return f"days {_numbers(values)} of the month"


def _dow_words(f: Field, *, plural: bool = True) -> str:
    values = sorted(f.values)
    if len(values) == 1:
        return DAY_WORDS[values[0]] + ("s" if plural else "")
    runs = _runs(values)
    if len(runs) == 1 and len(values) > 2:
        return f"{DAY_WORDS[values[0]]} through {DAY_WORDS[values[-1]]}"
    return _join([DAY_WORDS[v] + ("s" if plural else "") for v in values])


def _month_part(f: Field) -> str:
    if f.full:
        return ""
    values = sorted(f.values)
    runs = _runs(values)
    if len(runs) == 1 and len(values) > 2:
        return f" in {MONTH_WORDS[values[0] - 1]} through {MONTH_WORDS[values[-1] - 1]}"
    return " in " + _join([MONTH_WORDS[v - 1] for v in values])


def _day_part(s: Schedule) -> str:
    dom, dow = s.dom, s.dow
    if s.day_rule == "or":
        return (
            f"on {_dom_words(dom)} or on any {_dow_words(dow, plural=False)} (cron runs on "
            f"either; it does not mean {_dow_words(dow, plural=False)} the "
            f"{_ordinal_list(dom)})"
        )
    # AND: a field that starts with '*' but covers everything adds no condition
    dom_all, dow_all = dom.full, dow.full
    if dom_all and dow_all:
        return "every day"
    if dow_all:
        return f"on {_dom_words(dom)}"
    if dom_all:
        return f"on {_dow_words(dow)}"
    starred = "day-of-month" if dom.star else "day-of-week"
    values = sorted(dom.values)
    if values == list(range(1, 32, 2)):
        which = "that are odd days of the month"
    elif values == list(range(2, 31, 2)):
        which = "that are even days of the month"
    else:
        which = f"that fall on {_dom_words(dom)}"
    return (
        f"on {_dow_words(dow)} {which} (the {starred} field starts with `*`, so cron requires both)"
    )


def _ordinal_list(f: Field) -> str:
    values = sorted(f.values)
    words = [_ordinal(v) for v in values[:3]]
    return _join(words, "or") + (" …" if len(values) > 3 else "")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe(s: Schedule) -> str:
    """The plain-words sentence for a schedule."""
    if s.reboot:
        return "once when the cron daemon starts (@reboot), not at a clock time"
    if s.never:
        return "never: no date matches this expression"
    day = _day_part(s)
    text = (
        _time_part(s)
        if day == "every day" and s.minute.full and s.hour.full
        else f"{_time_part(s)} {day}"
    )
    return text[0].upper() + text[1:] + _month_part(s.month)


def field_table(s: Schedule) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for f in s.fields:
        values = sorted(f.values)
        if f.spec.name == "month":
            shown = (
                ", ".join(MONTH_NAMES[v - 1].upper() for v in values)
                if not f.full
                else "every month"
            )
        elif f.spec.name == "day-of-week":
            shown = (
                ", ".join(DAY_NAMES[v].upper() for v in values)
                if not f.full
                else "every day of the week"
            )
        else:
            shown = _numbers(values) if not f.full else f"every {f.spec.name}"
        rows.append(
            {
                "field": f.spec.name,
                "text": f.text,
                "values": values,
                "meaning": shown,
                "star": f.star,
            }
        )
    return rows


# ---------------------------------------------------------------------- warnings


def transitions(
    tz: tzinfo, start: datetime, end: datetime
) -> list[tuple[datetime, timedelta, timedelta]]:
    """(instant, offset before, offset after) for each offset change in [start, end)."""
    out = []
    step = timedelta(hours=6)
    t = start.astimezone(UTC)
    prev = t.astimezone(tz).utcoffset() or timedelta(0)
    while t < end:
        nxt = t + step
        off = nxt.astimezone(tz).utcoffset() or timedelta(0)
        if off != prev:
            lo, hi = t, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            out.append((hi.replace(microsecond=0), prev, off))
            prev = off
        t = nxt
    return out


def dst_notes(s: Schedule, tz: tzinfo, after: datetime, *, months: int = 12) -> list[DstNote]:
    """Each transition in the next `months` that changes when this schedule runs, in words."""
    if s.reboot or s.never:
        return []
    notes = []
    try:
        end = after + timedelta(days=months * 31)
    except OverflowError:  # --after near the end of year 9999
        end = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)
    for instant, before, after_off in transitions(tz, after, end):
        delta = after_off - before
        local_before = (instant + before).replace(tzinfo=None)  # wall clock at the jump
        day = local_before.date()
        if not s.matches_day(day) or day.month not in s.month.values:
            continue
        window_start = local_before if delta > timedelta(0) else local_before + delta
        window_end = window_start + abs(delta)
        hit = [
            (h, m)
            for h in sorted(s.hour.values)
            for m in sorted(s.minute.values)
            if window_start <= datetime(day.year, day.month, day.day, h, m) < window_end
        ]
        if not hit:
            continue
        span = f"{window_start:%H:%M}-{window_end:%H:%M}"
        times = _join([f"{h:02d}:{m:02d}" for h, m in hit[:4]]) + (" …" if len(hit) > 4 else "")
        if abs(delta) >= CORRECTION:
            hours = abs(delta) / timedelta(hours=1)
            msg = (
                f"{day}: the zone's clock jumps {'forward' if delta > timedelta(0) else 'back'}"
                f" {hours:g} h at {window_start:%H:%M}: cron treats a change of 3 h or more as"
                " a clock correction, not DST, so the run"
                + (f"s at {times} " if len(hit) > 1 else f" at {times} ")
                + (
                    ("do not happen" if len(hit) > 1 else "does not happen")
                    + " (nothing is caught up)"
                    if delta > timedelta(0)
                    else ("happen" if len(hit) > 1 else "happens") + " again in the repeated time"
                )
            )
            notes.append(DstNote(instant, "forward" if delta > timedelta(0) else "back", msg))
            continue
        if delta > timedelta(0):
            if s.wildcard:
                msg = (
                    f"{day}: clocks go forward at {window_start:%H:%M} to "
                    f"{window_end:%H:%M}; the run{'s' if len(hit) > 1 else ''} at {times} "
                    "do not happen (a wildcard job runs on the wall clock)"
                )
            else:
                msg = (
                    f"{day}: clocks go forward at {window_start:%H:%M} to "
                    f"{window_end:%H:%M}; the run{'s' if len(hit) > 1 else ''} at {times} "
                    f"start{'s' if len(hit) == 1 else ''} at {window_end:%H:%M}, right "
                    "after the jump (fixed-time job)"
                    + (f"; cron starts it {len(hit)} times then" if len(hit) > 1 else "")
                )
            notes.append(DstNote(instant, "forward", msg))
        else:
            if s.wildcard:
                msg = (
                    f"{day}: clocks go back, {span} happens twice; the runs at {times} "
                    "happen twice (a wildcard job runs on the wall clock)"
                )
            else:
                msg = (
                    f"{day}: clocks go back, {span} happens twice; the run"
                    f"{'s' if len(hit) > 1 else ''} at {times} happen"
                    f"{'s' if len(hit) == 1 else ''} once, in the first pass (fixed-time "
                    "job)"
                )
            notes.append(DstNote(instant, "back", msg))
    return notes


# ---------------------------------------------------------------------- lines


def split_line(line: str) -> tuple[str, str]:
    """A crontab job line -> (schedule text, command). Raises ScheduleError if too short."""
    text = line.strip()
    if text.startswith("@"):
        word, _, rest = text.partition(" ")
        return word, rest.strip()
    parts = re.match(r"\s*((?:\S+\s+){4}\S+)(?:\s+(.*))?$", line)
    if not parts:
        return text, ""
    return parts.group(1), (parts.group(2) or "").strip()


# ---------------------------------------------------------------------- entry


def explain(
    text: str, *, tz: tzinfo, after: datetime | None = None, count: int = 5, allow_line: bool = True
) -> Explanation:
    """Explain an expression or a whole crontab line; raises ScheduleError if invalid."""
    after = after or datetime.now(UTC)
    command = None
    _reject_seconds_or_year(text)
    try:
        schedule = parse(text)
    except ScheduleError as err:
        if not allow_line or ("6th field" not in str(err) and "takes no fields" not in str(err)):
            raise
        expr, command = split_line(text)
        schedule = parse(expr)
    from cronwrap.cron.pitfalls import command_warnings, warnings_for

    warnings = warnings_for(schedule)
    if schedule.never:
        raise ScheduleError(
            f"{schedule.text.strip()!r} never runs: no date matches " + _never_reason(schedule),
            expr=text,
        )
    if command is not None:
        warnings += command_warnings(command)
    return Explanation(
        schedule=schedule,
        description=describe(schedule),
        tz=zone_name(tz),
        next_runs=schedule.next_runs(after, tz, count),
        dst_notes=dst_notes(schedule, tz, after),
        warnings=warnings,
        command=command,
        fields=field_table(schedule) if not schedule.reboot else [],
    )


# a 6th word that no one would run as a command: a seconds or year field (Quartz, Spring,
# croniter) such as `0 0 12 * * ?` or `*/10 * * * * *`; cron would run it as the command
_FIELD_PART = re.compile(
    r"[0-9*?#LW]+|(?i:sun|mon|tue|wed|thu|fri|sat|jan|feb|mar|apr|may|jun|jul|aug|sep|oct"
    r"|nov|dec)"
)


def _field_like(word: str) -> bool:
    return all(_FIELD_PART.fullmatch(part) for part in re.split(r"[-,/]", word))


def _reject_seconds_or_year(text: str) -> None:
    tokens = [(m.group(), m.start()) for m in re.finditer(r"\S+", text)]
    if len(tokens) < 6 or tokens[0][0].startswith("@"):
        return
    sixth, col = tokens[5]
    if not (_field_like(sixth) or sixth.startswith("*")):
        return
    words = [t for t, _ in tokens[:7]]
    # a year after the five fields, or Quartz order: seconds minute hour day month weekday
    # [year]; `?` is cron's `*`
    kept = words[:5] if re.fullmatch(r"\d{4}", sixth) else words[1:6]
    guess = " ".join(w.replace("?", "*") for w in kept)
    raise ScheduleError(
        f"6th field {sixth!r} is not a command: cron has no seconds or year field, only "
        f"minute hour day-of-month month day-of-week (did you mean {guess!r}?)",
        expr=text,
        column=col,
        width=len(sixth),
    )


def _never_reason(s: Schedule) -> str:
    days = _numbers(sorted(s.dom.values))
    months = _join([MONTH_WORDS[m - 1] for m in sorted(s.month.values)])
    return f"(day {days} does not exist in {months}; cron accepts it silently)"
