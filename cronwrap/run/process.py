"""Spawn one attempt of the command and see it through: output passed through and captured
(bounded), timeout with SIGTERM then SIGKILL to the whole process tree, forwarded signals.
Linux-first: pidfd for exit, a child subreaper so descendants that setsid() stay findable."""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import subprocess
import time

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO


READ_SIZE = 1 << 20
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_F_SETPIPE_SZ = 1031


def _libc_prctl(option: int, arg: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no subreaper, no parent-death signal
        pass


def become_subreaper() -> None:
    """Orphaned descendants are reparented to us, so a timeout can still find and kill them."""
    _libc_prctl(_PR_SET_CHILD_SUBREAPER, 1)


# ------------------------------------------------------------------ output


class OutputSink:
    """Where the child's output goes: passed through to our own stdout/stderr (unless quiet),
    into a size-capped per-run log file (head and tail), and a small in-memory head and tail
    for pings, alerts and the store. Memory stays bounded whatever the child prints."""

    def __init__(
        self,
        *,
        passthrough: bool,
        log_file: BinaryIO | None,
        max_log_size: int,
        keep: int = 64 * 1024,
    ) -> None:
        self.passthrough = passthrough
        self.log_file = log_file
        self.log_head_left = max_log_size // 2
        self.log_tail_max = max_log_size - max_log_size // 2
        self._log_tail: collections.deque[bytes] = collections.deque()
        self._log_tail_size = 0
        self.keep = keep
        self.head = bytearray()
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_size = 0
        self.total = 0
        self.log_omitted = 0
        self.errors: list[str] = []
        self._dead = {1: False, 2: False}

    def write(self, fd: int, data: bytes) -> None:
        self.total += len(data)
        if self.passthrough and not self._dead[fd]:
            self._write_through(fd, data)
        if len(self.head) < self.keep:
            self.head += data[: self.keep - len(self.head)]
        self._tail_size += _push(self._tail, data, self._tail_size, self.keep)
        if self.log_file is not None:
            self._write_log(data)

    def _write_through(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except InterruptedError:
                continue
            except OSError as err:  # our reader went away: keep running the job, stop echoing
                self._dead[fd] = True
                self.errors.append(f"cannot pass output through: {err.strerror}")
                return
            view = view[n:]

    def _write_log(self, data: bytes) -> None:
        assert self.log_file is not None
        if self.log_head_left > 0:
            part = data[: self.log_head_left]
            try:
                self.log_file.write(part)
            except OSError as err:
                self.errors.append(f"cannot write output log: {err.strerror}")
                self.log_file = None
                return
            self.log_head_left -= len(part)
            data = data[len(part) :]
        if data:
            before = self._log_tail_size + len(data)
            self._log_tail_size += _push(
                self._log_tail, data, self._log_tail_size, self.log_tail_max
            )
            self.log_omitted += before - self._log_tail_size

    def mark(self, text: str) -> None:
        """A cronwrap note in the log file only (attempt separators); never passed through."""
        if self.log_file is not None and self.log_head_left > 0:
            self._write_log(text.encode())

    def close_log(self) -> None:
        if self.log_file is None:
            return
        try:
            if self.log_omitted:
                self.log_file.write(
                    f"\n[cronwrap: {self.log_omitted} bytes omitted here]\n".encode()
                )
            for chunk in self._log_tail:
                self.log_file.write(chunk)
            self.log_file.close()
        except OSError as err:
            self.errors.append(f"cannot write output log: {err.strerror}")
        self.log_file = None
        self._log_tail.clear()

    def tail_bytes(self, limit: int | None = None) -> bytes:
        data = b"".join(self._tail)
        return data if limit is None else data[-limit:]

    def head_and_tail(self, limit: int) -> tuple[bytes, bytes, int]:
        """Up to `limit` bytes: the head and the tail of all output, and how much lies between."""
        if self.total <= limit:
            whole = bytes(self.head) if self.total <= self.keep else self.tail_bytes()
            if self.total <= len(self.head):
                return bytes(self.head[: self.total]), b"", 0
            return whole[-self.total :], b"", 0
        half = limit // 2
        head = bytes(self.head[:half])
        tail = self.tail_bytes(limit - half)
        return head, tail, self.total - len(head) - len(tail)


def _push(ring: collections.deque[bytes], data: bytes, size: int, cap: int) -> int:
    """Append to a ring of chunks holding at most `cap` bytes; returns the size change."""
    if len(data) >= cap:
        ring.clear()
        ring.append(data[-cap:])
        return cap - size
    ring.append(data)
    new = size + len(data)
    while new > cap:
        first = ring[0]
        excess = new - cap
        if len(first) <= excess:
            ring.popleft()
            new -= len(first)
        else:
            ring[0] = first[excess:]
            new -= excess
    return new - size


# ------------------------------------------------------------------ process tree


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return kids
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: split after the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def descendants(root: int) -> list[int]:
    kids = _children_map()
    out: list[int] = []
    stack = list(kids.get(root, []))
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(kids.get(pid, []))
    return out


def kill_tree(pgid: int, sig: int) -> None:
    """Signal the job's process group and every descendant of ours (as a subreaper, that
    includes the ones that left the group with setsid and whose parents have exited)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for pid in descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def reap_orphans() -> None:
    """Collect exited descendants that were reparented to us (we are their subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ------------------------------------------------------------------ one attempt


class AttemptResult:
    """How one attempt ended. exit_code is what cronwrap reports: the child's code, 124,
    125-127, or 128+N; signal is the signal that killed the child, if any."""

    __slots__ = ("duration_s", "exit_code", "reason", "signal", "status")

    def __init__(
        self,
        status: str,
        exit_code: int,
        signal: int | None,
        duration_s: float,
        reason: str | None = None,
    ) -> None:
        self.status = status  # success|failed|timeout|cancelled
        self.exit_code = exit_code
        self.signal = signal
        self.duration_s = duration_s
        self.reason = reason


class Canceller:
    """Signals to cronwrap (TERM/INT/HUP) land here: remembered, and a byte on a pipe wakes
    whatever attempt or backoff sleep is waiting."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.child_pgid: int | None = None

    def install(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)

    def cancel(self, signum: int) -> None:
        """Cancel as if cronwrap had received `signum` (e.g. a lost fleet lease)."""
        self._handle(signum, None)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        if self.child_pgid is not None:  # forward at once: the job sees what cron sent us
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child_pgid, signum)
        with contextlib.suppress(OSError):
            os.write(self.write_fd, b"!")

    def sleep(self, seconds: float) -> bool:
        """Sleep, waking early on a signal; True if it slept the whole time."""
        if self.signum is not None:
            return False
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                self.drain()
                if self.signum is not None:
                    return False
        return True

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.read_fd, 512):
                pass


def _preexec(parent: int) -> None:
    os.setpgid(0, 0)
    # if cronwrap is SIGKILLed, its direct child dies with it; the rest of the job keeps the
    # inherited lock descriptor, so no new run starts while any of it lives
    _libc_prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # we lost the race with our parent's death
        os._exit(1)
    for sig in Canceller.SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def run_attempt(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str | None,
    timeout_s: float | None,
    kill_after_s: float,
    sink: OutputSink,
    canceller: Canceller,
    pass_fds: tuple[int, ...] = (),
    watch: tuple[float, Callable[[], object]] | None = None,
) -> AttemptResult:
    """Run the command once; never raises for the command's own failures. `watch` is a
    (monotonic time, callback) called once if the attempt is still running then."""
    started = time.monotonic()
    parent = os.getpid()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            pass_fds=pass_fds,
            preexec_fn=lambda: _preexec(parent),  # noqa: PLW1509
            bufsize=0,
        )
    except FileNotFoundError as err:
        missing = err.filename if err.filename is not None else argv[0]
        if cwd is not None and str(missing) == cwd:
            return AttemptResult(
                "failed",
                125,
                None,
                time.monotonic() - started,
                f"cannot enter directory {cwd}: no such directory",
            )
        return AttemptResult(
            "failed",
            127,
            None,
            time.monotonic() - started,
            f"command not found: {argv[0]} (PATH={env.get('PATH', '')})",
        )
    except PermissionError as err:
        return AttemptResult(
            "failed",
            126,
            None,
            time.monotonic() - started,
            f"cannot execute {argv[0]}: {err.strerror}",
        )
    except OSError as err:
        return AttemptResult(
            "failed",
            126,
            None,
            time.monotonic() - started,
            f"cannot execute {argv[0]}: {err.strerror}",
        )
    canceller.child_pgid = proc.pid
    if canceller.signum is not None:  # a signal arrived while we were spawning
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, canceller.signum)
    try:
        return _supervise(proc, started, timeout_s, kill_after_s, sink, canceller, watch)
    finally:
        canceller.child_pgid = None


def _supervise(
    proc: subprocess.Popen[bytes],
    started: float,
    timeout_s: float | None,
    kill_after_s: float,
    sink: OutputSink,
    canceller: Canceller,
    watch: tuple[float, Callable[[], object]] | None = None,
) -> AttemptResult:
    assert proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): 1, proc.stderr.fileno(): 2}
    for fd in streams:
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.fcntl(fd, _F_SETPIPE_SZ, READ_SIZE)
    poller = select.poll()
    for fd in streams:
        poller.register(fd, select.POLLIN)
    poller.register(canceller.read_fd, select.POLLIN)
    pidfd: int | None = None
    try:
        pidfd = os.pidfd_open(proc.pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):  # not Linux >= 5.3: poll the child instead
        pidfd = None

    deadline = started + timeout_s if timeout_s is not None else None
    kill_at: float | None = None
    timed_out = False
    cancel_seen = False
    exited = False
    open_fds = set(streams)

    while True:
        now = time.monotonic()
        watch_at = watch[0] if watch is not None else None
        waits = [
            t - now
            for t in (deadline if not timed_out else None, kill_at, watch_at)
            if t is not None
        ]
        if pidfd is None and not exited:
            waits.append(0.1)
        wait_ms = None if not waits else max(0, int(min(waits) * 1000) + 1)
        for fd, _ev in poller.poll(wait_ms):
            if fd in streams:
                data = _read(fd)
                if data:
                    sink.write(streams[fd], data)
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
            elif fd == pidfd:
                exited = True
                poller.unregister(pidfd)
            elif fd == canceller.read_fd:
                canceller.drain()
        if pidfd is None and not exited and proc.poll() is not None:
            exited = True
        now = time.monotonic()
        if canceller.signum is not None and not cancel_seen:
            cancel_seen = True  # the handler forwarded the signal already
            kill_at = now + kill_after_s
        if deadline is not None and not timed_out and now >= deadline and not exited:
            timed_out = True
            kill_tree(proc.pid, signal.SIGTERM)
            kill_at = now + kill_after_s
        if watch is not None and now >= watch[0] and not exited:
            watch[1]()
            watch = None
        if kill_at is not None and now >= kill_at and not exited:
            kill_tree(proc.pid, signal.SIGKILL)
            kill_at = None
        if exited:
            for fd in list(open_fds):  # what is already in the pipes, without waiting on
                _drain(fd, streams[fd], sink)  # descendants that keep them open
            break

    returncode = proc.wait()
    if timed_out or cancel_seen:
        kill_tree(proc.pid, signal.SIGKILL)  # leave nothing of a killed job behind
    for stream in (proc.stdout, proc.stderr):
        stream.close()
    if pidfd is not None:
        os.close(pidfd)
    reap_orphans()
    duration = time.monotonic() - started
    sig = -returncode if returncode < 0 else None
    code = 128 + sig if sig is not None else returncode
    if timed_out:
        return AttemptResult("timeout", 124, sig, duration, f"timed out after {timeout_s:g}s")
    if cancel_seen:
        assert canceller.signum is not None
        name = signal.Signals(canceller.signum).name
        return AttemptResult(
            "cancelled", 128 + canceller.signum, sig, duration, f"cancelled by {name}"
        )
    if code == 0:
        return AttemptResult("success", 0, None, duration)
    reason = f"killed by {signal.Signals(sig).name}" if sig else f"exit code {code}"
    return AttemptResult("failed", code, sig, duration, reason)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, READ_SIZE)  # poll said readable: this does not block
    except OSError:
        return b""


def _drain(fd: int, stream: int, sink: OutputSink) -> None:
    os.set_blocking(fd, False)
    for _ in range(4096):  # bounded: a descendant could write forever
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        sink.write(stream, data)
