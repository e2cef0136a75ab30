"""`cronwrap run` without click: cron pays the start-up cost on every run, so the run path
parses its argv from the same option table the click command is built from. Every error of
cronwrap's own here exits 125 (as GNU timeout and env do), never the job's codes."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence

from cronwrap.errors import CronwrapError, ExitCode, UsageError
from cronwrap.options import OPTIONS_BY_FLAG

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from typing import Any


def parse_run_args(args: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Options up to `--` or the first non-option word; the rest is the command."""
    flags: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("--") or arg == "-":
            break
        key, eq, inline = arg.partition("=")
        opt = OPTIONS_BY_FLAG.get(key)
        if opt is None:
            raise UsageError(f"no such option: {key} (see cronwrap run --help)")
        if opt.kind == "flag":
            if eq:
                raise UsageError(f"option {key} does not take a value")
            flags[opt.name] = True
            i += 1
            continue
        if eq:
            value = inline
            i += 1
        else:
            if i + 1 >= len(args):
                raise UsageError(f"option {key} requires an argument")
            value = args[i + 1]
            i += 2
        if opt.kind == "list":
            flags[opt.name] = (*flags.get(opt.name, ()), value)
        else:
            flags[opt.name] = value
    command = list(args[i:])
    if not command:
        raise UsageError("no command given: cronwrap run [OPTIONS] -- COMMAND [ARGS]...")
    return flags, command


def execute(
    flags: Mapping[str, Any],
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    config_path: str | None = None,
) -> int:
    """Resolve the job, supervise it, and return the exit status (125 for our own errors)."""
    from cronwrap.config import load_config, resolve_job, resolve_paths
    from cronwrap.run.supervise import exit_with, supervise

    try:
        paths = resolve_paths(env, config_file=config_path)
        config = load_config(paths.config_file)
        job = resolve_job(flags, command, env, config)
        outcome = supervise(job, paths, env=env)
    except CronwrapError as err:  # raised only before the job starts
        _say(f"cronwrap: {err}")
        return ExitCode.WRAPPER
    return exit_with(outcome)


def _say(message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, (message + "\n").encode("utf-8", "replace"))


def main(args: Sequence[str], env: Mapping[str, str]) -> int:
    try:
        flags, command = parse_run_args(args)
    except UsageError as err:
        _say(f"cronwrap: {err}")
        return ExitCode.WRAPPER
    try:
        return execute(flags, command, env)
    except CronwrapError as err:  # pragma: no cover - execute handles its own
        _say(f"cronwrap: {err}")
        return ExitCode.WRAPPER
    except Exception:
        if env.get("CRONWRAP_DEBUG"):
            raise
        import traceback

        _say(
            "cronwrap: internal error (set CRONWRAP_DEBUG=1 for details): "
            + traceback.format_exc().strip().splitlines()[-1]
        )
        return ExitCode.WRAPPER


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:], os.environ))
