"""Fleet mode on a real redis-server started on a free port in a temp dir."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import (
    assert_one_slot_run_across_hosts,
    cronwrap,
    events,
    history,
    popen_cronwrap,
    wait_for,
)

REDIS = shutil.which("redis-server")
if REDIS is None:
    if os.environ.get("CRONWRAP_REQUIRE_REDIS"):
        raise RuntimeError("redis-server is not on PATH, and CRONWRAP_REQUIRE_REDIS is set")
    pytest.skip(
        "redis-server is not installed (apt-get install redis-server)", allow_module_level=True
    )
pytest.importorskip("redis", reason="the redis extra is not installed")


class RedisServer:
    def __init__(self, tmp: Path, password: str | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.tmp = tmp
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        args = [
            REDIS,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.tmp),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def on_host_b(home: Path, server: RedisServer, job: str) -> subprocess.CompletedProcess[str]:
    """A run of `job` from "host b" with a 1 s lease."""
    return cronwrap(
        home,
        "run",
        "--name",
        job,
        "--host-id",
        "b",
        "--lock-url",
        server.url,
        "--lock-ttl",
        "1s",
        "--",
        "true",
    )


def test_one_run_per_slot_across_hosts(
    home: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    assert_one_slot_run_across_hosts(home, tmp_path / "ran", redis_server.url)
    status = json.loads(cronwrap(home, "status", "--crontab", "/dev/null", "--json").stdout)
    row = next(s for s in status if s["name"] == "report")
    assert row["last_run"]["host"].startswith("host")


def test_lease_is_renewed_past_its_ttl(
    home: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    marker, release = tmp_path / "m", tmp_path / "release"
    first = popen_cronwrap(
        home,
        "run",
        "--name",
        "long",
        "--host-id",
        "a",
        "--lock-url",
        redis_server.url,
        "--lock-ttl",
        "1s",
        "--",
        "sh",
        "-c",
        f"touch {marker}; while [ ! -e {release} ]; do sleep 0.05; done",
    )
    wait_for(marker.exists)
    time.sleep(1.8)  # well past the 1 s TTL: only renewal keeps the lease
    # the first run holds on until released, however slowly the second one starts
    second = cronwrap(
        home,
        "run",
        "--name",
        "long",
        "--host-id",
        "b",
        "--lock-url",
        redis_server.url,
        "--lock-ttl",
        "1s",
        "--",
        "true",
    )
    release.touch()
    assert second.returncode == 0
    assert first.wait(30) == 0
    runs = {r["host"]: r for r in history(home, "long")}
    assert runs["b"]["status"] == "skipped" and "on a" in runs["b"]["reason"]
    assert runs["a"]["status"] == "success"
    assert not any(e["event"] == "lock.lost" for e in events(home))


def test_a_killed_holders_lease_expires(
    home: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    marker = tmp_path / "m"
    holder = popen_cronwrap(
        home,
        "run",
        "--name",
        "k",
        "--host-id",
        "a",
        "--lock-url",
        redis_server.url,
        "--lock-ttl",
        "1s",
        "--",
        "sh",
        "-c",
        f"touch {marker}; exec sleep 30",
    )
    wait_for(marker.exists)
    holder.kill()
    holder.wait()
    blocked = on_host_b(home, redis_server, "k")
    assert blocked.returncode == 0
    time.sleep(1.2)  # the dead host's lease runs out
    after = on_host_b(home, redis_server, "k")
    assert after.returncode == 0
    statuses = [(r["host"], r["status"]) for r in history(home, "k")]
    assert statuses[0] == ("b", "success")


@pytest.mark.parametrize(
    ("policy", "code", "ran", "status"),
    [
        ("skip", 0, False, "skipped"),
        ("run", 0, True, "success"),
        ("fail", 125, False, None),
    ],
)
def test_redis_unavailable_at_start(
    home: Path, tmp_path: Path, policy: str, code: int, ran: bool, status: str | None
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    marker = tmp_path / "ran"
    t = time.monotonic()
    result = cronwrap(
        home,
        "run",
        "--name",
        "u",
        "--lock-url",
        f"redis://127.0.0.1:{dead}/0",
        "--lock-unavailable",
        policy,
        "--",
        "touch",
        str(marker),
    )
    assert time.monotonic() - t < 20  # 2 s connection timeouts, not a hang
    assert result.returncode == code, result.stderr
    assert marker.exists() is ran
    assert "unavailable" in result.stderr
    runs = history(home, "u")
    assert (runs[0]["status"] if runs else None) == status


def test_redis_stopped_mid_run_continue_and_kill(
    home: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    for policy, code in (("continue", 0), ("kill", 143)):
        server = RedisServer(tmp_path).start()
        marker = tmp_path / f"m-{policy}"
        done = tmp_path / f"done-{policy}"
        proc = popen_cronwrap(
            home,
            "run",
            "--name",
            f"mid-{policy}",
            "--lock-url",
            server.url,
            "--lock-ttl",
            "1s",
            "--on-lock-lost",
            policy,
            "--kill-after",
            "1s",
            "--",
            "sh",
            "-c",
            f"touch {marker}; sleep 3; touch {done}",
            stderr=subprocess.PIPE,
        )
        wait_for(marker.exists)
        server.stop()
        assert proc.wait(20) == code
        stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
        assert "fleet lease of" in stderr and "lost" in stderr
        assert done.exists() is (policy == "continue")
        [run] = history(home, f"mid-{policy}")
        assert "lock-lost" in (run["flags"] or "")
        if policy == "kill":
            assert run["status"] == "failed" and "--on-lock-lost kill" in run["reason"]
    assert sum(e["event"] == "lock.lost" for e in events(home)) == 2


def test_no_secret_from_the_lock_url_in_logs(home: Path, tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="s3cret-redis-pw").start()
    try:
        result = cronwrap(home, "run", "--name", "sec", "--lock-url", server.url, "--", "true")
        assert result.returncode == 0, result.stderr
        bad = cronwrap(
            home,
            "run",
            "--name",
            "sec",
            "--lock-url",
            server.url.replace("s3cret-redis-pw", "wrong-pw-value"),
            "--",
            "true",
        )
        assert "unavailable" in bad.stderr
    finally:
        server.stop()
    log = (home / "cronwrap.log").read_text()
    store = (home / "runs.db").read_bytes()
    for secret in ("s3cret-redis-pw", "wrong-pw-value"):
        assert secret not in log and secret not in bad.stderr
        assert secret.encode() not in store


def test_releases_the_lease_for_the_next_run(home: Path, redis_server: RedisServer) -> None:
    for _ in range(3):
        assert (
            cronwrap(
                home, "run", "--name", "seq", "--lock-url", redis_server.url, "--", "true"
            ).returncode
            == 0
        )
    assert [r["status"] for r in history(home, "seq")] == ["success"] * 3


def test_jitter_does_not_move_a_run_out_of_its_slot(
    home: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    """The slot is the one of the moment cron started cronwrap: after up to 18 s of
    --jitter, three hosts still claim the same slot and one runs (the slot was worked out
    after the jitter, past a tolerance that held at the start, so the hosts all ran)."""
    now = datetime.now(timezone.utc)
    # the start is inside the tolerance, however slowly cronwrap starts (2 s were not enough
    # on a busy machine, and both hosts ran), a jitter past 6 s is not; with the slot worked
    # out after the jitter, all three hosts draw less than that 1 time in 27
    tolerance = now.second + now.microsecond / 1e6 + 6
    ran = tmp_path / "ran"
    procs = [
        popen_cronwrap(
            home,
            "run",
            "--name",
            "jit",
            "--host-id",
            f"host{i}",
            "--lock-url",
            redis_server.url,
            "--schedule",
            f"{now.minute} {now.hour} * * *",
            "--tz",
            "UTC",
            "--slot-tolerance",
            f"{tolerance:.3f}s",
            "--jitter",
            "18s",
            "--",
            "sh",
            "-c",
            f"echo host{i} >> {ran}",
        )
        for i in range(3)
    ]
    for p in procs:
        assert p.wait(60) == 0
    assert len(ran.read_text().split()) == 1
