"""When the reader of cronwrap's stdout or stderr goes away, the job sees what it would have
seen bare (run/output.py, run/process.py): each case runs the bare command and the wrapped one
side by side, with real pipes, a real `head` and real /dev/full."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cronwrap.run.nowait import write_nowait
from cronwrap.state.store import Store
from tests.conftest import alive, cw_env, wait_for

PY = sys.executable
CUT = "cannot pass output through"


def wrapped(name: str, *args: str) -> list[str]:
    return [PY, "-m", "cronwrap", "run", "--name", name, *args]


def exit_code(returncode: int) -> int:
    """A Popen return code as the shell (and cronwrap) reports it: 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def into_head(
    argv: list[str], home: Path, *, stream: str = "stdout", timeout: float = 60
) -> tuple[int, float, bytes, bytes]:
    """Run argv with its `stream` ("stdout", "stderr" or "both": one pipe) into `head -1`;
    its exit code, how long it took, what head printed and argv's own stderr."""
    reader = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert reader.stdin is not None
    ends = {
        "stdout": (reader.stdin, subprocess.PIPE),
        "stderr": (subprocess.DEVNULL, reader.stdin),
        "both": (reader.stdin, subprocess.STDOUT),
    }
    out, err = ends[stream]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=out, stderr=err, env=cw_env(home))
    reader.stdin.close()
    try:
        _, said = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    took = time.monotonic() - started
    assert reader.stdout is not None
    head_said = reader.stdout.read()
    reader.stdout.close()
    reader.wait(10)
    return exit_code(proc.returncode), took, head_said, said or b""


def the_run(home: Path, job: str):  # type: ignore[no-untyped-def]
    with Store.open(home / "runs.db") as store:
        [run] = store.runs(job, limit=10)
    return run


def cut_lines(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode().splitlines() if CUT in line]


def line_producer(marker: Path, *, to: str = "") -> str:
    """20 lines, 0.2 s apart, then a marker: present only if the loop ran to its end."""
    return (
        f"i=0; while [ $i -lt 20 ]; do echo line $i {to}; i=$((i+1)); sleep 0.2; done; "
        f"touch {marker}"
    )


# ---------------------------------------------------------------- the reader goes away


def test_yes_into_head_ends_at_once_with_the_bare_exit_code(home: Path) -> None:
    bare, _, _, _ = into_head(["yes"], home)
    code, took, said, stderr = into_head(wrapped("y", "--", "yes"), home, timeout=60)
    assert bare == 141
    assert code == bare, stderr
    assert took < 20, f"took {took:.1f}s"  # bare: at once; before the fix: never
    assert said == b"y\n"
    [line] = cut_lines(stderr)
    assert line.startswith("cronwrap: y: ") and "Broken pipe" in line, stderr
    assert b"Traceback" not in stderr
    run = the_run(home, "y")
    assert (run.status, run.exit_code, run.signal) == ("failed", 141, 13)
    assert run.reason == "killed by SIGPIPE"
    assert run.warnings.count(CUT) == 1


def test_a_line_producer_into_head_is_stopped_as_bare(home: Path, tmp_path: Path) -> None:
    bare_marker, marker = tmp_path / "bare-done", tmp_path / "done"
    bare, _, _, _ = into_head(["sh", "-c", line_producer(bare_marker)], home)
    code, _, said, stderr = into_head(
        wrapped("lines", "--", "sh", "-c", line_producer(marker)), home
    )
    assert bare == 141 and not bare_marker.exists()
    assert code == bare, stderr
    assert said == b"line 0\n"
    assert not marker.exists(), "the job ran to its end"
    assert len(cut_lines(stderr)) == 1, stderr
    run = the_run(home, "lines")
    assert (run.exit_code, run.signal) == (141, 13)
    assert Path(run.log_path).read_bytes().startswith(b"line 0\n")  # what came before stays


def test_one_pipe_for_stdout_and_stderr_is_closed_as_bare(home: Path, tmp_path: Path) -> None:
    """2>&1 | head: the job's one pipe carries both streams, and both see the broken pipe."""
    bare_marker, marker = tmp_path / "bare-done", tmp_path / "done"
    bare, _, _, _ = into_head(
        ["sh", "-c", line_producer(bare_marker, to=">&2")], home, stream="both"
    )
    code, _, said, _ = into_head(
        wrapped("both", "--", "sh", "-c", line_producer(marker, to=">&2")), home, stream="both"
    )
    assert bare == 141 and not bare_marker.exists()
    assert code == bare
    assert said == b"line 0\n"
    assert not marker.exists()
    run = the_run(home, "both")
    assert run.exit_code == 141 and "stdout and stderr: Broken pipe" in run.warnings


def test_a_broken_stderr_stops_the_job_as_bare_and_cronwrap_stays_quiet(
    home: Path, tmp_path: Path
) -> None:
    """Its own warning would go to the broken stderr too: cronwrap neither dies of it nor loops."""
    bare_marker, marker = tmp_path / "bare-done", tmp_path / "done"
    bare, _, _, _ = into_head(
        ["sh", "-c", line_producer(bare_marker, to=">&2")], home, stream="stderr"
    )
    code, _, said, _ = into_head(
        wrapped("err", "--", "sh", "-c", line_producer(marker, to=">&2")), home, stream="stderr"
    )
    assert bare == 141
    assert code == bare
    assert said == b"line 0\n"
    assert not marker.exists()
    run = the_run(home, "err")
    assert (run.status, run.exit_code) == ("failed", 141)
    assert "stderr: Broken pipe" in run.warnings


def test_reader_going_away_mid_big_output_ends_the_job_as_bare(home: Path, tmp_path: Path) -> None:
    """Past the heads the relay is zero-copy (tee + splice): the broken pipe shows there too.
    A Python job ignores SIGPIPE, so it gets EPIPE (BrokenPipeError) and exits 1, as bare."""
    script = (
        "import sys\n"
        "for i in range(200000): sys.stdout.buffer.write(b'%09d ' % i + b'x' * 90 + b'\\n')\n"
        "open(sys.argv[1], 'w').close()\n"
    )

    def run_into_reader(argv: list[str]) -> int:
        reader = subprocess.Popen(
            ["head", "-c", "5000000"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        assert reader.stdin is not None
        proc = subprocess.Popen(argv, stdout=reader.stdin, stderr=subprocess.PIPE, env=cw_env(home))
        reader.stdin.close()
        try:
            proc.communicate(timeout=60)
        finally:
            proc.kill()
        reader.wait(10)
        return exit_code(proc.returncode)

    bare_marker, marker = tmp_path / "bare-done", tmp_path / "done"
    bare = run_into_reader([PY, "-c", script, str(bare_marker)])
    args = ("--max-log-size", "1M", "--", PY, "-c", script, str(marker))
    code = run_into_reader(wrapped("big", *args))
    assert bare != 0 and not bare_marker.exists()
    assert code == bare
    assert not marker.exists()
    run = the_run(home, "big")
    assert run.exit_code == bare and run.warnings.count(CUT) == 1
    assert Path(run.log_path).read_bytes().startswith(b"000000000 ")


def test_background_writers_see_the_broken_pipe_as_bare(home: Path, tmp_path: Path) -> None:
    """What the job started in the background writes on after the reader has gone: it gets
    its SIGPIPE (and never finishes its loop), as bare; the job's own exit code stands."""

    def script(tag: str) -> str:
        loop = (
            f"echo $$ > {tmp_path / tag}.pid; i=0; "
            f"while [ $i -lt 30 ]; do echo bg $i; i=$((i+1)); sleep 0.1; done; "
            f"touch {tmp_path / tag}.done"
        )
        return f"echo fg; sh -c '{loop}' & sleep 1"

    results = {}
    for tag, argv in (("bare", ["sh", "-c", script("bare")]),
                      ("wrapped", wrapped("bg", "--", "sh", "-c", script("wrapped")))):  # fmt: skip
        code, _, said, _ = into_head(argv, home)
        pid = int((tmp_path / f"{tag}.pid").read_text())
        wait_for(lambda pid=pid: not alive(pid), timeout=20)
        results[tag] = (code, (tmp_path / f"{tag}.done").exists())
        assert said == b"fg\n"
    assert results["bare"] == (0, False)
    assert results["wrapped"] == results["bare"]
    assert the_run(home, "bg").exit_code == 0


# ---------------------------------------------------------------- other write errors


def test_stdout_on_dev_full_keeps_the_job_running_and_says_so(home: Path, tmp_path: Path) -> None:
    """Not a reader that left: bare, the job gets ENOSPC on its own write and may ignore it;
    a SIGPIPE would kill it. So the job runs to its end, its output goes to the log, and
    cronwrap says why once. A job that checks its writes exits 0 here where bare it would
    not: the one difference, and the warning on the run says so."""
    script = f"echo one; echo two; touch {tmp_path / 'done'}"
    with open("/dev/full", "wb") as full:
        bare = subprocess.run(
            ["sh", "-ec", script], stdout=full, stderr=subprocess.PIPE, check=False
        )
        assert bare.returncode == 1 and not (tmp_path / "done").exists()
        result = subprocess.run(
            wrapped("full", "--", "sh", "-ec", script),
            stdout=full, stderr=subprocess.PIPE, env=cw_env(home), timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "done").exists()
    [line] = cut_lines(result.stderr)
    assert line.startswith("cronwrap: full: ") and "No space left on device" in line
    run = the_run(home, "full")
    assert (run.status, run.exit_code) == ("success", 0)
    assert "No space left on device" in run.warnings
    assert Path(run.log_path).read_text() == "one\ntwo\n"


def test_a_closed_stderr_keeps_the_job_running(home: Path, tmp_path: Path) -> None:
    """cron started us with stderr closed (2>&-): the bare job's writes to it fail and it goes
    on; the wrapped job goes on too, and the run records why its stderr went nowhere."""
    script = f"echo to stderr >&2; echo out; touch {tmp_path / 'done'}"
    argv = ["sh", "-c", 'exec "$@" 2>&-', "sh", *wrapped("closed", "--", "sh", "-c", script)]
    result = subprocess.run(argv, capture_output=True, env=cw_env(home), timeout=60, check=False)
    assert result.returncode == 0
    assert result.stdout == b"out\n" and result.stderr == b""
    assert (tmp_path / "done").exists()
    run = the_run(home, "closed")
    assert run.exit_code == 0 and "stderr: Bad file descriptor" in run.warnings


def test_quiet_relays_nothing_so_a_gone_reader_changes_nothing(home: Path, tmp_path: Path) -> None:
    """--quiet holds the output until the end: the job runs to its own end and exit code,
    and printing what was held into the broken pipe then is one warning."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the job starts
    script = f"echo a; sleep 0.3; echo b; touch {tmp_path / 'done'}; exit 3"
    try:
        result = subprocess.run(
            wrapped("q", "--quiet", "--", "sh", "-c", script),
            stdout=write_end, stderr=subprocess.PIPE, env=cw_env(home), timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert result.returncode == 3, result.stderr
    assert (tmp_path / "done").exists()
    assert b"Traceback" not in result.stderr
    assert result.stderr.decode().count("cannot print the output held by --quiet") == 1
    run = the_run(home, "q")
    assert (run.status, run.exit_code) == ("failed", 3)
    assert "cannot print the output held by --quiet: stdout: Broken pipe" in run.warnings


@pytest.mark.parametrize("code", [0, 7])
def test_a_job_that_never_writes_after_the_reader_left_keeps_its_code(
    home: Path, code: int
) -> None:
    """Nothing to cut: the job's own exit code stands, whatever happened downstream."""
    got, _, said, stderr = into_head(
        wrapped("late", "--", "sh", "-c", f"echo one; echo two; exit {code}"), home
    )
    assert got == code, stderr
    assert said == b"one\n"


@pytest.mark.parametrize(
    ("blocking", "size"),
    [(False, 3_000_000), (True, 3_000_000), (True, 12_000_000)],
    ids=["non-blocking", "blocking", "blocking-zero-copy"],
)
def test_a_slow_reader_gets_everything(home: Path, blocking: bool, size: int) -> None:
    """A reader slower than the job: the pipe fills, the job waits for the reader (as bare),
    and nothing is lost or cut; also when our stdout's file description is shared and
    non-blocking (O_NONBLOCK set by whoever holds the other end: EAGAIN, not a reader gone),
    and past the heads, where the relay is zero-copy."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, blocking)
    proc = subprocess.Popen(
        wrapped("nb", "--", "head", "-c", str(size), "/dev/zero"),
        stdout=write_end, stderr=subprocess.PIPE, env=cw_env(home),
    )  # fmt: skip
    os.close(write_end)
    got = 0
    with os.fdopen(read_end, "rb", buffering=0) as reader:
        while data := reader.read(65536):
            got += len(data)
            time.sleep(0.001)  # slower than the job: the pipe fills
    assert proc.wait(60) == 0
    assert proc.stderr is not None and CUT not in proc.stderr.read().decode()
    assert got == size


# ---------------------------------------------------------------- the reader stops reading

NUMBERED = (
    "import signal, sys\n"
    "if sys.argv[1] == 'trap': signal.signal(signal.SIGTERM, lambda *a: None)\n"
    "out = sys.stdout.buffer\n"
    "for i in range(int(sys.argv[2])): out.write(b'%09d ' % i + b'x' * 90 + b'\\n')\n"
    "out.write(b'END\\n'); out.flush()\n"
)


def numbered(lines: int) -> bytes:
    """What NUMBERED prints."""
    return b"".join(b"%09d " % i + b"x" * 90 + b"\n" for i in range(lines)) + b"END\n"


NUMBERED_OUTPUT = numbered(30000)


def into_stalled_reader(
    argv: list[str], home: Path, *, both: bool, timeout: float = 60
) -> tuple[int, float, bytes]:
    """Run argv with its stdout (and with `both` its stderr too: cron's one mail pipe) into a
    pipe whose reader never reads; its exit code, how long it took and its stderr."""
    read_end, write_end = os.pipe()
    err_path = home.parent / "stderr.txt"
    try:
        with open(err_path, "wb") as err:
            started = time.monotonic()
            proc = subprocess.Popen(
                argv, stdout=write_end, stderr=write_end if both else err, env=cw_env(home)
            )
            os.close(write_end)
            write_end = -1
            try:
                proc.wait(timeout)
            finally:
                proc.kill()
            took = time.monotonic() - started
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
    return proc.wait(), took, err_path.read_bytes()


@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_a_reader_that_never_reads_does_not_hold_off_the_timeout(
    home: Path, tmp_path: Path, both: bool
) -> None:
    """`cronwrap run --timeout 2s -- yes | sleep 1000`: the job's writes wait for the reader
    as they would bare, but cronwrap's never hold up its own clock: the timeout fires, the
    whole tree is killed, and the run ends with 124 and its history row."""
    pid_file = tmp_path / "bg.pid"
    script = f"sleep 1000 & echo $! > {pid_file}; exec yes"
    args = ("--timeout", "2s", "--kill-after", "30s", "--", "sh", "-c", script)
    code, took, stderr = into_stalled_reader(wrapped("stall", *args), home, both=both)
    assert code == 124, stderr
    assert took < 32, f"took {took:.1f}s"  # 2s, then SIGTERM; before the fix: never
    wait_for(lambda: not alive(int(pid_file.read_text())), timeout=20)
    run = the_run(home, "stall")
    assert (run.status, run.exit_code) == ("timeout", 124)
    assert run.reason == "timed out after 2s"
    name = "stdout and stderr" if both else "stdout"
    [dropped] = [w for w in run.warnings.splitlines() if CUT in w]
    assert f"{name}: its reader took nothing more" in dropped, run.warnings
    if not both:  # cronwrap's own lines go to the stderr that is read
        assert b"cronwrap: stall: timed out, exit 124" in stderr, stderr
    assert Path(run.log_path).read_bytes().startswith(b"y\ny\ny\n")


@pytest.mark.parametrize("log_size", ["8M", "1M"], ids=["copy", "zero-copy"])
def test_output_nobody_reads_after_the_timeout_still_goes_to_the_log_and_tail(
    home: Path, log_size: str
) -> None:
    """The job catches SIGTERM and prints on to its end: from the timeout on cronwrap no
    longer holds it back for a reader that takes nothing, so all of it reaches the log and
    the stored tail, through the copy loop (heads not full) and the zero-copy relay alike.
    The job's SIGTERM handler must be in place by the timeout: 5 s, where 2 s were not
    always enough on a slow machine (the job died of the SIGTERM)."""
    args = ("--timeout", "5s", "--kill-after", "60s", "--max-log-size", log_size)
    argv = wrapped("late", *args, "--", PY, "-c", NUMBERED, "trap", "30000")
    code, took, stderr = into_stalled_reader(argv, home, both=False)
    assert code == 124, stderr
    assert took < 60, f"took {took:.1f}s"
    run = the_run(home, "late")
    assert (run.status, run.exit_code, run.signal) == ("timeout", 124, None)
    log = Path(run.log_path).read_bytes()
    if log_size == "8M":
        assert log == NUMBERED_OUTPUT
    else:  # the head, what was cut, then the newest bytes
        assert log.startswith(NUMBERED_OUTPUT[:500_000]) and log.endswith(b"x\nEND\n")
        assert b"bytes omitted here]" in log
    assert run.output_tail is not None and run.output_tail.endswith("x\nEND\n")
    assert NUMBERED_OUTPUT.decode().endswith(run.output_tail)


def test_a_job_that_ended_waits_for_the_reader_until_its_timeout_only(home: Path) -> None:
    """The job printed more than our stdout's pipe holds, but not more than the pipes between
    hold, and exited 0; nobody reads. cronwrap passes the rest on as the reader takes it,
    but not past the attempt's --timeout: then the rest goes to the log only, and the run is
    the job's own success."""
    argv = wrapped("ended", "--timeout", "3s", "--", PY, "-c", NUMBERED, "plain", "1000")
    code, _, stderr = into_stalled_reader(argv, home, both=False)
    assert code == 0, stderr
    run = the_run(home, "ended")
    assert (run.status, run.exit_code) == ("success", 0)
    assert f"{CUT}: stdout: its reader took nothing more" in run.warnings
    assert Path(run.log_path).read_bytes() == numbered(1000)


def test_quiet_output_for_a_reader_that_takes_nothing_is_dropped_in_time(home: Path) -> None:
    """--quiet prints what it held once the job has failed: a reader that takes none of it
    is waited for a moment (cronwrap's own words share one second), not for ever."""
    argv = wrapped("qs", "--quiet", "--", PY, "-c", NUMBERED + "sys.exit(3)", "plain", "3000")
    code, took, stderr = into_stalled_reader(argv, home, both=False)
    assert code == 3, stderr
    assert took < 60, f"took {took:.1f}s"  # before: never
    run = the_run(home, "qs")
    assert (run.status, run.exit_code) == ("failed", 3)
    assert (
        "cannot print the output held by --quiet: stdout: its reader took no more of it within 1 s"
        in (run.warnings)
    )
    assert Path(run.log_path).read_bytes() == numbered(3000)


def test_a_signal_stops_a_job_whose_reader_takes_nothing(home: Path, tmp_path: Path) -> None:
    """No --timeout, nobody reads: cron (or systemd) stopping cronwrap still stops the job at
    once, and the run is recorded as cancelled."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            wrapped("sig", "--", "yes"), stdout=write_end, stderr=subprocess.DEVNULL,
            env=cw_env(home),
        )  # fmt: skip
        os.close(write_end)
        write_end = -1
        wait_for(
            lambda: (
                (home / "cronwrap.log").exists()
                and b"attempt.start" in (home / "cronwrap.log").read_bytes()
            )
        )
        time.sleep(0.5)  # the pipes fill up: the relay is held back
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
    run = the_run(home, "sig")
    assert (run.status, run.exit_code) == ("cancelled", 143)


@pytest.mark.parametrize("kind", ["pipe", "socket", "terminal", "file"])
def test_writes_to_our_own_descriptors_never_wait(kind: str, tmp_path: Path) -> None:
    """write_nowait: whatever our stdout is, a write takes what fits now and says 0 when
    nothing does (a pipe or socket its reader does not empty, a terminal's buffer); a file
    takes all. The descriptor's own O_NONBLOCK is left as it was."""
    keep: list[int] = []
    if kind == "pipe":
        keep[:] = os.pipe()
        fd = keep[1]
    elif kind == "socket":
        a, b = socket.socketpair()
        keep[:] = [a.detach(), b.detach()]
        fd = keep[0]
    elif kind == "terminal":
        keep[:] = os.openpty()
        fd = keep[1]
    else:
        fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
        keep.append(fd)
    try:
        modes: dict[int, int] = {}
        chunk = memoryview(b"x" * 65536)
        total = 0
        for _ in range(1000):  # far more than any of their buffers holds
            n = write_nowait(fd, chunk, modes)
            if n == 0:
                break
            total += n
        assert os.get_blocking(fd)
        if kind == "file":
            assert total == 1000 * 65536
        else:
            assert 0 < total < 1000 * 65536 and n == 0
    finally:
        for end in keep:
            os.close(end)


def test_a_terminal_nobody_reads_does_not_hold_off_the_timeout(home: Path) -> None:
    """A terminal that takes nothing (its reader stalled, as behind `script … | sleep`) held
    cronwrap in a write: poll says writable with any room at all, and n_tty_write waits for
    the rest, so --timeout 2s ran until the terminal was read."""
    master, slave = os.openpty()  # nobody reads the master: the terminal's buffer fills
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cronwrap", "run", "--name", "tty", "--timeout", "2s",
             "--", "yes"],
            stdout=slave, stderr=subprocess.PIPE, env=cw_env(home),
        )  # fmt: skip
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 124, err
        run = the_run(home, "tty")
        assert (run.status, run.exit_code) == ("timeout", 124)
        assert os.get_blocking(slave)  # the shared description is left as it was
    finally:
        os.close(slave)
        os.close(master)
