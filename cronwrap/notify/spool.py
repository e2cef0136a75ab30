"""A directory of small JSON records, one 0600 file each, read back oldest first: the home
of undelivered pings (outbox.Outbox) and alerts (alerts.AlertQueue). A record that is
not one of ours is moved aside, never fatal."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

MAX_RECORD = 1024 * 1024  # a record larger than this is not ours
MAX_RECORDS = 200  # bounded: the oldest go first


class Spool:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def add(self, record: Mapping[str, object]) -> None:
        """A new record, after all others; the oldest beyond MAX_RECORDS are dropped."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}.json"
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        entries = self.entries()
        for old in entries[: max(0, len(entries) - MAX_RECORDS)]:
            with contextlib.suppress(OSError):
                old.unlink()

    def rewrite(self, path: Path, record: Mapping[str, object]) -> None:
        """Replace a record in place: it keeps its place in the order."""
        tmp = self.dir / f".{path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)

    def entries(self) -> list[Path]:
        try:
            return sorted(p for p in self.dir.iterdir() if p.suffix == ".json")
        except OSError:
            return []

    def read(self, path: Path) -> dict[str, object]:
        """One record; ValueError (or OSError) when it is not a JSON object of sane size."""
        with open(path, "rb") as f:
            data = f.read(MAX_RECORD + 1)
        if len(data) > MAX_RECORD:
            raise ValueError("too large")
        record = json.loads(data)
        if not isinstance(record, dict):
            raise ValueError("not a record")
        return record

    def move(self, path: Path, where: str) -> str:
        """Move a record into a subdirectory (quarantine/, rejected/); returns its new path."""
        target = self.dir / where
        with contextlib.suppress(OSError):
            target.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, target / path.name)
            return str(target / path.name)
        with contextlib.suppress(OSError):  # cannot move it: do not read it again
            path.unlink()
        return path.name

    def remove(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()


def quarantine_note(names: list[str]) -> str:
    n = len(names)
    where = os.path.dirname(names[0]) or "quarantine/"
    return f"{n} malformed outbox record{'s' if n != 1 else ''} moved aside to {where}"
