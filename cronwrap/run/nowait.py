"""Writing to cronwrap's own stdout and stderr without waiting for their reader: a reader
that is behind (a full pipe, a stalled mail pipe, a stopped terminal) holds the job back as
it would bare, never cronwrap's clock (--timeout, signals). Standard library only."""

from __future__ import annotations

import errno
import os
import stat
import time

# how a write to one of our descriptors is kept from waiting: a plain write (a file), a write
# with RWF_NOWAIT, or a poll for room and then a write of at most so many bytes: PIPE_BUF
# into a pipe or socket; into a terminal 128, which its output processing (ONLCR) may double
# to 256, the least room a terminal that polls writable has (its buffer grows by 256)
_PLAIN, _NOWAIT, _POLLED_PIPE, _POLLED_TTY = 0, -1, 4096, 128
# a terminal is written through a description of our own, opened anew with O_NONBLOCK for
# each write: the shared one stays as it was, and a terminal with room for less than the
# write, or stopped (Ctrl-S), takes what it can at once instead of holding the write
_OWN_TTY = -2
_TTY_FLAGS = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
# how long, in all, cronwrap's own words (its lines, --quiet's held output) may wait for a
# reader of our stdout/stderr that takes nothing; then what does not fit at once is dropped
OWN_WAIT_S = 1.0
_own_wait_left = [OWN_WAIT_S]


def write_nowait(fd: int, data: memoryview, modes: dict[int, int]) -> int:
    """Write what our `fd` takes now, without waiting for its reader: the bytes written, 0
    when it would have to wait. Other errors (EPIPE, ENOSPC) raise OSError. The file
    description is shared (with cron, a shell, a terminal), so its O_NONBLOCK is never set:
    a pipe or socket gets RWF_NOWAIT per write (recent Linux), else a poll for room and
    one write small enough to fit (see _POLLED_PIPE); a terminal a non-blocking description
    of its own (_OWN_TTY); a regular file never waits for a reader. `modes` caches the way
    per descriptor."""
    mode = modes.get(fd)
    if mode is None:
        mode = modes[fd] = _write_mode(fd)
    while True:
        try:
            if mode == _NOWAIT:
                return os.pwritev(fd, [data], -1, _RWF_NOWAIT)
            if mode == _OWN_TTY:
                return _write_own_tty(fd, data, modes)
            if mode > 0:
                if not _poll_out(fd, 0):
                    return 0
                return os.write(fd, data[:mode])
            return os.write(fd, data)
        except InterruptedError:
            continue
        except BlockingIOError:  # full, or a description someone else made non-blocking
            return 0
        except OSError as err:
            if mode == _NOWAIT and err.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                mode = modes[fd] = _polled(fd)  # an older kernel, a terminal
                continue
            raise


def _write_own_tty(fd: int, data: memoryview, modes: dict[int, int]) -> int:
    try:
        own = os.open(f"/proc/self/fd/{fd}", _TTY_FLAGS)
    except OSError:  # no longer opens: a poll and a short write from now on
        modes[fd] = _POLLED_TTY
        return 0
    try:
        return os.write(own, data)
    finally:
        os.close(own)


def _write_mode(fd: int) -> int:
    kind = st_mode(fd)  # 0 for a closed fd: the write says what is wrong (EBADF)
    if not kind or stat.S_ISREG(kind) or stat.S_ISBLK(kind):
        return _PLAIN
    if stat.S_ISCHR(kind) and os.isatty(fd):
        return _polled(fd)
    return _NOWAIT if _RWF_NOWAIT else _polled(fd)


def _polled(fd: int) -> int:
    """A terminal's own description if it opens (not where it belongs to another user), else
    a poll and a short write."""
    if not os.isatty(fd):
        return _POLLED_PIPE
    try:
        os.close(os.open(f"/proc/self/fd/{fd}", _TTY_FLAGS))
    except OSError:
        return _POLLED_TTY
    return _OWN_TTY


def st_mode(fd: int) -> int:
    try:
        return os.fstat(fd).st_mode
    except OSError:
        return 0


def _poll_out(fd: int, timeout_s: float) -> bool:
    """True when `fd` has room (or an error to report) within `timeout_s`."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(max(0, int(timeout_s * 1000))))


def write_own(fd: int, data: bytes) -> None:
    """cronwrap's own words to our stdout/stderr (a `cronwrap: <job>: …` line, --quiet's held
    output). A reader that is behind is waited for, one that takes nothing is not: all such
    waits of this process share OWN_WAIT_S, and once that is spent what does not fit at once
    is dropped (OSError EAGAIN: the run's record and event log still have it)."""
    view = memoryview(data)
    modes: dict[int, int] = {}
    while view:
        n = write_nowait(fd, view, modes)
        if n:
            view = view[n:]
            continue
        left = _own_wait_left[0]
        if left <= 0:
            raise OSError(errno.EAGAIN, f"its reader took no more of it within {OWN_WAIT_S:g} s")
        started = time.monotonic()
        _poll_out(fd, left)
        _own_wait_left[0] = left - max(time.monotonic() - started, 0.001)
