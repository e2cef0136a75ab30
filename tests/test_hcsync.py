"""`cronwrap hc sync` against a local server implementing the Management API v3 subset."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from cronwrap.notify.hcapi import grace_for, server_schedule
from tests.conftest import cronwrap, cw_env

KEY = "test-api-key-1234"
CHANNEL = "29a0eb18-232d-4ec2-a4cd-a28174c6a052"


class ManagementApi:
    """POST checks/ (unique slug upsert), GET checks/?slug=, 400/401/429 as documented."""

    def __init__(self) -> None:
        self.checks: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.throttle = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, doc: object) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path, None))
                if self.headers.get("X-Api-Key") != KEY:
                    return self._send(401, {"error": "wrong api key"})
                if urlsplit(self.path).path.endswith("/channels/"):
                    return self._send(200, {"channels": [{"id": CHANNEL, "name": "ops mail"}]})
                slug = parse_qs(urlsplit(self.path).query).get("slug", [None])[0]
                checks = [c for c in api.checks.values() if slug in (None, c["slug"])]
                return self._send(200, {"checks": checks})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                doc = json.loads(body or b"{}")
                api.requests.append(("POST", self.path, doc))
                if self.headers.get("X-Api-Key") != KEY:
                    return self._send(401, {"error": "wrong api key"})
                if api.throttle > 0:
                    api.throttle -= 1
                    return self._send(429, {"error": "rate limited"})
                schedule = doc.get("schedule", "")
                if len(schedule.split()) != 5 or schedule.startswith("@"):
                    return self._send(
                        400,
                        {
                            "error": "json validation error: schedule is not "
                            "a valid cron or OnCalendar expression"
                        },
                    )
                grace = doc.get("grace")
                if not isinstance(grace, int) or not 60 <= grace <= 31536000:
                    return self._send(400, {"error": "json validation error: grace"})
                slug = doc["slug"]
                keys = ("name", "slug", "schedule", "tz", "grace", "desc", "tags", "methods")
                fields = {k: doc[k] for k in keys}
                # as the real server: "*" is stored as the project's integrations
                fields["channels"] = CHANNEL if doc.get("channels") == "*" else doc["channels"]
                if slug in api.checks:
                    api.checks[slug].update(fields)
                    return self._send(200, api.checks[slug])
                check = {**fields, "ping_url": f"https://hc.example/ping/{uuid.uuid4()}"}
                api.checks[slug] = check
                return self._send(201, check)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api() -> Iterator[ManagementApi]:
    a = ManagementApi()
    yield a
    a.close()


TAB = """\
CRON_TZ=Europe/Berlin
30 2 * * * cronwrap run --name backup -- /usr/bin/backup
@daily cronwrap run --name report -- /usr/bin/report
0 20-20/1 * * * cronwrap run --name evening -- /usr/bin/evening
@reboot cronwrap run --name warm -- /usr/bin/warm
0 0 * * * /usr/bin/not-wrapped
"""


def sync(home: Path, tab: Path, api: ManagementApi, *args: str, key: str = KEY):  # type: ignore[no-untyped-def]
    env = cw_env(home, CRONWRAP_HC_API_KEY=key)
    return cronwrap(home, "hc", "sync", "--api-url", api.url, "--crontab", str(tab), *args, env=env)


def test_creates_then_updates_one_check_per_job(
    home: Path, tmp_path: Path, api: ManagementApi
) -> None:
    tab = tmp_path / "tab"
    tab.write_text(TAB)
    result = sync(home, tab, api)
    assert result.returncode == 1, result.stderr  # @reboot cannot be a check
    assert "warm" in result.stdout and "skipped: @reboot" in result.stdout
    assert set(api.checks) == {"backup", "report", "evening"}
    assert api.checks["report"]["schedule"] == "0 0 * * *"  # macro expanded
    assert api.checks["evening"]["schedule"] == "0 20 * * *"  # a-a/n normalised
    assert all(c["tz"] == "Europe/Berlin" for c in api.checks.values())  # CRON_TZ
    assert api.checks["backup"]["grace"] == 3600  # no history yet
    assert "created" in result.stdout
    urls = (home / "hc-ping-urls.yaml").read_text()
    assert "backup:" in urls and "ping: https://hc.example/ping/" in urls
    assert oct((home / "hc-ping-urls.yaml").stat().st_mode & 0o777) == "0o600"
    assert "https://hc.example/ping/" not in result.stdout  # ping URLs are secrets
    posts = [r[2] for r in api.requests if r[0] == "POST"]
    assert all(p["unique"] == ["slug"] and isinstance(p["grace"], int) for p in posts)
    n_posts = len(posts)
    again = sync(home, tab, api)
    assert len(api.checks) == 3
    assert [ln.split()[-1] for ln in again.stdout.splitlines()[1:4]] == ["unchanged"] * 3
    assert len([r for r in api.requests if r[0] == "POST"]) == n_posts  # nothing sent


def test_grace_from_observed_run_times(home: Path, tmp_path: Path, api: ManagementApi) -> None:
    for _ in range(3):
        cronwrap(home, "run", "--name", "backup", "--", "sleep", "0.1")
    tab = tmp_path / "tab"
    tab.write_text("30 2 * * * cronwrap run --name backup -- /usr/bin/backup\n")
    assert sync(home, tab, api).returncode == 0
    assert api.checks["backup"]["grace"] == 301  # p95 0.1 s * 1.5 + 5 min, rounded up
    assert sync(home, tab, api, "--grace", "2h").returncode == 0
    assert api.checks["backup"]["grace"] == 7200


def test_host_zone_is_used_and_named(home: Path, tmp_path: Path, api: ManagementApi) -> None:
    tab = tmp_path / "tab"
    tab.write_text("0 1 * * * cronwrap run --name n -- /bin/true\n")
    env = cw_env(home, CRONWRAP_HC_API_KEY=KEY, TZ="America/New_York")
    result = cronwrap(home, "hc", "sync", "--api-url", api.url, "--crontab", str(tab), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert api.checks["n"]["tz"] == "America/New_York"


def test_bad_schedule_is_reported(home: Path, tmp_path: Path, api: ManagementApi) -> None:
    tab = tmp_path / "tab"
    tab.write_text(
        "0 0 30 2 * cronwrap run --name never -- /bin/true\n"
        "0 1 * * * cronwrap run --name ok -- /bin/true\n"
    )
    result = sync(home, tab, api)
    assert result.returncode == 1
    assert "never runs" in result.stdout and set(api.checks) == {"ok"}


def test_server_400_is_reported_per_job(home: Path, tmp_path: Path, api: ManagementApi) -> None:
    tab = tmp_path / "tab"
    tab.write_text("0 1 * * * cronwrap run --name ok -- /bin/true\n")
    result = sync(home, tab, api, "--grace", "10s")  # below the API's minimum of 60 s
    assert result.returncode == 0  # clamped to 60 by cronwrap, so accepted
    assert api.checks["ok"]["grace"] == 60


def test_wrong_key_is_a_clear_error(home: Path, tmp_path: Path, api: ManagementApi) -> None:
    tab = tmp_path / "tab"
    tab.write_text("0 1 * * * cronwrap run --name ok -- /bin/true\n")
    result = sync(home, tab, api, key="nope")
    assert result.returncode == 1
    assert result.stderr.startswith("cronwrap: the Healthchecks API key was refused (401)")


def test_rate_limit_is_retried(home: Path, tmp_path: Path, api: ManagementApi) -> None:
    api.throttle = 1
    tab = tmp_path / "tab"
    tab.write_text("0 1 * * * cronwrap run --name ok -- /bin/true\n")
    result = sync(home, tab, api)
    assert result.returncode == 0, result.stdout
    assert "ok" in api.checks


def test_dry_run_changes_nothing_and_shows_the_plan(
    home: Path, tmp_path: Path, api: ManagementApi
) -> None:
    tab = tmp_path / "tab"
    tab.write_text(
        "0 1 * * * cronwrap run --name a -- /bin/true\n"
        "0 2 * * * cronwrap run --name b -- /bin/true\n"
    )
    sync(home, tab, api)
    tab.write_text(
        "0 1 * * * cronwrap run --name a -- /bin/true\n"
        "0 3 * * * cronwrap run --name b -- /bin/true\n"
        "0 4 * * * cronwrap run --name c -- /bin/true\n"
    )
    posts = len([r for r in api.requests if r[0] == "POST"])
    result = sync(home, tab, api, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert len([r for r in api.requests if r[0] == "POST"]) == posts
    lines = {ln.split()[0]: ln for ln in result.stdout.splitlines()[1:]}
    assert lines["a"].endswith("unchanged")
    assert lines["b"].endswith("update schedule")
    assert lines["c"].endswith("create")


def test_schedule_and_grace_helpers() -> None:
    assert server_schedule("@weekly") == "0 0 * * 0"
    assert server_schedule("0-0/4 */2 * * *") == "0 */2 * * *"
    assert grace_for([10.0, 20.0, 1000.0]) == 1800
    assert grace_for([]) == 3600
    assert grace_for([], override=5) == 60


def test_status_and_lint_warn_when_zones_differ(
    home: Path, tmp_path: Path, api: ManagementApi
) -> None:
    tab = tmp_path / "tab"
    tab.write_text("CRON_TZ=Europe/Berlin\n0 1 * * * cronwrap run --name zoned -- /bin/true\n")
    assert sync(home, tab, api).returncode == 0
    api.checks["zoned"]["tz"] = "UTC"  # someone changed the check by hand
    env = cw_env(home, CRONWRAP_HC_API_KEY=KEY, CRONWRAP_HC_API_URL=api.url)
    status = cronwrap(home, "status", "--crontab", str(tab), "--json", env=env)
    [row] = json.loads(status.stdout)
    assert row["zone_note"] == "runs in Europe/Berlin but its Healthchecks check expects UTC"
    assert "zoned runs in Europe/Berlin" in status.stderr
    lint = cronwrap(home, "lint", str(tab), env=env)
    assert "hc-tz-mismatch" in lint.stdout
    lint = cronwrap(home, "lint", "-", env=env, input=tab.read_text())  # stdin is read once
    assert "-:2:1: warning: job zoned runs in Europe/Berlin" in lint.stdout, lint.stdout
    api.checks["zoned"]["tz"] = "Europe/Berlin"
    lint = cronwrap(home, "lint", str(tab), env=env)
    assert "hc-tz-mismatch" not in lint.stdout
