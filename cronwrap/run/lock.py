"""The per-job overlap lock: an flock(2) on a file in the lock dir, which the kernel releases
when its last holder dies, so it can never go stale; and the small Lock interface that the
fleet leases (run/lease.py) share with it. Standard library only."""

from __future__ import annotations

import errno
import fcntl
import os
import time

from cronwrap.errors import CronwrapError

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    from cronwrap.paths import StrPath

    class Lock(Protocol):
        """What the supervisor needs of a lock it holds: a descriptor the job inherits
        (None for a lease), a reason once it was lost, renewal, and release."""

        fd: int | None
        lost: str | None

        def keep_alive(self, on_lost: Callable[[str], None]) -> None: ...

        def release(self) -> None: ...


def keep_trying(
    try_once: Callable[[], bool], wait_s: float, sleep: Callable[[float], bool] | None = None
) -> bool:
    """try_once() until it is True or `wait_s` is over, pausing 50 ms growing to 1 s between
    tries; `sleep(seconds)` waits and returns False to stop waiting (a signal arrived:
    --on-overlap wait must not outlast a SIGTERM). The flock and both fleet leases wait so."""
    deadline = time.monotonic() + wait_s
    pause = 0.05
    while not try_once():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if sleep is None:
            time.sleep(min(pause, left))
        elif not sleep(min(pause, left)):
            return False
        pause = min(pause * 1.5, 1.0)
    return True


class LockError(CronwrapError):
    """The lock file could not be opened (not: the lock is held)."""


def safe_lock_dir(preferred: str, fallback: str) -> tuple[str | None, str | None]:
    """The lock dir to use and a warning when it is not `preferred`.

    /run/lock is emptied at boot and world-writable: another user can create
    /run/lock/cronwrap before root's first job, or hold our lock files in a shared dir. A
    dir that is not ours alone is not used; the private `fallback` (under the state dir)
    is. (None, warning): no safe dir at all, the run goes unlocked."""
    from cronwrap.errors import ConfigError
    from cronwrap.paths import ensure_dir

    try:
        return ensure_dir(preferred, private=True), None
    except ConfigError as err:
        problem = str(err)
    if fallback == preferred:
        return None, f"running without overlap lock: {problem}"
    try:
        ensure_dir(fallback, private=True)
    except ConfigError as err:
        return None, f"running without overlap lock: {problem}; and {err}"
    return fallback, f"lock dir not safe, using {fallback} instead: {problem}"


class JobLock:
    """An exclusive flock on `<lock_dir>/<job>.lock`.

    The file is opened with O_NOFOLLOW, so a symlink planted in the lock dir is refused.
    `fd` can be passed to the child (pass_fds): then the job's processes hold the lock too,
    as with flock(1), and it stays held while any of them live even if cronwrap is killed."""

    def __init__(self, path: StrPath) -> None:
        self.path = path
        self.fd: int | None = None
        self.lost: str | None = None  # an flock is never lost while a holder lives

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(self.path, flags, 0o640)
        except OSError as err:
            if err.errno == errno.ELOOP:
                msg = f"lock file {self.path} is a symlink; refusing to follow it"
                raise LockError(msg) from err
            raise LockError(f"cannot open lock file {self.path}: {err.strerror}") from err

    def acquire(self, *, wait_s: float = 0.0, sleep: Callable[[float], bool] | None = None) -> bool:
        """Take the lock, waiting up to `wait_s` (see keep_trying); False if another process
        still holds it."""
        fd = self._open()

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not keep_trying(try_once, wait_s, sleep):
            os.close(fd)
            return False
        self.fd = fd
        try:  # who holds it, for humans looking at the file
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        return True

    def keep_alive(self, on_lost: Callable[[str], None]) -> None:
        """Nothing to renew: the kernel holds an flock until its last holder is gone."""

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing our descriptor; the lock goes when no holder is left
            self.fd = None


def is_locked(path: StrPath) -> bool:
    """True while some process holds the job's lock (used by status)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
