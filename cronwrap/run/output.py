"""Where a job's output goes: passed through to cronwrap's own stdout/stderr, into the per-run
log (head and tail, written as it comes), and a small in-memory head and tail for pings, alerts
and the store; in --quiet mode held per stream until the end. Big output is relayed without
copying it through Python (tee(2) + splice(2)); memory stays bounded whatever the job prints.
Writes to our own stdout/stderr never wait: a reader that is behind holds the job back (as
bare), never cronwrap's clock. Standard library only."""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import stat
import sys

from cronwrap.run.nowait import st_mode, write_nowait

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

READ_SIZE = 1 << 20
KEEP = 64 * 1024  # in-memory head and tail, for pings, alerts and the store
HOLD = 256 * 1024  # --quiet: the first and the last HOLD bytes of each stream are held
_F_SETPIPE_SZ = 1031
_F_GETPIPE_SZ = 1032
_SPLICE_F_NONBLOCK = 2
_ZERO_COPY_PIPE = 1 << 20
# a write error that means the reader of our stdout/stderr is gone (a socket's peer resets)
_READER_GONE = (errno.EPIPE, errno.ECONNRESET)


class _Ring:
    """The last `cap` bytes written to it, in chunks (no copy of what is appended whole)."""

    __slots__ = ("cap", "chunks", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0

    def push(self, data: bytes) -> None:
        cap = self.cap
        if len(data) >= cap:
            self.chunks.clear()
            self.chunks.append(data[len(data) - cap :])
            self.size = cap
            return
        self.chunks.append(data)
        self.size += len(data)
        while self.size > cap:
            first = self.chunks[0]
            excess = self.size - cap
            if len(first) <= excess:
                self.chunks.popleft()
                self.size -= len(first)
            else:
                self.chunks[0] = first[excess:]
                self.size -= excess

    def clear(self) -> None:
        self.chunks.clear()
        self.size = 0

    def value(self) -> bytes:
        return b"".join(self.chunks)


class _Held:
    """--quiet: one stream's first and last HOLD bytes, and how many lay between."""

    __slots__ = ("head", "tail", "total")

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = _Ring(HOLD)
        self.total = 0

    def push(self, data: bytes) -> None:
        self.total += len(data)
        room = HOLD - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail.push(data)

    def value(self) -> bytes:
        omitted = self.total - len(self.head) - self.tail.size
        gap = f"\n[cronwrap: {omitted} bytes omitted here]\n".encode() if omitted else b""
        return bytes(self.head) + gap + self.tail.value()


class OutputSink:
    """One run's output, across its attempts. `write` takes what the pump read; `pump` lets
    the sink read (and, for big output, splice) from a child's pipe itself."""

    def __init__(
        self,
        *,
        passthrough: bool,
        log_file: BinaryIO | None,
        max_log_size: int,
        keep: int = KEEP,
    ) -> None:
        self.passthrough = passthrough
        self.log_file = log_file
        self.log_head_left = max_log_size // 2
        self._log_tail = _Ring(max(max_log_size - max_log_size // 2, 1))
        self._logged = 0  # bytes meant for the log (output and marks)
        self._log_head_size = 0
        self.keep = keep
        self.head = bytearray()
        self._tail = _Ring(keep)
        self.total = 0
        self.errors: list[str] = []
        self._dead = {1: False, 2: False}  # the reader of our stdout/stderr went away
        self._failing: set[int] = set()  # writes to our stdout/stderr failed otherwise
        self.one_pipe = False  # the job's stdout and stderr share one pipe (see process.py)
        self._held: dict[int, _Held] = {}
        self._relay: _Relay | None = None
        self._no_splice: set[int] = set()  # our output fds that splice(2) cannot write to
        self._splice_to: dict[int, bool] = {}  # our fd is a pipe or a file: splice never waits
        self._modes: dict[int, int] = {}  # how each of our fds is written without waiting
        # output read from the job that our fd has not taken yet (the job's pipe is not read
        # meanwhile), and bytes tee'd but not yet spliced on: (the job's pipe, how many)
        self._waiting: dict[int, memoryview] = {}
        self._unspliced: dict[int, tuple[int, int]] = {}
        self._patient = True  # False once the attempt is being killed or is over
        self._dropped: dict[int, int] = {}  # this attempt: bytes nobody read, passed no more

    # ---------------------------------------------------------- the copy path

    def write(self, fd: int, data: bytes) -> None:
        """What stream `fd` (1 or 2) of the job printed."""
        self.total += len(data)
        if not self.passthrough:
            self._held.setdefault(fd, _Held()).push(data)
        elif fd in self._dropped:
            self._dropped[fd] += len(data)
        elif not self._dead[fd]:
            self._write_through(fd, memoryview(data))
        if len(self.head) < self.keep:
            self.head += data[: self.keep - len(self.head)]
        self._tail.push(data)
        self._write_log(data)

    def _write_through(self, fd: int, view: memoryview) -> None:
        """Pass on what our `fd` takes now; the rest waits (backlog) or is dropped."""
        while view:
            try:
                n = write_nowait(fd, view, self._modes)
            except OSError as err:
                self._failed(fd, err)
                return
            if n == 0:
                if self._patient:
                    self._waiting[fd] = view
                else:
                    self._dropped[fd] = self._dropped.get(fd, 0) + len(view)
                return
            view = view[n:]

    # ---------------------------------------------------------- a reader that is behind

    def backlog(self, fd: int) -> bool:
        """True while output waits for our `fd` (1 or 2): the job's pipe for it is not read
        meanwhile (the job waits for our reader, as bare); the supervisor polls and flushes."""
        return fd in self._waiting or fd in self._unspliced

    def any_backlog(self) -> bool:
        """True while output waits for either of our fds."""
        return bool(self._waiting or self._unspliced)

    def flush(self, fd: int) -> None:
        """Pass on what waits for our `fd`, as far as it takes it now."""
        if fd in self._unspliced:
            job_fd, count = self._unspliced.pop(fd)
            self._splice_on(job_fd, fd, count)
        elif fd in self._waiting:
            self._write_through(fd, self._waiting.pop(fd))

    def stop_waiting(self) -> None:
        """The attempt is being killed or is over: output passes only as far as our readers
        take it at once; what waits, and all after it on its stream, goes to the log only."""
        self._patient = False
        for fd, view in self._waiting.items():
            self._dropped[fd] = self._dropped.get(fd, 0) + len(view)
        for fd, (job_fd, count) in self._unspliced.items():
            _read_exactly(job_fd, count)  # already in the scratch pipe: the tails have it
            self._dropped[fd] = self._dropped.get(fd, 0) + count
        self._waiting.clear()
        self._unspliced.clear()

    def finish_attempt(self) -> None:
        """Say what of this attempt's output our readers never took; the next one waits."""
        for fd, count in sorted(self._dropped.items()):
            name = "stdout and stderr" if self.one_pipe else ("stdout", "stderr")[fd - 1]
            message = (
                f"cannot pass output through: {name}: its reader took nothing more before the "
                f"attempt ended; its last {count} bytes were not passed on (the run's log keeps"
                " its head and tail)"
            )
            if message not in self.errors:
                self.errors.append(message)
        self._dropped.clear()
        self._patient = True

    def is_dead(self, fd: int) -> bool:
        """True once the reader of our `fd` (1 or 2) has gone away: nothing more is passed
        through to it, and the job's pipe for it is to be closed (see process.py)."""
        return self._dead[fd]

    def is_relayed(self, fd: int) -> bool:
        """True while what the job prints on `fd` reaches our own `fd` without a failure."""
        return (
            self.passthrough
            and not self._dead[fd]
            and fd not in self._failing
            and fd not in self._dropped
        )

    def _failed(self, fd: int, err: OSError) -> None:
        """A write to our own stdout/stderr failed. A reader that went away (EPIPE) is what
        the job would have seen bare, at its next write: stop passing this stream through,
        and the supervisor closes the job's pipe for it, so the job gets its SIGPIPE. Any
        other error (a full disk, EIO) the bare job would have got on its own write and could
        have ignored; a SIGPIPE would kill it, so the job keeps running, its output goes on
        into the log, and later output is still tried (a disk may get space back)."""
        name = "stdout and stderr" if self.one_pipe else ("stdout", "stderr")[fd - 1]
        if err.errno in _READER_GONE:
            self._dead[fd] = True
            message = (
                f"cannot pass output through: {name}: {err.strerror}; closed the job's "
                f"{name} pipe too, so it sees the broken pipe as it would without cronwrap"
            )
        else:
            self._failing.add(fd)
            kept = "; it still goes to the run's log" if self.log_file is not None else ""
            message = (
                f"cannot pass output through: {name}: {err.strerror}; the job keeps "
                f"running and is not told{kept}"
            )
        if message not in self.errors:
            self.errors.append(message)

    def _write_log(self, data: bytes) -> None:
        self._logged += len(data)
        if self.log_file is None:
            return
        if self.log_head_left > 0:
            part = data[: self.log_head_left]
            try:  # unbuffered: `logs --follow` sees it now, a killed run leaves it behind
                self.log_file.write(part)
            except OSError as err:
                self._log_failed(err)
                return
            self.log_head_left -= len(part)
            self._log_head_size += len(part)
            data = data[len(part) :]
        if data:
            self._log_tail.push(data)

    def _log_failed(self, err: OSError) -> None:
        self.errors.append(f"cannot write output log: {err.strerror}")
        self.log_file = None

    def mark(self, text: str) -> None:
        """A cronwrap note in the log file only (attempt separators); never passed through."""
        self.end_attempt()
        if self.log_file is not None and self.log_head_left > 0:
            self._write_log(text.encode())

    # ---------------------------------------------------------- reading from the job

    def pump(self, fd: int, stream: int) -> bool:
        """Move what is in the job's pipe `fd` along; False once it is at its end (or would
        block, for a non-blocking `fd`), or once `stream` is dead (`is_dead`)."""
        if self._can_splice(stream):
            moved = self._splice(fd, stream)
            if moved is not None:
                return moved > 0 and not self._dead[stream]
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            return False
        if not data:
            return False
        if self._relay is not None:  # leaving the zero-copy path: what it holds comes first
            self.end_attempt()
        self.write(stream, data)
        return not self._dead[stream]

    def _can_splice(self, stream: int) -> bool:
        """Zero copy only for big output: once the heads are full nothing but the tails
        needs the bytes, and those a scratch pipe can keep (see _Relay). Only into a pipe
        (SPLICE_F_NONBLOCK keeps both ends from waiting) or a file, and only while the
        attempt waits for its readers."""
        return (
            self.passthrough
            and self._patient
            and not self._dead[stream]
            and stream not in self._no_splice
            and stream not in self._dropped
            and len(self.head) >= self.keep
            and (self.log_file is None or self.log_head_left <= 0)
            and self._splices_without_waiting(stream)
        )

    def _splices_without_waiting(self, stream: int) -> bool:
        known = self._splice_to.get(stream)
        if known is None:
            kind = st_mode(stream)
            known = self._splice_to[stream] = stat.S_ISFIFO(kind) or stat.S_ISREG(kind)
        return known

    def _splice(self, fd: int, stream: int) -> int | None:
        """Bytes moved (0 at the end), or None: use the copy path instead. A chunk near the
        most one tee takes says the job wrote on while we moved it: the next is taken at
        once, without a poll and a turn of the supervisor's loop (which cost more than the
        splices); at most 2 pipes' worth, so the loop still sees its clock and signals."""
        relay = self._relay
        if relay is None:
            relay = self._relay = _Relay.create(fd)
            if relay is None:
                self._no_splice.update((1, 2))
                return None
            relay.tail = max(self.keep, self._log_tail.cap)
        moved = 0
        while True:
            try:
                n = relay.tee(fd)
            except OSError as err:
                if err.errno == errno.EAGAIN:
                    return moved
                self._no_splice.update((1, 2))
                return moved or None
            if n == 0:
                return moved
            self._splice_on(fd, stream, n)
            self.total += n
            self._logged += n
            if relay.held > relay.tail:
                relay.keep_at_most(relay.tail)
            moved += n
            if n < relay.cap // 3 or moved >= 2 * relay.cap:
                return moved
            if self.backlog(stream) or self._dead[stream]:
                return moved

    def _splice_on(self, fd: int, stream: int, n: int) -> None:
        """Move the `n` bytes at the head of the job's pipe `fd` (the scratch pipe has seen
        them) on to our `stream`; what it does not take now waits there (backlog)."""
        sent = 0
        while sent < n:
            try:
                sent += os.splice(fd, stream, n - sent, flags=_SPLICE_F_NONBLOCK)
            except InterruptedError:
                continue
            except BlockingIOError:  # our reader is behind: the rest stays in the job's pipe
                self._unspliced[stream] = (fd, n - sent)
                return
            except OSError as err:
                if sent == 0 and err.errno == errno.EINVAL:  # an O_APPEND file...
                    self._no_splice.add(stream)
                    self._write_through(stream, memoryview(_read_exactly(fd, n)))
                else:
                    self._failed(stream, err)
                    _read_exactly(fd, n - sent)  # consume what the scratch pipe has seen
                return

    def end_attempt(self) -> None:
        """Take what the zero-copy relay kept into the tails (it is the newest output)."""
        relay = self._relay
        if relay is None:
            return
        data, skipped = relay.take()
        if skipped:  # bytes between the tails and this were never seen: start them afresh
            self._tail.clear()
            self._log_tail.clear()
        self._tail.push(data)
        if self.log_file is not None:
            self._log_tail.push(data)

    # ---------------------------------------------------------- after the run

    def close_log(self) -> None:
        self.end_attempt()
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        if self.log_file is None:
            return
        try:
            omitted = self._logged - self._log_head_size - self._log_tail.size
            if omitted > 0:
                self.log_file.write(f"\n[cronwrap: {omitted} bytes omitted here]\n".encode())
            for chunk in self._log_tail.chunks:
                self.log_file.write(chunk)
            self.log_file.close()
        except OSError as err:
            self.errors.append(f"cannot write output log: {err.strerror}")
        self.log_file = None
        self._log_tail.clear()

    def held(self, stream: int) -> bytes:
        """--quiet: what the job printed on `stream`, bounded (head, a marker, tail)."""
        got = self._held.get(stream)
        return got.value() if got is not None else b""

    def tail_bytes(self, limit: int | None = None, *, whole_line: bool = False) -> bytes:
        """The last `limit` bytes kept; with `whole_line`, from the start of the line they
        begin in (as far as it is kept): a cut inside a traced command would leave a password
        without the program name before it that tells the redactor what `-u` means."""
        self.end_attempt()
        data = self._tail.value()
        if limit is None or len(data) <= limit:
            return data
        start = len(data) - limit
        return data[data.rfind(b"\n", 0, start) + 1 if whole_line else start :]

    def head_and_tail(self, limit: int) -> tuple[bytes, bytes, int]:
        """Up to `limit` bytes: the head and the tail of all output, and how much lies between."""
        self.end_attempt()
        if self.total <= limit and self.total <= self.keep:
            return bytes(self.head[: self.total]), b"", 0
        if self.total <= limit and self.total <= self._tail.size:
            return self._tail.value()[-self.total :], b"", 0
        half = limit // 2
        head = bytes(self.head[:half])
        tail = self.tail_bytes(limit - half, whole_line=True)
        if len(head) + len(tail) >= self.total:  # its first line began in the head: one piece
            return head[: self.total - len(tail)] + tail, b"", 0
        return head, tail, self.total - len(head) - len(tail)


def _queued(fd: int) -> int:
    """Bytes in pipe `fd` (FIONREAD); 0 where it cannot be told."""
    import fcntl
    import termios

    got = bytearray(4)
    try:
        fcntl.ioctl(fd, termios.FIONREAD, got)
    except OSError:
        return 0
    return int.from_bytes(got, sys.byteorder)


def _read_exactly(fd: int, n: int) -> bytes:
    parts = []
    while n > 0:
        try:
            data = os.read(fd, n)
        except InterruptedError:
            continue
        except OSError:
            break
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


class _Relay:
    """Zero-copy relay for big output: tee(2) duplicates the job's pipe into a scratch pipe,
    splice(2) moves the original to our stdout/stderr, and the scratch pipe keeps only the
    newest bytes (the rest is spliced to /dev/null). Its content becomes the tails at the end
    of an attempt. Python has os.splice (3.10+) but no os.tee: tee comes from libc."""

    def __init__(
        self,
        tee: Callable[[int, int, int, int], int],
        get_errno: Callable[[], int],
        read_fd: int,
        write_fd: int,
        null_fd: int,
        cap: int,
    ) -> None:
        self._tee = tee
        self._errno = get_errno
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.null_fd = null_fd
        self.cap = cap
        self.held = 0
        self.tail = cap  # the newest bytes kept between chunks (the sink sets it)
        self.skipped = False

    @classmethod
    def create(cls, job_fd: int) -> _Relay | None:
        if not hasattr(os, "splice"):
            return None
        try:
            import ctypes
            import fcntl

            libc = ctypes.CDLL(None, use_errno=True)
            tee = libc.tee
            tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
            tee.restype = ctypes.c_ssize_t
        except (ImportError, OSError, AttributeError):
            return None
        r, w = os.pipe2(os.O_CLOEXEC)
        # fewer, bigger moves (also into our own stdout/stderr when they are pipes); the
        # kernel refuses past the user's pipe quota, and then the pipes stay as they are
        for fd in (job_fd, r, 1, 2):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, _ZERO_COPY_PIPE)
        cap = fcntl.fcntl(r, _F_GETPIPE_SZ)
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        return cls(tee, ctypes.get_errno, r, w, null, cap)

    def tee(self, job_fd: int) -> int:
        """Duplicate what the job's pipe holds (up to half our pipe) into the scratch pipe.
        EAGAIN is an empty job's pipe (raised, with what we hold kept: after the exit, or in
        a burst, the pipe is read without a poll) or a scratch pipe full in pages (room is
        made and the tee tried again)."""
        half = self.cap // 2
        if self.held > half:  # room for what comes: drop the oldest bytes we hold
            self.keep_at_most(half)
        while True:
            n = self._tee(job_fd, self.write_fd, half, _SPLICE_F_NONBLOCK)
            if n >= 0:
                self.held += n
                return n
            err = self._errno()
            if err == errno.EINTR:
                continue
            if err == errno.EAGAIN and self.held > 0 and _queued(job_fd):
                self.keep_at_most(self.held // 2)
                continue
            raise OSError(err, os.strerror(err))

    def keep_at_most(self, limit: int) -> None:
        while self.held > limit:
            try:
                self.held -= os.splice(self.read_fd, self.null_fd, self.held - limit)
            except InterruptedError:
                continue
            self.skipped = True

    def take(self) -> tuple[bytes, bool]:
        data = _read_exactly(self.read_fd, self.held)
        self.held = 0
        skipped, self.skipped = self.skipped, False
        return data, skipped

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd, self.null_fd):
            os.close(fd)
