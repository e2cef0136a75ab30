"""Alerts and run judgement with real local HTTP receivers and separate cronwrap processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cronwrap.state.store import Store
from tests.conftest import cronwrap, cw_env, events
from tests.hcserver import BlackHole, HCServer
from tests.receiver import Receiver

PY = sys.executable


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def run(home: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return cronwrap(home, "run", *args, **kw)  # type: ignore[arg-type]


def test_failure_alert_payload_then_recovery_and_no_alert_on_success(
    home: Path, hook: Receiver
) -> None:
    assert run(home, "--name", "a", "--alert", hook.url, "--", "true").returncode == 0
    assert hook.requests == []  # success: nothing
    result = run(
        home, "--name", "a", "--alert", hook.url, "--", "sh", "-c", "echo disk full >&2; exit 3"
    )
    assert result.returncode == 3
    [alert] = [r["json"] for r in hook.requests]
    assert alert["event"] == "failure" and alert["job"] == "a" and alert["status"] == "failed"
    assert alert["exit_code"] == 3 and alert["attempts"] == 1 and alert["streak"] == 1
    assert "disk full" in alert["output_tail"] and alert["log_path"].endswith(".log")
    for key in ("host", "reason", "started_at", "ended_at", "duration_s", "signal", "text"):
        assert key in alert
    assert "a failed" in alert["text"]
    # a second failure of the same streak: no repeat
    run(home, "--name", "a", "--alert", hook.url, "--", "false")
    assert hook.events() == ["failure"]
    # recovery: exactly once
    run(home, "--name", "a", "--alert", hook.url, "--", "true")
    run(home, "--name", "a", "--alert", hook.url, "--", "true")
    assert hook.events() == ["failure", "recovery"]


def test_timeout_and_could_not_start_alert(home: Path, hook: Receiver) -> None:
    run(home, "--name", "t", "--alert", hook.url, "--timeout", "200ms", "--", "sleep", "5")
    run(home, "--name", "n", "--alert", hook.url, "--", "/no/such/thing")
    statuses = [
        (r["json"]["job"], r["json"]["status"], r["json"]["exit_code"]) for r in hook.requests
    ]
    assert statuses == [("t", "timeout", 124), ("n", "failed", 127)]


def test_cancelled_run_alerts_like_a_failure(home: Path, hook: Receiver, tmp_path: Path) -> None:
    """One policy with the pings (which send /143): the job did not finish its work."""
    import signal

    from tests.conftest import popen_cronwrap, wait_for

    marker = tmp_path / "m"
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "c",
        "--alert",
        hook.url,
        "--",
        "sh",
        "-c",
        f"touch {marker}; exec sleep 30",
    )
    wait_for(marker.exists)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 143
    [alert] = hook.requests
    assert alert["json"]["event"] == "failure" and alert["json"]["status"] == "cancelled"
    assert alert["json"]["exit_code"] == 143


def test_alert_after_counts_the_streak_across_processes(home: Path, hook: Receiver) -> None:
    hc = HCServer().start()
    try:
        check = hc.new_check()
        args = ["--name", "s", "--alert", hook.url, "--alert-after", "3", "--ping", hc.url(check)]
        for _ in range(2):
            run(home, *args, "--", "false")
        assert hook.requests == []
        # tolerated: a success that closes the /start, its body says it failed
        assert [k for k in hc.kinds() if k != "start"] == ["", ""]
        assert b"tolerated: failure 2 of --alert-after 3" in hc.pings[-1].body
        run(home, *args, "--", "false")
        assert hook.events() == ["failure"] and hook.requests[0]["json"]["streak"] == 3
        assert hc.kinds()[-1] == "1"  # the 3rd failure is a failure for Healthchecks too
        run(home, *args, "--", "false")
        assert hook.events() == ["failure"]  # no repeat within the streak
        run(home, *args, "--", "true")
        assert hook.events() == ["failure", "recovery"]
    finally:
        hc.stop()


def test_realert_every(home: Path, hook: Receiver) -> None:
    # an hour, the first alert aged in the store, not a second waited out: a 1 s period ran
    # out between two runs on a busy machine (a start-up took longer), and the second alerted
    args = ["--name", "r", "--alert", hook.url, "--realert-every", "1h"]
    run(home, *args, "--", "false")
    run(home, *args, "--", "false")
    assert hook.events() == ["failure"]
    with Store.open(home / "runs.db") as store:  # the failure has gone on for over an hour
        is_open, last_at = store.alert_state("r")
        assert is_open and last_at is not None
        store.set_alert_state("r", open_=True, at=last_at - timedelta(hours=1, minutes=1))
    run(home, *args, "--", "false")
    assert hook.events() == ["failure", "failure"]


def test_alert_cmd_gets_the_facts_in_the_environment(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "env"
    result = run(
        home,
        "--name",
        "cmd",
        "--alert-cmd",
        f"env | grep ^CRONWRAP_ > {out}",
        "--",
        "sh",
        "-c",
        "exit 7",
    )
    assert result.returncode == 7
    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert env["CRONWRAP_EVENT"] == "failure" and env["CRONWRAP_JOB"] == "cmd"
    assert env["CRONWRAP_EXIT_CODE"] == "7" and env["CRONWRAP_STATUS"] == "failed"


def test_dead_receivers_do_not_delay_the_job_beyond_the_bound(home: Path) -> None:
    with BlackHole() as hole:
        url = f"http://127.0.0.1:{hole.port}/hook"
        t = time.monotonic()
        result = run(
            home,
            "--name",
            "d",
            "--alert",
            url,
            "--alert",
            "http://127.0.0.1:9/x",
            "--alert-timeout",
            "1s",
            "--",
            "sh",
            "-c",
            "exit 2",
        )
        elapsed = time.monotonic() - t
    assert result.returncode == 2
    assert elapsed < 1 + 8  # the 1 s alert budget, not a 10 s default or a hang
    assert "alert not delivered" in result.stderr
    assert any(e["event"] == "alert.error" for e in events(home))


def test_failed_delivery_is_retried_once(home: Path) -> None:
    flaky = Receiver(status=500)
    try:
        run(home, "--name", "f", "--alert", flaky.url, "--", "false")
        assert len(flaky.requests) == 2
    finally:
        flaky.close()


def test_apprise_json_delivery(home: Path, hook: Receiver) -> None:
    pytest.importorskip("apprise")
    url = f"json://127.0.0.1:{hook.port}/apprise"
    result = run(home, "--name", "ap", "--alert", url, "--", "false")
    assert result.returncode == 1, result.stderr
    [req] = hook.requests
    assert req["path"].startswith("/apprise")
    assert "ap failed" in json.dumps(req["json"])


def test_missing_apprise_extra_leaves_the_alert_out_and_runs(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = (
        "import os, sys; sys.modules['apprise'] = None; from cronwrap.run import entry as runcmd; "
        "sys.exit(runcmd.main(['--name', 'x', '--alert', 'slack://a/b/c', '--', 'touch', "
        f"{str(marker)!r}], os.environ))"
    )
    out = subprocess.run(
        [PY, "-c", code], capture_output=True, text=True, env=cw_env(home), check=False
    )
    assert out.returncode == 0, out.stderr
    assert "alerts extra: reinstall cronwrap from its checkout with pip install '.[alerts]'" in (
        out.stderr
    )
    assert "cronwrap-cli[" not in out.stderr  # not on PyPI: no hint may pretend it is
    assert marker.exists(), "the command is known: it runs, without that alert"


def test_alert_urls_are_redacted(home: Path) -> None:
    secret = "T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
    result = run(
        home,
        "--name",
        "red",
        "--alert",
        f"http://127.0.0.1:9/services/{secret}",
        "--alert-timeout",
        "300ms",
        "--",
        "false",
    )
    assert secret not in result.stderr
    assert secret not in (home / "cronwrap.log").read_text()


# ---------------------------------------------------------------- judging runs


def test_ok_exit_codes(home: Path, hook: Receiver) -> None:
    result = run(
        home,
        "--name",
        "rsync",
        "--ok-exit-codes",
        "0,24",
        "--alert",
        hook.url,
        "--retries",
        "2",
        "--retry-delay",
        "0",
        "--",
        "sh",
        "-c",
        "exit 24",
    )
    assert result.returncode == 24  # the command's own code
    assert hook.requests == []
    status = json.loads(cronwrap(home, "history", "rsync", "--json").stdout)[0]
    assert status["status"] == "success" and status["attempts"] == 1


def test_min_runtime_fails_a_suspiciously_fast_run(home: Path, hook: Receiver) -> None:
    result = run(home, "--name", "fast", "--min-runtime", "2s", "--alert", hook.url, "--", "true")
    [alert] = [r["json"] for r in hook.requests]
    assert alert["status"] == "failed" and "--min-runtime" in alert["reason"]
    assert result.returncode == 0  # the command's own code is kept
    assert json.loads(cronwrap(home, "history", "fast", "--json").stdout)[0]["status"] == "failed"


def test_max_runtime_warns_and_alerts_without_killing(home: Path, hook: Receiver) -> None:
    t = time.monotonic()
    result = run(
        home, "--name", "long", "--max-runtime", "300ms", "--alert", hook.url, "--", "sleep", "1"
    )
    assert result.returncode == 0 and time.monotonic() - t >= 1
    assert hook.events() == ["slow"]
    assert "still running" in hook.requests[0]["json"]["reason"]
    assert any(e["event"] == "run.max_runtime" for e in events(home))
    assert "max-runtime" in next(e for e in events(home) if e["event"] == "run.end")["flags"]


def test_slow_factor_compares_with_the_median_of_recent_successes(
    home: Path, hook: Receiver
) -> None:
    for _ in range(5):
        run(home, "--name", "sf", "--", "sleep", "0.05")
    result = run(
        home, "--name", "sf", "--alert", hook.url, "--slow-factor", "3", "--", "sleep", "1"
    )
    assert result.returncode == 0
    assert hook.events() == ["slow"] and "median" in hook.requests[0]["json"]["reason"]
    assert any(e["event"] == "run.slow" for e in events(home))
    status = json.loads(cronwrap(home, "status", "--crontab", "/dev/null", "--json").stdout)
    assert next(s for s in status if s["name"] == "sf")["last_run"]["flags"] == "slow"


def test_not_slow_with_too_few_runs(home: Path, hook: Receiver) -> None:
    run(home, "--name", "few", "--", "sleep", "0.05")
    run(home, "--name", "few", "--alert", hook.url, "--", "sleep", "1")
    assert hook.requests == []


def test_undelivered_alert_is_kept_and_sent_late(home: Path) -> None:
    hook = Receiver(status=500)
    try:
        args = ["--name", "k", "--alert", hook.url]
        first = run(home, *args, "--", "sh", "-c", "exit 3")
        assert first.returncode == 3 and "kept for the next run" in first.stderr
        assert hook.events() == ["failure", "failure"]  # tried, retried once
        hook.status = 200
        again = run(home, *args, "--", "sh", "-c", "exit 3")  # same streak: no new alert due
        assert again.returncode == 3 and "kept" not in again.stderr, again.stderr
        late = hook.requests[-1]["json"]
        assert late["event"] == "failure" and late["late_from"] and late["exit_code"] == 3
        assert late["title"].startswith("(late, from ")
        assert run(home, *args, "--", "true").returncode == 0
        assert hook.events()[-1] == "recovery"
        assert len(hook.events()) == 4  # the kept alert went once, not again
    finally:
        hook.close()


def test_flush_sends_kept_webhook_alerts(home: Path) -> None:
    hook = Receiver(status=503)
    try:
        assert run(home, "--name", "fk", "--alert", hook.url, "--", "false").returncode == 1
        still = cronwrap(home, "flush", "--budget", "2s")
        assert still.returncode == 1 and "0 kept alerts delivered, 1 still kept" in still.stdout
        hook.status = 200
        done = cronwrap(home, "flush")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 kept alert delivered, 0 still kept" in done.stdout
        assert hook.requests[-1]["json"]["late_from"] and hook.events()[-1] == "failure"
        assert cronwrap(home, "flush").returncode == 0
    finally:
        hook.close()


def test_flushes_at_once_send_each_kept_alert_once(home: Path) -> None:
    hook = Receiver(status=503)
    try:
        for name in ("k1", "k2", "k3", "k4"):
            assert run(home, "--name", name, "--alert", hook.url, "--", "false").returncode == 1
        hook.status = 200
        tries = len(hook.requests)
        flushes = [
            subprocess.Popen(
                [sys.executable, "-m", "cronwrap", "flush"],
                env=cw_env(home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(5)
        ]
        for p in flushes:
            p.communicate(timeout=120)
        late = [r["json"]["job"] for r in hook.requests[tries:]]
        assert sorted(late) == ["k1", "k2", "k3", "k4"], late
        assert not list((home / "alert-outbox").glob("*.json*"))
    finally:
        hook.close()


def test_a_kept_alert_another_run_took_is_not_called_malformed(tmp_path: Path) -> None:
    """Listed, then claimed by another run before it is read: that run sends it. It was
    moved to quarantine as malformed, a warning that made the run degraded."""
    from cronwrap.notify.alerts import AlertQueue

    queue = AlertQueue(tmp_path / "alert-outbox")
    queue.spool.add(
        {"v": 1, "job": "j", "channel": "webhook", "at": "x", "event": "failure", "facts": {}}
    )
    listing = queue.spool.entries

    def taken_meanwhile() -> list[Path]:
        paths = listing()
        for path in paths:  # what another run's claim does between listing and reading
            path.rename(path.with_name(f"{path.name}.sending-1"))
        return paths

    queue.spool.entries = taken_meanwhile  # type: ignore[method-assign]
    errors = queue.replay(
        "j", ["http://127.0.0.1:9/"], None, deadline=time.monotonic() + 1, env={}, blocked=set()
    )
    assert errors == [] and not (tmp_path / "alert-outbox" / "quarantine").exists()
