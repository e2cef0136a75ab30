"""A directory of small JSON records, one 0600 file each, read back oldest first: the home
of undelivered pings (outbox.Outbox) and alerts (alerts.AlertQueue). A record that is
not one of ours is moved aside, never fatal.

A process takes a record before sending or rewriting it by renaming it out of the queue
(`claim`), so two processes never both send it; a claim whose process is gone (killed
mid-send) goes back to the queue at the next listing."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from pathlib import Path

    from cronwrap.paths import StrPath

MAX_RECORD = 1024 * 1024  # a record larger than this is not ours
MAX_RECORDS = 200  # bounded: the oldest go first
_CLAIMED = ".sending-"  # <record>.json.sending-<pid>: being sent by that process
_ABANDONED_S = 3600.0  # a claim this old is abandoned whatever its pid (pids are reused)


def _record_name(name: str) -> str:
    """The queue name of a record, claimed or not."""
    return name.split(_CLAIMED, 1)[0]


def _claimer_alive(name: str, age_s: float) -> bool:
    try:
        pid = int(name.rsplit(_CLAIMED, 1)[1])
    except ValueError:
        return False
    if age_s > _ABANDONED_S or pid == os.getpid():
        return False
    from cronwrap.pids import pid_alive

    return pid_alive(pid)


class Spool:
    """Every run with a ping looks here for what is queued, usually to find nothing: the
    directory is kept as a string and pathlib (~3 ms of start-up) loaded only for records."""

    def __init__(self, directory: StrPath) -> None:
        self.dir_path = os.fspath(directory)

    @property
    def dir(self) -> Path:
        from pathlib import Path

        return Path(self.dir_path)

    def add(self, record: Mapping[str, object]) -> None:
        """A new record, after all others; the oldest beyond MAX_RECORDS are dropped."""
        import json  # only with something to queue: its import costs every run start-up time

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
        """Replace a (claimed) record in place: it keeps its place in the order."""
        import json

        tmp = self.dir / f".{path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)

    def entries(self, *, held: bool = False) -> list[Path]:
        """The queued records, oldest first (claims of processes that are gone go back);
        with `held`, the records live processes have claimed too, in their places."""
        try:
            names = os.listdir(self.dir_path)
        except OSError:
            return []
        if not names:
            return []
        for name in names:
            if _CLAIMED in name and not self._in_flight(name):
                with contextlib.suppress(OSError):
                    os.rename(self.dir / name, self.dir / _record_name(name))
        try:
            names = os.listdir(self.dir_path)
        except OSError:
            return []
        keep = [n for n in names if n.endswith(".json") or (held and _CLAIMED in n)]
        return [self.dir / n for n in sorted(keep, key=_record_name)]

    @staticmethod
    def is_held(path: Path) -> bool:
        """A record another process has claimed (from `entries(held=True)`)."""
        return _CLAIMED in path.name

    def _in_flight(self, name: str) -> bool:
        try:
            age = time.time() - os.stat(self.dir / name).st_mtime
        except OSError:
            return False
        return _claimer_alive(name, age)

    def claim(self, path: Path) -> Path | None:
        """Take a queued record for sending; None when another process took it first."""
        claimed = path.with_name(f"{path.name}{_CLAIMED}{os.getpid()}")
        try:
            os.rename(path, claimed)
        except OSError:
            return None
        # a claim's age is counted from now, not from when the record was queued: a ping
        # queued hours ago (a long outage) must not look abandoned while it is being sent
        with contextlib.suppress(OSError):
            os.utime(claimed)
        return claimed

    def unclaim(self, claimed: Path) -> None:
        """Put a claimed record back in its place in the queue (to be sent later)."""
        with contextlib.suppress(OSError):
            os.rename(claimed, claimed.with_name(_record_name(claimed.name)))

    def read(self, path: Path) -> dict[str, object]:
        """One record; ValueError (or OSError) when it is not a JSON object of sane size."""
        import json

        from cronwrap.config import read_regular_file

        data = read_regular_file(path, MAX_RECORD)  # a FIFO is refused, never waited on
        record = json.loads(data)
        if not isinstance(record, dict):
            raise ValueError("not a record")
        return record

    def move(self, path: Path, where: str) -> str:
        """Move a record into a subdirectory (quarantine/, rejected/); returns its new path."""
        target = self.dir / where
        name = _record_name(path.name)
        with contextlib.suppress(OSError):
            target.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, target / name)
            return str(target / name)
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
