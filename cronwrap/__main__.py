"""Entry point. `cronwrap run ...` takes a fast path that never imports click or rich;
everything else goes through the click group in cronwrap.cli.app."""

from __future__ import annotations

import os
import sys

_HELP = {"--help", "-h"}


def _wants_help(args: list[str]) -> bool:
    """True for `run [OPTIONS] --help`; `run -- cmd --help` is the command's own help."""
    from cronwrap.options import OPTIONS_BY_FLAG

    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _HELP:
            return True
        if arg == "--" or not arg.startswith("-"):
            return False
        opt = OPTIONS_BY_FLAG.get(arg)
        i += 2 if opt is not None and opt.kind != "flag" else 1
    return False


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


def main(argv: list[str] | None = None) -> None:
    _undo_locale_coercion()
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["run"] and not _wants_help(args[1:]):
        from cronwrap.run import entry as runcmd

        sys.exit(runcmd.main(args[1:], os.environ))
    if args[:1] == ["explain"] and not any(a in _HELP for a in args[1:]):
        from cronwrap.views import explain as explaincmd

        sys.exit(explaincmd.main(args[1:]))
    from cronwrap.cli.app import cli

    cli.main(args=args, prog_name="cronwrap")


if __name__ == "__main__":
    main()
