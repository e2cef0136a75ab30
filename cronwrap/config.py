"""Paths, durations and the config file: flags, CRONWRAP_* variables, the job section,
defaults and built-ins resolved once into frozen values. yaml is imported only when a
config file exists; nothing here reads os.environ at import time."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from cronwrap.errors import ConfigError, UsageError
from cronwrap.options import MAX_DURATION, OPTIONS_BY_NAME, RUN_OPTIONS, Job, Option

# where things live is paths.py's; re-exported here, where callers have always found them
from cronwrap.paths import DIR_MODE as DIR_MODE  # noqa: PLC0414
from cronwrap.paths import Paths as Paths  # noqa: PLC0414
from cronwrap.paths import dir_refusal as dir_refusal  # noqa: PLC0414
from cronwrap.paths import ensure_dir as ensure_dir  # noqa: PLC0414
from cronwrap.paths import resolve_paths as resolve_paths  # noqa: PLC0414

TYPE_CHECKING = False  # typing costs ~3 ms of start-up; the names are for the type checker
if TYPE_CHECKING:
    from typing import Any

    from cronwrap.paths import StrPath

MAX_NAME_LEN = 100
# names checked by hand, not by a regex: compiling regexes costs start-up time on every run
_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _NAME_FIRST | frozenset("._@+-")


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
    path = os.path.expanduser(value[5:])
    try:
        return read_regular_file(path, MAX_SECRET_BYTES).decode("utf-8").strip()
    except OSError as err:
        raise ConfigError(f"cannot read secret file {path}: {err.strerror}") from err
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path} is not UTF-8 text") from None
    except ValueError as err:
        raise ConfigError(f"secret file {path}: {err}") from None


MAX_SECRET_BYTES = 64 * 1024  # a URL or a key; a bigger "secret" is a wrong path


def read_regular_file(path: StrPath, limit: int) -> bytes:
    """At most `limit` bytes of a regular file; ValueError for anything else (a FIFO would
    block the run until someone writes to it, a device may never end) or a longer file.
    Opened without blocking, so even a FIFO is refused at once."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"larger than {limit // 1024} KiB; refusing to read it")
    return data


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
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


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
    elif check == "printable" and not text.isprintable():
        # a name status and history print: a newline or an escape in it would reach a terminal
        raise ValueError(f"{text!r} holds control characters")


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

    __slots__ = ("defaults", "jobs", "path", "problems")

    def __init__(
        self,
        path: StrPath | None,
        defaults: Mapping[str, Any] | None = None,
        jobs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.path = path  # None: no file
        self.defaults = defaults or {}
        self.jobs = jobs or {}
        self.problems: tuple[str, ...] = ()  # what load_config(strict=False) left out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigFile) and (self.path, self.defaults, self.jobs) == (
            other.path,
            other.defaults,
            other.jobs,
        )


def _normalise_key(key: object) -> str:
    return str(key).replace("-", "_")


MAX_CONFIG_BYTES = 1024 * 1024  # a config file is a few KB; refuse a huge one before parsing
MAX_CONFIG_NODES = 100_000  # values after expanding aliases: an alias bomb stops here


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """` (did you mean 'retries'?)` for a near miss, else ''."""
    import difflib

    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _config_keys() -> list[str]:
    return [o.name for o in RUN_OPTIONS if o.config]


def _check_section(
    section: object, where: str, path: StrPath, problems: list[str]
) -> dict[str, Any]:
    """The section's valid options, converted; each bad key or value is one problem."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        problems.append(f"{path}: {where}: expected a mapping of options")
        return {}
    out: dict[str, Any] = {}
    for key, value in section.items():
        name = _normalise_key(key)
        opt = OPTIONS_BY_NAME.get(name)
        if opt is None or not opt.config:
            hint = did_you_mean(name, _config_keys())
            problems.append(f"{path}: {where}: unknown key {key!r}{hint}")
            continue
        try:
            # secrets given as file: are read when used (resolve_job), so a missing file
            # at `config` time names the job that needs it
            out[name] = convert(opt, value)
        except ValueError as err:
            problems.append(f"{path}: {where}.{key}: {err}")
    return out


def _too_big(data: object, limit: int) -> bool:
    """True if `data` expands to more than `limit` values (aliases counted each time)."""
    stack, seen = [data], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def load_config(path: StrPath, *, strict: bool = True) -> ConfigFile:
    """Read and validate the YAML config; a missing file is an empty config.

    Every problem is collected (not just the first). strict (`cronwrap config`, lint):
    raise one ConfigError naming them all. Not strict (`run`, which fails open): keep what
    is valid and list the rest in `.problems`."""
    problems: list[str] = []
    config = _load_config(path, problems)
    if problems and strict:
        raise ConfigError("\ncronwrap: ".join(problems))
    config.problems = tuple(problems)
    return config


def _load_config(path: StrPath, problems: list[str]) -> ConfigFile:
    try:
        text = read_regular_file(path, MAX_CONFIG_BYTES).decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return ConfigFile(None)
    except OSError as err:
        problems.append(f"{path}: cannot read: {err.strerror}")
        return ConfigFile(path)
    except (ValueError, UnicodeDecodeError) as err:
        problems.append(f"{path}: cannot read: {err}")
        return ConfigFile(path)
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problems.append(f"{where}: {err.problem or err.context}")
        return ConfigFile(path)
    except yaml.YAMLError as err:
        problems.append(f"{path}: {err}")
        return ConfigFile(path)
    except ValueError:  # int() refuses a number of more than 4300 digits
        problems.append(f"{path}: holds a number of more than 4300 digits")
        return ConfigFile(path)
    if data is None:
        return ConfigFile(path)
    if _too_big(data, MAX_CONFIG_NODES):
        problems.append(
            f"{path}: more than {MAX_CONFIG_NODES} values once aliases are expanded"
            " (an alias bomb?); refusing it"
        )
        return ConfigFile(path)
    if not isinstance(data, dict):
        problems.append(f"{path}: the top level must be a mapping with defaults: and jobs:")
        return ConfigFile(path)
    for key in data:
        if key not in ("defaults", "jobs"):
            hint = did_you_mean(str(key), ["defaults", "jobs"]) or " (expected defaults, jobs)"
            problems.append(f"{path}: unknown top-level key {key!r}{hint}")
    defaults = _check_section(data.get("defaults"), "defaults", path, problems)
    jobs_raw = data.get("jobs") or {}
    if not isinstance(jobs_raw, dict):
        problems.append(f"{path}: jobs: expected a mapping of job names to options")
        jobs_raw = {}
    jobs: dict[str, dict[str, Any]] = {}
    for name, section in jobs_raw.items():
        try:
            validate_name(str(name))
        except UsageError as err:
            problems.append(f"{path}: jobs: {err}")
            continue
        jobs[str(name)] = _check_section(section, f"jobs.{name}", path, problems)
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
    problems: list[str] | None = None,
) -> Job:
    """Merge flag > CRONWRAP_* env > job section > defaults > built-in into a Job.
    With read_secrets=False, `file:PATH` secrets stay as written (for display).
    With a `problems` list (the run path, where the command is known and cronwrap fails
    open), a bad value or an unreadable secret is left out and described there instead
    of raised: the next source (or the default) is used."""
    given = flags.get("name")  # `--name ''` is a bad name, said, not the same as no --name
    name = given if given is not None else env.get("CRONWRAP_NAME") or derive_name(command)
    try:
        validate_name(name)
    except UsageError as err:
        if problems is None:
            raise
        name = derive_name(command)
        problems.append(f"{err}; using {name!r}")
    section = config.jobs.get(name, {})
    options: dict[str, object] = {}
    sources: dict[str, str] = {}
    for opt in RUN_OPTIONS:
        if opt.name == "name":
            continue
        value, source = _resolve_option(opt, flags, env, section, config, problems)
        if opt.secret and read_secrets:
            value = _read_secrets(opt, value, problems)
        options[opt.name] = value
        sources[opt.name] = source
    return Job(name, tuple(command), options, sources)


def _resolve_option(
    opt: Option,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    section: Mapping[str, Any],
    config: ConfigFile,
    problems: list[str] | None,
) -> tuple[Any, str]:
    raw_flag = flags.get(opt.name)
    if raw_flag is not None and raw_flag != () and raw_flag is not False:
        try:
            return convert(opt, raw_flag), "flag"
        except ValueError as err:
            if problems is None:
                raise UsageError(f"{opt.flag}: {err}") from None
            problems.append(f"{opt.flag}: {err}; ignored")
    if opt.env in env:
        try:
            return convert(opt, env[opt.env]), "env"
        except ValueError as err:
            if problems is None:
                raise ConfigError(f"{opt.env}: {err}") from None
            problems.append(f"{opt.env}: {err}; ignored")
    if opt.name in section:
        return section[opt.name], "job"
    if opt.name in config.defaults:
        return config.defaults[opt.name], "defaults"
    return opt.default, "built-in"


def _read_secrets(opt: Option, value: Any, problems: list[str] | None) -> Any:
    """`file:PATH` secrets read; one that cannot be read is dropped (with a problem)."""
    values = tuple(value) if isinstance(value, tuple | list) else (value,)
    kept: list[str] = []
    for item in values:
        if not isinstance(item, str):
            continue
        try:
            kept.append(read_secret(item))
        except ConfigError as err:
            if problems is None:
                raise
            problems.append(f"{opt.flag}: {err}; left out")
    if isinstance(value, tuple | list):  # a YAML list is a tuple from here on
        return tuple(kept)
    return kept[0] if kept else None
