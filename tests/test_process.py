"""The child process and its output (run/process.py, run/output.py), with real processes,
real signals and real big output."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cronwrap.run.process import signal_name
from cronwrap.state.store import Store
from tests.conftest import alive, cronwrap, cw_env, popen_cronwrap, wait_for, wait_supervised

PY = sys.executable


def runs(home: Path, job: str) -> list:
    with Store.open(home / "runs.db") as store:
        return store.runs(job, limit=100)


# ---------------------------------------------------------------- signals


def test_child_killed_by_a_realtime_signal_exits_128_plus_n(home: Path) -> None:
    rt = signal.SIGRTMIN + 1
    bare = subprocess.run(["sh", "-c", "kill -s RTMIN+1 $$"], check=False)
    result = cronwrap(home, "run", "--name", "rt", "--", "sh", "-c", "kill -s RTMIN+1 $$")
    assert result.returncode == 128 + rt == 128 - bare.returncode, result.stderr
    assert "Traceback" not in result.stderr and "ValueError" not in result.stderr
    [run] = runs(home, "rt")
    assert run.status == "failed" and run.signal == rt
    assert run.reason == "killed by SIGRTMIN+1"


def test_signal_names_cover_numbers_python_has_no_name_for() -> None:
    assert signal_name(signal.SIGTERM) == "SIGTERM"
    assert signal_name(signal.SIGRTMIN + 3) == "SIGRTMIN+3"
    assert signal_name(200) == "signal 200"


def test_a_cronwrap_killed_with_its_process_group_still_takes_the_job_along(
    home: Path, tmp_path: Path
) -> None:
    """The watchdog lives in its own session: SIGKILL to cronwrap's whole group (cronwrap
    and anything else in it) still ends the job's direct child."""
    pidfile = tmp_path / "pid"
    child = (
        f"import os,pathlib,time; pathlib.Path({str(pidfile)!r})"
        ".write_text(str(os.getpid())); print('started', flush=True); time.sleep(60)"
    )
    proc = popen_cronwrap(
        home, "run", "--name", "grp", "--", PY, "-c", child, start_new_session=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: pidfile.exists() and pidfile.read_text() != "")
    wait_supervised(home, "grp")
    job = int(pidfile.read_text())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        wait_for(lambda: not alive(job), timeout=10)
    finally:
        if alive(job):
            os.kill(job, signal.SIGKILL)


def test_the_job_inherits_the_lock_but_helpers_do_not(home: Path, tmp_path: Path) -> None:
    """The job holds the lock descriptor (as with flock(1)); the lock is free once the job
    and cronwrap are gone, even though cronwrap spawned a watchdog."""
    out = cronwrap(
        home, "run", "--name", "inh", "--", "sh", "-c", "ls -l /proc/$$/fd | grep -c 'inh.lock'"
    )
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr
    assert cronwrap(home, "run", "--name", "inh", "--", "true").returncode == 0
    assert [r.status for r in runs(home, "inh")] == ["success", "success"]


# ---------------------------------------------------------------- spawning


@pytest.mark.parametrize(
    ("command", "code", "reason"),
    [
        (["./tool.sh"], 0, None),
        (["./missing.sh"], 127, "command not found: ./missing.sh"),
        (["./plain.txt"], 126, "cannot execute ./plain.txt"),
    ],
    ids=["relative-to-cwd", "missing-127", "not-executable-126"],
)
def test_cwd_and_command_lookup(
    home: Path, tmp_path: Path, command: list[str], code: int, reason: str | None
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "tool.sh").write_text("#!/bin/sh\npwd\n")
    (work / "tool.sh").chmod(0o755)
    (work / "plain.txt").write_text("hello\n")
    result = cronwrap(home, "run", "--name", "cwd", "--cwd", str(work), "--", *command)
    assert result.returncode == code, result.stderr
    if code == 0:
        assert result.stdout.strip() == str(work)
    [run] = runs(home, "cwd")
    if reason:
        assert reason in (run.reason or "")


def test_job_gets_default_signal_dispositions(home: Path) -> None:
    """Python ignores SIGPIPE and SIGXFSZ; the job must not inherit that (`yes | head`
    must end by SIGPIPE), and sees what a bare crontab line would."""
    bare = subprocess.run(
        ["grep", "SigIgn", "/proc/self/status"], capture_output=True, text=True, check=True
    )
    result = cronwrap(home, "run", "--name", "sig", "--", "grep", "SigIgn", "/proc/self/status")
    assert result.returncode == 0
    ignored = int(result.stdout.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))
    standard = (1 << 31) - 1  # glibc's posix_spawn leaves its internal signals 32-33 ignored
    assert ignored & standard == int(bare.stdout.split()[1], 16) & standard


# ---------------------------------------------------------------- background output


def test_background_process_keeps_writing_after_the_command_exits(
    home: Path, tmp_path: Path
) -> None:
    """The bare line lets `(…) & exit 0` finish; cronwrap does not wait for it, and it must
    not die of SIGPIPE either."""
    done = tmp_path / "done"
    script = f"(for i in 1 2 3 4; do echo tick $i; sleep 0.2; done; touch {done}) & exit 0"
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "bg",
        "--",
        "sh",
        "-c",
        script,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.wait(30) == 0  # cronwrap itself is done
    out = proc.stdout.read()  # type: ignore[union-attr]  # EOF once the background is done
    proc.stderr.read()  # type: ignore[union-attr]
    assert out.decode().split("\n")[:4] == ["tick 1", "tick 2", "tick 3", "tick 4"]
    wait_for(done.exists)
    [run] = runs(home, "bg")
    assert run.status == "success"


# ---------------------------------------------------------------- output


def test_log_is_written_while_the_job_runs(home: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = f"echo early; while [ ! -e {go} ]; do sleep 0.05; done; echo late"
    proc = popen_cronwrap(
        home, "run", "--name", "live", "--", "sh", "-c", script, stdout=subprocess.DEVNULL
    )
    logdir = home / "output" / "live"
    try:
        wait_for(lambda: logdir.exists() and any(p.read_text() for p in logdir.iterdir()))
        [log] = list(logdir.iterdir())
        assert log.read_text() == "early\n"
    finally:
        go.touch()
    assert proc.wait(30) == 0
    assert log.read_text() == "early\nlate\n"


def test_log_of_a_sigkilled_run_keeps_what_was_printed(home: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = f"echo before the kill; touch {ready}; sleep 30"
    proc = popen_cronwrap(
        home, "run", "--name", "k9", "--", "sh", "-c", script, stdout=subprocess.DEVNULL
    )
    wait_for(ready.exists)
    wait_for(lambda: any((home / "output" / "k9").iterdir()))
    proc.kill()
    proc.wait()
    [log] = list((home / "output" / "k9").iterdir())
    wait_for(lambda: log.read_text() == "before the kill\n")


def test_order_of_stdout_and_stderr_is_kept_when_both_go_to_one_pipe(home: Path) -> None:
    script = "for i in $(seq 1 300); do echo out $i; echo err $i >&2; done"
    expected = "".join(f"out {i}\nerr {i}\n" for i in range(1, 301))
    bare = subprocess.run(
        ["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True
    )
    assert bare.stdout.decode() == expected
    result = subprocess.run(
        [PY, "-m", "cronwrap", "run", "--name", "ord", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=cw_env(home),
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.decode() == expected
    [run] = runs(home, "ord")
    assert Path(run.log_path).read_text() == expected


def test_quiet_with_one_pipe_prints_everything_in_order(home: Path) -> None:
    script = "echo one; echo two >&2; echo three; exit 3"
    result = subprocess.run(
        [PY, "-m", "cronwrap", "run", "--name", "qo", "--quiet", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=cw_env(home),
        check=False,
    )
    assert result.returncode == 3
    assert result.stdout.decode().startswith("one\ntwo\nthree\n")


def test_quiet_holds_a_bounded_head_and_tail_of_each_stream(home: Path) -> None:
    script = (
        "import sys\n"
        "for i in range(100000): print(f'out {i:06d}')\n"
        "print('err first', file=sys.stderr); print('err last', file=sys.stderr)\n"
        "sys.exit(1)"
    )
    result = cronwrap(home, "run", "--name", "qb", "--quiet", "--", PY, "-c", script)
    assert result.returncode == 1
    assert result.stdout.startswith("out 000000\n") and result.stdout.endswith("out 099999\n")
    assert "bytes omitted here]" in result.stdout
    assert len(result.stdout) < 600 * 1024  # 1.1 MB printed, 2 x 256 KiB held
    assert result.stderr.startswith("err first\nerr last\n")


def _big_writer(n: int) -> str:
    return (
        "import sys\n"
        f"for i in range({n}): sys.stdout.buffer.write(b'%09d ' % i + b'x' * 90 + b'\\n')\n"
    )


def test_big_output_passes_through_exactly_and_keeps_head_and_tail(home: Path) -> None:
    """Past the heads the relay is zero-copy (tee + splice): the bytes still arrive whole
    and in order, and the log and the stored tail still end with the last line."""
    n = 300_000  # 30 MB
    expected = hashlib.sha256()
    for i in range(n):
        expected.update(b"%09d " % i + b"x" * 90 + b"\n")
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "big",
        "--max-log-size",
        "4M",
        "--",
        PY,
        "-c",
        _big_writer(n),
        stdout=subprocess.PIPE,
    )
    got = hashlib.sha256()
    assert proc.stdout is not None
    while chunk := proc.stdout.read(1 << 20):
        got.update(chunk)
    assert proc.wait(60) == 0
    assert got.hexdigest() == expected.hexdigest()
    [run] = runs(home, "big")
    last = f"{n - 1:09d} " + "x" * 90 + "\n"
    assert run.output_tail.endswith(last)
    log = Path(run.log_path).read_bytes()
    assert len(log) <= 4 * 1024 * 1024 + 100
    assert log.startswith(b"000000000 ") and log.endswith(last.encode())
    assert b"bytes omitted here]" in log
    # the tail after the marker is whole lines, contiguous up to the end
    tail = log.rsplit(b"bytes omitted here]\n", 1)[1]
    numbers = [int(line[:9]) for line in tail.splitlines()[1:]]
    assert numbers == list(range(numbers[0], n))


def test_output_in_bursts_with_pauses_keeps_a_whole_log_tail(home: Path) -> None:
    """The relay moves what the job wrote while it moved the last chunk at once, and a pipe
    it then finds empty is no sign that the scratch pipe is full: the tail it holds (at
    least half its pipe, 512 KiB) survives each pause and reaches the log."""
    mib = 1 << 20
    script = (
        "import os, time\n"
        "data = b''.join(b'%09d ' % i + b'x' * 90 + b'\\n' for i in range(130000))[: 12 << 20]\n"
        "def put(view):\n"
        "    while view:\n"
        "        view = view[os.write(1, view):]\n"
        "put(memoryview(data)[: 4 << 20])\n"  # past the log's head
        "for k in range(4, 12):\n"  # then 1 MiB at once, and nothing for a while
        "    put(memoryview(data)[k << 20 : (k + 1) << 20]); time.sleep(0.05)\n"
    )
    expected = b"".join(b"%09d " % i + b"x" * 90 + b"\n" for i in range(130000))[: 12 * mib]
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "bursts",
        "--max-log-size",
        "4M",
        "--",
        PY,
        "-c",
        script,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    data = proc.stdout.read()
    assert proc.wait(60) == 0
    assert data == expected
    [run] = runs(home, "bursts")
    log = Path(run.log_path).read_bytes()
    tail = log.rsplit(b"bytes omitted here]\n", 1)[1]
    assert len(tail) >= mib // 2
    assert expected.endswith(tail)


def test_big_output_then_a_background_writer_keeps_the_tail(home: Path) -> None:
    """The job exits while something it started still holds its stdout: the relay drains the
    empty pipe without poll, and an empty pipe is no sign that the scratch pipe is full. The
    tail it holds was dropped there, so the log and the stored tail lost the last lines."""
    n = 80_000  # 8 MB: past the heads and the log's head
    script = f"{PY} -c {shlex.quote(_big_writer(n))}; sleep 2 & exit 0"
    proc = popen_cronwrap(
        home, "run", "--name", "bg", "--max-log-size", "4M", "--", "sh", "-c", script,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    data = proc.stdout.read()
    assert proc.wait(60) == 0
    last = f"{n - 1:09d} " + "x" * 90 + "\n"
    assert len(data) == n * 101 and data.endswith(last.encode())
    [run] = runs(home, "bg")
    assert run.output_tail.endswith(last)
    log = Path(run.log_path).read_bytes()
    assert log.endswith(last.encode())
    assert len(log.rsplit(b"bytes omitted here]\n", 1)[1]) >= 64 * 1024


def test_a_background_writer_that_never_stops_does_not_keep_the_run_open(
    home: Path, tmp_path: Path
) -> None:
    """After the exit cronwrap relays what is in the pipes and then hands them to a cat: a
    descendant writing as fast as it can (yes) must not keep the run from ending."""
    pidfile = tmp_path / "yes.pid"
    script = f"yes & echo $! > {pidfile}; exit 7"
    proc = popen_cronwrap(
        home, "run", "--name", "yes", "--", "sh", "-c", script, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    got = [0]

    def read() -> None:
        while chunk := proc.stdout.read1(1 << 20):  # type: ignore[union-attr]
            got[0] += len(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert proc.wait(60) == 7  # a behavioural bound: it ended, with the job's code
        [run] = runs(home, "yes")
        assert run.status == "failed" and run.exit_code == 7
        wait_for(lambda: got[0] > 0)  # and yes goes on, through the cat, unharmed
    finally:
        wait_for(pidfile.exists)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        reader.join(30)


def test_big_output_to_a_file_is_exact(home: Path, tmp_path: Path) -> None:
    n = 100_000
    target = tmp_path / "out"
    with open(target, "wb") as f:
        result = subprocess.run(
            [PY, "-m", "cronwrap", "run", "--name", "bf", "--", PY, "-c", _big_writer(n)],
            stdout=f,
            env=cw_env(home),
            check=False,
        )
    assert result.returncode == 0
    data = target.read_bytes()
    assert len(data) == n * 101
    assert data.endswith(f"{n - 1:09d} ".encode() + b"x" * 90 + b"\n")


def test_output_of_many_threads_interleaves_safely(home: Path) -> None:
    """stdout and stderr both busy at once, to different files: each arrives whole."""
    script = (
        "import sys, threading\n"
        "def w(s, tag):\n"
        "    for i in range(20000): s.write(f'{tag} {i}\\n')\n"
        "    s.flush()\n"
        "ts = [threading.Thread(target=w, args=(s, t)) for s, t in ((sys.stdout, 'o'),"
        " (sys.stderr, 'e'))]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
    )
    result = cronwrap(home, "run", "--name", "th", "--", PY, "-c", script)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"o {i}" for i in range(20000)]
    assert result.stderr.splitlines() == [f"e {i}" for i in range(20000)]


def test_threads_in_cronwrap_do_not_matter_for_spawning(home: Path, tmp_path: Path) -> None:
    """Retries spawn while the --max-runtime alert thread may run: no preexec_fn, no hang."""
    counter = tmp_path / "n"
    script = f"echo x >> {counter}; sleep 0.3; exit 1"
    result = cronwrap(
        home,
        "run",
        "--name",
        "thr",
        "--retries",
        "2",
        "--retry-delay",
        "0",
        "--max-runtime",
        "0.1s",
        "--alert-cmd",
        "sleep 0.5",
        "--",
        "sh",
        "-c",
        script,
    )
    assert result.returncode == 1
    assert counter.read_text().count("x") == 3
    _ = threading  # the alert command runs from a thread in cronwrap


def test_a_script_without_a_shebang_runs_with_sh_as_under_the_bare_line(
    home: Path, tmp_path: Path
) -> None:
    """cron's bare line (`sh -c ./script`) runs a script with no #! line with /bin/sh
    (execvp does the same); so does cronwrap, arguments and exit code included."""
    script = tmp_path / "noshebang.sh"
    script.write_text('echo "ran with $# args: $1"\nexit 4\n')
    script.chmod(0o755)
    bare = subprocess.run(
        ["sh", "-c", f"{script} one"], capture_output=True, text=True, check=False
    )
    wrapped = cronwrap(home, "run", "--name", "nsb", "--", str(script), "one")
    assert (wrapped.returncode, bare.returncode) == (4, 4), wrapped.stderr
    assert wrapped.stdout == bare.stdout == "ran with 1 args: one\n"
    assert runs(home, "nsb")[0].exit_code == 4
    # a file that is neither: it fails as it does under the bare line
    binary = tmp_path / "junk"
    binary.write_bytes(b"\x7fELF\x00garbage")
    binary.chmod(0o755)
    bare_code = subprocess.run(["sh", "-c", str(binary)], capture_output=True, check=False)
    junk = cronwrap(home, "run", "--name", "junk", "--", str(binary))
    assert junk.returncode == bare_code.returncode != 0
