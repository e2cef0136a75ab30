"""Keeping Healthchecks in step with the crontab through the Management API v3: one check per
job (slug = job name), with cron's schedule in the 5-field form the server reads, the zone cron
runs it in, and a grace that covers the job's real run time. Never silently UTC."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping

from cronwrap.errors import CronwrapError

MIN_GRACE = 60
MAX_GRACE = 31_536_000
DEFAULT_GRACE = 3600
MAX_ANSWER = 32 * 1024 * 1024  # a project's check list (~1 kB a check)


class ApiError(CronwrapError):
    pass


class CheckSpec:
    """What a job's check should look like."""

    __slots__ = ("channels", "desc", "grace", "job", "methods", "schedule", "slug", "tags", "tz")

    def __init__(
        self,
        job: str,
        slug: str,
        schedule: str,
        tz: str,
        grace: int,
        *,
        channels: str = "*",
        desc: str = "",
        tags: str = "",
        methods: str = "",
    ) -> None:
        self.job = job
        self.slug = slug
        self.schedule = schedule
        self.tz = tz
        self.grace = grace
        self.channels = channels  # "*" all integrations, "" none, or names/UUIDs
        self.desc = desc
        self.tags = tags
        self.methods = methods  # "" or "POST"

    def payload(self) -> dict[str, object]:
        return {
            "name": self.job,
            "slug": self.slug,
            "schedule": self.schedule,
            "tz": self.tz,
            "grace": self.grace,
            "desc": self.desc,
            "tags": self.tags,
            "methods": self.methods,
            "channels": self.channels,
            "unique": ["slug"],
        }

    def changes(self, current: dict[str, object], channel_ids: dict[str, str]) -> list[str]:
        """The fields the server's check differs in (channels compared as sets of UUIDs)."""
        payload = self.payload()
        changed = [
            k
            for k in ("name", "schedule", "tz", "grace", "desc", "tags", "methods")
            if current.get(k, "") != payload[k]
        ]
        have = {c for c in str(current.get("channels") or "").split(",") if c}
        if have != self.channel_set(channel_ids):
            changed.append("channels")
        return changed

    def channel_set(self, channel_ids: dict[str, str]) -> set[str]:
        """The UUIDs `channels` names: channel_ids maps names and UUIDs to UUIDs."""
        if self.channels == "*":
            return set(channel_ids.values())
        wanted = (c.strip() for c in self.channels.split(","))
        return {channel_ids.get(c, c) for c in wanted if c}


def slug_for(job: str) -> str:
    """The check slug of a job (one rule for `hc sync` and `run --ping-key`)."""
    from cronwrap.notify.healthchecks import slug_for as slug

    return slug(job)


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
                    method, url, body, headers=headers, timeout=self.timeout, max_body=MAX_ANSWER
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
            # Django's HTML error page: this URL is not the API (one line, not the page)
            raise ApiError(
                f"{redact_url(self.base)} did not answer as a Healthchecks API "
                f"(HTTP {status} to {method} /api/v3/{path.partition('?')[0]}): check --api-url"
            ) from None
        return status, parsed

    def _error(self, what: str, status: int, doc: object) -> ApiError:
        reason = doc.get("error") if isinstance(doc, dict) else None
        return ApiError(f"{what}: HTTP {status}" + (f": {reason}" if reason else ""))

    def list_checks(self) -> list[dict[str, object]]:
        """Every check of the project."""
        status, doc = self._call("GET", "checks/")
        if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
            raise self._error("listing checks failed", status, doc)
        return [dict(c) for c in doc["checks"] if isinstance(c, dict)]

    def channels(self) -> dict[str, str]:
        """name -> UUID and UUID -> UUID of the project's integrations."""
        status, doc = self._call("GET", "channels/")
        if status != 200 or not isinstance(doc, dict):
            raise self._error("listing integrations failed", status, doc)
        out: dict[str, str] = {}
        for c in doc.get("channels") or []:
            if isinstance(c, dict) and c.get("id"):
                out[str(c["id"])] = str(c["id"])
                if c.get("name"):
                    out.setdefault(str(c["name"]), str(c["id"]))
        return out

    def find(self, slug: str) -> dict[str, object] | None:
        status, doc = self._call("GET", f"checks/?slug={slug}")
        if status != 200 or not isinstance(doc, dict):
            raise self._error("listing checks failed", status, doc)
        checks = doc.get("checks") or []
        return dict(checks[0]) if checks else None

    def upsert(self, spec: CheckSpec) -> tuple[str, dict[str, object]]:
        """('created' | 'updated', the check) or raise ApiError with the server's reason."""
        return self.post_check(spec.payload())

    def post_check(
        self, payload: dict[str, object], *, what: str = "the server refused the check"
    ) -> tuple[str, dict[str, object]]:
        status, doc = self._call("POST", "checks/", payload)
        if status in (200, 201) and isinstance(doc, dict):
            return ("created" if status == 201 else "updated"), doc
        raise self._error(what, status, doc)

    def pause(self, uuid: str) -> None:
        status, doc = self._call("POST", f"checks/{uuid}/pause", {})
        if status != 200:
            raise self._error("pausing failed", status, doc)

    def delete(self, uuid: str) -> None:
        status, doc = self._call("DELETE", f"checks/{uuid}")
        if status != 200:
            raise self._error("deleting failed", status, doc)

    def zones(self) -> dict[str, str]:
        """slug -> tz of every check of the project (for the zone sanity check)."""
        return {str(c.get("slug")): str(c.get("tz")) for c in self.list_checks() if c.get("slug")}


def provision(
    slug: str,
    *,
    job: str,
    schedule: str,
    tz: str | None,
    timeout_s: float | None,
    env: Mapping[str, str],
    budget_s: float,
) -> str:
    """Give a check that `--ping-create` just made the job's --schedule, zone and a grace
    that outlasts --timeout, through the Management API (the ping API cannot set them).
    Needs CRONWRAP_HC_API_KEY (and CRONWRAP_HC_API_URL when self-hosted). Returns what was
    done, for the log; raises CronwrapError when it could not be done."""
    from cronwrap.config import read_secret
    from cronwrap.cron.schedule import local_zone, zone_name

    key = env.get("CRONWRAP_HC_API_KEY")
    if not key:
        raise CronwrapError(
            f"--ping-create made check {slug!r} with the server's default schedule (daily): "
            "set CRONWRAP_HC_API_KEY so run applies --schedule, or use cronwrap hc sync"
        )
    url = env.get("CRONWRAP_HC_API_URL", "https://healthchecks.io")
    grace = grace_for([], override=timeout_s + 120 if timeout_s else None)
    spec = CheckSpec(job, slug, server_schedule(schedule), tz or zone_name(local_zone()), grace)
    payload = spec.payload()
    for field in ("desc", "tags", "methods", "channels"):
        del payload[field]  # keep what ?create=1 gave (all channels) and what users set
    api = Api(url, read_secret(key), timeout=max(0.1, budget_s), retries=0)
    api.post_check(payload, what="cannot apply --schedule to the new check")
    return f"applied schedule {spec.schedule!r} ({spec.tz}), grace {grace}s to check {slug!r}"
