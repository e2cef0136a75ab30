"""Entry point. `cronwrap [--config F] run ...` takes a fast path that never imports click;
so do `cronwrap explain` and the common forms of `status` and `history` (views.report).
Everything else goes through the click group in cronwrap.cli.app."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable

_HELP = {"--help", "-h"}


def _undo_locale_coercion() -> None:
    """Put back the LC_CTYPE the process was started with. In the C locale Python sets
    LC_CTYPE=C.UTF-8 in its own environment (PEP 538), which every job would inherit; a job
    must get the environment cron gave it. Linux keeps the initial one in /proc/self/environ."""
    if "LC_CTYPE" not in os.environ:
        return
    try:
        with open("/proc/self/environ", "rb") as f:
            initial = f.read().split(b"\0")
    except OSError:
        return  # not Linux: nothing to compare with
    for item in initial:
        if item.startswith(b"LC_CTYPE="):
            os.environb[b"LC_CTYPE"] = item[len(b"LC_CTYPE=") :]
            return
    del os.environ["LC_CTYPE"]


def _run(rest: list[str], group: dict[str, str | bool]) -> int:
    import gc

    from cronwrap.run import entry

    env = dict(os.environ)
    if group.get("debug"):
        env["CRONWRAP_DEBUG"] = "1"
    config = group.get("config")
    code = entry.main(rest, env, config_path=config if isinstance(config, str) else None)
    # what is alive now is freed at exit by refcounting as the modules are cleared; frozen,
    # the interpreter's last collections need not trace it all again. Nothing is left for
    # them to do: the store is closed and the logs are written unbuffered by then
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> None:
    _undo_locale_coercion()
    args = sys.argv[1:] if argv is None else list(argv)
    if "run" in args[:4]:
        import gc

        # the cycle collector is off until the job starts (supervise turns it back on for
        # the job's lifetime): start-up makes thousands of lasting objects (modules, classes,
        # functions) and no cyclic garbage, and each automatic collection rescanned them all
        gc.disable()
        from cronwrap.argv import parse_run_argv, split_group_options

        split = split_group_options(args)
        if split is not None:
            group, rest = split
            if not parse_run_argv(rest, strict=False).help:
                sys.exit(_run(rest, group))
        gc.enable()  # not a run after all: help, or the click app
    sys.exit(_guarded(lambda: _command(args)))


def _command(args: list[str]) -> int | None:
    if args[:1] == ["explain"] and not any(a in _HELP for a in args[1:]):
        from cronwrap.views import explain

        return explain.main(args[1:])
    if args[:1] in (["status"], ["history"]):
        from cronwrap.views import report

        code = report.main(args)
        if code is not None:
            return code
    from cronwrap.cli.app import cli

    cli.main(args=args, prog_name="cronwrap")
    return 0


def _guarded(command: Callable[[], int | None]) -> int | str | None:
    """Every command but run: its output may have nowhere to go (`>&-`, `>/dev/full`, a
    stdout that cannot encode a character), and an argument or a variable may hold bytes
    that are not UTF-8. Each is one line and an exit code, never a traceback."""
    import errno

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:  # `status >&-`: the exit code is still the answer
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - for the process's life
        else:
            stream.reconfigure(errors="backslashreplace")
    try:
        try:
            code: int | str | None = command()
        except SystemExit as done:
            code = done.code
        sys.stdout.flush()
    except OSError as err:
        # errors of a write only: an EIO may as well come from reading a file, and saying
        # "cannot write the output" of it would not be true
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EPIPE, errno.EBADF):
            raise
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the exit flush has nothing left
        if err.errno != errno.EPIPE:  # a reader that went away (| head) needs no word
            print(f"cronwrap: cannot write the output: {err.strerror}", file=sys.stderr)
        return 1
    except UnicodeEncodeError as err:
        if "surrogates" not in str(err):
            raise
        print(
            "cronwrap: an argument or variable holds bytes that are not UTF-8: "
            f"{err.object[err.start : err.end].encode(errors='surrogateescape')!r}",
            file=sys.stderr,
        )
        return 2
    except OverflowError as err:  # a duration beyond what a date or a sleep can hold
        print(f"cronwrap: a value is out of range: {err}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    main()
