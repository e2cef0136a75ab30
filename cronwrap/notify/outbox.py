"""The outbox: finish pings that could not be delivered, one record each in a spool in the
state dir, replayed oldest first and in order per check, at the start of the next run with a
ping or by `cronwrap flush`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from cronwrap.notify.healthchecks import (
    DEFAULT_BODY_LIMIT,
    Delivery,
    PingBody,
    PingTarget,
    late_line,
)
from cronwrap.notify.spool import Spool

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from pathlib import Path


class Queued:
    """One queued finish ping, as read back from the outbox."""

    __slots__ = ("at", "body", "check", "job", "kind", "limit", "path", "raw", "rid", "superseded")

    def __init__(self, path: Path, record: Mapping[str, object]) -> None:
        url = record.get("url")
        at = record.get("at")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("no ping URL")
        if not isinstance(at, str):
            raise ValueError("no time")
        self.path = path
        self.at = at
        self.job = str(record.get("job", ""))
        self.raw: bytes | None = None
        self.body: PingBody | None = None
        if "header" in record:
            self.body = PingBody.from_record(record)
            check, kind, rid = record.get("check"), record.get("kind"), record.get("rid")
            limit = record.get("limit")
            if not isinstance(check, str) or not isinstance(kind, str):
                raise ValueError("no check")
            self.check, self.kind = check, kind
            self.rid = rid if isinstance(rid, str) else None
            self.limit = limit if isinstance(limit, int) and limit > 0 else DEFAULT_BODY_LIMIT
        else:  # written by cronwrap before bodies were kept uncut
            body = record.get("body", "")
            if not isinstance(body, str):
                raise ValueError("body is not text")
            self.raw = body.encode("utf-8", "surrogateescape")
            self.check, self.kind, self.rid = _split_ping_url(url)
            self.limit = DEFAULT_BODY_LIMIT
        superseded = record.get("superseded")
        self.superseded = superseded if isinstance(superseded, str) else None

    def url(self, create: bool = False) -> str:
        return PingTarget(self.check, create=create).url_for(self.kind, self.rid)

    def render(self) -> tuple[str, bytes]:
        """(URL, body) to send now: marked late and cut to the limit; a failure a newer
        delivered result has overtaken goes as /log, so it cannot flip a recovered check."""
        kind = self.kind
        late = self.at
        if self.superseded:
            kind = "log"
            late = f"{self.at} (a newer result was delivered at {self.superseded})"
        url = PingTarget(self.check).url_for(kind, self.rid)
        if self.body is not None:
            return url, self.body.render(self.limit, late=late)
        assert self.raw is not None
        return url, (late_line(late).encode() + self.raw)[: self.limit]


def _split_ping_url(url: str) -> tuple[str, str, str | None]:
    from urllib.parse import parse_qs

    base, _, query = url.partition("?")
    rid = parse_qs(query).get("rid", [None])[0]
    head, _, last = base.rstrip("/").rpartition("/")
    if last in ("start", "fail", "log") or last.isdigit():
        return head, last, rid
    return base, "", rid


_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


class ReplayResult:
    __slots__ = ("busy", "left", "quarantined", "refused", "sent")

    def __init__(self) -> None:
        self.busy = False  # another process was replaying: it sends what is queued
        self.sent = 0
        self.refused: list[str] = []  # "HTTP 404 'not found'" per ping the server refused
        self.quarantined: list[str] = []  # names of malformed records moved aside
        self.left = 0


class Outbox(Spool):
    """Finish pings that could not be delivered, replayed oldest first. A malformed record
    is moved to quarantine/, a refused one to rejected/: neither is ever fatal, and neither
    is counted as delivered."""

    def put(
        self,
        *,
        check: str,
        kind: str,
        rid: str | None,
        body: PingBody,
        limit: int,
        job: str,
        at: str,
    ) -> None:
        record: dict[str, object] = {
            "v": 2,
            "url": PingTarget(check).url_for(kind, rid),
            "check": check,
            "kind": kind,
            "rid": rid,
            "limit": limit,
            "job": job,
            "at": at,
            **body.to_record(),
        }
        self.add(record)

    def load(self, path: Path) -> Queued:
        """Read one record; ValueError (or OSError) when it is not one of ours."""
        return Queued(path, self.read(path))

    def supersede(self, check: str, *, at: str) -> None:
        """A newer result for `check` was delivered: its queued failures go as /log later."""
        for path in self.entries():
            claimed = self.claim(path)  # so no replay sends it while it is rewritten
            if claimed is None:
                continue
            try:
                record = self.read(claimed)
                queued = Queued(claimed, record)
                if queued.check.rstrip("/") == check.rstrip("/") and queued.kind != "log":
                    record["superseded"] = at
                    self.rewrite(claimed, record)
            except (OSError, ValueError):
                pass  # replay deals with it
            finally:
                self.unclaim(claimed)

    def replay(self, send: Callable[[str, bytes], Delivery], *, deadline: float) -> ReplayResult:
        """Send queued pings in order. A check whose ping is still not taken keeps the rest
        of its pings queued (order per check); a server that does not answer, all of its.

        One process replays at a time (an flock on `outbox.lock` beside it, let go when it ends or
        dies): another run finding it held leaves the queue to that one, so no ping is sent
        twice and none overtakes an older one of its check."""
        import fcntl

        out = ReplayResult()
        if not self.entries(held=True):
            return out
        try:  # beside the outbox, not in it: the outbox holds records only
            fd = os.open(self.dir_path.rstrip("/") + ".lock", _LOCK_FLAGS, 0o600)
        except OSError:
            out.left = len(self.entries())
            return out
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another run is replaying
                out.busy = True
                out.left = len(self.entries())
                return out
            self._replay(send, deadline, out)
        finally:
            os.close(fd)
        return out

    def _replay(
        self, send: Callable[[str, bytes], Delivery], deadline: float, out: ReplayResult
    ) -> None:
        blocked_checks: set[str] = set()
        blocked_servers: set[str] = set()
        halted = False
        for path in self.entries(held=True):
            claimed = None if halted or self.is_held(path) else self.claim(path)
            if claimed is None or time.monotonic() >= deadline:
                # a record another run holds just now (it is rewriting it: a newer result of
                # its check was delivered): the rest waits for the next replay, in order
                halted = True
                out.left += 1
                if claimed is not None:
                    self.unclaim(claimed)
                continue
            try:
                queued = self.load(claimed)
            except (OSError, ValueError, UnicodeError, RecursionError):
                out.quarantined.append(self.move(claimed, "quarantine"))
                continue
            server = PingTarget(queued.check).server
            if queued.check in blocked_checks or server in blocked_servers:
                self.unclaim(claimed)
                out.left += 1
                continue
            url, body = queued.render()
            result = send(url, body)
            if result.ok:
                self.remove(claimed)
                out.sent += 1
            elif result.retryable:
                self.unclaim(claimed)
                out.left += 1
                blocked_checks.add(queued.check)
                if result.status is None:
                    blocked_servers.add(server)
            else:
                self.move(claimed, "rejected")
                out.refused.append(result.reason)
