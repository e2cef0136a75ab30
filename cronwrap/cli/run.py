"""`cronwrap run` as a click command, for help, man pages and completion; the arguments
are parsed by the one run parser (cronwrap.argv), as on the fast path."""

from __future__ import annotations

from typing import Any

import click

from cronwrap.cli.common import complete_jobs, complete_path, default_text, environment
from cronwrap.options import RUN_OPTIONS, Option


def _click_option(opt: Option) -> Any:
    kwargs: dict[str, Any] = {"help": opt.help + f"  [env {opt.env}]", "default": None}
    if opt.kind == "flag":
        kwargs.update(is_flag=True, default=None)
    elif opt.kind == "list":
        kwargs.update(multiple=True, metavar=opt.metavar, default=())
    elif opt.kind == "choice":
        kwargs.update(type=click.Choice(opt.choices), metavar=opt.metavar or None)
    else:
        kwargs.update(metavar=opt.metavar or None)
    default = default_text(opt)
    if default is not None:
        kwargs["help"] += f"  [default: {default}]"
    if opt.name == "name":
        kwargs["shell_complete"] = lambda c, p, i: complete_jobs(i)
    elif opt.metavar in _PATH_COMPLETION:
        kind = _PATH_COMPLETION[opt.metavar]
        kwargs["shell_complete"] = lambda c, p, i: complete_path(i, kind)
    return click.option(opt.flag, opt.name, **kwargs)


# options whose values the shell should complete as paths, by what they name
_PATH_COMPLETION = {"DIR": "dir", "PATH": "file", "FILE": "file"}


class _RunCommand(click.Command):
    """`run` parses its arguments with the one run parser (cronwrap.argv), as the fast
    path does; click's parser serves only --help and shell completion."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from cronwrap.argv import parse_run_argv

        if ctx.resilient_parsing or parse_run_argv(args, strict=False).help:
            return super().parse_args(ctx, args)
        ctx.meta["cronwrap.run_args"] = list(args)
        return []

    def invoke(self, ctx: click.Context) -> Any:
        from cronwrap.run import entry

        config_path = ctx.obj.get("config_path") if ctx.obj else None
        args = ctx.meta.get("cronwrap.run_args", [])
        ctx.exit(entry.main(args, environment(), config_path=config_path))


def _run_command() -> click.Command:
    def run(**_: Any) -> None:
        """Run COMMAND under supervision.

        Takes the overlap lock, enforces the timeout, retries retryable failures, logs
        every start, attempt and end as JSON lines, records the run in the history, and
        exits with the command's own exit status (124 timeout, 125 cronwrap's own error,
        126 cannot execute, 127 not found, 128+N killed by signal N).

        \b
        Example:
          cronwrap run --name backup --timeout 2h --retries 2 -- /usr/local/bin/backup
        """

    params: list[click.Parameter] = [
        click.Argument(
            ["command"],
            nargs=-1,
            required=True,
            type=click.UNPROCESSED,
            shell_complete=lambda c, p, i: complete_path(i, "file"),
        )
    ]
    command = _RunCommand(
        "run",
        callback=run,
        params=params,
        help=run.__doc__,
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": False},
    )
    for opt in RUN_OPTIONS:
        _click_option(opt)(command)
    return command


run_cmd = _run_command()
