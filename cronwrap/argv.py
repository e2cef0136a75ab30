"""The one parser of `cronwrap run` arguments, from the option table: used by the fast
path, the click command, `wrap`, `lint`, `status` and the help probe alike.

Once the command is known (everything after `--`) a bad option cannot stop the job: it is
reported in `problems` and left out. Without `--` an unknown option makes the command
unknowable, so it is a usage error. Imports only the option table."""

from __future__ import annotations

from cronwrap.errors import UsageError
from cronwrap.options import OPTIONS_BY_FLAG

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Sequence

_HELP = frozenset({"--help", "-h"})
# options of the `cronwrap` group that may stand before `run`
_GROUP_VALUE_OPTIONS = frozenset({"--config"})
_GROUP_FLAG_OPTIONS = frozenset({"--debug"})


class RunArgv:
    """What a `cronwrap run` argument list says: raw option values (converted later, in
    config.resolve_job), the command, and what could not be used."""

    __slots__ = ("command", "config_path", "flags", "help", "problems", "separator")

    def __init__(self) -> None:
        self.flags: dict[str, str | bool | tuple[str, ...]] = {}
        self.command: list[str] = []
        self.config_path: str | None = None  # `cronwrap --config F run ...`
        self.problems: list[str] = []  # options left out, one sentence each
        self.help = False  # --help before the command
        self.separator = False  # the command came after an explicit `--`

    def value(self, name: str) -> str | None:
        """A str option's raw value, e.g. `argv.value("name")`."""
        got = self.flags.get(name)
        return got if isinstance(got, str) else None


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """` (did you mean --name?)` for a near miss, else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def parse_run_argv(args: Sequence[str], *, strict: bool = True) -> RunArgv:
    """Parse the words after `run`. Raises UsageError only when the command is not known
    (and, with strict=False, never: the problems are in the result)."""
    parsed = RunArgv()
    end = _separator_index(args)
    parsed.separator = end is not None
    i = 0
    stop = len(args) if end is None else end
    while i < stop:
        arg = args[i]
        if arg in _HELP:
            parsed.help = True
            i += 1
            continue
        if not arg.startswith("-") or arg == "-":
            if end is None:
                break  # the first non-option word starts the command
            parsed.problems.append(f"unexpected argument {arg!r} before --: left out")
            i += 1
            continue
        i = _take_option(parsed, args, i, stop)
    if end is None:
        parsed.command = list(args[i:])
        if parsed.problems and strict:  # without `--` the command is not certain: refuse
            raise UsageError(parsed.problems[0] + " (see cronwrap run --help)")
    else:
        parsed.command = list(args[end + 1 :])
    if not parsed.command and not parsed.help and strict:
        raise UsageError("no command given: cronwrap run [OPTIONS] -- COMMAND [ARGS]...")
    return parsed


def _separator_index(args: Sequence[str]) -> int | None:
    """Where `--` ends the options, if it does: the first `--` that is not an option's value.
    A non-option word starts the command (its own `--` is its business), except the word
    right after an unknown option, which may be that option's value (`--nmae x -- cmd`)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i
        if not arg.startswith("-") or arg == "-":
            return None
        key, eq, _ = arg.partition("=")
        opt = OPTIONS_BY_FLAG.get(key)
        if opt is None and not eq and i + 2 < len(args) and args[i + 2].startswith("--"):
            i += 2  # maybe `--unknown VALUE`, followed by more options or `--`
        elif opt is not None and opt.kind != "flag" and not eq and i + 1 < len(args):
            i += 1 if args[i + 1] == "--" else 2  # `--timeout -- cmd`: a missing value
        else:
            i += 1
    return None


def _take_option(parsed: RunArgv, args: Sequence[str], i: int, stop: int) -> int:
    """Read the option at args[i] into parsed; returns the index after it."""
    key, eq, inline = args[i].partition("=")
    opt = OPTIONS_BY_FLAG.get(key)
    if opt is None:
        parsed.problems.append(f"no such option: {key}{did_you_mean(key, list(OPTIONS_BY_FLAG))}")
        if not eq and parsed.separator and i + 1 < stop and not args[i + 1].startswith("-"):
            return i + 2  # before an explicit `--`, a word after an unknown option is its value
        return i + 1
    if opt.kind == "flag":
        if eq:
            parsed.problems.append(f"option {key} does not take a value")
        else:
            parsed.flags[opt.name] = True
        return i + 1
    if eq:
        value, after = inline, i + 1
    elif i + 1 < stop:
        value, after = args[i + 1], i + 2
    else:
        parsed.problems.append(f"option {key} requires an argument")
        return i + 1
    if opt.kind == "list":
        old = parsed.flags.get(opt.name, ())
        parsed.flags[opt.name] = (*(old if isinstance(old, tuple) else ()), value)
    else:
        parsed.flags[opt.name] = value
    return after


def option_value(args: Sequence[str], i: int) -> tuple[str, int] | None:
    """The value of the long option at args[i], given as `--opt=V` or `--opt V`, and where
    the next word is; None when the words end before its value."""
    _, eq, inline = args[i].partition("=")
    if eq:
        return inline, i + 1
    return (args[i + 1], i + 2) if i + 1 < len(args) else None


def split_group_options(args: Sequence[str]) -> tuple[dict[str, str | bool], list[str]] | None:
    """`[--config F] [--debug] run ARGS...` → ({"config": F, "debug": True}, ARGS), or None
    when the words are not a `run` invocation."""
    found: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "run":
            return found, list(args[i + 1 :])
        key, eq, inline = arg.partition("=")
        if key in _GROUP_VALUE_OPTIONS:
            if eq:
                found[key[2:]] = inline
                i += 1
            elif i + 1 < len(args):
                found[key[2:]] = args[i + 1]
                i += 2
            else:
                return None
        elif arg in _GROUP_FLAG_OPTIONS:
            found[arg[2:]] = True
            i += 1
        else:
            return None
    return None


def parse_cronwrap_words(words: Sequence[str]) -> RunArgv | None:
    """A crontab command's words → its `cronwrap [--config F] run ...` arguments, or None
    when no word is cronwrap followed by run. Never raises: problems are in the result."""
    for i, word in enumerate(words):
        if word.rsplit("/", 1)[-1] != "cronwrap":
            continue
        split = split_group_options(words[i + 1 :])
        if split is None:
            continue
        group, rest = split
        parsed = parse_run_argv(rest, strict=False)
        if not parsed.command:
            parsed.problems.append("no command given after cronwrap run")
        config = group.get("config")
        parsed.config_path = config if isinstance(config, str) else None
        return parsed
    return None
