"""Healthchecks pings that never hurt the job: bounded time budgets, retries only for what
may succeed later, a strict idea of "delivered", and an on-disk outbox for finish pings that
could not be sent. Uses http.client (stdlib): requests costs ~100 ms of start-up per run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from cronwrap.errors import ConfigError
from cronwrap.redact import redact_url

DEFAULT_BODY_LIMIT = 10_000
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
OUTBOX_MAX = 200
_SLUG_RE = re.compile(r"^[a-z0-9_-]+$")
USER_AGENT = "cronwrap"


class PingTarget:
    """Where a job's pings go: a URL whose path the ping kind is appended to."""

    __slots__ = ("create", "url")

    def __init__(self, url: str, create: bool = False) -> None:
        self.url = url  # the check's URL without kind or query
        self.create = create

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PingTarget) and (self.url, self.create) == (
            other.url,
            other.create,
        )

    def __hash__(self) -> int:
        return hash((self.url, self.create))

    @property
    def redacted(self) -> str:
        return redact_url(self.url)

    @property
    def server(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def url_for(self, kind: str, rid: str | None) -> str:
        path = self.url.rstrip("/") + (f"/{kind}" if kind else "")
        query: dict[str, str] = {}
        if rid:
            query["rid"] = rid
        if self.create:
            query["create"] = "1"
        return path + ("?" + urlencode(query) if query else "")


def join_url(base: str, *parts: str) -> str:
    """Join URL parts with exactly one slash between them, whatever the base ends with."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def target_from(
    *,
    ping: str | None,
    uuid: str | None,
    key: str | None,
    slug: str | None,
    create: bool,
    base: str,
    job_name: str,
) -> PingTarget | None:
    """The ping target from the job's options, or None when no ping is configured."""
    if ping:
        parts = urlsplit(ping)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--ping {redact_url(ping)}: expected an http(s):// URL")
        return PingTarget(ping.split("?", 1)[0], create=create)
    if uuid:
        return PingTarget(join_url(base, uuid))
    if key:
        slug = slug or job_name
        if not _SLUG_RE.match(slug):
            raise ConfigError(
                f"ping slug {slug!r} is not a Healthchecks slug (a-z 0-9 - _): give --ping-slug"
            )
        return PingTarget(join_url(base, key, slug), create=create)
    if slug:
        raise ConfigError("--ping-slug needs --ping-key")
    return None


class Delivery:
    """The fate of one ping: delivered or not, and why."""

    __slots__ = ("attempts", "body_limit", "ok", "reason", "status")

    def __init__(
        self,
        ok: bool,
        status: int | None = None,
        reason: str = "",
        attempts: int = 0,
        body_limit: int | None = None,
    ) -> None:
        self.ok = ok
        self.status = status
        self.reason = reason
        self.attempts = attempts
        self.body_limit = body_limit


def _default_backoff(attempt: int) -> float:
    return min(0.25 * 2.0 ** (attempt - 1), 2.0)


class Pinger:
    """Sends pings to one target within time budgets."""

    def __init__(
        self,
        target: PingTarget,
        *,
        backoff: Callable[[int], float] = _default_backoff,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.target = target
        self.backoff = backoff
        self.user_agent = user_agent

    def send(self, kind: str, rid: str | None, body: bytes, *, budget_s: float) -> Delivery:
        """POST one ping, retrying network errors and 408/429/5xx until the budget is spent."""
        return self.send_url(self.target.url_for(kind, rid), body, budget_s=budget_s)

    def send_url(self, url: str, body: bytes, *, budget_s: float) -> Delivery:
        deadline = time.monotonic() + budget_s
        attempt = 0
        last = Delivery(False, reason="no time to send")
        while True:
            left = deadline - time.monotonic()
            if left <= 0.05:
                return last
            attempt += 1
            last = self._post(url, body, timeout=left, attempt=attempt)
            if last.ok or (last.status is not None and last.status not in RETRY_STATUSES):
                return last
            pause = self.backoff(attempt)
            if time.monotonic() + pause >= deadline - 0.05:
                return last
            time.sleep(pause)

    def _post(self, url: str, body: bytes, *, timeout: float, attempt: int) -> Delivery:
        from cronwrap.notify.http import post

        try:
            status, headers, answer = post(
                url,
                body,
                timeout=timeout,
                headers={
                    "Content-Type": "text/plain; charset=utf-8",
                    "User-Agent": self.user_agent,
                },
            )
        except OSError as err:
            reason = (
                "timed out"
                if isinstance(err, TimeoutError)
                else (err.strerror or str(err) or type(err).__name__)
            )
            return Delivery(False, None, reason, attempt)
        text = answer[:200].decode("utf-8", "replace").strip()
        limit_header = headers.get("ping-body-limit", "")
        limit = int(limit_header) if limit_header.isdigit() else None
        ok = (status == 200 and text == "OK") or (status == 201 and text == "Created")
        reason = "" if ok else f"HTTP {status} {text[:80]!r}"
        return Delivery(ok, status, reason, attempt, limit)


# ------------------------------------------------------------------ body


def summary(
    *,
    status: str,
    exit_code: int | None,
    signal: int | None,
    duration_s: float,
    attempt: int,
    attempts_max: int,
    host: str,
    version: str,
    reason: str | None,
    job: str,
    late: str | None = None,
) -> str:
    """The short header every ping body starts with."""
    code = f"signal {signal} (exit {exit_code})" if signal else f"exit {exit_code}"
    lines = [
        f"cronwrap {version}: job {job} {status}, {code}, {duration_s:.3f}s, "
        f"attempt {attempt}/{attempts_max}, host {host}",
    ]
    if reason:
        lines.append(f"reason: {reason}")
    if late:
        lines.append(f"late: this ping could not be delivered at {late}; replayed now")
    return "\n".join(lines) + "\n"


def fit_body(header: str, head: bytes, tail: bytes, omitted: int, limit: int) -> bytes:
    """Summary, then as much of the output's head and tail as fits in `limit` bytes."""
    top = header.encode("utf-8", "replace")
    marker = b"--- output ---\n"
    if (not head and not tail) or len(top) + len(marker) >= limit:
        return top[:limit]
    room = limit - len(top) - len(marker)
    if not omitted and len(head) + len(tail) <= room:
        return top + marker + head + tail
    room -= 48  # the omission note
    h = head[: max(0, room // 2)]
    t_room = max(0, room - len(h))
    t = tail[-t_room:] if t_room else b""
    skipped = omitted + (len(head) - len(h)) + (len(tail) - len(t))
    gap = f"\n[cronwrap: {skipped} bytes omitted here]\n".encode()
    return (top + marker + h + gap + t)[:limit]


# ------------------------------------------------------------------ limits cache


def cached_limit(state_dir: Path, server: str) -> int | None:
    try:
        data = json.loads((state_dir / "ping-limits.json").read_text())
        value = data.get(server)
        return int(value) if value else None
    except (OSError, ValueError, AttributeError):
        return None


def remember_limit(state_dir: Path, server: str, limit: int) -> None:
    path = state_dir / "ping-limits.json"
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if data.get(server) == limit:
            return
        data[server] = limit
        tmp = path.with_name(f".ping-limits.{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass  # a cache: losing it only means the default limit next time


# ------------------------------------------------------------------ outbox


class Outbox:
    """Finish pings that could not be delivered, one file each, replayed oldest first."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def put(self, url: str, body: bytes, *, job: str, at: str) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}.json"
        record = {"url": url, "body": body.decode("utf-8", "surrogateescape"), "job": job, "at": at}
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        entries = self.entries()
        for old in entries[: max(0, len(entries) - OUTBOX_MAX)]:  # bounded: drop the oldest
            with contextlib.suppress(OSError):
                old.unlink()

    def entries(self) -> list[Path]:
        try:
            return sorted(p for p in self.dir.iterdir() if p.suffix == ".json")
        except OSError:
            return []

    def replay(self, send: Callable[[str, bytes], Delivery], *, deadline: float) -> tuple[int, int]:
        """Send queued pings in order until one fails or time runs out: (sent, left)."""
        entries = self.entries()
        sent = 0
        for path in entries:
            if time.monotonic() >= deadline:
                break
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            body = record["body"].encode("utf-8", "surrogateescape")
            late = f"[cronwrap: late delivery of a ping from {record['at']}]\n".encode()
            result = send(record["url"], late + body)
            if not result.ok and (result.status is None or result.status in RETRY_STATUSES):
                break  # still unreachable: keep the order, try again next time
            with contextlib.suppress(OSError):
                path.unlink()  # delivered, or refused for good (logged by the caller)
            sent += 1
        return sent, len(entries) - sent
