"""Faults around the run itself: a store another process keeps locked, lock dirs another
user controls, signals while cronwrap waits before the job."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import catches, cw_env, wait_for
from tests.faults.conftest import EXIT, recorded, run_job

PY = sys.executable
HOLD = """
import sys, time
{body}
print("held", flush=True)
time.sleep(120)
"""


def hold(body: str, *, python: str = PY, **kwargs: object) -> subprocess.Popen[str]:
    """A real second process holding something (a flock, SQLite's write lock) until killed."""
    proc = subprocess.Popen(
        [python, "-c", HOLD.format(body=body)],
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def start_job(
    home: Path, marker: Path, *options: str, name: str = "job", command: str | None = None
) -> subprocess.Popen[str]:
    """`cronwrap run --name NAME OPTIONS -- sh -c COMMAND` in the background (by default
    `touch MARKER; exit 3`), its stderr piped."""
    script = command or f"touch {marker}; exit {EXIT}"
    return subprocess.Popen(
        [PY, "-m", "cronwrap", "run", "--name", name, *options, "--", "sh", "-c", script],
        env=cw_env(home),
        stderr=subprocess.PIPE,
        text=True,
    )


def hold_store(home: Path) -> subprocess.Popen[str]:
    """Another process holding the run store's write lock (a store that exists first)."""
    db = home / "runs.db"
    return hold(
        "import sqlite3\n"
        f"conn = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "conn.execute('BEGIN IMMEDIATE')"
    )


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()


# ---------------------------------------------------------------- a busy store


def test_a_busy_store_does_not_hold_up_a_retry(home: Path, tmp_path: Path) -> None:
    """The record of a retried attempt waits at most the start's budget for a busy store,
    not the end's 30 s: the second attempt follows the first at once (it came 10.5 s later
    under a 12 s lock), and the end is still recorded once the store is free."""
    run_job(home, tmp_path)  # the store exists
    holder = hold_store(home)
    stamps = tmp_path / "stamps"
    try:
        retry = ["--retries", "1", "--retry-delay", "0", "--retry-on", str(EXIT)]
        command = f"date +%s.%N >> {stamps}; exit {EXIT}"
        proc = start_job(home, stamps, *retry, name="retry", command=command)
        wait_for(lambda: stamps.exists() and len(stamps.read_text().split()) == 2, timeout=60)
    finally:
        stop(holder)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT, stderr
    first, second = (float(t) for t in stamps.read_text().split())
    assert second - first < 8, f"the retry came {second - first:.1f}s after the first attempt"
    [run] = recorded(home, "retry")
    assert run.status == "failed" and run.attempts == 2


def test_a_store_held_by_another_writer_does_not_delay_the_start(
    home: Path, tmp_path: Path
) -> None:
    run_job(home, tmp_path)  # the store exists
    holder = hold_store(home)
    try:
        t0 = time.monotonic()
        marker = tmp_path / "started"
        proc = start_job(home, marker)
        wait_for(marker.exists, timeout=30)
        started = time.monotonic() - t0
        _, stderr = proc.communicate(timeout=120)
        took = time.monotonic() - t0
    finally:
        stop(holder)
    assert proc.returncode == EXIT, stderr
    # behavioural bounds, with wide margins: the start waited 60 s for the store
    assert started < 20, f"the job started {started:.1f}s late"
    assert took < 120, f"the run took {took:.1f}s"  # it took 199 s: 60 s per write
    line, outcome = stderr.splitlines()  # the one fault line, then how the run went
    assert line.startswith("cronwrap: job: ") and "busy" in line, line
    assert outcome.startswith(f"cronwrap: job: failed, exit {EXIT}"), outcome
    after = run_job(home, tmp_path)
    assert after.ran and after.lines == [], "the next run records normally"


# ---------------------------------------------------------------- another user's lock dir

TEST_USER = "cwfault"


@pytest.fixture
def other_user() -> pwd.struct_passwd:
    """A real second local user (created once; skipped unless root)."""
    if os.geteuid() != 0:
        pytest.skip("a second user needs root")
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pass
    if not shutil.which("useradd"):
        pytest.skip("no useradd")
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
        check=True,
    )
    return pwd.getpwnam(TEST_USER)


@pytest.fixture
def shared_home() -> Iterator[Path]:
    """A CRONWRAP_HOME another user can reach (pytest's tmp dirs are root-only)."""
    base = Path(tempfile.mkdtemp(prefix="cwfault-", dir="/tmp"))
    base.chmod(0o755)
    home = base / "home"
    home.mkdir(mode=0o755)
    try:
        yield home
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _hold_flock_as(user: pwd.struct_passwd, path: Path) -> subprocess.Popen[str]:
    return hold(
        "import fcntl, os\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)",
        python="/usr/bin/python3",  # the other user may not be able to reach the venv
        user=user.pw_uid,
        group=user.pw_gid,
    )


@pytest.mark.parametrize("how", ["sticky-world-writable", "owned-by-another-user"])
def test_a_lock_dir_others_control_is_not_used(
    shared_home: Path, tmp_path: Path, other_user: pwd.struct_passwd, how: str
) -> None:
    locks = shared_home / "locks"
    locks.mkdir()
    if how == "sticky-world-writable":
        locks.chmod(0o1777)  # as /run/lock is
    else:  # what another user's `mkdir /run/lock/cronwrap` before root's first job leaves
        os.chown(locks, other_user.pw_uid, other_user.pw_gid)
        locks.chmod(0o755)
    holder = _hold_flock_as(other_user, locks / "job.lock")
    try:
        job = run_job(shared_home, tmp_path)
        line = job.assert_failed_open(str(locks), "using")
    finally:
        stop(holder)
    assert "private-locks" in line
    assert (shared_home / "private-locks" / "job.lock").exists()
    assert [r.status for r in recorded(shared_home)] == ["failed"], "ran, not skipped"


# ---------------------------------------------------------------- signals while waiting


def _cancel_while_waiting(
    home: Path, tmp_path: Path, *options: str, wait: float = 1.5
) -> tuple[int, str, float, Path]:
    marker = tmp_path / "ran"
    proc = start_job(home, marker, *options)
    time.sleep(wait)  # long enough to be inside the wait on a quiet machine
    # on a busy one, cronwrap may still be starting: the SIGTERM must find its handler
    # (before it, the default action kills the process, which is not what is tested)
    wait_for(lambda: catches(proc.pid, signal.SIGTERM), 60)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr, time.monotonic() - t0, marker


def _assert_cancelled(home: Path, code: int, stderr: str, took: float, marker: Path) -> None:
    assert code == 128 + signal.SIGTERM, stderr
    assert not marker.exists(), "the job must not be started after the SIGTERM"
    assert took < 20, f"took {took:.1f}s to honour SIGTERM"
    [line] = stderr.splitlines()
    assert line.startswith("cronwrap: job: ") and "not started" in line, line
    [run] = [r for r in recorded(home) if r.status != "success"]
    assert run.status == "cancelled" and run.exit_code == 143


def test_sigterm_during_the_overlap_wait_cancels_without_starting(
    home: Path, tmp_path: Path
) -> None:
    run_job(home, tmp_path, name="warm")  # the lock dir exists
    holder = hold(
        "import fcntl, os\n"
        f"fd = os.open({str(home / 'locks' / 'job.lock')!r}, os.O_RDWR | os.O_CREAT, 0o640)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)"
    )
    try:
        got = _cancel_while_waiting(home, tmp_path, "--on-overlap", "wait", "--lock-wait", "10m")
    finally:
        stop(holder)
    _assert_cancelled(home, *got)


def test_sigterm_during_the_jitter_sleep_cancels_without_starting(
    home: Path, tmp_path: Path
) -> None:
    got = _cancel_while_waiting(home, tmp_path, "--jitter", "20d")
    _assert_cancelled(home, *got)


def test_sigterm_during_the_start_ping_cancels_without_starting(home: Path, tmp_path: Path) -> None:
    """A black-holed Healthchecks server: it accepts the connection and never answers."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(16)
    port = sink.getsockname()[1]
    try:
        got = _cancel_while_waiting(
            home,
            tmp_path,
            "--ping",
            f"http://127.0.0.1:{port}/ping/5e7c1a4e-0000-4000-8000-000000000000",
            # the SIGTERM is honoured once the start ping gives up (its budget); the finish
            # ping that reports the cancel to the same black hole gets little time, so the
            # bound below is the start budget and a wide margin for a busy machine
            "--ping-start-budget",
            "10s",
            "--ping-finish-budget",
            "2s",
        )
    finally:
        sink.close()
    code, stderr, took, marker = got
    assert code == 128 + signal.SIGTERM, stderr
    assert not marker.exists(), "the job must not be started after the SIGTERM"
    assert took < 20, f"took {took:.1f}s to honour SIGTERM"
    said = [line for line in stderr.splitlines() if "not started" in line]
    assert len(said) == 1 and said[0].startswith("cronwrap: job: "), stderr


@pytest.mark.parametrize("limit", [10, 12, 13])
def test_a_low_open_file_limit_still_runs_the_job(home: Path, tmp_path: Path, limit: int) -> None:
    """Under `ulimit -n 8` to `15` cronwrap ended with exit 125 before the job started (the
    watchdog's pipe, then the job's output pipes: EMFILE), where the bare line runs. The job
    now runs with its exit code; output it cannot capture goes straight to cron."""
    import resource

    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    job = run_job(home, tmp_path, preexec_fn=low)
    r = job.result
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert job.ran and r.returncode == EXIT, r.stderr
    assert len(job.outcome) == 1, r.stderr
    # each thing it could not do is one line: the watchdog, the capture, a log
    assert all(ln.startswith("cronwrap: job: ") for ln in job.lines), r.stderr
    if limit == 10:
        assert "no watchdog for the job (Too many open files)" in r.stderr, r.stderr
