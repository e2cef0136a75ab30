"""Keeping Healthchecks in step with the crontab through the Management API v3: one check per
job (slug = job name), with cron's schedule in the 5-field form the server reads, the zone cron
runs it in, and a grace that covers the job's real run time. Never silently UTC."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable

from cronwrap.errors import CronwrapError

MIN_GRACE = 60
MAX_GRACE = 31_536_000
DEFAULT_GRACE = 3600


class ApiError(CronwrapError):
    pass


class CheckSpec:
    """What a job's check should look like."""

    __slots__ = ("grace", "job", "schedule", "slug", "tz")

    def __init__(self, job: str, slug: str, schedule: str, tz: str, grace: int) -> None:
        self.job = job
        self.slug = slug
        self.schedule = schedule
        self.tz = tz
        self.grace = grace

    def payload(self) -> dict[str, object]:
        return {
            "name": self.job,
            "slug": self.slug,
            "schedule": self.schedule,
            "tz": self.tz,
            "grace": self.grace,
            "unique": ["slug"],
        }


def slug_for(job: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", job.lower()).strip("-") or "job"


def server_schedule(expr: str) -> str:
    """Cron's meaning in the 5-field form the server's cronsim reads the same way: macros
    expanded, and `a-a/n` (cronsim reads a-max/n) written as `a`."""
    from cronwrap.cron.schedule import parse

    schedule = parse(expr)
    if schedule.reboot:
        raise CronwrapError("@reboot has no clock schedule for Healthchecks")
    if schedule.never:
        raise CronwrapError(f"{expr!r} never runs")
    fields = [re.sub(r"\b(\w+)-\1/\d+\b", r"\1", f.text) for f in schedule.fields]
    return " ".join(fields)


def grace_for(durations: list[float], *, override: float | None = None) -> int:
    """--grace, else the p95 of observed run times plus half of it and 5 minutes for
    lateness; 1 hour without history. Clamped to what the API accepts."""
    if override is not None:
        value = override
    elif len(durations) >= 3:
        ordered = sorted(durations)
        p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        value = p95 * 1.5 + 300
    else:
        value = DEFAULT_GRACE
    return int(min(MAX_GRACE, max(MIN_GRACE, math.ceil(value))))


class Api:
    def __init__(
        self,
        base: str,
        key: str,
        *,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        retries: int = 3,
    ) -> None:
        self.base = base.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.sleep = sleep
        self.retries = retries

    def _call(self, method: str, path: str, doc: object | None = None) -> tuple[int, object]:
        from cronwrap.notify.http import request
        from cronwrap.redact import redact_url

        url = f"{self.base}/api/v3/{path}"
        body = json.dumps(doc).encode() if doc is not None else b""
        headers = {
            "X-Api-Key": self.key,
            "Content-Type": "application/json",
            "User-Agent": "cronwrap",
        }
        for attempt in range(self.retries + 1):
            try:
                status, _, answer = request(
                    method, url, body, headers=headers, timeout=self.timeout
                )
            except OSError as err:
                raise ApiError(f"{redact_url(self.base)}: {err.strerror or err}") from None
            if status == 429 and attempt < self.retries:  # 100 requests a minute, then 429
                self.sleep(2**attempt)
                continue
            break
        if status == 401:
            raise ApiError(
                "the Healthchecks API key was refused (401): use a read-write project API key"
            )
        try:
            parsed: object = json.loads(answer) if answer else None
        except ValueError:
            parsed = answer.decode("utf-8", "replace")
        return status, parsed

    def find(self, slug: str) -> dict[str, object] | None:
        status, doc = self._call("GET", f"checks/?slug={slug}")
        if status != 200 or not isinstance(doc, dict):
            raise ApiError(f"listing checks failed: HTTP {status}")
        checks = doc.get("checks") or []
        return dict(checks[0]) if checks else None

    def upsert(self, spec: CheckSpec) -> tuple[str, dict[str, object]]:
        """('created' | 'updated', the check) or raise ApiError with the server's reason."""
        status, doc = self._call("POST", "checks/", spec.payload())
        if status in (200, 201) and isinstance(doc, dict):
            return ("created" if status == 201 else "updated"), doc
        reason = doc.get("error") if isinstance(doc, dict) else str(doc)[:200]
        raise ApiError(f"HTTP {status}: {reason}")

    def zones(self) -> dict[str, str]:
        """slug -> tz of every check of the project (for the zone sanity check)."""
        status, doc = self._call("GET", "checks/")
        if status != 200 or not isinstance(doc, dict):
            raise ApiError(f"listing checks failed: HTTP {status}")
        return {
            str(c.get("slug")): str(c.get("tz"))
            for c in doc.get("checks", [])
            if isinstance(c, dict) and c.get("slug")
        }
