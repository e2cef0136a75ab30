"""Times, durations and sizes for people: `in 3h5m`, `42s ago`, `Fri 2026-03-06 23:30 CET`,
`10MiB`, and stored text made safe to print on a terminal. Standard library only (the fast
`explain` path uses it)."""

from __future__ import annotations

import re
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


# An escape sequence whole (ECMA-48): CSI (ESC [ or 0x9b) up to its final byte; OSC, DCS, SOS,
# PM and APC (ESC ] P X ^ _ or 0x9d 0x90 0x98 0x9e 0x9f) up to their terminator (BEL or ST) or
# the end; any other ESC with its intermediate and final bytes. Then any lone C0/C1 control
# and DEL. A job's output and what it reports are not cronwrap's to send to a terminal: an
# OSC can set the window title or a clipboard, a newline can forge a row.
_UNSAFE = re.compile(
    "(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]?"
    "|(?:\x1b[]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\\\|\x9c)?"
    "|\x1b[ -/]*[0-~]?"
    "|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def printable(text: str, *, multiline: bool = False, keep: str = "") -> str:
    """Stored text (a name, a host id, a reason, an output tail) as it may be printed on a
    terminal: escape sequences and control characters removed, tabs as spaces; newlines kept
    only for `multiline` text shown as lines on purpose. `keep`: one control character the
    caller uses itself (the table's unbreakable space) that stays."""
    # most text has nothing to remove: no control character at all (str.isprintable is
    # False for every one, tab and newline included), found in C
    if (text.replace(keep, " ") if keep and keep in text else text).isprintable():
        return text
    text = text.expandtabs(8) if "\t" in text else text
    if not multiline and "\n" in text:
        text = " ".join(text.splitlines())
    if _UNSAFE.search(text) is None:
        return text
    if keep:
        return keep.join(_UNSAFE.sub("", part) for part in text.split(keep))
    return _UNSAFE.sub("", text)
