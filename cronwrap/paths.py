"""Where config, state and locks live (CRONWRAP_HOME, root's system paths, XDG) and the
checks a directory must pass before cronwrap writes in it. As strings: the run path does not
import pathlib, which costs ~3 ms of start-up with what it imports (urllib.parse, ipaddress)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping

from cronwrap.errors import ConfigError

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from pathlib import Path
    from typing import TypeVar

    StrPath = str | os.PathLike[str]
    PathT = TypeVar("PathT", str, Path)  # a path given as a str or a Path, returned the same

DIR_MODE = 0o750


class Paths:  # noqa: PLW1641 - compared in tests, never hashed
    """Where config, state and locks live. Plain classes here and below: the run path must
    not import dataclasses (~14 ms of start-up through inspect and ast). Held as strings, as
    the run path uses them (`*_path`): pathlib costs ~3 ms of start-up with what it imports
    (urllib.parse, ipaddress); `*_file`/`*_dir` give the same as Path objects."""

    __slots__ = ("config_path", "lock_path", "origin", "state_path")

    def __init__(
        self, config_file: StrPath, state_dir: StrPath, lock_dir: StrPath, origin: str
    ) -> None:
        self.config_path = os.fspath(config_file)
        self.state_path = os.fspath(state_dir)
        self.lock_path = os.fspath(lock_dir)
        self.origin = origin  # "CRONWRAP_HOME", "root" or "user": how they were chosen

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and all(
            getattr(self, a) == getattr(other, a) for a in self.__slots__
        )

    def __repr__(self) -> str:
        return f"Paths({self.config_path}, {self.state_path}, {self.lock_path}, {self.origin})"

    @property
    def db_path(self) -> str:
        return os.path.join(self.state_path, "runs.db")

    @property
    def output_path(self) -> str:
        return os.path.join(self.state_path, "output")

    @property
    def event_log_path(self) -> str:
        return os.path.join(self.state_path, "cronwrap.log")

    @property
    def config_file(self) -> Path:
        return _pathlib_path(self.config_path)

    @property
    def state_dir(self) -> Path:
        return _pathlib_path(self.state_path)

    @property
    def lock_dir(self) -> Path:
        return _pathlib_path(self.lock_path)

    @property
    def db_file(self) -> Path:
        return _pathlib_path(self.db_path)

    @property
    def output_dir(self) -> Path:
        return _pathlib_path(self.output_path)

    @property
    def event_log(self) -> Path:
        return _pathlib_path(self.event_log_path)


def _pathlib_path(path: str) -> Path:
    from pathlib import Path

    return Path(path)


def clean_path(path: str) -> str:
    """`path` as pathlib spells it: no empty or "." parts, no trailing slash; ".." is kept
    (it may go through a symlink). Without pathlib, which the run path does not import."""
    lead = (
        "//"
        if path.startswith("//") and not path.startswith("///")
        else path[:1] * (path[:1] == "/")
    )
    return lead + "/".join(p for p in path.split("/") if p not in ("", ".")) or "."


def absolute_path(path: str) -> str:
    """Path(path).expanduser().absolute() as a string."""
    path = os.path.expanduser(path)
    return clean_path(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))


def resolve_paths(
    env: Mapping[str, str], *, uid: int | None = None, config_file: str | None = None
) -> Paths:
    """Where config, state and locks live: CRONWRAP_HOME, else system paths for root, else XDG.
    `config_file` (--config) or CRONWRAP_CONFIG names another config file."""
    join = os.path.join
    uid = os.geteuid() if uid is None else uid
    home = env.get("CRONWRAP_HOME")
    if home:
        base = absolute_path(home)
        paths = Paths(join(base, "config.yaml"), base, join(base, "locks"), "CRONWRAP_HOME")
    elif uid == 0:
        state = "/var/lib/cronwrap"
        locks = "/run/lock/cronwrap" if os.path.isdir("/run/lock") else join(state, "locks")
        paths = Paths("/etc/cronwrap/config.yaml", state, locks, "root")
    else:
        user_home = clean_path(env.get("HOME") or os.path.expanduser("~"))
        config_home = clean_path(env.get("XDG_CONFIG_HOME") or join(user_home, ".config"))
        state_home = clean_path(env.get("XDG_STATE_HOME") or join(user_home, ".local", "state"))
        state = join(state_home, "cronwrap")
        paths = Paths(
            join(config_home, "cronwrap", "config.yaml"), state, join(state, "locks"), "user"
        )
    override = config_file or env.get("CRONWRAP_CONFIG")
    if override:
        paths = Paths(absolute_path(override), paths.state_path, paths.lock_path, paths.origin)
    return paths


def ensure_dir(path: PathT, *, private: bool = False) -> PathT:
    """Create `path` (and parents) without world-write; refuse one that others could swap.

    private (state and lock dirs): it must also be owned by the user running cronwrap and
    writable by nobody else, sticky bit or not: another user who can write the lock dir
    can plant or hold our lock files. mkdir first, then lstat: nothing is followed."""
    try:
        missing = []
        probe = clean_path(os.fspath(path))
        while not os.path.lexists(probe) and probe != os.path.dirname(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(missing):  # parents too get DIR_MODE, not the umask default
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, mode=DIR_MODE)
    except OSError as err:
        raise ConfigError(f"cannot create directory {path}: {err.strerror}") from err
    refusal = dir_refusal(path, private=private)
    if refusal:
        raise ConfigError(refusal)
    return path


def is_absent(path: str) -> bool:
    """Nothing is at `path` (no state dir, no store: no run recorded yet). What lstat cannot
    look at (a parent this user cannot search, a name too long) is not absent: it is for the
    caller to open or refuse, and say why."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        pass
    return False


def dir_refusal(path: StrPath, *, private: bool = False, owner: bool = False) -> str | None:
    """Why cronwrap refuses an existing directory (status uses it to say why no runs were
    recorded), or None when it is fine. private: see ensure_dir; owner: judge a private
    directory as its owner's cronwrap run would (status may be run by another user)."""
    try:
        st = os.lstat(path)
    except OSError as err:
        return f"cannot use directory {path}: {err.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory (a symlink or file is in the way)"
    me = st.st_uid if owner else os.geteuid()
    if private or owner:
        if st.st_uid != me:
            return f"{path} belongs to uid {st.st_uid}, not to uid {me}; refusing it"
        if st.st_mode & 0o002:
            return f"{path} is world-writable: run chmod go-w {path}"
        if st.st_mode & 0o020:
            return f"{path} is group-writable: run chmod g-w {path}"
        return None
    if st.st_mode & 0o002 and not st.st_mode & 0o1000:
        return f"{path} is world-writable: run chmod o-w {path}"
    if st.st_uid not in (me, 0):
        return f"{path} belongs to uid {st.st_uid}, not to you; refusing to use it"
    return None
