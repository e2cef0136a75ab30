"""Whether the programs a crontab line runs exist and are executable for the line's user with
the line's PATH, as cron will look them up: its SHELL, the `cronwrap` it calls and the job's
command. The one part of cron/ that reads the machine (stat and passwd look-ups, no writes)."""

from __future__ import annotations

import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cronwrap.cron.crontab import Crontab, Line, WrappedRun, command_words

DEFAULT_PATH = "/usr/bin:/bin"  # the PATH Debian cron gives a job when the crontab sets none
_SHELLS = {"sh", "dash", "bash", "ash", "ksh", "mksh", "zsh", "busybox"}
# words a shell runs itself: nothing to look up
_OWN_WORDS = (
    "! { } ( ) [ [[ ]] ] : . case cd command do done echo elif else esac eval exec exit export "
    "false fi for function if printf pwd read return set shift source test then time trap true "
    "type ulimit umask unset until wait while"
)
_SHELL_OWN = frozenset(_OWN_WORDS.split())
_PROGRAM = re.compile(r"^[\w./+~-]+$")  # a word that names a program (no expansions)


@dataclass(frozen=True, slots=True)
class _Account:
    name: str
    uid: int
    gids: frozenset[int]
    home: str


def problems(tab: Crontab, ln: Line, run: WrappedRun | None) -> list[tuple[int, str, str]]:
    """(0-based column in the line's command, code, message) for each program of the line
    cron or cronwrap could not start."""
    out: list[tuple[int, str, str]] = []
    account = _account(ln.user if tab.system else None)
    if account is None:
        return [(0, "unknown-user", f"user {ln.user!r} does not exist here: cron skips this line")]
    path = ln.path if ln.path is not None else DEFAULT_PATH

    def check(word: str, *, search: str = path, cwd: str = account.home, who: str = "") -> None:
        problem = _lookup(word, search, cwd, account)
        if problem is not None:
            code, why, exit_code = problem
            col = max(ln.command.find(word), 0)
            out.append((col, code, f"{who}{word}: {why}: every run fails with {exit_code}"))

    shell = ln.shell or "/bin/sh"
    check(shell, search="", who="SHELL ")  # cron runs every line through it
    if run is None:
        first = _first_program(command_words(ln.command))
        if first:
            check(first)
        return out
    check(run.program, who="cronwrap itself, ")
    argv = run.argv
    if not argv.command:
        return out
    envs = argv.flags.get("env", ())
    env_path = [e[5:] for e in envs if e[:5] == "PATH="] if isinstance(envs, tuple) else []
    search = env_path[-1] if env_path else path
    cwd = argv.value("cwd") or account.home
    words = argv.command
    if argv.flags.get("shell"):
        first = _first_program(command_words(" ".join(words)))
    elif words[0].rsplit("/", 1)[-1] in _SHELLS and words[1:2] == ["-c"] and len(words) > 2:
        check(words[0], search=search, cwd=cwd)
        first = _first_program(command_words(words[2]))
    else:
        first = words[0]
    if first:
        check(first, search=search, cwd=cwd)
    return out


def _first_program(words: list[str]) -> str | None:
    """The program a shell command line starts with, if it is a plain word to look up."""
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        words = words[1:]  # `LANG=C cmd`
    if not words or words[0] in _SHELL_OWN or not _PROGRAM.match(words[0]):
        return None
    return words[0]


def _lookup(word: str, path: str, cwd: str, account: _Account) -> tuple[str, str, int] | None:
    """None when `word` starts; else (code, why, the exit status the shell would give)."""
    if "/" in word:
        candidates = [Path(cwd, os.path.expanduser(word))]
    else:
        candidates = [Path(d or cwd, word) for d in path.split(":")]
    found = [c for c in candidates if c.is_file()]
    if not found:
        where = f"not found with PATH={path}" if "/" not in word else "no such file"
        return "not-found", where, 127
    if any(_executable(c, account) for c in found):
        return None
    return "not-executable", f"{found[0]} is not executable for user {account.name}", 126


def _account(user: str | None) -> _Account | None:
    try:
        entry = pwd.getpwuid(os.geteuid()) if user is None else pwd.getpwnam(user)
    except KeyError:
        if user is None:  # running under a uid without a passwd entry: look nothing up by name
            return _Account(str(os.geteuid()), os.geteuid(), frozenset(os.getgroups()), "/")
        return None
    gids = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return _Account(entry.pw_name, entry.pw_uid, gids, entry.pw_dir)


def _executable(path: Path, account: _Account) -> bool:
    """Whether `account` may execute `path`: search permission on every directory above it
    and an execute bit for it (root needs any one)."""
    try:
        mode = path.stat().st_mode
        dirs = [p.stat() for p in path.resolve().parents]
        target = path.resolve().stat()
    except OSError:
        return False
    if not stat.S_ISREG(mode):
        return False
    if account.uid == 0:
        return bool(target.st_mode & 0o111)
    return all(_allowed(d, account) for d in dirs) and _allowed(target, account)


def _allowed(st: os.stat_result, account: _Account) -> bool:
    if st.st_uid == account.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in account.gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)
