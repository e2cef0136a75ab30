"""Fleet mode: the overlap lock as a Redis lease, so a job that is in several hosts' crontabs
runs once per scheduled slot. The lease is `SET key token NX PX ttl`, renewed from a thread
while the job runs and released only by its owner (compare-and-delete in one Lua script), so
a dead host's lease simply expires. The redis client is an optional extra, imported here only."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from cronwrap.errors import CronwrapError
from cronwrap.redact import redact_url

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker

RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


if TYPE_CHECKING:
    from typing import Protocol

    class RedisClient(Protocol):
        """The few commands of redis-py's client a lease uses."""

        def set(
            self,
            name: str,
            value: str,
            *,
            nx: bool = ...,
            ex: int | None = ...,
            px: int | None = ...,
        ) -> object: ...

        def get(self, name: str) -> object: ...

        def eval(self, script: str, numkeys: int, *keys_and_args: str | int) -> object: ...


class LockUnavailableError(CronwrapError):
    """The Redis server could not be reached or answered with an error."""


def connect(url: str, *, timeout: float = 2.0) -> RedisClient:
    # a missing client or a bad URL leaves the lock as unavailable as a dead server: the
    # --lock-unavailable policy decides (skip, run unlocked, fail), not a blanket 125
    try:
        import redis
    except ImportError:
        raise LockUnavailableError(
            "--lock-url needs the redis client, cronwrap's redis extra: reinstall cronwrap from "
            "its checkout with pip install '.[redis]' (or from its wheel: "
            "pip install 'cronwrap_cli-VERSION-py3-none-any.whl[redis]')"
        ) from None
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )
        client.ping()
    except ValueError as err:
        raise LockUnavailableError(f"--lock-url {redact_url(url)}: {err}") from None
    except redis.RedisError as err:
        raise LockUnavailableError(
            f"lock server {redact_url(url)} unavailable: {type(err).__name__}"
        ) from None
    return client


def slot_for(
    schedule_text: str, tz_name: str | None, now: datetime, tolerance_s: float
) -> datetime | None:
    """The schedule's fire time nearest to `now`, if within the tolerance (clock skew and
    start-up delay between hosts); None when the schedule has no fire time near now."""
    from datetime import timedelta

    from cronwrap.cron.schedule import parse, zone

    schedule = parse(schedule_text)
    tz = zone(tz_name)
    near = timedelta(seconds=tolerance_s)
    candidates = schedule.prev_runs(now + timedelta(seconds=1), tz, 1) + schedule.next_runs(
        now, tz, 1
    )
    best = min(candidates, key=lambda t: abs((t - now).total_seconds()), default=None)
    if best is None or abs(best - now) > near:
        return None
    return best.astimezone(timezone.utc)


class Fleet:
    """One job's claims and lease on one Redis server."""

    def __init__(
        self, client: RedisClient, job: str, *, host: str, run_id: str, ttl_s: float, url: str
    ) -> None:
        self.client = client
        self.key = f"cronwrap:lock:{job}"
        self.slot_prefix = f"cronwrap:slot:{job}:"
        self.token = f"{host}:{run_id}"
        self.host = host
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self.url = url
        self.fd: int | None = None  # no descriptor to pass to the child (see JobLock)
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _redis_error(self) -> type[Exception]:
        import redis

        return redis.RedisError

    def claim_slot(self, slot: datetime, *, ttl_s: float) -> str | None:
        """Claim the scheduled slot; None if ours, else the host that claimed it first."""
        key = f"{self.slot_prefix}{int(slot.timestamp())}"
        try:
            if self.client.set(key, self.host, nx=True, ex=max(1, int(ttl_s))):
                return None
            other = self.client.get(key)
        except self._redis_error() as err:
            raise LockUnavailableError(
                f"lock server {redact_url(self.url)}: {type(err).__name__}"
            ) from None
        return other.decode() if isinstance(other, bytes) else str(other)

    def acquire(self, *, wait_s: float = 0.0, sleep: Callable[[float], bool] | None = None) -> bool:
        """Take the lease, waiting up to `wait_s` (see lock.keep_trying)."""
        from cronwrap.run.lock import keep_trying

        def try_once() -> bool:
            try:
                return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
            except self._redis_error() as err:
                raise LockUnavailableError(
                    f"lock server {redact_url(self.url)}: {type(err).__name__}"
                ) from None

        return keep_trying(try_once, wait_s, sleep)

    def holder(self) -> str | None:
        try:
            value = self.client.get(self.key)
        except self._redis_error():
            return None
        if not value:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text.split(":")[0]

    def keep_alive(self, on_lost: Callable[[str], None]) -> None:
        """Renew the lease every ttl/3 until released; call on_lost once if it is lost."""

        def renew() -> None:
            expires = time.monotonic() + self.ttl_ms / 1000
            while not self._stop.wait(self.ttl_ms / 3000):
                try:
                    ok = self.client.eval(RENEW, 1, self.key, self.token, self.ttl_ms)
                except self._redis_error() as err:
                    if time.monotonic() < expires:
                        continue  # keep trying while the lease may still be ours
                    ok, reason = 0, f"renewal failed ({type(err).__name__}) and the lease expired"
                else:
                    reason = "the lease was taken over or expired"
                if ok:
                    expires = time.monotonic() + self.ttl_ms / 1000
                    continue
                self.lost = reason
                on_lost(reason)
                return

        self._thread = threading.Thread(target=renew, daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self.lost:
            return
        try:
            self.client.eval(RELEASE, 1, self.key, self.token)
        except self._redis_error():
            pass  # the lease expires by itself
