"""`cronwrap run` without click: cron pays the start-up cost on every run, so the run path
parses its argv with cronwrap.argv, from the same option table the click command is built from.
Every error of cronwrap's own before the job starts exits 125 (as GNU timeout and env do),
with its reason on stderr; after that the exit status is the job's."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence

from cronwrap.argv import RunArgv, parse_run_argv
from cronwrap.errors import CronwrapError, ExitCode

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from cronwrap.run.context import RunOrigin


def execute(
    parsed: RunArgv,
    env: Mapping[str, str],
    *,
    config_path: str | None = None,
    origin: RunOrigin | None = None,
) -> int:
    """Resolve the job, supervise it, and return the exit status (125 for our own errors).
    `origin` says how the run came about (a rerun, a catch-up); default: cron started it."""
    from cronwrap.config import load_config, resolve_job
    from cronwrap.paths import resolve_paths
    from cronwrap.run.context import RunOrigin, check_origin
    from cronwrap.run.supervise import exit_with, supervise

    config_path = parsed.config_path or config_path
    try:
        paths = resolve_paths(env, config_file=config_path)
        if origin is None:
            origin = RunOrigin(flags=parsed.flags, config_file=paths.config_path)
        # the command is known: what is wrong in the config is left out, said, and the job runs
        config = load_config(paths.config_path, strict=False)
        problems = [*parsed.problems, *(f"{p}; ignored" for p in config.problems)]
        job = resolve_job(parsed.flags, parsed.command, env, config, problems=problems)
        if job.alert:  # an alert that cannot be sent here is left out, not the job
            from cronwrap.notify.alerts import usable_urls

            kept, unusable = usable_urls(list(job.alert))
            job.alert = tuple(kept)
            problems += [f"{p}; left out" for p in unusable]
        check_origin(job, origin)
        outcome = supervise(job, paths, env=env, warnings=problems, origin=origin)
    except CronwrapError as err:  # raised only before the job starts
        _say(f"cronwrap: {err}")
        return ExitCode.WRAPPER
    return exit_with(outcome)


def _say(message: str) -> None:
    from cronwrap.run.nowait import write_own

    with contextlib.suppress(OSError):  # stderr closed, or nobody reads it
        write_own(2, (message + "\n").encode("utf-8", "replace"))


def main(args: Sequence[str], env: Mapping[str, str], *, config_path: str | None = None) -> int:
    """`cronwrap run ARGS`: parse, run, and turn every error of our own into 125 and a line."""
    try:
        parsed = parse_run_argv(args)
        return execute(parsed, env, config_path=config_path)
    except CronwrapError as err:
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
