"""Paths, durations and the config file: flags, CRONWRAP_* variables, the job section,
defaults and built-ins resolved once into frozen values. yaml is imported only when a
config file exists; nothing here reads os.environ at import time."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from cronwrap.errors import ConfigError, UsageError
from cronwrap.options import MAX_DURATION, OPTIONS_BY_NAME, RUN_OPTIONS, Job, Option

TYPE_CHECKING = False  # typing costs ~3 ms of start-up; the names are for the type checker
if TYPE_CHECKING:
    from typing import Any

DIR_MODE = 0o750
MAX_NAME_LEN = 100
# names checked by hand, not by a regex: compiling regexes costs start-up time on every run
_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _NAME_FIRST | frozenset("._@+-")


# ---------------------------------------------------------------- paths


class Paths:  # noqa: PLW1641 - compared in tests, never hashed
    """Where config, state and locks live. Plain classes here and below: the run path must
    not import dataclasses (~14 ms of start-up through inspect and ast)."""

    __slots__ = ("config_file", "lock_dir", "origin", "state_dir")

    def __init__(self, config_file: Path, state_dir: Path, lock_dir: Path, origin: str) -> None:
        self.config_file = config_file
        self.state_dir = state_dir
        self.lock_dir = lock_dir
        self.origin = origin  # "CRONWRAP_HOME", "root" or "user": how they were chosen

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and all(
            getattr(self, a) == getattr(other, a) for a in self.__slots__
        )

    def __repr__(self) -> str:
        return f"Paths({self.config_file}, {self.state_dir}, {self.lock_dir}, {self.origin})"

    @property
    def db_file(self) -> Path:
        return self.state_dir / "runs.db"

    @property
    def output_dir(self) -> Path:
        return self.state_dir / "output"

    @property
    def event_log(self) -> Path:
        return self.state_dir / "cronwrap.log"


def resolve_paths(
    env: Mapping[str, str], *, uid: int | None = None, config_file: str | None = None
) -> Paths:
    """Where config, state and locks live: CRONWRAP_HOME, else system paths for root, else XDG.
    `config_file` (--config) or CRONWRAP_CONFIG names another config file."""
    uid = os.geteuid() if uid is None else uid
    home = env.get("CRONWRAP_HOME")
    if home:
        base = Path(home).expanduser().absolute()
        paths = Paths(base / "config.yaml", base, base / "locks", "CRONWRAP_HOME")
    elif uid == 0:
        run_lock = Path("/run/lock")
        state = Path("/var/lib/cronwrap")
        locks = run_lock / "cronwrap" if run_lock.is_dir() else state / "locks"
        paths = Paths(Path("/etc/cronwrap/config.yaml"), state, locks, "root")
    else:
        user_home = Path(env.get("HOME") or Path.home())
        config_home = Path(env.get("XDG_CONFIG_HOME") or user_home / ".config")
        state_home = Path(env.get("XDG_STATE_HOME") or user_home / ".local" / "state")
        state = state_home / "cronwrap"
        paths = Paths(config_home / "cronwrap" / "config.yaml", state, state / "locks", "user")
    override = config_file or env.get("CRONWRAP_CONFIG")
    if override:
        paths = Paths(
            Path(override).expanduser().absolute(), paths.state_dir, paths.lock_dir, paths.origin
        )
    return paths


def ensure_dir(path: Path) -> Path:
    """Create `path` (and parents) without world-write; refuse one that others could swap."""
    try:
        missing = []
        probe = path
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        for directory in reversed(missing):  # parents too get DIR_MODE, not the umask default
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=DIR_MODE)
    except OSError as err:
        raise ConfigError(f"cannot create directory {path}: {err.strerror}") from err
    refusal = dir_refusal(path)
    if refusal:
        raise ConfigError(refusal)
    return path


def dir_refusal(path: Path) -> str | None:
    """Why cronwrap refuses an existing directory (status uses it to say why no runs were
    recorded), or None when it is fine."""
    try:
        st = os.lstat(path)
    except OSError as err:
        return f"cannot use directory {path}: {err.strerror}"
    if not os.path.isdir(path) or os.path.islink(path):
        return f"{path} is not a directory (a symlink or file is in the way)"
    if st.st_mode & 0o002 and not st.st_mode & 0o1000:
        return f"{path} is world-writable: run chmod o-w {path}"
    if st.st_uid not in (os.geteuid(), 0):
        return f"{path} belongs to uid {st.st_uid}, not to you; refusing to use it"
    return None


# ---------------------------------------------------------------- values

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | float) -> float:
    """`90`, `30s`, `5m`, `1h30m`, `2d`, `500ms` -> seconds."""
    if isinstance(text, bool):
        raise ValueError("expected a duration like 30s, 5m or 1h30m")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    s = str(text).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    pos, total = 0, 0.0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"{text!r} is not a duration (write e.g. 90, 30s, 5m, 1h30m, 2d)")
    return total


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(text: str | int) -> int:
    """`10M`, `512k`, `1GiB`, `1000` -> bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size (write e.g. 10M, 512k, 1GiB)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_codes(text: str | int | Sequence[int]) -> frozenset[int]:
    """`75,100-110` -> the set of exit codes."""
    if isinstance(text, int) and not isinstance(text, bool):
        items: list[str] = [str(text)]
    elif isinstance(text, list | tuple):
        items = [str(x) for x in text]
    else:
        items = str(text).split(",")
    codes: set[int] = set()
    for item in (i.strip() for i in items):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m:
            raise ValueError(f"{item!r} is not an exit code or range (write e.g. 75,100-110)")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo or hi > 255:
            raise ValueError(f"{item!r}: exit codes are 0-255, low-high")
        codes.update(range(lo, hi + 1))
    return frozenset(codes)


def read_secret(value: str) -> str:
    """A secret given as `file:PATH` is read from that file (first line, stripped)."""
    if not value.startswith("file:"):
        return value
    path = Path(value[5:]).expanduser()
    try:
        return path.read_text().strip()
    except OSError as err:
        raise ConfigError(f"cannot read secret file {path}: {err.strerror}") from err


def convert(opt: Option, value: Any) -> Any:
    """Turn a raw flag/env/YAML value into the option's type, within the option's range;
    ValueError says what is wrong."""
    if value is None:
        return None
    converted = _convert_kind(opt, value)
    if isinstance(converted, int | float) and not isinstance(converted, bool):
        _check_range(opt, converted)
    elif opt.check and isinstance(converted, str):
        _check_text(opt.check, converted)
    return converted


def _check_range(opt: Option, number: float) -> None:
    import math

    from cronwrap.views.humanize import duration as format_duration  # stdlib only, no cycle

    low = opt.low if opt.low is not None else (0.0 if opt.kind in ("duration", "size") else None)
    high = opt.high if opt.high is not None else (MAX_DURATION if opt.kind == "duration" else None)
    shown = format_duration if opt.kind == "duration" else _plain_number
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {number!r}")
    if low is not None and number < low:
        raise ValueError(f"{shown(number)} is below the lowest allowed value, {shown(low)}")
    if high is not None and number > high:
        raise ValueError(f"{shown(number)} is above the highest allowed value, {shown(high)}")


def _plain_number(number: float) -> str:
    return f"{number:g}"


def _check_text(check: str, text: str) -> None:
    """Values whose meaning is checked once here rather than failing mid-run."""
    from cronwrap.errors import CronwrapError, ScheduleError

    if check == "zone":
        from cronwrap.cron.schedule import zone

        try:
            zone(text)
        except CronwrapError as err:
            raise ValueError(str(err)) from None
    elif check == "schedule":
        from cronwrap.cron.schedule import parse

        try:
            parse(text)
        except ScheduleError as err:
            raise ValueError(f"{text!r} is not a cron schedule: {err}") from None


def _convert_kind(opt: Option, value: Any) -> Any:
    kind = opt.kind
    if kind == "duration":
        return parse_duration(value)
    if kind == "size":
        return parse_size(value)
    if kind == "codes":
        return parse_codes(value)
    if kind == "int":
        text = str(value).strip()
        if isinstance(value, bool) or not text.lstrip("-").isdigit():
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    if kind == "float":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
        return number
    if kind == "flag":
        if isinstance(value, bool):
            return value
        low = str(value).strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if kind == "choice":
        if str(value) not in opt.choices:
            raise ValueError(f"expected one of {', '.join(opt.choices)}, got {value!r}")
        return str(value)
    if kind == "list":
        if isinstance(value, str):
            return tuple(v for v in value.split("\n") if v) if "\n" in value else (value,)
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        raise ValueError(f"expected a list, got {value!r}")
    if isinstance(value, list | dict | bool):
        raise ValueError(f"expected a string, got {value!r}")
    value = str(value)
    return value  # secrets given as file:PATH are read by resolve_job


# ---------------------------------------------------------------- config file


class ConfigFile:  # noqa: PLW1641 - compared in tests, never hashed
    """A validated config file: `defaults` and `jobs` hold converted option values."""

    __slots__ = ("defaults", "jobs", "path")

    def __init__(
        self,
        path: Path | None,
        defaults: Mapping[str, Any] | None = None,
        jobs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.path = path  # None: no file
        self.defaults = defaults or {}
        self.jobs = jobs or {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigFile) and (self.path, self.defaults, self.jobs) == (
            other.path,
            other.defaults,
            other.jobs,
        )


def _normalise_key(key: object) -> str:
    return str(key).replace("-", "_")


def _check_section(section: object, where: str, path: Path) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {where}: expected a mapping of options")
    out: dict[str, Any] = {}
    for key, value in section.items():
        name = _normalise_key(key)
        opt = OPTIONS_BY_NAME.get(name)
        if opt is None or not opt.config:
            raise ConfigError(f"{path}: {where}: unknown key {key!r}")
        try:
            # secrets given as file: are validated when used, so a missing file at `config`
            # time names the job that needs it
            out[name] = value if opt.secret else convert(opt, value)
        except ValueError as err:
            raise ConfigError(f"{path}: {where}.{key}: {err}") from None
    return out


def load_config(path: Path) -> ConfigFile:
    """Read and validate the YAML config; a missing file is an empty config."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return ConfigFile(None)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from err
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {err}") from None
    if data is None:
        return ConfigFile(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with defaults: and jobs:")
    for key in data:
        if key not in ("defaults", "jobs"):
            raise ConfigError(f"{path}: unknown top-level key {key!r} (expected defaults, jobs)")
    defaults = _check_section(data.get("defaults"), "defaults", path)
    jobs_raw = data.get("jobs") or {}
    if not isinstance(jobs_raw, dict):
        raise ConfigError(f"{path}: jobs: expected a mapping of job names to options")
    jobs: dict[str, dict[str, Any]] = {}
    for name, section in jobs_raw.items():
        try:
            validate_name(str(name))
        except UsageError as err:
            raise ConfigError(f"{path}: jobs: {err}") from None
        jobs[str(name)] = _check_section(section, f"jobs.{name}", path)
    return ConfigFile(path, defaults, jobs)


# ---------------------------------------------------------------- jobs


def validate_name(name: str) -> str:
    if (
        not name
        or len(name) > MAX_NAME_LEN
        or name[0] not in _NAME_FIRST
        or not _NAME_CHARS.issuperset(name)
    ):
        raise UsageError(
            f"bad job name {name!r}: use 1-{MAX_NAME_LEN} letters, digits and . _ @ + -"
            " (no / or spaces), starting with a letter or digit"
        )
    return name


def derive_name(command: Sequence[str]) -> str:
    """A stable name for an unnamed job: command basename plus a short hash of argv."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(command[0]) or "job")
    base = base.lstrip("._-")[:60] or "job"
    import hashlib

    digest = hashlib.sha256("\0".join(command).encode("utf-8", "surrogateescape")).hexdigest()
    return f"{base}-{digest[:8]}"


def resolve_job(
    flags: Mapping[str, Any],
    command: Sequence[str],
    env: Mapping[str, str],
    config: ConfigFile,
    *,
    read_secrets: bool = True,
) -> Job:
    """Merge flag > CRONWRAP_* env > job section > defaults > built-in into a Job.
    With read_secrets=False, `file:PATH` secrets stay as written (for display)."""
    name = flags.get("name") or env.get("CRONWRAP_NAME") or derive_name(command)
    validate_name(name)
    section = config.jobs.get(name, {})
    options: dict[str, object] = {}
    sources: dict[str, str] = {}
    for opt in RUN_OPTIONS:
        if opt.name == "name":
            continue
        raw_flag = flags.get(opt.name)
        if raw_flag is not None and raw_flag != () and raw_flag is not False:
            value, source = _convert_or_usage(opt, raw_flag, opt.flag), "flag"
        elif opt.env in env:
            value, source = _convert_or_config(opt, env[opt.env], opt.env), "env"
        elif opt.name in section:
            value, source = section[opt.name], "job"
        elif opt.name in config.defaults:
            value, source = config.defaults[opt.name], "defaults"
        else:
            value, source = opt.default, "built-in"
        if opt.secret and read_secrets:
            if isinstance(value, str):
                value = read_secret(value)
            elif isinstance(value, tuple | list):  # a YAML list stays a list
                value = tuple(read_secret(v) for v in value)
        options[opt.name] = value
        sources[opt.name] = source
    return Job(name, tuple(command), options, sources)


def _convert_or_usage(opt: Option, value: Any, where: str) -> Any:
    try:
        return convert(opt, value)
    except ValueError as err:
        raise UsageError(f"{where}: {err}") from None


def _convert_or_config(opt: Option, value: Any, where: str) -> Any:
    try:
        return convert(opt, value)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
