"""The example configurations in examples/ are complete and do what their comments say: each is
loaded by the real config loader and runs real jobs against local servers (an HTTP receiver
for webhooks and Apprise, a redis-server for the fleet)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cronwrap.config import load_config
from tests.conftest import ROOT, cronwrap, cw_env, popen_cronwrap, wait_for
from tests.receiver import Receiver

EXAMPLES = ROOT / "examples"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def localised(name: str, tmp_path: Path, secrets: dict[str, str]) -> Path:
    """The example with its absolute paths (/etc/cronwrap, /var/log) moved under tmp_path
    and its secret files written there; nothing else changed."""
    etc, log = tmp_path / "etc", tmp_path / "log"
    etc.mkdir(exist_ok=True)
    log.mkdir(exist_ok=True)
    for file, value in secrets.items():
        (etc / file).write_text(value + "\n")
        (etc / file).chmod(0o600)
    text = (EXAMPLES / name).read_text()
    text = text.replace("/etc/cronwrap/", f"{etc}/").replace("/var/log/", f"{log}/")
    config = tmp_path / name
    config.write_text(text)
    load_config(config)  # the real loader accepts it as it is
    return config


@pytest.mark.parametrize("name", ["alerts.yaml", "fleet.yaml"])
def test_example_loads_and_every_job_resolves(name: str, tmp_path: Path) -> None:
    config = load_config(EXAMPLES / name)
    assert config.jobs and config.defaults
    result = cronwrap(
        tmp_path, "config", "--json", env=cw_env(tmp_path, CRONWRAP_CONFIG=str(EXAMPLES / name))
    )
    assert result.returncode == 0, result.stderr
    for job in config.jobs:
        assert f'"{job}"' in result.stdout


def test_alerts_example_alerts_by_webhook_apprise_and_command(
    home: Path, tmp_path: Path, hook: Receiver
) -> None:
    config = localised(
        "alerts.yaml",
        tmp_path,
        {
            "alert-webhook.url": hook.url,
            # Apprise's json:// stands in for the mailtos:// of the example: same path through
            # the alerts extra, and a local server can receive it
            "alert-mail.url": f"json://127.0.0.1:{hook.port}/mail",
        },
    )
    env = cw_env(home, CRONWRAP_CONFIG=str(config))

    def run(name: str, *command: str) -> int:
        result = cronwrap(home, "run", "--name", name, "--", *command, env=env)
        own = [ln for ln in result.stderr.splitlines() if ln.startswith("cronwrap:")]
        # nothing of cronwrap's own failed: only the one line that says how a failed run went
        assert len(own) <= 1 and len(own) >= (result.returncode != 0), result.stderr
        assert all(ln.startswith(f"cronwrap: {name}: failed, exit ") for ln in own), own
        return result.returncode

    # backup: the first failure alerts at once, on both channels and through the command
    assert run("backup", "sh", "-c", "echo disk full >&2; exit 3") == 3
    paths = sorted(r["path"] for r in hook.requests)
    assert paths == ["/hook", "/mail"], hook.requests
    [webhook] = [r["json"] for r in hook.requests if r["path"] == "/hook"]
    assert (webhook["event"], webhook["job"], webhook["exit_code"]) == ("failure", "backup", 3)
    alert_log = tmp_path / "log" / "cronwrap-alerts.log"
    assert alert_log.read_text().split()[1:] == ["failure", "backup", "failed", "exit=3"]
    assert run("backup", "true") == 0
    assert [r["json"].get("event") for r in hook.requests if r["path"] == "/hook"] == [
        "failure",
        "recovery",
    ]
    # report: shorter than min_runtime is a failure; alert_after 2 waits for the second one
    hook.requests.clear()
    assert run("report", "true") == 0  # the exit code stays the job's
    assert hook.requests == []
    assert run("report", "true") == 0
    [alert] = [r["json"] for r in hook.requests]
    assert (alert["event"], alert["job"], alert["streak"]) == ("failure", "report", 2)


def test_fleet_example_runs_a_job_once_across_hosts(home: Path, tmp_path: Path) -> None:
    from tests.test_fleet import RedisServer  # skips (or, in CI, fails) without redis-server

    redis = RedisServer(tmp_path).start()
    try:
        config = localised("fleet.yaml", tmp_path, {"redis.url": redis.url})
        # two hosts: each its own state (and flock) directory, only Redis in common
        env = cw_env(home / "web1", CRONWRAP_CONFIG=str(config))
        env2 = cw_env(home / "web2", CRONWRAP_CONFIG=str(config))
        started, release = tmp_path / "started", tmp_path / "release"
        web1 = popen_cronwrap(
            home,
            "run",
            "--name",
            "queue-drain",
            "--host-id",
            "web1",
            "--",
            "sh",
            "-c",
            f"touch {started}; while [ ! -e {release} ]; do sleep 0.05; done; echo web1",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(started.exists, timeout=30)
            web2 = cronwrap(
                home,
                "run",
                "--name",
                "queue-drain",
                "--host-id",
                "web2",
                "--",
                "sh",
                "-c",
                f"touch {tmp_path / 'web2-ran'}",
                env=env2,
            )
        finally:
            release.touch()
            out, err = web1.communicate(timeout=60)
        assert web1.returncode == 0, err
        assert out == b"web1\n"
        assert web2.returncode == 0, web2.stderr
        assert not (tmp_path / "web2-ran").exists()  # the second host did not run it
        [ran] = json.loads(cronwrap(home, "history", "queue-drain", "--json", env=env).stdout)
        [skip] = json.loads(cronwrap(home, "history", "queue-drain", "--json", env=env2).stdout)
        assert (ran["host"], ran["status"]) == ("web1", "success"), ran
        assert (skip["host"], skip["status"]) == ("web2", "skipped"), skip
        assert "web1" in skip["reason"], skip  # `skipped (ran on web1)` or the lease holder
    finally:
        redis.stop()
