"""One attempt of the command, seen through: started by run/spawn.py, output passed through
and captured (bounded, see output.py), timeout with SIGTERM then SIGKILL to the whole process
tree, forwarded signals. Linux-first: pidfd for exit, and a child subreaper so descendants
that setsid() stay findable."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time

from cronwrap.run.output import OutputSink
from cronwrap.run.spawn import (
    DEFAULT_SIGNALS,
    SpawnError,
    Watchdog,
    spawn_command,
    watchdog,
    watchdog_pid,
)

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["AttemptResult", "Canceller", "OutputSink", "run_attempt", "signal_name"]

_PR_SET_CHILD_SUBREAPER = 36
_CAT = "/bin/cat"
DRAIN_BYTES = 64 << 20  # most relayed after the exit before a descendant still writing gets a cat


def _libc_prctl(option: int, arg: int) -> None:
    """prctl(2) through _ctypes alone: the ctypes package costs ~3 ms of start-up on every
    run for this one call, and these few lines are all of it that the call needs."""
    try:
        import _ctypes
    except ImportError:  # a Python built without ctypes: no subreaper
        return
    ct: Any = _ctypes  # its stubs describe ctypes' public use, not this one

    c_int = type("c_int", (ct._SimpleCData,), {"_type_": "i"})
    # what ctypes.CDLL makes for each C function it is asked for
    function = type("function", (ct.CFuncPtr,), {"_flags_": ct.FUNCFLAG_CDECL, "_restype_": c_int})

    class _Libc:  # ctypes.CDLL(None): the symbols already loaded into this process
        _handle = ct.dlopen(None)

    with contextlib.suppress(AttributeError):  # not Linux: no prctl, no subreaper
        function(("prctl", _Libc()))(option, arg, 0, 0, 0)


def become_subreaper() -> None:
    """Orphaned descendants are reparented to us, so a timeout can still find and kill them."""
    _libc_prctl(_PR_SET_CHILD_SUBREAPER, 1)


def signal_name(number: int) -> str:
    """SIGTERM, SIGRTMIN+1, or "signal 70" for a number Python has no name for: the one
    way cronwrap names a signal (stderr, status, history, failed)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        rtmin, rtmax = getattr(signal, "SIGRTMIN", 0), getattr(signal, "SIGRTMAX", -1)
        if rtmin <= number <= rtmax:
            return f"SIGRTMIN+{number - rtmin}"
        return f"signal {number}"


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
    includes the ones that left the group with setsid and whose parents have exited), but
    not our watchdog."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for pid in descendants(os.getpid()):
        if pid == watchdog_pid():
            continue
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

    __slots__ = ("duration_s", "exit_code", "reason", "signal", "started", "status")

    def __init__(
        self,
        status: str,
        exit_code: int,
        signal: int | None,
        duration_s: float,
        reason: str | None = None,
        *,
        started: bool = True,
    ) -> None:
        self.status = status  # success|failed|timeout|cancelled
        self.exit_code = exit_code
        self.signal = signal
        self.duration_s = duration_s
        self.reason = reason
        self.started = started  # False: the command could not be started at all


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


def _same_file(a: int, b: int) -> bool:
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _job_pipe() -> tuple[int, int]:
    """A pipe whose ends are not 0-2 (if cron closed one of ours, a dup2 onto itself would
    leave it close-on-exec)."""
    import fcntl

    r, w = os.pipe2(os.O_CLOEXEC)
    ends = []
    for fd in (r, w):
        if fd <= 2:
            new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(fd)
            fd = new
        ends.append(fd)
    return ends[0], ends[1]


# ------------------------------------------------------------------ one attempt


def _job_pipes(count: int, sink: OutputSink) -> list[tuple[int, int]]:
    """The job's output pipes; none where they cannot be made (no descriptors left under a
    low `ulimit -n`): the job then writes to our stdout and stderr itself, as bare."""
    pipes: list[tuple[int, int]] = []
    try:
        for _ in range(count):
            pipes.append(_job_pipe())
    except OSError as err:
        for r, w in pipes:
            os.close(r)
            os.close(w)
        message = (
            f"cannot capture the job's output ({err.strerror}): it goes straight to cron, "
            "not to the log or pings"
        )
        if message not in sink.errors:
            sink.errors.append(message)
        return []
    return pipes


def run_attempt(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    timeout_s: float | None,
    kill_after_s: float,
    sink: OutputSink,
    canceller: Canceller,
    pass_fds: tuple[int, ...] = (),
    watch: tuple[float, Callable[[], object]] | None = None,
) -> AttemptResult:
    """Run the command once; never raises for the command's own failures. `watch` is a
    (monotonic time, callback) called once if the attempt is still running then.

    When cronwrap's stdout and stderr are one file (as under cron, `>log 2>&1`), the job gets
    one pipe for both, so the order of its stdout and stderr lines is kept."""
    started = time.monotonic()
    dog = watchdog()
    if dog is None and Watchdog.failure:
        message = (
            f"no watchdog for the job ({Watchdog.failure}): if cronwrap is killed with "
            "SIGKILL, the job goes on unsupervised"
        )
        if message not in sink.errors:
            sink.errors.append(message)
    merged = sink.one_pipe = _same_file(1, 2)
    pipes = _job_pipes(1 if merged else 2, sink)
    out_w, err_w = (pipes[0][1], pipes[-1][1]) if pipes else (1, 2)
    try:
        pid = spawn_command(argv, env, cwd, out_w, err_w, pass_fds)
    except SpawnError as err:
        for r, w in pipes:
            os.close(r)
            os.close(w)
        elapsed = time.monotonic() - started
        return AttemptResult("failed", err.code, None, elapsed, err.reason, started=False)
    for _, w in pipes:
        os.close(w)
    if dog is not None:
        dog.say(str(pid))
    canceller.child_pgid = pid
    if canceller.signum is not None:  # a signal arrived while we were spawning
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, canceller.signum)
    streams = {r: n for n, (r, _) in enumerate(pipes, 1)}
    try:
        return _supervise(pid, streams, started, timeout_s, kill_after_s, sink, canceller, watch)
    finally:
        canceller.child_pgid = None


def _supervise(
    pid: int,
    streams: dict[int, int],
    started: float,
    timeout_s: float | None,
    kill_after_s: float,
    sink: OutputSink,
    canceller: Canceller,
    watch: tuple[float, Callable[[], object]] | None = None,
) -> AttemptResult:
    poller, pidfd = _poller(pid, streams, canceller)
    deadline = started + timeout_s if timeout_s is not None else None
    kill_at: float | None = None
    timed_out = False
    cancel_seen = False
    status: int | None = None  # the wait status, once the child has exited
    exited = False
    relay = _OutputPoll(poller, streams, sink)

    while True:
        now = time.monotonic()
        watch_at = watch[0] if watch is not None else None
        moments = (deadline if not timed_out else None, kill_at, watch_at)
        waits = [t - now for t in moments[: 1 if exited else 3] if t is not None]
        if pidfd is None and not exited:
            waits.append(0.1)
        wait_ms = None if not waits else max(0, int(min(waits) * 1000) + 1)
        relay.hold_back()
        for fd, _ev in poller.poll(wait_ms):
            if fd in relay.reading:
                relay.pump(fd)
            elif fd in relay.writing:
                relay.flush(fd)
            elif fd == pidfd:
                exited = True
                poller.unregister(pidfd)
            elif fd == canceller.read_fd:
                canceller.drain()
        if pidfd is None and not exited:
            done, status = os.waitpid(pid, os.WNOHANG)
            exited = done != 0
        now = time.monotonic()
        if canceller.signum is not None and not cancel_seen:
            cancel_seen = True  # the handler forwarded the signal already
            kill_at = now + kill_after_s
            sink.stop_waiting()  # a job being stopped is not held back for its readers
        if deadline is not None and not timed_out and now >= deadline and not exited:
            timed_out = True
            kill_tree(pid, signal.SIGTERM)
            kill_at = now + kill_after_s
            sink.stop_waiting()
        if watch is not None and now >= watch[0] and not exited:
            watch[1]()
            watch = None
        if kill_at is not None and now >= kill_at and not exited:
            kill_tree(pid, signal.SIGKILL)
            kill_at = None
        if exited:
            # what the job left in cronwrap's hands is passed on as its reader takes it, up
            # to the attempt's deadline or a signal (a killed job's stopped waiting already)
            if deadline is not None and now >= deadline:
                sink.stop_waiting()
            if relay.drain():  # what is already in the pipes, without waiting on
                break  # descendants that keep them open

    killed = timed_out or cancel_seen
    status = _reap(pid, pidfd, status, killed=killed)
    for fd, stream in streams.items():
        if not killed:
            _hand_off(fd, stream, sink)
        os.close(fd)
    sink.end_attempt()
    sink.finish_attempt()
    reap_orphans()
    duration = time.monotonic() - started
    cancelled_by = canceller.signum if cancel_seen else None
    return _result(status, duration, timeout_s if timed_out else None, cancelled_by)


def _reap(pid: int, pidfd: int | None, status: int | None, *, killed: bool) -> int:
    """The child's wait status, once the watchdog no longer guards its pid; a killed job's
    descendants get a SIGKILL too."""
    dog = watchdog()
    if dog is not None:
        dog.say("ok")  # before the reap: until then the pid cannot be reused
    if status is None:
        _, status = os.waitpid(pid, 0)
    if pidfd is not None:
        os.close(pidfd)
    if killed:
        kill_tree(pid, signal.SIGKILL)  # leave nothing of a killed job behind
    return status


def _poller(
    pid: int, streams: dict[int, int], canceller: Canceller
) -> tuple[select.poll, int | None]:
    """A poll set for the output pipes, the cancel pipe and, on Linux >= 5.3, the child's
    pidfd (returned too; None where the child must be polled with waitpid instead)."""
    poller = select.poll()
    for fd in streams:
        poller.register(fd, select.POLLIN)
    poller.register(canceller.read_fd, select.POLLIN)
    pidfd: int | None = None
    try:
        pidfd = os.pidfd_open(pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):  # not Linux >= 5.3: poll the child instead
        pidfd = None
    return poller, pidfd


def _result(
    status: int, duration: float, timed_out_after: float | None, cancelled_by: int | None
) -> AttemptResult:
    """What the attempt's wait status means: timeout and cancel first, then the exit."""
    returncode = os.waitstatus_to_exitcode(status)
    sig = -returncode if returncode < 0 else None
    code = 128 + sig if sig is not None else returncode
    if timed_out_after is not None:
        return AttemptResult("timeout", 124, sig, duration, f"timed out after {timed_out_after:g}s")
    if cancelled_by is not None:
        name = signal_name(cancelled_by)
        return AttemptResult("cancelled", 128 + cancelled_by, sig, duration, f"cancelled by {name}")
    if code == 0:
        return AttemptResult("success", 0, None, duration)
    reason = f"killed by {signal_name(sig)}" if sig else f"exit code {code}"
    return AttemptResult("failed", code, sig, duration, reason)


class _OutputPoll:
    """The job's output pipes in the poll set: each is read while our own fd for its stream
    takes what the job prints, and left unread while that fd has a backlog (the job then
    waits for our reader as it would bare); our fd is polled for room meanwhile."""

    def __init__(self, poller: select.poll, streams: dict[int, int], sink: OutputSink) -> None:
        self.poller = poller
        self.streams = streams  # the job's pipe -> our stream (1 or 2)
        self.sink = sink
        self.reading = set(streams)  # registered for POLLIN
        self.held: set[int] = set()  # open, not read while their stream has a backlog
        self.writing: set[int] = set()  # our streams registered for POLLOUT
        self.drained = 0  # pumps after the exit: bounded, a descendant could write forever
        self.drain_from: int | None = None  # sink.total at the exit: bytes are bounded too

    def hold_back(self) -> None:
        """Poll each job pipe, or its stream's fd for room, as the backlog says."""
        if not self.held and not self.writing and not self.sink.any_backlog():
            return  # the common case, once a chunk: every pipe is read, nothing waits
        for fd in [*self.reading, *self.held]:
            stream = self.streams[fd]
            backed = self.sink.backlog(stream)
            if backed and fd in self.reading:
                self.poller.unregister(fd)
                self.reading.discard(fd)
                self.held.add(fd)
            elif not backed and fd in self.held:
                self.poller.register(fd, select.POLLIN)
                self.held.discard(fd)
                self.reading.add(fd)
            if backed and stream not in self.writing:
                self.poller.register(stream, select.POLLOUT)
                self.writing.add(stream)
        for stream in list(self.writing):
            if not self.sink.backlog(stream):
                self.poller.unregister(stream)
                self.writing.discard(stream)

    def pump(self, fd: int) -> bool:
        """sink.pump; False once `fd` is at its end (or would block), or its stream is dead
        or backed up. Once the reader of our stdout/stderr has gone away, our end of the
        job's pipe for that stream is closed at once (and forgotten), so the job's next write
        to it gets SIGPIPE (or EPIPE) as it would have bare, and so does anything of the
        job's in the background that still holds it."""
        stream = self.streams[fd]
        if self.sink.pump(fd, stream):
            return not self.sink.backlog(stream)
        if self.sink.backlog(stream):
            return False
        self._forget(fd)
        if self.sink.is_dead(stream):
            os.close(fd)
            del self.streams[fd]
        return False

    def flush(self, stream: int) -> None:
        self.sink.flush(stream)
        if self.sink.is_dead(stream):
            for fd in [fd for fd, s in self.streams.items() if s == stream]:
                self._forget(fd)
                os.close(fd)
                del self.streams[fd]

    def _drain_left(self) -> bool:
        """Pumps and bytes after the exit are bounded (a pump may move several chunks)."""
        if self.drain_from is None:
            self.drain_from = self.sink.total
        return self.drained < 4096 and self.sink.total - self.drain_from < DRAIN_BYTES

    def _forget(self, fd: int) -> None:
        if fd in self.reading:
            self.poller.unregister(fd)
        self.reading.discard(fd)
        self.held.discard(fd)

    def drain(self) -> bool:
        """After the exit: pump what is in the job's pipes without waiting for more; True
        when done, False while a backlog waits for our reader (poll on, then call again)."""
        for fd in [*self.reading, *self.held]:
            os.set_blocking(fd, False)
            while self._drain_left() and not self.sink.backlog(self.streams[fd]):
                self.drained += 1
                if not self.pump(fd):
                    break
            else:
                if not self._drain_left():
                    self._forget(fd)
        self.hold_back()
        return not self.writing


def _hand_off(fd: int, stream: int, sink: OutputSink) -> None:
    """The command exited but something it started in the background still holds its output
    pipe: closing our end would kill that process with SIGPIPE at its next write, which the
    bare crontab line would not. A `cat` takes the pipe over and copies the rest to where our
    output goes (not to the log or pings); cronwrap does not wait for it."""
    try:
        (_, events), *_ = _poll_hup(fd)
    except ValueError:
        return
    if events & select.POLLHUP:  # no writer is left: nothing to keep alive
        return
    # where our own output fails (a full disk), cat would stop at its first write error and
    # that process would then die of SIGPIPE: it gets /dev/null, as under --quiet
    target = stream if sink.is_relayed(stream) else None
    null = None
    if target is None:
        null = target = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    os.set_blocking(fd, True)
    try:
        os.posix_spawn(
            _CAT,
            ["cat"],
            {"PATH": "/usr/bin:/bin"},
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, target, 1)],
            setpgroup=0,
            setsigdef=DEFAULT_SIGNALS,
        )
    except OSError as err:
        sink.errors.append(f"cannot keep background output flowing: {err.strerror}")
    finally:
        if null is not None:
            os.close(null)


def _poll_hup(fd: int) -> list[tuple[int, int]]:
    poller = select.poll()
    poller.register(fd, 0)  # POLLHUP is always reported
    got = poller.poll(0)
    return got if got else [(fd, 0)]
