"""What cron mails and what the event log says about a run: one `cronwrap: <job>: …` line
for every run that is not a success (and nothing of cronwrap's own for a success), and
event-log levels that follow the outcome. Real runs through the real `cronwrap run`."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import cronwrap, events, popen_cronwrap, wait_for


def own_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("cronwrap:")]


@pytest.mark.parametrize(
    ("args", "code", "said", "level"),
    [
        (["--", "true"], 0, None, "info"),
        (["--", "sh", "-c", "exit 3"], 3, "cronwrap: m: failed, exit 3 (", "error"),
        (
            ["--timeout", "1s", "--kill-after", "1s", "--", "sleep", "30"],
            124,
            "timed out, exit 124",
            "error",
        ),
        (["--min-runtime", "10s", "--", "true"], 0, "faster than --min-runtime 10s", "error"),
        (["--", "sh", "-c", "kill -9 $$"], 137, "killed by SIGKILL, exit 137", "error"),
        (
            ["--", "/nonexistent/prog"],
            127,
            "command not found: /nonexistent/prog",
            "error",
        ),
        (
            ["--cwd", "/nonexistent", "--", "true"],
            125,
            "cannot enter directory /nonexistent",
            "error",
        ),
    ],
    ids=["success", "failed", "timeout", "min-runtime", "killed", "not-found", "no-cwd"],
)
def test_every_non_success_says_what_happened_in_one_line(
    home: Path, args: list[str], code: int, said: str | None, level: str
) -> None:
    result = cronwrap(home, "run", "--name", "m", *args)
    assert result.returncode == code, result.stderr
    lines = own_lines(result.stderr)
    if said is None:
        assert lines == [], "a success says nothing of cronwrap's own"
    else:
        assert len(lines) == 1 and lines[0].startswith("cronwrap: m: "), result.stderr
        assert said in lines[0], lines[0]
    [end] = [e for e in events(home) if e["event"] == "run.end"]
    assert end["level"] == level, end


def test_a_skipped_run_says_why(home: Path, tmp_path: Path) -> None:
    (home / "locks").mkdir(parents=True, exist_ok=True)
    fd = os.open(home / "locks" / "s.lock", os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the previous run still holds the lock
    try:
        result = cronwrap(home, "run", "--name", "s", "--", "true")
    finally:
        os.close(fd)
    assert result.returncode == 0, result.stderr
    assert own_lines(result.stderr) == ["cronwrap: s: skipped: previous run still holds the lock"]
    [skip] = [e for e in events(home) if e["event"] == "run.skip"]
    assert skip["level"] == "info"


def test_a_cancelled_run_says_so_and_logs_a_warning(home: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    proc = popen_cronwrap(
        home, "run", "--name", "c", "--", "sh", "-c", f"touch {started}; exec sleep 30",
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(started.exists)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    [line] = own_lines(stderr)
    assert line.startswith("cronwrap: c: cancelled, exit 143"), line
    [end] = [e for e in events(home) if e["event"] == "run.end"]
    assert end["level"] == "warning" and end["status"] == "cancelled"
    # the attempt the signal stopped says the same as the run: not an error of the job's
    [attempt] = [e for e in events(home) if e["event"] == "attempt.end"]
    assert attempt["level"] == "warning" and attempt["status"] == "cancelled", attempt


def test_a_failed_attempt_that_is_retried_is_a_warning_the_last_an_error(home: Path) -> None:
    result = cronwrap(
        home,
        "run",
        "--name",
        "r",
        "--retries",
        "1",
        "--retry-delay",
        "0",
        "--",
        "sh",
        "-c",
        "exit 4",
    )
    assert result.returncode == 4
    ends = [e for e in events(home) if e["event"] == "attempt.end"]
    assert [e["level"] for e in ends] == ["warning", "error"]
    [line] = own_lines(result.stderr)
    assert line.startswith("cronwrap: r: failed, exit 4 after 2 attempts"), line


def test_a_10ms_job_is_never_slow(home: Path) -> None:
    """--slow-factor needs the run to be half a second slower than the median as well."""
    for _ in range(5):
        assert cronwrap(home, "run", "--name", "f", "--", "true").returncode == 0
    result = cronwrap(home, "run", "--name", "f", "--", "sh", "-c", "sleep 0.1")
    assert result.returncode == 0 and own_lines(result.stderr) == [], result.stderr
    assert not any(e["event"] == "run.slow" for e in events(home))


def test_a_reporter_that_breaks_never_changes_the_exit_code(home: Path, tmp_path: Path) -> None:
    """The guard: the metrics dir is a file, the event log a directory; the job still runs,
    keeps its exit code, and each broken reporter is one line."""
    metrics = tmp_path / "metrics-is-a-file"
    metrics.write_text("")
    log = tmp_path / "log-is-a-dir"
    log.mkdir()
    marker = tmp_path / "ran"
    result = cronwrap(
        home, "run", "--name", "g", "--metrics-dir", str(metrics / "x"), "--log-file", str(log),
        "--", "sh", "-c", f"touch {marker}; exit 6",
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    assert marker.exists()
    lines = own_lines(result.stderr)
    assert any("cannot write metrics" in line for line in lines), lines
    assert any("event log" in line for line in lines), lines
    assert lines[-1].startswith("cronwrap: g: failed, exit 6"), lines
    assert len(lines) == len(set(lines)), "each problem is said once"


def test_a_run_with_a_problem_of_cronwraps_own_shows_as_degraded(home: Path) -> None:
    """The job ran and succeeded, but its ping could not be delivered: the warning is
    recorded on the run, status shows the job degraded (exit 1), and a clean run clears it."""
    import json

    dead = "http://127.0.0.1:9/ping/5e7c1a4e-0000-4000-8000-000000000000"
    budgets = ["--ping-start-budget", "1s", "--ping-finish-budget", "1s"]
    result = cronwrap(home, "run", "--name", "d", "--ping", dead, *budgets, "--", "true")
    assert result.returncode == 0, result.stderr
    [warning] = own_lines(result.stderr)
    status = cronwrap(home, "status", "--crontab", "/dev/null", "--json")
    assert status.returncode == 1, status.stdout + status.stderr
    [job] = [j for j in json.loads(status.stdout) if j["name"] == "d"]
    assert job["degraded"] is True and not job["healthy"]
    assert job["warnings"] and job["warnings"][0] in warning
    assert "5e7c1a4e" not in status.stdout, "the check's UUID is a secret"
    table = cronwrap(home, "status", "--crontab", "/dev/null")
    assert "DEGRADED" in table.stdout, table.stdout
    assert cronwrap(home, "run", "--name", "d", "--", "true").returncode == 0
    again = cronwrap(home, "status", "--crontab", "/dev/null", "--json")
    assert again.returncode == 0, again.stdout
    [job] = [j for j in json.loads(again.stdout) if j["name"] == "d"]
    assert job["degraded"] is False and job["warnings"] == []


def test_a_ping_failure_is_a_warning_in_run_end_as_in_the_history_row(home: Path) -> None:
    """The start and finish pings go to a closed port: the run's one warning is in its
    history row and in its run.end record, which is then a warning."""
    import json

    dead = "http://127.0.0.1:9/ping/5e7c1a4e-0000-4000-8000-000000000000"
    budgets = ["--ping-start-budget", "1s", "--ping-finish-budget", "1s"]
    result = cronwrap(home, "run", "--name", "pe", "--ping", dead, *budgets, "--", "true")
    assert result.returncode == 0, result.stderr
    [warning] = own_lines(result.stderr)
    [row] = json.loads(cronwrap(home, "history", "pe", "--json").stdout)
    [end] = [e for e in events(home) if e["event"] == "run.end"]
    assert end["level"] == "warning", end
    assert end["warnings"] == row["warnings"], (end, row)
    assert "start: " in end["warnings"][0] and end["warnings"][0] in warning
    assert "5e7c1a4e" not in json.dumps(end), "the check's UUID is a secret"


def test_a_bad_redact_pattern_runs_the_job_and_keeps_its_output_in(home: Path) -> None:
    """The pattern cannot be used, so what it should hide could leak: the job runs and keeps
    its exit code, and none of its output reaches the history (nor pings or alerts)."""
    from cronwrap.state.store import Store

    result = cronwrap(
        home, "run", "--name", "rx", "--redact", "(", "--", "sh", "-c", "echo token=abc; exit 2"
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == "token=abc\n", "the job's own output is the job's"
    lines = own_lines(result.stderr)
    assert "--redact '(' left out" in lines[0] and "kept out of pings" in lines[0]
    with Store.open(home / "runs.db") as store:
        [run] = store.runs("rx")
    assert not run.output_tail and "abc" not in (run.reason or "")
