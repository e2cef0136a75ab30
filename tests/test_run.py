"""`cronwrap run` with real processes, signals, locks and files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cronwrap.argv import parse_run_argv
from cronwrap.config import ConfigFile, resolve_job
from cronwrap.run.judge import backoff_delay
from cronwrap.state.store import Store
from tests.conftest import (
    alive,
    cronwrap,
    cw_env,
    events,
    popen_cronwrap,
    popen_sleeping_job,
    wait_for,
)

PY = sys.executable


def runs(home: Path, job: str) -> list:
    with Store.open(home / "runs.db") as store:
        return store.runs(job, limit=100)


def attempts(home: Path, run_id: str) -> list:
    with Store.open(home / "runs.db") as store:
        return store.attempts(run_id)


def has_open(pid: int, path: Path) -> bool:
    """The process has `path` open."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fds / fd) == str(path) for fd in os.listdir(fds))
    except OSError:  # a descriptor closed while we looked
        return False


# ---------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("command", "code", "status"),
    [
        (["true"], 0, "success"),
        ([PY, "-c", "raise SystemExit(3)"], 3, "failed"),
        ([PY, "-c", "import os,signal; os.kill(os.getpid(), signal.SIGKILL)"], 137, "failed"),
        (["/nonexistent/cmd"], 127, "failed"),
        (["/etc/passwd"], 126, "failed"),
    ],
    ids=["ok", "exit-3", "sigkill-137", "not-found-127", "not-executable-126"],
)
def test_exit_code_is_the_childs(home: Path, command: list[str], code: int, status: str) -> None:
    result = cronwrap(home, "run", "--name", "j", "--", *command)
    assert result.returncode == code, result.stderr
    [run] = runs(home, "j")
    assert run.status == status and run.exit_code == code
    if code == 137:
        assert run.signal == 9
    if code in (126, 127):
        assert run.reason and ("not found" in run.reason or "cannot execute" in run.reason)
        assert "cronwrap: j: " in result.stderr


@pytest.mark.parametrize(
    "args",
    [[], ["--retries"], ["--bogus", "touch", "{marker}"]],
    ids=["no-command", "missing-value", "unknown-flag-without-dashdash"],
)
def test_cronwraps_own_errors_exit_125(home: Path, args: list[str], tmp_path: Path) -> None:
    """The command is not known (no `--`): nothing runs, and the one line says why."""
    marker = tmp_path / "ran"
    result = cronwrap(home, "run", *(a.format(marker=marker) for a in args))
    assert result.returncode == 125, result.stderr
    assert result.stderr.startswith("cronwrap: ") and len(result.stderr.splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [(["--timeout", "soon"], "--timeout: 'soon' is not a duration"), (["--name", "a/b"], "a/b")],
    ids=["bad-duration", "bad-name"],
)
def test_a_bad_option_value_is_left_out_once_the_command_is_known(
    home: Path, args: list[str], said: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    result = cronwrap(home, "run", *args, "--", "sh", "-c", f"touch {marker}; exit 3")
    assert result.returncode == 3, result.stderr
    assert marker.exists()
    line, outcome = result.stderr.splitlines()  # the problem, then how the run went
    assert line.startswith("cronwrap: ") and said in line
    assert "ignored" in line or "using" in line
    assert outcome.startswith("cronwrap: ") and "failed, exit 3" in outcome


def test_click_and_fast_parser_agree() -> None:
    argv = [
        "--name",
        "x",
        "--timeout=5m",
        "--quiet",
        "--env",
        "A=1",
        "--env",
        "B=2",
        "--",
        "ls",
        "-l",
    ]
    parsed = parse_run_argv(argv)
    assert parsed.command == ["ls", "-l"] and not parsed.problems
    job = resolve_job(parsed.flags, parsed.command, {}, ConfigFile(None))
    assert (job.timeout, job.quiet, job.env) == (300, True, ("A=1", "B=2"))
    from click.testing import CliRunner

    from cronwrap.cli.app import cli

    seen = {}
    import cronwrap.run.entry as rc

    def fake_execute(parsed, env, config_path=None):
        seen["job"] = resolve_job(parsed.flags, parsed.command, {}, ConfigFile(None))
        return 0

    original = rc.execute
    rc.execute = fake_execute
    try:
        result = CliRunner().invoke(cli, ["run", *argv])
    finally:
        rc.execute = original
    assert result.exit_code == 0, result.output
    assert seen["job"].options == job.options and seen["job"].command == job.command


def test_command_words_after_first_non_option_belong_to_the_command(home: Path) -> None:
    result = cronwrap(
        home, "run", "--name", "e", PY, "-c", "import sys; print(sys.argv[1:])", "--timeout", "x"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['--timeout', 'x']"


# ---------------------------------------------------------------- overlap


def test_overlap_skip_records_a_skipped_run_and_exits_0(home: Path, tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    hold = f"touch {started}; while [ ! -e {release} ]; do sleep 0.05; done"
    first = popen_cronwrap(home, "run", "--name", "ov", "--", "sh", "-c", hold)
    wait_for(started.exists, timeout=30)
    # the lock is held until released: a run that waited for it would not come back at all
    second = cronwrap(home, "run", "--name", "ov", "--", "true")
    assert second.returncode == 0, second.stderr
    third = cronwrap(home, "run", "--name", "ov", "--overlap-exit-code", "75", "--", "true")
    assert third.returncode == 75
    release.touch()
    first.wait(30)
    assert first.returncode == 0
    statuses = sorted(r.status for r in runs(home, "ov"))
    assert statuses == ["skipped", "skipped", "success"]
    skip = [e for e in events(home) if e["event"] == "run.skip"]
    assert len(skip) == 2 and skip[0]["status"] == "skipped"


def test_overlap_wait_runs_after_the_lock_is_free(home: Path, tmp_path: Path) -> None:
    # the first run holds the lock until the second is seen waiting for it (not for 1.5 s,
    # which a slow machine's start-up of the second could outlast: it would not have waited)
    started, release = tmp_path / "started", tmp_path / "release"
    hold = f"touch {started}; while [ ! -e {release} ]; do sleep 0.05; done"
    first = popen_cronwrap(home, "run", "--name", "w", "--", "sh", "-c", hold)
    wait_for(started.exists)
    second = popen_cronwrap(
        home, "run", "--name", "w", "--on-overlap", "wait", "--lock-wait", "60s", "--",
        "touch", str(tmp_path / "second-ran"),
    )  # fmt: skip
    try:
        wait_for(lambda: has_open(second.pid, home / "locks" / "w.lock"), 60)  # at the lock
        time.sleep(0.5)  # a few tries of the lock on a quiet machine; none needed on a slow one
        assert not (tmp_path / "second-ran").exists(), "it ran while the lock was held"
    finally:
        release.touch()
    assert second.wait(60) == 0
    assert (tmp_path / "second-ran").exists()
    assert first.wait(30) == 0
    assert sorted(r.status for r in runs(home, "w")) == ["success", "success"]


def test_overlap_wait_gives_up_after_lock_wait(home: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    first = popen_cronwrap(
        home, "run", "--name", "w2", "--", "sh", "-c", f"touch {started}; sleep 60"
    )
    wait_for(started.exists, timeout=30)
    t = time.monotonic()
    second = cronwrap(
        home, "run", "--name", "w2", "--on-overlap", "wait", "--lock-wait", "500ms", "--", "true"
    )
    assert second.returncode == 0
    # it waited (at least the lock wait) and gave up long before the holder's 60 s
    assert 0.4 < time.monotonic() - t < 30
    first.kill()
    first.wait()
    assert "skipped" in [r.status for r in runs(home, "w2")]


def test_overlap_allow_runs_both(home: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    first = popen_cronwrap(
        home,
        "run",
        "--name",
        "al",
        "--on-overlap",
        "allow",
        "--",
        "sh",
        "-c",
        f"touch {started}; sleep 1",
    )
    wait_for(started.exists)
    second = cronwrap(home, "run", "--name", "al", "--on-overlap", "allow", "--", "true")
    assert second.returncode == 0
    first.wait(10)
    assert sorted(r.status for r in runs(home, "al")) == ["success", "success"]


def test_lock_held_by_flock1_is_respected(home: Path, tmp_path: Path) -> None:
    """The lock is a plain flock: other tools (flock(1)) interoperate."""
    (home / "locks").mkdir(parents=True)
    held, release = tmp_path / "held", tmp_path / "release"
    # held until released, not for 3 s after a 0.3 s head start: on a slow machine the
    # holder may not have the lock yet, or cronwrap may start after it let go
    hold = f"touch {held}; while [ ! -e {release} ]; do sleep 0.05; done"
    holder = subprocess.Popen(["flock", str(home / "locks" / "f.lock"), "sh", "-c", hold])
    wait_for(held.exists)
    result = cronwrap(home, "run", "--name", "f", "--", "true")
    release.touch()
    assert holder.wait(30) == 0
    assert result.returncode == 0
    assert [r.status for r in runs(home, "f")] == ["skipped"]


def test_lock_file_symlink_is_refused_but_job_still_runs(home: Path, tmp_path: Path) -> None:
    (home / "locks").mkdir(parents=True)
    (home / "locks" / "s.lock").symlink_to(tmp_path / "victim")
    result = cronwrap(home, "run", "--name", "s", "--", "true")
    assert result.returncode == 0
    assert "symlink" in result.stderr
    assert not (tmp_path / "victim").exists()


# ---------------------------------------------------------------- timeout


TREE = textwrap.dedent("""
    import os, subprocess, sys, time
    pids = []
    # a grandchild in our process group, and one that left it with setsid and ignores TERM
    pids.append(subprocess.Popen(["sleep", "300"]).pid)
    inner = sys.argv[1] + ".inner"  # the setsid'd shell writes its own child's pid here
    script = "trap '' TERM; sleep 300 & echo $! > " + inner + "; wait"
    pids.append(subprocess.Popen(["setsid", "sh", "-c", script]).pid)
    while not os.path.exists(inner) or not open(inner).read().strip():
        time.sleep(0.02)
    pids.append(int(open(inner).read()))
    open(sys.argv[1] + ".tmp", "w").write(" ".join(map(str, pids)))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(300)
""")


def test_timeout_kills_the_whole_tree_and_exits_124(home: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    t = time.monotonic()
    # the tree must be up before the timeout: 0.1 s here on a quiet machine, but more than
    # the 1 s it had on a slow one (no pid file: the timeout came first)
    result = cronwrap(
        home,
        "run",
        "--name",
        "to",
        "--timeout",
        "5s",
        "--kill-after",
        "1s",
        "--",
        PY,
        "-c",
        TREE,
        str(pidfile),
    )
    elapsed = time.monotonic() - t
    assert result.returncode == 124, result.stderr
    assert elapsed < 60, elapsed  # at the timeout, not at the end of the 300 s sleeps
    assert pidfile.exists(), "the timeout came before the tree was up"
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 3  # sleep, the setsid'd shell and that shell's own sleep
    # everything under our tree is gone, the setsid'd shell's own child too
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10)
    [run] = runs(home, "to")
    assert run.status == "timeout" and run.exit_code == 124 and "timed out" in run.reason


def test_timeout_escalates_to_sigkill_when_term_is_ignored(home: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    t = time.monotonic()
    result = cronwrap(
        home,
        "run",
        "--name",
        "tk",
        "--timeout",
        "3s",  # the child ignores TERM before then, even on a slow machine (0.05 s here)
        "--kill-after",
        "500ms",
        "--",
        PY,
        "-c",
        "import pathlib,signal,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)",
        str(ready),
    )
    assert result.returncode == 124
    assert ready.exists(), "the timeout came before the child ignored SIGTERM"
    assert time.monotonic() - t < 30  # SIGKILL after the grace, not the child's 60 s
    [run] = runs(home, "tk")
    assert run.signal == 9


# ---------------------------------------------------------------- retries


def counter_script(path: Path, fail_times: int, code: int) -> list[str]:
    return [
        PY,
        "-c",
        textwrap.dedent(f"""
        import pathlib, sys
        p = pathlib.Path({str(path)!r})
        n = int(p.read_text()) if p.exists() else 0
        p.write_text(str(n + 1))
        sys.exit({code} if n < {fail_times} else 0)
    """),
    ]


@pytest.mark.parametrize(
    ("extra", "code", "fail_times", "expected_attempts", "expected_exit"),
    [
        ([], 3, 10, 3, 3),  # retryable: all three attempts fail
        ([], 3, 1, 2, 0),  # succeeds on the second attempt
        ([], 127, 10, 1, 127),  # not found is permanent
        ([], 126, 10, 1, 126),
        (["--retry-on", "75,100-110"], 3, 10, 1, 3),
        (["--retry-on", "75,100-110"], 105, 10, 3, 105),
        (["--no-retry-on", "3"], 3, 10, 1, 3),
    ],
    ids=[
        "retry-all",
        "recover",
        "127-permanent",
        "126-permanent",
        "retry-on-miss",
        "retry-on-range",
        "no-retry-on",
    ],
)
def test_retries_only_retryable_failures(
    home: Path,
    tmp_path: Path,
    extra: list[str],
    code: int,
    fail_times: int,
    expected_attempts: int,
    expected_exit: int,
) -> None:
    count = tmp_path / "count"
    result = cronwrap(
        home,
        "run",
        "--name",
        "r",
        "--retries",
        "2",
        "--retry-delay",
        "0",
        *extra,
        "--",
        *counter_script(count, fail_times, code),
    )
    assert result.returncode == expected_exit, result.stderr
    assert int(count.read_text()) == expected_attempts
    [run] = runs(home, "r")
    assert run.attempts == expected_attempts
    assert len(attempts(home, run.run_id)) == expected_attempts
    ends = [e for e in events(home) if e["event"] == "attempt.end"]
    assert [e["attempt"] for e in ends] == list(range(1, expected_attempts + 1))


def test_timeouts_are_retried_only_when_asked(home: Path, tmp_path: Path) -> None:
    count = tmp_path / "count"
    slow = ["sh", "-c", f"echo x >> {count}; exec sleep 30"]  # counts its attempts
    result = cronwrap(
        home,
        "run",
        "--name",
        "rt",
        "--retries",
        "1",
        "--retry-delay",
        "0",
        "--timeout",
        "2s",
        "--",
        *slow,
    )
    assert result.returncode == 124 and count.read_text() == "x\n"
    count.unlink()
    result = cronwrap(
        home,
        "run",
        "--name",
        "rt",
        "--retries",
        "1",
        "--retry-delay",
        "0",
        "--timeout",
        "2s",
        "--retry-on-timeout",
        "--",
        *slow,
    )
    assert result.returncode == 124 and count.read_text() == "x\nx\n"


def test_timeout_total_bounds_retries_and_backoff(home: Path) -> None:
    t = time.monotonic()
    result = cronwrap(
        home,
        "run",
        "--name",
        "tt",
        "--retries",
        "100",
        "--retry-delay",
        "100ms",
        "--retry-max-delay",
        "100ms",
        "--timeout-total",
        "3s",
        "--",
        "sh",
        "-c",
        "sleep 0.2; exit 1",
    )
    elapsed = time.monotonic() - t
    assert result.returncode in (1, 124)
    assert elapsed < 20, elapsed  # 100 retries would take 30 s and more
    [run] = runs(home, "tt")
    assert 2 <= run.attempts < 30  # bounded by the 3 s total, not by the 101 attempts allowed


def test_backoff_doubles_with_cap_and_full_jitter() -> None:
    job = resolve_job(
        {"name": "b", "retry_delay": "5s", "retry_max_delay": "30s"}, ["x"], {}, ConfigFile(None)
    )
    ceiling = [backoff_delay(k, job, lambda lo, hi: hi) for k in range(1, 6)]
    assert ceiling == [5, 10, 20, 30, 30]
    assert backoff_delay(3, job, lambda lo, hi: lo) == 0  # full jitter starts at zero


def test_backoff_is_waited_between_attempts_within_the_ceiling(home: Path) -> None:
    """Gaps between attempts are full-jitter delays: each within the (capped) ceiling, and
    together clearly above zero."""
    from datetime import datetime

    result = cronwrap(
        home,
        "run",
        "--name",
        "bw",
        "--retries",
        "5",
        "--retry-delay",
        "200ms",
        "--retry-max-delay",
        "400ms",
        "--",
        "false",
    )
    assert result.returncode == 1
    evs = events(home)
    ends = [
        datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
        for e in evs
        if e["event"] == "attempt.end"
    ]
    starts = [
        datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
        for e in evs
        if e["event"] == "attempt.start"
    ]
    gaps = [(s - e).total_seconds() for e, s in zip(ends, starts[1:], strict=False)]
    ceilings = [0.2, 0.4, 0.4, 0.4, 0.4]
    assert len(gaps) == 5
    assert all(g <= c + 0.3 for g, c in zip(gaps, ceilings, strict=True)), gaps
    assert sum(gaps) > 0.05, gaps  # uniform draws: all five near 0 is vanishingly unlikely


# ---------------------------------------------------------------- signals


def test_sigterm_is_forwarded_and_run_is_cancelled(home: Path, tmp_path: Path) -> None:
    got = tmp_path / "got"
    ready = tmp_path / "ready"
    child = textwrap.dedent(f"""
        import pathlib, signal, sys, time
        def h(n, f):
            pathlib.Path({str(got)!r}).write_text(str(n)); sys.exit(0)
        signal.signal(signal.SIGTERM, h)
        pathlib.Path({str(ready)!r}).touch()
        time.sleep(60)
    """)
    proc = popen_cronwrap(home, "run", "--name", "sig", "--", PY, "-c", child)
    wait_for(ready.exists)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 128 + signal.SIGTERM
    assert got.read_text() == str(int(signal.SIGTERM))
    [run] = runs(home, "sig")
    assert run.status == "cancelled" and run.exit_code == 143
    # the lock is free again
    assert cronwrap(home, "run", "--name", "sig", "--", "true").returncode == 0
    assert runs(home, "sig")[0].status == "success"


def test_cancel_escalates_to_kill_after(home: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = (
        f"import pathlib,signal,time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    )
    proc = popen_cronwrap(
        home, "run", "--name", "esc", "--kill-after", "500ms", "--", PY, "-c", child
    )
    wait_for(ready.exists)
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 128 + signal.SIGINT
    assert time.monotonic() - t < 30  # killed after the grace, not the child's 60 s
    assert runs(home, "esc")[0].signal == 9


def test_sigkill_of_cronwrap_leaves_no_unsupervised_job(home: Path, tmp_path: Path) -> None:
    proc, job_pid = popen_sleeping_job(home, "kil", tmp_path)
    proc.kill()
    proc.wait()
    wait_for(lambda: not alive(job_pid), timeout=30)
    # the run is shown crashed, not running forever, once another run looks at it
    assert cronwrap(home, "run", "--name", "kil", "--", "true").returncode == 0
    statuses = [r.status for r in runs(home, "kil")]
    assert statuses == ["success", "crashed"]


def test_sigkill_of_cronwrap_keeps_grandchildren_holding_the_lock(
    home: Path, tmp_path: Path
) -> None:
    """A grandchild that survives its killed parent still holds the lock: no overlap."""
    pidfile = tmp_path / "pid"
    proc = popen_cronwrap(
        home, "run", "--name", "gk", "--", "sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"
    )
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", timeout=30)
    grandchild = int(pidfile.read_text())
    proc.kill()
    proc.wait()
    try:
        assert alive(grandchild), "the orphaned grandchild should outlive its killed parent"
        result = cronwrap(home, "run", "--name", "gk", "--", "true")
        assert result.returncode == 0
        assert runs(home, "gk")[0].status == "skipped"
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


# ---------------------------------------------------------------- output


def test_output_passes_through_unchanged_and_is_logged(home: Path) -> None:
    result = cronwrap(home, "run", "--name", "o", "--", "sh", "-c", "echo out; echo err >&2")
    assert result.stdout == "out\n" and result.stderr == "err\n"
    [run] = runs(home, "o")
    assert set(Path(run.log_path).read_text().splitlines()) == {"out", "err"}
    assert "out" in run.output_tail


def test_quiet_prints_output_only_on_failure(home: Path) -> None:
    ok = cronwrap(home, "run", "--name", "q", "--quiet", "--", "sh", "-c", "echo fine")
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    bad = cronwrap(
        home, "run", "--name", "q", "--quiet", "--", "sh", "-c", "echo broken; echo why >&2; exit 4"
    )
    assert bad.returncode == 4
    # like chronic: each stream goes back where it was headed; then cronwrap's one line
    assert bad.stdout == "broken\n"
    assert bad.stderr.startswith("why\ncronwrap: q: failed, exit 4")
    assert len(bad.stderr.splitlines()) == 2


def test_binary_output_is_lossless_in_the_log(home: Path) -> None:
    blob = bytes(range(256)) * 4 + b"\xff\xfe invalid \xc3\x28"
    script = f"import sys; sys.stdout.buffer.write({blob!r})"
    result = subprocess.run(
        [PY, "-m", "cronwrap", "run", "--name", "bin", "--", PY, "-c", script],
        capture_output=True,
        env=cw_env(home),
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout == blob
    [run] = runs(home, "bin")
    assert Path(run.log_path).read_bytes() == blob
    assert "\ufffd" in run.output_tail


def test_log_file_keeps_head_and_tail_within_max_log_size(home: Path) -> None:
    script = "import sys\nfor i in range(20000): print(f'line {i:05d}')"
    result = cronwrap(home, "run", "--name", "big", "--max-log-size", "20k", "--", PY, "-c", script)
    assert result.returncode == 0 and result.stdout.count("\n") == 20000
    [run] = runs(home, "big")
    text = Path(run.log_path).read_text()
    assert len(text) < 21 * 1024
    assert text.startswith("line 00000\n")
    assert text.endswith("line 19999\n")
    assert "bytes omitted here" in text


@pytest.mark.slow
def test_2gb_of_output_keeps_memory_bounded(home: Path) -> None:
    measure = textwrap.dedent("""
        import resource, subprocess, sys
        r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
        print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """)
    out = subprocess.run(
        [
            PY,
            "-c",
            measure,
            PY,
            "-m",
            "cronwrap",
            "run",
            "--name",
            "huge",
            "--",
            "head",
            "-c",
            str(2 * 1024**3),
            "/dev/zero",
        ],
        capture_output=True,
        text=True,
        env=cw_env(home),
        timeout=240,
        check=True,
    )
    code, maxrss_kib = map(int, out.stdout.split())
    assert code == 0
    assert maxrss_kib < 60 * 1024, f"peak RSS {maxrss_kib} KiB"
    [run] = runs(home, "huge")
    assert Path(run.log_path).stat().st_size <= 10 * 1024 * 1024 + 100


# ---------------------------------------------------------------- structured log


def test_json_log_has_every_event_and_field(home: Path) -> None:
    result = cronwrap(
        home, "run", "--name", "lg", "--retries", "1", "--retry-delay", "0", "--", "false"
    )
    assert result.returncode == 1
    evs = events(home)
    assert [e["event"] for e in evs] == [
        "run.start",
        "attempt.start",
        "attempt.end",
        "attempt.start",
        "attempt.end",
        "run.end",
    ]
    for e in evs:
        assert {"ts", "event", "job", "run_id", "host", "pid"} <= set(e)
        assert e["ts"].endswith("Z") and e["job"] == "lg"
    end = evs[-1]
    assert end["status"] == "failed" and end["exit_code"] == 1 and end["attempts"] == 2
    assert end["signal"] is None and isinstance(end["duration_s"], float)
    assert len({e["run_id"] for e in evs}) == 1


def test_logfmt_and_stderr_log(home: Path) -> None:
    result = cronwrap(
        home, "run", "--name", "lf", "--log-format", "logfmt", "--log-file", "-", "--", "true"
    )
    lines = [ln for ln in result.stderr.splitlines() if "event=" in ln]
    assert len(lines) == 4
    assert "event=run.end" in lines[-1] and "status=success" in lines[-1]


def test_concurrent_writers_never_tear_log_lines(home: Path) -> None:
    procs = [
        popen_cronwrap(home, "run", "--name", f"c{i}", "--on-overlap", "allow", "--", "true")
        for i in range(20)
    ]
    for p in procs:
        assert p.wait(60) == 0
    evs = events(home)  # json.loads of every line: a torn line would fail here
    assert len(evs) == 20 * 4


# ---------------------------------------------------------------- monitoring failures


def test_unwritable_state_dir_never_stops_the_job(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    home = blocker / "home"
    marker = tmp_path / "ran"
    result = cronwrap(home, "run", "--name", "m", "--", "sh", "-c", f"touch {marker}; exit 5")
    assert result.returncode == 5
    assert marker.exists()
    assert "cronwrap: m: " in result.stderr


def test_event_log_failure_is_a_warning(home: Path, tmp_path: Path) -> None:
    result = cronwrap(home, "run", "--name", "lw", "--log-file", str(tmp_path), "--", "true")
    assert result.returncode == 0
    assert "cannot write event log" in result.stderr
    assert result.stderr.count("cannot write event log") == 1


# ---------------------------------------------------------------- other options


def test_env_cwd_and_shell(home: Path, tmp_path: Path) -> None:
    result = cronwrap(
        home,
        "run",
        "--name",
        "ecs",
        "--env",
        "FOO=bar baz",
        "--cwd",
        str(tmp_path),
        "--shell",
        "--",
        'echo "$FOO"; pwd; echo $CRONWRAP_JOB',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["bar baz", str(tmp_path), "ecs"]


def test_missing_cwd_is_reported(home: Path, tmp_path: Path) -> None:
    result = cronwrap(home, "run", "--name", "nc", "--cwd", str(tmp_path / "nope"), "--", "true")
    assert result.returncode == 125
    assert runs(home, "nc")[0].reason.startswith("cannot enter directory")


def test_config_job_section_applies_to_run(home: Path) -> None:
    home.mkdir()
    (home / "config.yaml").write_text("jobs:\n  cfg:\n    timeout: 300ms\n    kill_after: 1s\n")
    result = cronwrap(home, "run", "--name", "cfg", "--", "sleep", "5")
    assert result.returncode == 124


def test_schedule_and_jitter_are_recorded(home: Path) -> None:
    result = cronwrap(
        home,
        "run",
        "--name",
        "sj",
        "--schedule",
        "*/5 * * * *",
        "--tz",
        "UTC",
        "--jitter",
        "200ms",
        "--",
        "true",
    )
    assert result.returncode == 0
    [run] = runs(home, "sj")
    assert (run.schedule, run.tz) == ("*/5 * * * *", "UTC")


def test_unnamed_jobs_get_a_stable_derived_name(home: Path) -> None:
    cronwrap(home, "run", "--", "echo", "a")
    cronwrap(home, "run", "--", "echo", "a")
    with Store.open(home / "runs.db") as store:
        [name] = store.job_names()
        assert name.startswith("echo-") and store.count_runs(name) == 2


def test_history_is_pruned_as_part_of_normal_runs(home: Path) -> None:
    for _ in range(4):
        cronwrap(home, "run", "--name", "pr", "--keep-runs", "2", "--", "true")
    kept = runs(home, "pr")
    assert len(kept) == 2
    logs = list((home / "output" / "pr").iterdir())
    assert sorted(p.name for p in logs) == sorted(f"{r.run_id}.log" for r in kept)


def test_json_field_types_in_the_store_row(home: Path) -> None:
    cronwrap(home, "run", "--name", "ty", "--", "true")
    [run] = runs(home, "ty")
    assert run.host and run.pid > 0 and run.duration_s >= 0
    assert json.loads(json.dumps(run.command)) == "true"


# ---------------------------------------------------------------- the one run parser


def test_unknown_option_before_separator_runs_the_command_and_says_so(
    home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    result = cronwrap(
        home, "run", "--name", "u", "--nmae", "y", "--", "sh", "-c", f"touch {marker}; exit 4"
    )
    assert result.returncode == 4, result.stderr
    assert marker.exists()
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("cronwrap:")]
    assert lines[0] == "cronwrap: u: no such option: --nmae (did you mean --name?)"
    assert lines[1].startswith("cronwrap: u: failed, exit 4") and len(lines) == 2


@pytest.mark.parametrize(
    "entry",
    [["run"], ["--config", "CONFIG", "run"], ["--config=CONFIG", "run"], ["--debug", "run"]],
    ids=["run", "config-run", "config-eq-run", "debug-run"],
)
def test_every_spelling_of_run_parses_the_same(
    home: Path, tmp_path: Path, entry: list[str]
) -> None:
    """`cronwrap [--config F] run` takes the fast path and the one parser: the short
    unknown option `-x` is an option (not the command), and the command runs."""
    config = tmp_path / "c.yaml"
    config.write_text("jobs:\n  p:\n    retries: 0\n")
    marker = tmp_path / "ran"
    words = [w.replace("CONFIG", str(config)) for w in entry]
    result = cronwrap(home, *words, "--name", "p", "-x", "--", "touch", str(marker))
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    assert "cronwrap: p: no such option: -x" in result.stderr


def test_click_run_command_uses_the_same_parser(home: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cronwrap.cli.app import cli

    marker = tmp_path / "ran"
    env = {"CRONWRAP_HOME": str(home)}
    bad = CliRunner().invoke(cli, ["run", "--bogus", "touch", str(marker)], env=env)
    assert bad.exit_code == 125 and not marker.exists()
    good = CliRunner().invoke(cli, ["run", "--bogus", "--", "touch", str(marker)], env=env)
    assert good.exit_code == 0 and marker.exists()


@pytest.mark.parametrize(
    ("words", "name", "command", "problems"),
    [
        ("/usr/bin/cronwrap run --name a -- b c", "a", ["b", "c"], 0),
        ("cronwrap --config /etc/c.yaml run --name=a b --name x", "a", ["b", "--name", "x"], 0),
        ("cronwrap run --nmae a -- b", None, ["b"], 1),
        ("cronwrap run --timeout -- b", None, ["b"], 1),
        ("cronwrap run b -- c", None, ["b", "--", "c"], 0),
    ],
    ids=["plain", "config-and-command-options", "unknown", "missing-value", "command-own-dashdash"],
)
def test_crontab_words_parse_like_run(
    words: str, name: str | None, command: list[str], problems: int
) -> None:
    from cronwrap.argv import parse_cronwrap_words

    parsed = parse_cronwrap_words(words.split())
    assert parsed is not None
    assert (parsed.value("name"), parsed.command, len(parsed.problems)) == (
        name,
        command,
        problems,
    )
    assert parse_cronwrap_words(["/usr/bin/backup", "run"]) is None
