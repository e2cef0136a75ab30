"""Starting the command: looked up as the shell does (so 126/127 say why), posix_spawn in its
own process group with the signals a job expects at their defaults (no Python code between
fork and exec, so it is safe while threads run), and the watchdog that takes the job's
process group along if cronwrap itself is SIGKILLed."""

from __future__ import annotations

import contextlib
import errno
import os
import signal

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Mapping

SH = "/bin/sh"


class Watchdog:
    """Kills the job's direct child if cronwrap dies without saying goodbye (SIGKILL, OOM).

    A parent-death signal would need code between fork and exec (preexec_fn), which is unsafe
    while threads run and costs a slow fork. Instead a tiny /bin/sh in its own session reads
    the pid of each attempt's child from a pipe that only cronwrap holds, and "ok" once that
    child has exited; at end of file (cronwrap gone) it SIGKILLs the pid still armed. The rest
    of the job keeps the inherited lock descriptor, so no new run starts while any of it lives.
    The pid is disarmed before cronwrap reaps the child, so it cannot have been reused then."""

    SCRIPT = (
        'p=; while read -r l; do case "$l" in ok) p= ;; *) p=$l ;; esac; done; '
        '[ -z "$p" ] || kill -s KILL "$p" 2>/dev/null'
    )

    failure: str | None = None  # why the last start failed

    def __init__(self, pid: int, write_fd: int) -> None:
        self.pid = pid
        self.write_fd = write_fd

    @classmethod
    def start(cls) -> Watchdog | None:
        """None where it cannot start (no descriptors left under a low `ulimit -n`): the job
        runs all the same, as it would bare, without this guard."""
        try:
            read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        except OSError as err:
            cls.failure = err.strerror
            return None
        try:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        except OSError as err:
            cls.failure = err.strerror
            os.close(read_fd)
            os.close(write_fd)
            return None
        actions = [
            (os.POSIX_SPAWN_DUP2, read_fd, 0),
            (os.POSIX_SPAWN_DUP2, null, 1),
            (os.POSIX_SPAWN_DUP2, null, 2),
        ]
        try:
            try:  # its own session: a kill of cronwrap's process group does not take it along
                pid = os.posix_spawn(
                    SH,
                    ["sh", "-c", cls.SCRIPT],
                    {"PATH": "/usr/bin:/bin"},
                    file_actions=actions,
                    setsid=True,
                    setsigdef=DEFAULT_SIGNALS,
                )
            except NotImplementedError:  # libc without POSIX_SPAWN_SETSID
                pid = os.posix_spawn(
                    SH,
                    ["sh", "-c", cls.SCRIPT],
                    {"PATH": "/usr/bin:/bin"},
                    file_actions=actions,
                    setpgroup=0,
                    setsigdef=DEFAULT_SIGNALS,
                )
        except OSError as err:
            cls.failure = err.strerror
            os.close(write_fd)
            return None
        finally:
            os.close(read_fd)
            os.close(null)
        return cls(pid, write_fd)

    def say(self, line: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self.write_fd, line.encode() + b"\n")


_WATCHDOG: list[Watchdog | None] = []  # started once per cronwrap process


def watchdog() -> Watchdog | None:
    if not _WATCHDOG:
        _WATCHDOG.append(Watchdog.start())
    return _WATCHDOG[0]


def watchdog_pid() -> int | None:
    dog = _WATCHDOG[0] if _WATCHDOG else None
    return dog.pid if dog is not None else None


# signals the child gets back at their defaults: Python ignores SIGPIPE and SIGXFSZ, and our
# handlers for TERM/INT/HUP must not become an inherited SIG_IGN
DEFAULT_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGPIPE", "SIGXFSZ", "SIGTERM", "SIGINT", "SIGHUP")
    if hasattr(signal, name)
)


class SpawnError(Exception):
    """The command could not be started: exit code (125-127) and why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _resolve(name: str, path: str, cwd: str | None) -> str:
    """The file execvp would run, found as the shell finds it (so errors can say why)."""
    if "/" in name:
        full = name if os.path.isabs(name) or cwd is None else os.path.join(cwd, name)
        if not os.path.exists(full):
            raise SpawnError(127, f"command not found: {name}")
        if os.path.isdir(full) or not os.access(full, os.X_OK):
            raise SpawnError(126, f"cannot execute {name}: Permission denied")
        return name
    denied = None
    for entry in path.split(":"):
        full = os.path.join(entry or ".", name)
        if cwd is not None and not os.path.isabs(full):
            full = os.path.join(cwd, full)
        if os.path.isfile(full):
            if os.access(full, os.X_OK):
                return full
            denied = denied or full
    if denied is not None:
        raise SpawnError(126, f"cannot execute {name}: Permission denied")
    raise SpawnError(127, f"command not found: {name} (PATH={path})")


def spawn_command(
    argv: list[str],
    env: Mapping[str, str],
    cwd: str | None,
    out_fd: int,
    err_fd: int,
    pass_fds: tuple[int, ...],
) -> int:
    """Start the command in a new process group; its pid. Raises SpawnError."""
    if cwd is not None and not os.path.isdir(cwd):
        raise SpawnError(125, f"cannot enter directory {cwd}: no such directory")
    program = _resolve(argv[0], env.get("PATH", os.defpath), cwd)
    if cwd is not None:
        # posix_spawn has no chdir: a shell enters the directory and execs the command
        argv = [SH, "-c", 'cd -- "$0" && exec "$@"', cwd, *argv]
        program = SH
    for fd in pass_fds:
        os.set_inheritable(fd, True)

    def spawn(program: str, argv: list[str]) -> int:
        return os.posix_spawn(
            program,
            argv,
            dict(env),
            file_actions=[(os.POSIX_SPAWN_DUP2, out_fd, 1), (os.POSIX_SPAWN_DUP2, err_fd, 2)],
            setpgroup=0,
            setsigdef=DEFAULT_SIGNALS,
        )

    try:
        try:
            return spawn(program, argv)
        except OSError as err:
            if err.errno != errno.ENOEXEC or _is_binary(program):
                raise
            # a script without a #! line: the shell runs it with /bin/sh, and so does
            # cron's bare line (`sh -c CMD`)
            return spawn(SH, [SH, program, *argv[1:]])
    except OSError as err:
        code = 127 if isinstance(err, FileNotFoundError) else 126
        raise SpawnError(code, f"cannot execute {argv[0]}: {err.strerror}") from None
    finally:
        for fd in pass_fds:  # only the job holds the lock, not helpers spawned later
            os.set_inheritable(fd, False)


def _is_binary(path: str) -> bool:
    """What the shell calls a binary file it will not run as a script: a NUL byte in its
    first line (bash's check_binary_file; dash says "Exec format error" too)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return True
    return b"\0" in head.split(b"\n", 1)[0]
