"""Special files where cronwrap keeps its own small files: a FIFO (or /dev/zero) as a queued
ping, as the cached ping body limits, as a kept alert. Opened as they were, a FIFO blocked
the run forever (before the job started, for a queued ping) and /dev/zero filled memory;
each is now refused at once, and the job runs and keeps its exit code."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.faults.conftest import EXIT, run_job
from tests.hcserver import HCServer


@pytest.fixture
def hc() -> HCServer:
    server = HCServer().start()
    yield server  # type: ignore[misc]
    server.stop()


def test_a_fifo_queued_as_a_ping_does_not_hold_up_the_job(
    home: Path, tmp_path: Path, hc: HCServer
) -> None:
    check = hc.new_check()
    outbox = home / "outbox"
    outbox.mkdir(parents=True)
    os.mkfifo(outbox / "01796177474732679276-00012.json")
    started = time.monotonic()
    job = run_job(home, tmp_path, "--ping", hc.url(check), timeout=120)
    assert job.ran and job.result.returncode == EXIT, job.result.stderr
    assert time.monotonic() - started < 60  # a behavioural bound: it waited forever
    assert "Traceback" not in job.result.stderr
    assert hc.kinds()[-1] == str(EXIT)  # the exit-code ping


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_ping_limits_that_are_no_file_do_not_cost_the_finish_ping(
    home: Path, tmp_path: Path, hc: HCServer, kind: str
) -> None:
    check = hc.new_check()
    home.mkdir(mode=0o750, parents=True, exist_ok=True)
    limits = home / "ping-limits"
    if kind == "fifo":
        os.mkfifo(limits)
    else:
        limits.symlink_to("/dev/zero")
    job = run_job(home, tmp_path, "--ping", hc.url(check), timeout=120)
    assert job.ran and job.result.returncode == EXIT, job.result.stderr
    assert "Traceback" not in job.result.stderr
    assert hc.kinds() == ["start", str(EXIT)]


def test_a_fifo_kept_as_an_alert_does_not_hold_up_the_end(home: Path, tmp_path: Path) -> None:
    kept = home / "alert-outbox"
    kept.mkdir(parents=True)
    os.mkfifo(kept / "01796177474732679276-00012.json")
    job = run_job(home, tmp_path, "--alert-cmd", "true", timeout=120)
    assert job.ran and job.result.returncode == EXIT, job.result.stderr
    assert "Traceback" not in job.result.stderr
