"""Times, durations and sizes for people: `in 3h5m`, `42s ago`, `Fri 2026-03-06 23:30 CET`,
`10MiB`. Standard library only (the fast `explain` path uses it)."""

from __future__ import annotations

from datetime import datetime


def duration(seconds: float, *, coarse: bool = False) -> str:
    """Seconds as a short duration, the way options are written: 0.25s, 42s, 5m3s, 2h5m, 3d4h.
    The one duration formatter: tables, relative times and documented defaults use it.
    coarse (for "in 12m", "3h2m ago"): whole seconds, and none once it is a minute or more."""
    if coarse:
        seconds = int(seconds) if seconds < 60 else int(seconds) // 60 * 60
    if 0 < seconds < 0.005:  # would print as 0s: the lowest allowed --timeout is 1ms
        return f"{seconds * 1000:.3g}ms"
    if seconds < 10:
        return f"{seconds:.2f}s".replace(".00s", "s")
    s = round(seconds)
    for unit, size, sub, subsize in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if s >= size:
            major, rest = divmod(s, size)
            minor = rest // subsize
            return f"{major}{unit}{minor}{sub}" if minor else f"{major}{unit}"
    return f"{s}s"


def size(n: int) -> str:
    """Bytes the way size options are written: 512, 64KiB, 10MiB, 1GiB (exact units only)."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def relative(at: datetime, now: datetime) -> str:
    delta = (at - now).total_seconds()
    days = abs(int(delta)) // 86400
    # far away: hours no longer matter, and days are hard to read
    text = f"{days * 400 // 146097} years" if days >= 730 else duration(abs(delta), coarse=True)
    return f"in {text}" if delta >= 0 else f"{text} ago"


def stamp(at: datetime) -> str:
    return at.strftime("%a %Y-%m-%d %H:%M %Z")
