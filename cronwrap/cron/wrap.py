"""`cronwrap wrap`: put `cronwrap run` in front of every job of an existing crontab without
changing what cron does: comments, environment lines, CRON_TZ and already wrapped lines stay
as they are; a command that needs the shell (pipes, redirections, `%` for stdin, ...) is kept
whole behind --shell. Running it on its own output changes nothing. Standard library only."""

from __future__ import annotations

import re

from cronwrap.cron.crontab import Crontab, wrapped_run

# characters that make cron's /bin/sh do more than split words
_SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?\[\]{}~#'\"\\]|^\s*\w+=")


def _unescaped_percent(command: str) -> int:
    """Index of the first `%` cron turns into a newline, or -1."""
    i = 0
    while i < len(command):
        if command[i] == "\\" and i + 1 < len(command):
            i += 2
            continue
        if command[i] == "%":
            return i
        i += 1
    return -1


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


_NOT_THE_JOB = {"cd", "test", "[", "true", "false", "sleep", "exit", "echo", "{", "}", "then", "fi"}
_WRAPPERS = {
    "nice": 0,
    "ionice": 0,
    "env": 0,
    "exec": 0,
    "sudo": 0,
    "nohup": 0,
    "flock": 1,
    "timeout": 1,
    "chronic": 0,
}  # and how many arguments of theirs to skip
_RUNNERS = {
    "run-parts",
    "php",
    "python",
    "python3",
    "perl",
    "sh",
    "bash",
    "node",
    "ruby",
    "java",
    "docker",
    "make",
}


def _clean(word: str) -> str:
    base = word.rsplit("/", 1)[-1]
    base = re.sub(r"\.(sh|py|pl|rb|bash|php|js)$", "", base)
    return re.sub(r"[^a-z0-9_-]+", "-", base.lower()).strip("-_")


def job_name(command: str, taken: set[str]) -> str:
    """A readable name from what the command runs: the last real program of a `&&`/`||`/`;`
    chain, plus its script for runners (`php /var/www/cron.php` -> php-cron,
    `run-parts /etc/cron.daily` -> run-parts-cron-daily); unique within the file (-2, -3)."""
    base = ""
    for segment in reversed(re.split(r"&&|\|\||;|\||\{|\}", command)):
        words = [w for w in segment.split() if "=" not in w.split("/")[0]]
        words = [w for w in words if not w.startswith(("-", ">", "<", "2>"))]
        while words and words[0] in _WRAPPERS:  # `flock /tmp/x cmd`, `timeout 5m cmd`
            words = words[1 + _WRAPPERS[words[0]] :]
        if not words or words[0] in _NOT_THE_JOB:
            continue
        base = _clean(words[0])
        if base in _RUNNERS and len(words) > 1:
            base = f"{base}-{_clean(words[1])}".strip("-")
        if base:
            break
    base = (base or "job")[:60]
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def wrap_crontab(text: str, tab: Crontab, *, cronwrap: str = "cronwrap") -> str:
    """The crontab with every unwrapped job line wrapped; everything else byte for byte."""
    taken = {r.name for line in tab.jobs if (r := wrapped_run(line.command)) and r.name}
    lines = text.split("\n")
    for line in tab.jobs:
        if wrapped_run(line.command) is not None or not line.command:
            continue
        raw = lines[line.number - 1]
        head = raw[: line.command_col]
        command = raw[line.command_col :].rstrip()
        name = job_name(command, taken)
        schedule = " ".join(line.schedule.split())
        prefix = f"{cronwrap} run --name {name} --schedule {_quote(schedule)}"
        pct = _unescaped_percent(command)
        if pct >= 0:
            # keep cron's %-to-stdin: the part before % runs in cronwrap's shell, the rest
            # stays outside the quotes so cron still feeds it to stdin
            body, rest = command[:pct], command[pct:]
            lines[line.number - 1] = f"{head}{prefix} --shell -- {_quote(body.rstrip())}{rest}"
        elif _SHELL_SYNTAX.search(command):
            lines[line.number - 1] = f"{head}{prefix} --shell -- {_quote(command)}"
        else:
            lines[line.number - 1] = f"{head}{prefix} -- {command}"
    return "\n".join(lines)
