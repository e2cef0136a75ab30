"""Times and spans for people: `in 3h 5min`, `42s ago`, `Fri 2026-03-06 23:30 CET`.
Standard library only, shared by the plain-text and the rich renderers."""

from __future__ import annotations

from datetime import datetime


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
    if d >= 730:  # far away: hours no longer matter, and days are hard to read
        return f"{d * 400 // 146097} years"
    days = f"{d} day{'s' if d != 1 else ''}"
    return f"{days} {h}h" if h else days


def relative(at: datetime, now: datetime) -> str:
    delta = (at - now).total_seconds()
    return f"in {span(delta)}" if delta >= 0 else f"{span(delta)} ago"


def stamp(at: datetime) -> str:
    return at.strftime("%a %Y-%m-%d %H:%M %Z")
