"""Catch-up in fleet mode: two hosts back from the same downtime run a missed slot once
between them, through the real redis-server slot claim."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.conftest import cronwrap, cw_env, popen_cronwrap
from tests.test_fleet import RedisServer

PY = sys.executable
DUMP = (
    "import os, sys; open(sys.argv[1], 'a').write("
    "os.environ['CRONWRAP_SLOT'] + ' ' + os.environ['CRONWRAP_JOB'] + '\\n')"
)


def test_two_hosts_catch_up_a_missed_slot_once(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    try:
        out = tmp_path / "ran.txt"
        homes = {host: tmp_path / host for host in ("alpha", "beta")}
        for host, home in homes.items():
            result = cronwrap(
                home, "run", "--name", "nightly", "--host-id", host, "--lock-url", server.url,
                "--schedule", "0 3 * * *", "--tz", "UTC", "--catch-up", "--",
                PY, "-c", DUMP, str(out),
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
        slot = datetime.strptime(out.read_text().split()[0], "%Y-%m-%dT%H:%M:%SZ")
        missed = slot.replace(tzinfo=timezone.utc) + timedelta(days=2)
        back = (missed + timedelta(hours=6)).isoformat()
        procs = [
            popen_cronwrap(
                home, "catch-up", "--crontab", "/dev/null", "--now", back, env=cw_env(home)
            )
            for home in homes.values()
        ]
        assert [p.wait(timeout=60) for p in procs] == [0, 0]
        lines = out.read_text().splitlines()
        assert lines[2:] == [f"{missed:%Y-%m-%dT%H:%M:%SZ} nightly"]  # once, on one host
        reasons = []
        for home in homes.values():
            history = json.loads(cronwrap(home, "history", "nightly", "--json").stdout)
            reasons.append(history[0]["status"] + ": " + (history[0]["reason"] or ""))
        assert sorted(r.split(":")[0] for r in reasons) == ["skipped", "success"], reasons
        assert any("ran on " in r for r in reasons), reasons
    finally:
        server.stop()


def test_rerun_of_a_fleet_run_needs_its_lock_url_which_is_never_stored(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="hunter2-redis").start()
    try:
        home = tmp_path / "home"
        out = tmp_path / "ran.txt"
        first = cronwrap(
            home, "run", "--name", "f", "--lock-url", server.url, "--",
            PY, "-c", DUMP, str(out),
        )  # fmt: skip
        assert first.returncode == 0, first.stderr
        [run] = json.loads(cronwrap(home, "history", "f", "--json").stdout)
        stored = b"".join(f.read_bytes() for f in home.glob("runs.db*"))
        assert b"hunter2" not in stored
        refused = cronwrap(home, "rerun", run["run_id"])
        assert refused.returncode == 125, refused.stderr
        assert "--lock-url" in refused.stderr and len(out.read_text().splitlines()) == 1
        env = cw_env(home, CRONWRAP_LOCK_URL=server.url)
        ok = cronwrap(home, "rerun", run["run_id"], env=env)
        assert ok.returncode == 0, ok.stderr
        assert len(out.read_text().splitlines()) == 2
    finally:
        server.stop()
