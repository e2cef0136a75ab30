"""A job's state directory: kept across runs (0700, the job user's own) for checkpoints, and
the small atomic key/values of `cronwrap state` stored in it as one file per key.
Standard library only; errors are StateError."""

from __future__ import annotations

import contextlib
import os

from cronwrap.errors import StateError, StateKeyError

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from cronwrap.paths import PathT, StrPath

STATE_DIR_MODE = 0o700
MAX_KEY_LEN = 100
MAX_VALUE_SIZE = 1024 * 1024  # "small": a cursor, an offset, a token, a little JSON
# checked by hand, not by a regex (start-up time); no leading dot: temporary files start with one
_KEY_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_KEY_CHARS = _KEY_FIRST | frozenset("._-")


def job_state_path(state_path: str, job: str) -> str:
    """Where the job `job` keeps its state, under cronwrap's state directory."""
    return os.path.join(state_path, "jobs", job)


def ensure_state_dir(path: PathT) -> PathT:
    """Create the job's state dir (0700) or tighten an existing one; refuse one that is not
    ours, a symlink or not a directory."""
    try:
        os.makedirs(os.path.dirname(os.fspath(path)) or ".", mode=0o750, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, mode=STATE_DIR_MODE)
        st = os.lstat(path)
    except OSError as err:
        raise StateError(f"cannot create job state dir {path}: {err.strerror}") from err
    if not os.path.isdir(path) or os.path.islink(path):
        raise StateError(f"job state dir {path} is not a directory (a symlink or file is there)")
    if st.st_uid != os.geteuid():
        raise StateError(f"job state dir {path} belongs to uid {st.st_uid}, not to you")
    if st.st_mode & 0o777 != STATE_DIR_MODE:
        try:
            os.chmod(path, STATE_DIR_MODE)
        except OSError as err:
            raise StateError(f"cannot chmod 700 job state dir {path}: {err.strerror}") from err
    return path


def check_key(key: str) -> str:
    if (
        not key
        or len(key) > MAX_KEY_LEN
        or key[0] not in _KEY_FIRST
        or not _KEY_CHARS.issuperset(key)
    ):
        raise StateKeyError(
            f"bad state key {key!r}: use 1-{MAX_KEY_LEN} letters, digits and . _ -,"
            " starting with a letter or digit"
        )
    return key


def get(directory: StrPath, key: str) -> bytes | None:
    """The value stored under `key`, or None when there is none."""
    path = os.path.join(directory, check_key(key))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StateError(f"cannot read state key {key!r} in {directory}: {err.strerror}") from err
    with os.fdopen(fd, "rb") as f:
        value = f.read(MAX_VALUE_SIZE + 1)
    if len(value) > MAX_VALUE_SIZE:
        raise StateError(f"state key {key!r} in {directory} is over {MAX_VALUE_SIZE} bytes")
    return value


def put(directory: StrPath, key: str, value: bytes) -> None:
    """Store `value` under `key` so that a crash at any moment leaves the old value or the
    new one, never a mix: write a temporary file, fsync it, rename it over, fsync the dir."""
    check_key(key)
    if len(value) > MAX_VALUE_SIZE:
        raise StateError(
            f"value for state key {key!r} is {len(value)} bytes; the limit is {MAX_VALUE_SIZE}"
            " (keep big data in a file in $CRONWRAP_STATE_DIR)"
        )
    tmp = os.path.join(directory, f".{key}.{os.getpid()}.tmp")
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            view = memoryview(value)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(directory, key))
        _fsync_dir(directory)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StateError(f"cannot write state key {key!r} in {directory}: {err.strerror}") from err


def delete(directory: StrPath, key: str) -> bool:
    """Remove `key`; False if it was not there."""
    try:
        os.unlink(os.path.join(directory, check_key(key)))
    except FileNotFoundError:
        return False
    except OSError as err:
        raise StateError(f"cannot delete state key {key!r} in {directory}: {err.strerror}") from err
    _fsync_dir(directory)
    return True


def keys(directory: StrPath) -> list[str]:
    """The keys stored in `directory` (files with valid key names), sorted."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as err:
        raise StateError(f"cannot list {directory}: {err.strerror}") from err
    out = []
    for name in names:
        with contextlib.suppress(StateKeyError):
            if os.path.isfile(os.path.join(directory, check_key(name))):
                out.append(name)
    return sorted(out)


def _fsync_dir(directory: StrPath) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
