"""`cronwrap wrap`: put `cronwrap run` in front of every job of an existing crontab without
changing what cron does: comments, environment lines, CRON_TZ and already wrapped lines stay
as they are; a command that needs the shell (pipes, redirections, `%` for stdin, ...) is kept
whole and run by the crontab's own SHELL. Running it on its own output changes nothing; undo
puts back only the lines wrap changed. Standard library only."""

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


_PROGRAM = re.compile(r"^[A-Za-z_./~][\w./+~-]*$")  # a word that names a program, not `$((`


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
        if not words or words[0] in _NOT_THE_JOB or not _PROGRAM.match(words[0]):
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


# shells that run a line of plain words exactly as an exec of those words would
_POSIX_SHELLS = {"sh", "dash", "bash", "ash", "ksh", "mksh", "busybox"}


def _through_shell(shell: str | None, prefix: str, command: str) -> str:
    """`prefix` running `command` (a quoted shell string, maybe followed by cron's `%` stdin
    part) under the shell cron would use: `run --shell` is /bin/sh, any other SHELL= of the
    crontab is called by its path, so bash lines keep `[[ ]]`, `{a,b}` and the rest."""
    if shell in (None, "/bin/sh"):
        return f"{prefix} --shell -- {command}"
    return f"{prefix} -- {shell} -c {command}"


def wrap_crontab(text: str, tab: Crontab, *, cronwrap: str = "cronwrap") -> str:
    """The crontab with every unwrapped job line wrapped; everything else byte for byte.
    Each job keeps the shell the crontab's SHELL= line gives it."""
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
            quoted = _quote(body.rstrip()) + rest
            lines[line.number - 1] = head + _through_shell(line.shell, prefix, quoted)
        elif _SHELL_SYNTAX.search(command) or not _is_posix(line.shell):
            lines[line.number - 1] = head + _through_shell(line.shell, prefix, _quote(command))
        else:
            lines[line.number - 1] = f"{head}{prefix} -- {command}"
    return "\n".join(lines)


def _is_posix(shell: str | None) -> bool:
    return shell is None or shell.rsplit("/", 1)[-1] in _POSIX_SHELLS


def unwrap_crontab(current: str, *, before: str, after: str) -> tuple[str, list[int]]:
    """Undo one wrap: `before` is the crontab wrap read, `after` what it wrote (line for line,
    as wrap keeps the line count). Each line of `current` that is still exactly as wrap wrote
    it gets its old text back; every other line (hand-added, hand-edited, already wrapped
    before) stays. Also returns the numbers of `current` lines wrap wrote that were edited
    since (same job name, other text), which undo leaves as they are."""
    restore = {
        new: old
        for old, new in zip(before.split("\n"), after.split("\n"), strict=False)
        if old != new
    }
    names = {r.name for line in restore if (r := wrapped_run(line)) and r.name}
    out, edited = [], []
    for number, line in enumerate(current.split("\n"), start=1):
        if line in restore:
            out.append(restore[line])
            continue
        run = wrapped_run(line)
        if run is not None and run.name in names:
            edited.append(number)
        out.append(line)
    return "\n".join(out), edited
