"""Reading crontab files as cron does: comments, NAME=value lines, CRON_TZ, job lines with
or without a user field, and the `cronwrap run` inside a job's command. Standard library only."""

from __future__ import annotations

import re
import shlex

from cronwrap.errors import CronwrapError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cronwrap.argv import RunArgv

_ENV_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_JOB_START = re.compile(r"^\s*[0-9*@]")


class Line:
    """One line of a crontab, as read (never changed after). (Plain classes here: importing
    dataclasses costs `status` about 1.5 times a bare `python -c pass`, through inspect.)"""

    __slots__ = (
        "command",
        "command_col",
        "kind",
        "name",
        "number",
        "path",
        "schedule",
        "schedule_col",
        "shell",
        "text",
        "tz",
        "user",
        "value",
    )

    def __init__(
        self,
        number: int,
        text: str,
        kind: str,
        *,
        schedule: str = "",
        schedule_col: int = 0,
        user: str | None = None,
        command: str = "",
        command_col: int = 0,
        name: str = "",
        value: str = "",
        tz: str | None = None,
        shell: str | None = None,
        path: str | None = None,
    ) -> None:
        self.number = number  # 1-based
        self.text = text
        self.kind = kind  # blank | comment | env | job | junk
        self.schedule, self.schedule_col = schedule, schedule_col
        self.user = user
        self.command, self.command_col = command, command_col
        self.name = name  # env name
        self.value = value  # env value
        self.tz = tz  # CRON_TZ in force for a job line (TZ= does not move it)
        self.shell = shell  # SHELL in force for a job line (None: cron's /bin/sh)
        self.path = path  # PATH in force for a job line (None: cron's default)


class Crontab:
    __slots__ = ("ends_with_newline", "lines", "source", "system")

    def __init__(
        self, source: str, lines: list[Line], system: bool, ends_with_newline: bool
    ) -> None:
        self.source = source  # a path, "-" or "crontab -l"
        self.lines = lines
        self.system = system
        self.ends_with_newline = ends_with_newline

    @property
    def jobs(self) -> list[Line]:
        return [ln for ln in self.lines if ln.kind == "job"]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_crontab(text: str, *, source: str, system: bool) -> Crontab:
    lines: list[Line] = []
    tz: str | None = None
    in_force: dict[str, str] = {}  # cron gives each job the NAME=value lines above it
    raw_lines = text.split("\n")
    ends = text.endswith("\n") or text == ""
    if ends:
        raw_lines = raw_lines[:-1]
    for i, raw in enumerate(raw_lines, start=1):
        stripped = raw.strip()
        if not stripped:
            lines.append(Line(i, raw, "blank"))
            continue
        if stripped.startswith("#"):
            lines.append(Line(i, raw, "comment"))
            continue
        env = _ENV_RE.match(raw)
        if env and not _JOB_START.match(raw):
            name, value = env.group(1), _unquote(env.group(2))
            if name == "CRON_TZ":  # TZ= is only the commands' environment: cron's
                tz = value or None  # schedule stays in the daemon's zone
            in_force[name] = value
            lines.append(Line(i, raw, "env", name=name, value=value))
            continue
        if not _JOB_START.match(raw):
            lines.append(Line(i, raw, "junk"))
            continue
        job = _job_line(i, raw, system=system, tz=tz)
        job.shell, job.path = in_force.get("SHELL"), in_force.get("PATH")
        lines.append(job)
    return Crontab(source, lines, system, ends)


def _job_line(number: int, raw: str, *, system: bool, tz: str | None) -> Line:
    tokens = [(m.group(), m.start()) for m in re.finditer(r"\S+", raw)]
    n_sched = 1 if tokens[0][0].startswith("@") else 5
    sched_end = tokens[min(n_sched, len(tokens)) - 1]
    schedule = raw[tokens[0][1] : sched_end[1] + len(sched_end[0])]
    rest = tokens[n_sched:]
    user = None
    if system and rest:
        user = rest[0][0]
        rest = rest[1:]
    command = raw[rest[0][1] :].rstrip() if rest else ""
    return Line(
        number,
        raw,
        "job",
        schedule=schedule,
        schedule_col=tokens[0][1],
        user=user,
        command=command,
        command_col=rest[0][1] if rest else len(raw),
        tz=tz,
    )


class WrappedRun:
    """What a `cronwrap [--config F] run ...` in a crontab command says about its job, read
    by the parser `run` itself uses (cronwrap/argv.py), so lint, wrap and status never disagree
    with what cron will run."""

    __slots__ = ("argv", "name", "program", "schedule", "tz")

    def __init__(
        self, name: str | None, schedule: str | None, tz: str | None, program: str, argv: RunArgv
    ) -> None:
        self.name, self.schedule, self.tz = name, schedule, tz
        self.program = program  # the word that calls cronwrap, as written
        self.argv = argv  # options (raw), command, problems, --config

    @property
    def config(self) -> str | None:
        return self.argv.config_path


def command_words(command: str) -> list[str]:
    """A crontab command's words as the shell splits them, before cron's `%` stdin part."""
    try:
        return shlex.split(command.split("%", maxsplit=1)[0], posix=True)
    except ValueError:
        return command.split()


def wrapped_run(command: str) -> WrappedRun | None:
    """The `cronwrap run` of a job's command, or None if it is not wrapped."""
    from cronwrap.argv import parse_cronwrap_words

    words = command_words(command)
    for i, word in enumerate(words):
        if word.rsplit("/", 1)[-1] != "cronwrap":
            continue
        argv = parse_cronwrap_words(words[i:])
        if argv is not None:
            return WrappedRun(
                argv.value("name"), argv.value("schedule"), argv.value("tz"), word, argv
            )
    return None


def read_source(source: str) -> str:
    """A crontab's text: a file, '-' for stdin, or '' for the user's crontab (crontab -l)."""
    import sys

    if source == "-":
        return _bounded(sys.stdin.read(MAX_CRONTAB_CHARS + 1), "standard input")
    if source == "":
        import subprocess  # only for the user's crontab: status --crontab FILE spares 3 ms

        try:
            out = subprocess.run(
                ["crontab", "-l"], capture_output=True, text=True, check=False, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise CronwrapError(f"cannot run crontab -l: {err}") from err
        if out.returncode != 0:
            if "no crontab" in out.stderr:
                return ""
            raise CronwrapError(f"crontab -l failed: {out.stderr.strip()}")
        return out.stdout
    try:
        with open(source, "rb") as f:  # bounded: `lint /dev/zero` must not eat the memory
            data = f.read(MAX_CRONTAB_CHARS + 1)
    except OSError as err:
        raise CronwrapError(f"cannot read {source}: {err.strerror}") from err
    return _bounded(data.decode("utf-8", "surrogateescape"), source)


MAX_CRONTAB_CHARS = 1024 * 1024  # cron itself refuses crontabs far smaller than this


def _bounded(text: str, source: str) -> str:
    if len(text) > MAX_CRONTAB_CHARS:
        raise CronwrapError(
            f"{source}: larger than {MAX_CRONTAB_CHARS // 1024} KiB; not a crontab, not read"
        )
    return text


def system_crontab_paths() -> list[str]:
    """/etc/crontab and the files of /etc/cron.d that exist, as cron reads them."""
    import glob
    import os

    candidates = ["/etc/crontab", *sorted(glob.glob("/etc/cron.d/*"))]
    return [p for p in candidates if os.path.isfile(p)]


def is_system_path(path: str) -> bool:
    return path == "/etc/crontab" or path.startswith("/etc/cron.d/")
