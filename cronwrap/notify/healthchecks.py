"""Healthchecks pings that never hurt the job: bounded time budgets, retries only for what
may succeed later, a strict idea of "delivered" (200 `OK` / 201 `Created` only), and an
on-disk outbox (notify/outbox.py) for finish pings that could not be sent, replayed in order
per check.
Speaks HTTP through notify.http (stdlib sockets): requests costs ~100 ms of start-up per run."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping

from cronwrap.errors import ConfigError
from cronwrap.notify.http import check_url, split_url
from cronwrap.redact import REDACT_MARGIN, redact_url

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    import threading

    from cronwrap.notify.outbox import Outbox, ReplayResult
    from cronwrap.paths import StrPath

DEFAULT_BODY_LIMIT = 10_000
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_SLUG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_HEX = frozenset("0123456789abcdefABCDEF")
USER_AGENT = "cronwrap"
# what urlencode leaves as it is
_PLAIN_QUERY = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.~-")


def _is_uuid(text: str) -> bool:
    """A check UUID (8-4-4-4-12 hex digits): what `^…$` matched, a final newline allowed.
    Without a regex, whose compiling costs every pinging run start-up time."""
    text = text[:-1] if text.endswith("\n") else text
    groups = text.split("-")
    return [len(g) for g in groups] == [8, 4, 4, 4, 12] and all(_HEX.issuperset(g) for g in groups)


def _is_slug(text: str) -> bool:
    """What `^[a-z0-9_-]+$` matched, a final newline allowed."""
    text = text[:-1] if text.endswith("\n") else text
    return bool(text) and _SLUG_CHARS.issuperset(text)


def slug_for(job: str) -> str:
    """The Healthchecks slug of a job name, as `hc sync` creates it (`S5.Upper` -> `s5-upper`)."""
    return re.sub(r"[^a-z0-9_-]+", "-", job.lower()).strip("-") or "job"


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
        parts = split_url(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    def secrets(self) -> list[str]:
        """What must never be shown: the URL, the check UUID or ping key in its path, and a
        password in it (anyone who has them can ping the check)."""
        parts = split_url(self.url)
        out = [self.url]
        out += [seg for seg in parts.path.split("/") if _is_uuid(seg)]
        segs = [s for s in parts.path.split("/") if s]
        if len(segs) >= 2 and not any(_is_uuid(s) for s in segs):
            out.append(segs[-2])  # BASE/<ping-key>/<slug>
        if parts.password:
            out.append(parts.password)
        return [s for s in out if len(s) >= 4]

    def url_for(self, kind: str, rid: str | None) -> str:
        path = self.url.rstrip("/") + (f"/{kind}" if kind else "")
        query: dict[str, str] = {}
        if rid:
            query["rid"] = rid
        if self.create:
            query["create"] = "1"
        return path + ("?" + _urlencode(query) if query else "")


def _urlencode(query: dict[str, str]) -> str:
    """urlencode(query): our own run ids and flags need no quoting, and urllib.parse costs
    start-up time (it imports ipaddress)."""
    if all(_PLAIN_QUERY.issuperset(k + v) for k, v in query.items()):
        return "&".join(f"{k}={v}" for k, v in query.items())
    from urllib.parse import urlencode

    return urlencode(query)


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
        check_url(ping, "--ping")
        return PingTarget(ping.split("?", 1)[0], create=create)
    if uuid:
        if not _is_uuid(uuid.strip()):
            raise ConfigError(
                "--ping-uuid is not a check UUID (like 5b5f1a2e-8c3d-4e6f-9a0b-1c2d3e4f5a6b)"
            )
        check_url(base, "--ping-base")
        return PingTarget(join_url(base, uuid.strip()))
    if key:
        if slug and not _is_slug(slug):
            raise ConfigError(
                f"--ping-slug {slug!r} is not a Healthchecks slug (lower-case a-z 0-9 - _)"
            )
        check_url(base, "--ping-base")
        return PingTarget(join_url(base, key, slug or slug_for(job_name)), create=create)
    if slug:
        raise ConfigError("--ping-slug needs --ping-key")
    return None


# ------------------------------------------------------------------ what to send


def finish_kind(status: str, exit_code: int, *, tolerated: bool = False) -> str:
    """The ping kind that makes the server record cronwrap's own result. The server reads an
    exit status as 0 = success, anything else = failure, so the status is sent only where
    that reading agrees: a min-runtime failure of an exit-0 job is `/fail`, an
    --ok-exit-codes success with exit 24 is a plain success, timeouts and cancels send their
    exit status (124, 128+N). A failure --alert-after still tolerates is a plain success too:
    it must close the run's /start (only success, fail or an exit status do) without marking
    the check down; its body says what happened."""
    good = status == "success"
    if good or tolerated:
        return "0" if good and exit_code == 0 else ""
    return str(exit_code) if 1 <= exit_code <= 255 else "fail"


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
        lines.append(late_line(late).rstrip("\n"))
    return "\n".join(lines) + "\n"


def late_line(at: str) -> str:
    return f"late: this ping could not be delivered at {at}; replayed now\n"


class PingBody:
    """A ping body before it is cut: the summary and the (already redacted) output around
    the cuts. Cut last, at send time, so a replayed body with its late line still fits."""

    __slots__ = ("head", "header", "omitted", "tail")

    def __init__(self, header: str, head: bytes = b"", tail: bytes = b"", omitted: int = 0) -> None:
        self.header = header
        self.head = head
        self.tail = tail
        self.omitted = omitted

    @classmethod
    def redacted(
        cls,
        header: str,
        output: Callable[[int], tuple[bytes, bytes, int]] | None,
        redact: Callable[[bytes], bytes],
        limit: int,
    ) -> PingBody:
        """Read head and tail a margin beyond what can fit, redact, and only then let
        render() cut: a secret across a cut is masked whole, never sent in part."""
        if output is None:
            return cls(header)
        head, tail, omitted = output(2 * (limit + REDACT_MARGIN))
        return cls(header, redact(head), redact(tail), omitted)

    def render(self, limit: int, *, late: str | None = None) -> bytes:
        header = self.header + (late_line(late) if late else "")
        return fit_body(header, self.head, self.tail, self.omitted, limit)

    def to_record(self) -> dict[str, object]:
        return {
            "header": self.header,
            "head": self.head.decode("utf-8", "surrogateescape"),
            "tail": self.tail.decode("utf-8", "surrogateescape"),
            "omitted": self.omitted,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> PingBody:
        def raw(key: str) -> bytes:
            value = record.get(key, "")
            if not isinstance(value, str):
                raise ValueError(f"{key} is not text")
            return value.encode("utf-8", "surrogateescape")

        header, omitted = record.get("header"), record.get("omitted", 0)
        if not isinstance(header, str) or not isinstance(omitted, int):
            raise ValueError("no header")
        return cls(header, raw("head"), raw("tail"), omitted)


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
    if not omitted:  # head and tail are one piece of output: cut out its middle
        whole = head + tail
        h = whole[: max(0, room // 2)]
        t_room = max(0, room - len(h))
        t = whole[len(whole) - t_room :] if t_room else b""
        skipped = len(whole) - len(h) - len(t)
    else:
        h = head[: max(0, room // 2)]
        t_room = max(0, room - len(h))
        t = tail[-t_room:] if t_room else b""
        skipped = omitted + (len(head) - len(h)) + (len(tail) - len(t))
    gap = f"\n[cronwrap: {skipped} bytes omitted here]\n".encode()
    return (top + marker + h + gap + t)[:limit]


# ------------------------------------------------------------------ sending


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

    @property
    def retryable(self) -> bool:
        """May succeed later: no answer, 408/429/5xx, or a 200 whose body is not `OK`
        (hosted Healthchecks answers `OK (rate limited)`)."""
        return not self.ok and (
            self.status is None or self.status in RETRY_STATUSES or self.status == 200
        )


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
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.target = target
        self.backoff = backoff
        self.user_agent = user_agent
        self.env = env  # where proxy variables are read; None: the process environment

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
                env=self.env,
                headers={
                    "Content-Type": "text/plain; charset=utf-8",
                    "User-Agent": self.user_agent,
                },
            )
        except OSError as err:
            reason = (
                "timed out"
                if isinstance(err, TimeoutError) and not str(err).startswith("name")
                else (err.strerror or str(err) or type(err).__name__)
            )
            return Delivery(False, None, reason, attempt)
        text = answer[:200].decode("utf-8", "replace").strip()
        limit_header = headers.get("ping-body-limit", "")
        # a sane number only: int() of 5000 digits is a ValueError, and the delivery was lost
        limit = int(limit_header) if limit_header.isdigit() and len(limit_header) < 19 else None
        ok = (status == 200 and text == "OK") or (status == 201 and text == "Created")
        reason = "" if ok else f"HTTP {status} {text[:80]!r}"
        return Delivery(ok, status, reason, attempt, limit)


# ------------------------------------------------------------------ limits cache


# one line per server, `<scheme>://<host[:port]> <limit>` (no json: its import costs every
# pinging run start-up time, and a server has no spaces)
LIMITS_FILE = "ping-limits"


def _read_limits(path: str) -> dict[str, int]:
    from cronwrap.config import read_regular_file

    # a FIFO or /dev/zero in its place must neither block the run nor fill its memory
    text = read_regular_file(path, 64 * 1024).decode("utf-8")
    limits = {}
    for line in text.splitlines():
        server, _, value = line.rpartition(" ")
        if server and value.isdigit() and value.isascii() and len(value) < 19:
            limits[server] = int(value)
    return limits


def cached_limit(state_dir: StrPath, server: str) -> int | None:
    try:
        return _read_limits(os.path.join(state_dir, LIMITS_FILE)).get(server) or None
    except (OSError, ValueError):
        return None


def remember_limit(state_dir: StrPath, server: str, limit: int) -> None:
    path = os.path.join(state_dir, LIMITS_FILE)
    try:
        limits = _read_limits(path) if os.path.exists(path) else {}
        if limits.get(server) == limit or any(c.isspace() for c in server):
            return
        limits[server] = limit
        tmp = os.path.join(state_dir, f".{LIMITS_FILE}.{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(f"{name} {value}\n" for name, value in limits.items()))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass  # a cache: losing it only means the default limit next time


# ------------------------------------------------------------------ one run's conversation


class PingSession:
    """The Healthchecks side of one run: start, log, finish, all within budgets; every
    failure is emitted and collected for one warning line, none is raised."""

    def __init__(
        self,
        pinger: Pinger,
        *,
        run_id: str,
        job: str,
        state_dir: StrPath,
        start_budget: float,
        finish_budget: float,
        body_limit: int | None,
        emit: Callable[..., None],
        warn: Callable[[str], None],
    ) -> None:
        self.pinger = pinger
        self.target = pinger.target
        self.run_id = run_id
        self.job = job
        self.state_dir = state_dir
        self.start_budget = start_budget
        self.finish_budget = finish_budget
        self.body_limit_override = body_limit
        self.emit = emit
        self.warn = warn
        self.problems: list[str] = []
        self.outbox_path = os.path.join(state_dir, "outbox")
        self._outbox: Outbox | None = None
        self._keepalive: threading.Event | None = None
        self.created = False  # a ping made the check (201 Created, --ping-create)

    @property
    def outbox(self) -> Outbox:
        """The pings queued for later, loaded once there are any or one is queued: most runs
        find none, and its modules (with the spool's) cost each about 1.4 % of a run."""
        if self._outbox is None:
            from cronwrap.notify.outbox import Outbox

            self._outbox = Outbox(self.outbox_path)
        return self._outbox

    def _has_queued(self) -> bool:
        """Anything in the outbox (records, claims): what Outbox.entries reads first."""
        try:
            return bool(os.listdir(self.outbox_path))
        except OSError:
            return False

    def _failed(self, kind: str, result: Delivery, *, queued: bool = False) -> None:
        note = " (queued for later delivery)" if queued else ""
        self.emit(
            "ping.error",
            f"{kind} ping not delivered: {result.reason}{note}",
            kind=kind,
            url=self.target.redacted,
            http_status=result.status,
            queued=queued,
            error=result.reason,
        )
        self.problems.append(f"{kind}: {result.reason}{note}")

    def report_once(self) -> None:
        if self.problems:
            self.warn(f"ping to {self.target.redacted} failed: " + "; ".join(self.problems))
            self.problems = []

    def body_limit(self) -> int:
        if self.body_limit_override:
            return int(self.body_limit_override)
        return cached_limit(self.state_dir, self.target.server) or DEFAULT_BODY_LIMIT

    def _learn_limit(self, result: Delivery) -> None:
        if result.status == 201 and result.ok:
            self.created = True
        if result.body_limit:
            remember_limit(self.state_dir, self.target.server, result.body_limit)

    def replay(self, deadline: float) -> ReplayResult:
        """Queued pings first, so the server sees results in the order they happened."""

        def send(url: str, body: bytes) -> Delivery:
            result = self.pinger.send_url(url, body, budget_s=max(0.0, deadline - time.monotonic()))
            if not result.ok and result.status is not None:
                self._failed("replayed", result)
            return result

        done = self.outbox.replay(send, deadline=deadline)
        if done.quarantined:
            from cronwrap.notify.spool import quarantine_note

            self.warn(quarantine_note(done.quarantined))
        return done

    def start(self) -> Delivery:
        deadline = time.monotonic() + self.start_budget
        if self._has_queued() and self.outbox.entries():
            self.replay(deadline)
        result = self.pinger.send(
            "start", self.run_id, b"", budget_s=max(0.0, deadline - time.monotonic())
        )
        self._learn_limit(result)
        if not result.ok:
            self._failed("start", result)
        return result

    def start_keepalive(self, interval_s: float, *, job: str, host: str) -> None:
        """While the job runs, a /log ping every `interval_s` from a daemon thread (each
        within the start budget). It shows the run is alive in the check's log; the server's
        grace still runs from /start (only the finish ping closes the run)."""
        import threading

        stop = threading.Event()
        started = time.monotonic()

        def beat() -> None:
            while not stop.wait(interval_s):
                alive = time.monotonic() - started
                body = PingBody(f"cronwrap: job {job} on {host} still running after {alive:.0f}s\n")
                self.log(body)

        self._keepalive = stop
        threading.Thread(target=beat, daemon=True, name="cronwrap-keepalive").start()

    def stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.set()

    def log(self, body: PingBody, *, rid: str | None = None) -> None:
        data = body.render(self.body_limit())
        result = self.pinger.send("log", rid or self.run_id, data, budget_s=self.start_budget)
        if not result.ok:
            self._failed("log", result)

    def queue(self, kind: str, rid: str, body: PingBody, *, at: str) -> None:
        """Queue a ping for later (the /fail of a run whose cronwrap died)."""
        try:
            self.outbox.put(
                check=self.target.url,
                kind=kind,
                rid=rid,
                body=body,
                limit=self.body_limit(),
                job=self.job,
                at=at,
            )
        except OSError as err:
            self.warn(f"cannot queue a ping for later delivery: {err.strerror or err}")

    def finish(self, kind: str, body: PingBody, *, at: str) -> Delivery:
        limit = self.body_limit()
        url = self.target.url_for(kind, self.run_id)
        result = self.pinger.send_url(url, body.render(limit), budget_s=self.finish_budget)
        self._learn_limit(result)
        if result.ok:
            if self._has_queued():
                self.outbox.supersede(self.target.url, at=at)
            return result
        queue = result.retryable
        if queue:
            try:
                self.outbox.put(
                    check=self.target.url,
                    kind=kind,
                    rid=self.run_id,
                    body=body,
                    limit=result.body_limit or limit,
                    job=self.job,
                    at=at,
                )
            except OSError as err:
                queue = False
                self.warn(f"cannot queue the finish ping: {err.strerror or err}")
        self._failed(f"finish ({kind or 'success'})", result, queued=queue)
        return result
