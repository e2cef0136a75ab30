"""The structured event log: one JSON (or logfmt) record per line, appended with a single
write(2) on an O_APPEND descriptor so concurrent cronwrap processes never tear lines."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

from cronwrap.stdlib import datetime, timezone

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from typing import Any


LEVELS = {
    "run.skip": "info",
    "ping.error": "warning",
    "alert.error": "warning",
    "store.error": "warning",
    "log.error": "warning",
    "lock.error": "warning",
}


def _logfmt_value(value: Any) -> str:
    import re

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else to_json(value)
    if re.fullmatch(r"[A-Za-z0-9_.:/@+-]+", text):
        return text
    return to_json(text)


# what json.dumps(ensure_ascii=False) escapes in a string
_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)} | {
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    ord("\b"): "\\b",
    ord("\f"): "\\f",
}


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def to_json(value: Any) -> str:
    """json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str), for the
    few types a record holds: the json package (and its six regexes) costs start-up time
    on every run for four lines of log."""
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPES) + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        text = float.__repr__(value)
        return _NON_FINITE.get(text, text)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    return to_json(str(value))


def encode(record: dict[str, Any], fmt: str) -> bytes:
    if fmt == "logfmt":
        line = " ".join(f"{k}={_logfmt_value(v)}" for k, v in record.items())
    else:
        line = to_json(record)
    return (line + "\n").encode("utf-8", "replace")


def _append(fd: int, data: bytes) -> None:
    """One write per record: O_APPEND keeps concurrent lines whole. After a torn line (a
    full disk cut an earlier record short) the record starts on a fresh line, so it is
    never glued onto the torn one; a short write of our own raises ENOSPC.

    The look back and the write happen under an flock of the log: without it, a look at the
    end of a record another run is writing just then saw no newline yet, and the record
    went in after an empty line. A lock not had within 0.1 s is done without (fail open)."""
    locked = _lock(fd)
    try:
        size = os.fstat(fd).st_size
        with contextlib.suppress(OSError):  # not a regular file: nothing to look back at
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
        written = os.write(fd, data)
    finally:
        if locked:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
    if written < len(data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _lock(fd: int) -> bool:
    for _ in range(100):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            return False  # a file that cannot be locked: written as before
    return False


class EventLog:
    """Writes events for one run. `path` None or "-" means stderr."""

    def __init__(self, path: str | None, *, fmt: str, job: str, run_id: str, host: str) -> None:
        self.path = path
        self.fmt = fmt
        self.base = {"job": job, "run_id": run_id, "host": host, "pid": os.getpid()}
        self.errors: list[str] = []
        self._failed = False

    def emit(self, event: str, message: str = "", **fields: Any) -> None:
        now = datetime.now(timezone.utc)
        record: dict[str, Any] = {
            "ts": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": LEVELS.get(event, "info"),
            "event": event,
            **self.base,
        }
        if message:
            record["message"] = message
        record.update(fields)
        data = encode(record, self.fmt)
        if self.path == "-":
            with contextlib.suppress(OSError):
                os.write(2, data)
            return
        try:
            fd = self._open()
            try:
                _append(fd, data)
            finally:
                os.close(fd)
        except OSError as err:
            # reporting never changes the outcome: remember the first failure (the next
            # ones of this run say the same), the caller warns once
            if not self._failed:
                self.errors.append(f"cannot write event log {self.path}: {err.strerror}")
            self._failed = True

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(self.path or "", flags, 0o640)
        except FileNotFoundError:
            # the first event of a fresh state dir can come before anything else made it
            from cronwrap.errors import ConfigError
            from cronwrap.paths import ensure_dir

            try:
                ensure_dir(os.path.dirname(self.path or "") or ".")
            except ConfigError as err:
                raise OSError(errno.ENOENT, str(err)) from None
            return os.open(self.path or "", flags, 0o640)
