"""Cron expressions exactly as Debian/Vixie cron runs them: a strict parser that names the bad
field, the day-of-month/day-of-week rule with the star-prefix exception, and next/previous
run times in any IANA zone with Debian cron's DST behaviour (docs/cron-rules.md).
Standard library only: no cron library."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from cronwrap.errors import ScheduleError

UTC = timezone.utc
ZERO = timedelta(0)
CORRECTION = timedelta(hours=3)  # Debian cron: a clock change this big is a correction
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class FieldSpec:
    """One of the five fields: its name, range and names. (Plain classes in this module:
    `explain` must start fast, and dataclasses costs ~14 ms of imports.)"""

    __slots__ = ("high", "low", "name", "name_base", "names")

    def __init__(
        self, name: str, low: int, high: int, names: tuple[str, ...] = (), name_base: int = 0
    ) -> None:
        self.name = name
        self.low = low
        self.high = high
        self.names = names
        self.name_base = name_base  # the number of the first name


FIELDS = (
    FieldSpec("minute", 0, 59),
    FieldSpec("hour", 0, 23),
    FieldSpec("day-of-month", 1, 31),
    FieldSpec("month", 1, 12, MONTH_NAMES, 1),
    FieldSpec("day-of-week", 0, 7, DAY_NAMES, 0),
)

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FOREIGN = {
    "L": "'L' (last day) is Quartz/croniter syntax, not cron",
    "W": "'W' (nearest weekday) is Quartz syntax, not cron",
    "#": "'#' (nth weekday) is Quartz/croniter syntax, not cron; Debian cron would silently "
    "ignore it and run on every such weekday",
    "?": "'?' is Quartz syntax, not cron: write *",
    "H": "'H' (hash) is Jenkins syntax, not cron: pick a fixed value",
    "R": "'R' (random) is croniter syntax, not cron: pick a fixed value",
    "~": "'~' (random) is cronie-only syntax that Debian cron rejects: pick a fixed value",
}


class Field:
    """A parsed field: its text as written and the values it allows."""

    __slots__ = ("spec", "text", "values")

    def __init__(self, spec: FieldSpec, text: str, values: frozenset[int]) -> None:
        self.spec = spec
        self.text = text
        self.values = values

    @property
    def star(self) -> bool:
        """Debian cron's *_STAR flag: the field's text starts with '*'."""
        return self.text.startswith("*")

    @property
    def full(self) -> bool:
        wanted = set(range(self.spec.low, self.spec.high + 1))
        if self.spec.name == "day-of-week":
            wanted.discard(7)
        return set(self.values) >= wanted


class Schedule:
    """A parsed expression. `fields` is empty for @reboot."""

    __slots__ = ("fields", "macro", "text")

    def __init__(self, text: str, fields: tuple[Field, ...], macro: str | None = None) -> None:
        self.text = text
        self.fields = fields
        self.macro = macro

    def __repr__(self) -> str:
        return f"Schedule({self.text!r})"

    @property
    def reboot(self) -> bool:
        return self.macro == "@reboot"

    @property
    def minute(self) -> Field:
        return self.fields[0]

    @property
    def hour(self) -> Field:
        return self.fields[1]

    @property
    def dom(self) -> Field:
        return self.fields[2]

    @property
    def month(self) -> Field:
        return self.fields[3]

    @property
    def dow(self) -> Field:
        return self.fields[4]

    @property
    def expression(self) -> str:
        """The five fields (macros expanded), e.g. for a Healthchecks check."""
        return " ".join(f.text for f in self.fields)

    @property
    def day_rule(self) -> str:
        """'and' when either day field starts with '*' (cron requires both), else 'or'."""
        if self.reboot:
            return "none"
        return "and" if self.dom.star or self.dow.star else "or"

    @property
    def wildcard(self) -> bool:
        """Debian's DST class: minute or hour field starts with '*' (runs on the wall clock)."""
        return self.minute.star or self.hour.star

    @property
    def never(self) -> bool:
        """True when no date ever matches (cron accepts these silently)."""
        if self.reboot:
            return False
        if self.day_rule == "or":
            return False  # the day-of-week side always matches some day
        return not any(d <= _month_max(m) for m in self.month.values for d in self.dom.values)

    def matches_day(self, day: date) -> bool:
        in_dom = day.day in self.dom.values
        in_dow = (day.isoweekday() % 7) in self.dow.values
        if self.day_rule == "and":
            return in_dom and in_dow
        return in_dom or in_dow

    # ------------------------------------------------------------------ search

    def next_runs(self, after: datetime, tz: tzinfo, count: int = 5) -> list[datetime]:
        """The first `count` fire instants strictly after `after`, in zone `tz`."""
        out: list[datetime] = []
        for instant in self.iter_runs(after, tz):
            out.append(instant)
            if len(out) >= count:
                break
        return out

    def iter_runs(self, after: datetime, tz: tzinfo) -> Iterator[datetime]:
        """Fire instants strictly after `after`, up to the end of year 9999."""
        for instants, _, first in self._by_day(after, tz):
            yield from instants[first:]

    def runs_between(
        self, after: datetime, until: datetime, tz: tzinfo, limit: int
    ) -> list[datetime]:
        """The first `limit` fire instants strictly after `after` and at or before `until`,
        as iter_runs yields them, found a day at a time (status asks this of every job:
        the runs it missed since its last start)."""
        out: list[datetime] = []
        until = until.astimezone(UTC)
        for instants, utc, first in self._by_day(after, tz):
            stop = bisect_right(utc, until, lo=first)
            out.extend(instants[first : min(stop, first + limit - len(out))])
            if stop < len(utc) or len(out) >= limit:
                break
        return out

    def _by_day(
        self, after: datetime, tz: tzinfo
    ) -> Iterator[tuple[tuple[datetime, ...], tuple[datetime, ...], int]]:
        """Each matching day from `after` on: its instants, the same as UTC times, and the
        index of its first instant after `after` and after every earlier day's."""
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        if self.reboot or self.never:
            return
        # compared as UTC instants: aware datetimes that share a tzinfo compare (and
        # subtract) by wall clock, which is wrong across a DST change
        last = after.astimezone(UTC)
        hours, minutes, wildcard = self.hour.values, self.minute.values, self.wildcard
        try:
            for day in self._days(last.astimezone(tz).date(), step=1):
                utc = _utc_instants_on(hours, minutes, wildcard, day, tz)
                # sorted: the instants not after `last` are skipped at once (also: no
                # instant twice when a clock jump joins two days)
                yield _instants_on(hours, minutes, wildcard, day, tz), utc, bisect_right(utc, last)
                last = max(last, utc[-1]) if utc else last
        except OverflowError:  # the zone's offset pushes 9999-12-31 past datetime.max
            return

    def prev_runs(self, before: datetime, tz: tzinfo, count: int = 1) -> list[datetime]:
        """The last `count` fire instants strictly before `before`, newest first."""
        if self.reboot or self.never:
            return []
        out: list[datetime] = []
        before = before.astimezone(UTC)
        start = before.astimezone(tz).date()
        last = before
        try:
            for day in self._days(start, step=-1):
                for instant in reversed(self._instants_on(day, tz)):
                    at = instant.astimezone(UTC)
                    if at < last:
                        last = at
                        out.append(instant)
                        if len(out) >= count:
                            return out
        except OverflowError:  # before year 1
            pass
        return out

    def _days(self, start: date, *, step: int) -> Iterator[date]:
        """Matching local dates from `start` on, forwards or backwards, month by month, within
        years 1-9999 (`never` is excluded, so every 400-year cycle has a match)."""
        months = self.month.values
        year, month = start.year, start.month
        first = True
        while True:
            if month in months:
                last = days_in_month(year, month)
                if step > 0:
                    days = range(start.day if first else 1, last + 1)
                else:
                    days = range(min(start.day, last) if first else last, 0, -1)
                for d in days:
                    if self.matches_day(date(year, month, d)):
                        yield date(year, month, d)
            first = False
            month += step
            if month == 13:
                year, month = year + 1, 1
            elif month == 0:
                year, month = year - 1, 12
            if not 1 <= year <= 9999:
                return

    def _instants_on(self, day: date, tz: tzinfo) -> tuple[datetime, ...]:
        """Fire instants on one local date, sorted, de-duplicated (docs/cron-rules.md, DST)."""
        return _instants_on(self.hour.values, self.minute.values, self.wildcard, day, tz)


@lru_cache(maxsize=1024)
def _instants_on(
    hour_values: frozenset[int],
    minute_values: frozenset[int],
    wildcard: bool,
    day: date,
    tz: tzinfo,
) -> tuple[datetime, ...]:
    """Cached (callers must not change the result): `status` asks the same question for
    many jobs with one schedule."""
    hours = sorted(hour_values)
    minutes = sorted(minute_values)
    if _is_fixed_offset_day(day, tz):
        return tuple(
            datetime(day.year, day.month, day.day, h, m, tzinfo=tz) for h in hours for m in minutes
        )
    # keyed by UTC instant: aware datetimes in one zone compare by wall time, ignoring fold
    found: dict[datetime, datetime] = {}
    for h in hours:
        for m in minutes:
            wall = datetime(day.year, day.month, day.day, h, m)
            first = wall.replace(tzinfo=tz)
            second = wall.replace(tzinfo=tz, fold=1)
            try:
                first.astimezone(UTC), second.astimezone(UTC)
            except OverflowError:  # 9999-12-31 west of UTC, or 0001-01-01 east of it
                continue
            # a jump of 3 hours or more is a clock correction to cron, not DST: nothing is
            # caught up or suppressed, so every job behaves like a wildcard job there
            jump = abs((second.utcoffset() or ZERO) - (first.utcoffset() or ZERO))
            plain = wildcard or jump >= CORRECTION
            if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
                if not plain:  # a skipped fixed time runs right after the jump
                    end = _gap_end(first, tz)
                    found[end.astimezone(UTC)] = end
                continue
            found[first.astimezone(UTC)] = first
            if plain and second.utcoffset() != first.utcoffset():
                # wildcard jobs run in both passes of a repeated hour
                found[second.astimezone(UTC)] = second
    return tuple(found[k] for k in sorted(found))


@lru_cache(maxsize=1024)
def _utc_instants_on(*day_key: object) -> tuple[datetime, ...]:
    """_instants_on(*day_key) as UTC datetimes (cached alike): what the search compares."""
    return tuple(i.astimezone(UTC) for i in _instants_on(*day_key))


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def days_in_month(year: int, month: int) -> int:
    """calendar.monthrange(year, month)[1] without the calendar module, which imports locale
    (start-up time on every `run --schedule`)."""
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return _MONTH_DAYS[month - 1] + (month == 2 and leap)


def _month_max(month: int) -> int:
    return 29 if month == 2 else _MONTH_DAYS[month - 1]


@lru_cache(maxsize=4096)
def _is_fixed_offset_day(day: date, tz: tzinfo) -> bool:
    """True when the zone's offset is the same all through `day` (no transition that day)."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    try:
        end = start + timedelta(days=1)
        start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:  # the first or last day of the calendar: take the slow path
        return False
    a = start.utcoffset()
    if a != end.utcoffset():
        return False
    # a transition and its reversal within one day is not a thing in tzdata; check midday too
    return a == (start + timedelta(hours=12)).utcoffset() == start.replace(fold=1).utcoffset()


def _gap_end(local: datetime, tz: tzinfo) -> datetime:
    """The instant a spring-forward gap containing `local` ends, found by bisection."""
    after_offset = local.replace(fold=1).utcoffset()
    lo = local.replace(fold=1).astimezone(UTC)  # before the transition
    hi = local.replace(fold=0).astimezone(UTC)  # after it
    if lo > hi:
        lo, hi = hi, lo
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid
    # `hi` is the first instant with the new offset
    return hi.replace(microsecond=0).astimezone(tz)


# ---------------------------------------------------------------------- parsing


def parse(text: str) -> Schedule:
    """Parse a five-field expression or a macro; raise ScheduleError naming the bad field."""
    original = text
    stripped = text.strip()
    if not stripped:
        raise ScheduleError("empty schedule: expected 5 fields or an @macro", expr=original)
    if stripped.startswith("@"):
        word, _, rest = stripped.partition(" ")
        if word not in MACROS and word != "@reboot":
            hint = (
                f": write {word.lower()}"
                if word.lower() in MACROS or word.lower() == "@reboot"
                else ""
            )
            raise ScheduleError(
                f"bad time specifier {word!r}{hint} (macros are lower case: "
                "@yearly @annually @monthly @weekly @daily @midnight "
                "@hourly @reboot)",
                expr=original,
                column=original.find(word),
                width=len(word),
            )
        if rest.strip():
            raise ScheduleError(
                f"{word} takes no fields: {rest.strip()!r} would be run as the command",
                expr=original,
                column=original.find(rest.strip()),
                width=len(rest.strip()),
            )
        if word == "@reboot":
            return Schedule(original, (), "@reboot")
        inner = parse(MACROS[word])
        return Schedule(original, inner.fields, word)
    tokens = [(m.group(), m.start()) for m in re.finditer(r"\S+", original)]
    if len(tokens) < 5:
        raise ScheduleError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(tokens)}",
            expr=original,
            column=len(original.rstrip()),
            width=1,
        )
    if len(tokens) > 5:
        extra, col = tokens[5]
        raise ScheduleError(
            f"6th field {extra!r} would be run as the command: cron has no seconds or year field",
            expr=original,
            column=col,
            width=len(extra),
        )
    fields = tuple(
        _parse_field(spec, tok, col, original)
        for spec, (tok, col) in zip(FIELDS, tokens, strict=True)
    )
    return Schedule(original, fields)


def _parse_field(spec: FieldSpec, text: str, col: int, expr: str) -> Field:
    values: set[int] = set()
    pos = 0
    for item in text.split(","):
        if not item:
            _fail(spec, "empty list item", expr, col + pos, 1)
        values.update(_parse_term(spec, item, col + pos, expr))
        pos += len(item) + 1
    if spec.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return Field(spec, text, frozenset(values))


def _fail(spec: FieldSpec, message: str, expr: str, column: int, width: int) -> None:
    raise ScheduleError(
        f"bad {spec.name}: {message}", field=spec.name, column=column, width=width, expr=expr
    )


def _parse_term(spec: FieldSpec, term: str, col: int, expr: str) -> range | list[int]:
    upper = term.upper()
    letters = set(re.findall(r"[A-Z]+", upper))
    for char, why in _FOREIGN.items():
        foreign = char in letters or (char == "L" and "LW" in letters)
        if (char in "#?~" and char in upper) or foreign:
            _fail(spec, f"{term!r}: {why}", expr, col, len(term))
    if re.search(r"\d[LW]\b", upper):
        _fail(spec, f"{term!r}: {_FOREIGN['L']}", expr, col, len(term))
    base, slash, step_text = term.partition("/")
    step = 1
    if slash:
        if not _is_number(step_text):
            _fail(spec, f"{term!r}: a step is a number (1 or more)", expr, col, len(term))
        step = int(step_text) if len(step_text) < 20 else 1 << 64  # int() stops at 4300 digits
        if step == 0:
            _fail(spec, f"{term!r}: a step is 1 or more", expr, col, len(term))
    if base == "*":
        return range(spec.low, spec.high + (0 if spec.name == "day-of-week" else 1), step)
    if base.startswith("*"):
        _fail(spec, f"{term!r}: nothing may follow '*' but a step (*/N)", expr, col, len(term))
    low_text, dash, high_text = base.partition("-")
    low = _value(spec, low_text, term, col, expr)
    if not dash:
        if slash:
            _fail(
                spec,
                f"{term!r}: a step needs * or a range: write {low_text}-{spec.high}/{step}",
                expr,
                col,
                len(term),
            )
        return [low]
    high = _value(spec, high_text, term, col + len(low_text) + 1, expr)
    if high < low:
        _fail(
            spec,
            f"range {base!r} runs backwards: Debian cron would never run it (and "
            f"cronie reads it differently); write {_wrap_hint(spec, low, high)}",
            expr,
            col,
            len(term),
        )
    return range(low, high + 1, step)


def _wrap_hint(spec: FieldSpec, low: int, high: int) -> str:
    top = spec.high if spec.name != "day-of-week" else 6
    if spec.name == "day-of-week" and high == 0:
        return f"{low}-7"
    return f"{low}-{top},{spec.low}-{high}" if high > spec.low else f"{low}-{top},{spec.low}"


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '¹' and '５', which cron rejects."""
    return text.isascii() and text.isdigit()


def _value(spec: FieldSpec, text: str, term: str, col: int, expr: str) -> int:
    if _is_number(text):
        n = int(text) if len(text) < 20 else spec.high + 1  # int() stops at 4300 digits
        if not spec.low <= n <= spec.high:
            shown = text if len(text) < 20 else text[:8] + "…"
            raise ScheduleError(
                f'{spec.name} "{shown}" is out of range {spec.low}-{spec.high}',
                field=spec.name,
                column=col,
                width=len(text),
                expr=expr,
            )
        return n
    if text.isascii() and text.isalpha():
        low = text.lower()
        if low in spec.names:
            return spec.names.index(low) + spec.name_base
        if spec.names and low[:3] in spec.names:
            _fail(
                spec,
                f"{text!r}: names are 3 letters: write {low[:3].upper()}",
                expr,
                col,
                len(text),
            )
        if spec.names:
            _fail(
                spec,
                f"{text!r} is not a {spec.name} name ({', '.join(n.upper() for n in spec.names)})",
                expr,
                col,
                len(text),
            )
        _fail(
            spec,
            f"{text!r}: {spec.name} takes numbers {spec.low}-{spec.high}",
            expr,
            col,
            len(text),
        )
    if not text:
        _fail(spec, f"{term!r}: missing number", expr, col, len(term))
    if not text.isascii():
        why = f"{term!r}: cron reads only the ASCII digits 0-9 and names"
        _fail(spec, why, expr, col, len(term))
    if text.startswith(("-", "+")):
        _fail(spec, f"{term!r}: numbers have no sign", expr, col, len(term))
    _fail(spec, f"{term!r} is not a number, name, range or step", expr, col, len(term))
    raise AssertionError  # _fail always raises


def zone(name: str | None) -> tzinfo:
    """An IANA zone by name; None means the system's local zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name is None:
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        from cronwrap.errors import CronwrapError

        raise CronwrapError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
        ) from None


def local_zone() -> tzinfo:
    """The system zone, as an IANA zone when it can be found (for DST-correct answers)."""
    import contextlib
    import os
    from zoneinfo import ZoneInfo

    name = os.environ.get("TZ", "").lstrip(":")
    # an odd TZ value or a missing zone database falls back to the next source, and at
    # last to the fixed offset the C library reports
    if name:
        with contextlib.suppress(Exception):
            return ZoneInfo(name)
    with contextlib.suppress(Exception):
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
        with open("/etc/timezone") as f:
            return ZoneInfo(f.read().strip())
    return datetime.now().astimezone().tzinfo or UTC


def zone_name(tz: tzinfo) -> str:
    return getattr(tz, "key", None) or str(tz)


_UTC_NAMES = frozenset(
    {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}
    | {"GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "Etc/Greenwich", "Greenwich"}
)


def same_zone(a: str, b: str) -> bool:
    """Two names of one zone (UTC has many)."""
    return a == b or (a in _UTC_NAMES and b in _UTC_NAMES)
