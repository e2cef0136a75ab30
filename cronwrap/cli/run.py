"""`cronwrap run` as a click command (for help, man pages and `cronwrap --config F run`);
the fast path in cronwrap.run.entry runs it without click."""

from __future__ import annotations

from typing import Any

import click

from cronwrap.cli.common import complete_jobs, environment
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
    if opt.default not in (None, (), False):
        kwargs["help"] += f"  [default: {_show_default(opt)}]"
    if opt.name == "name":
        kwargs["shell_complete"] = lambda c, p, i: complete_jobs(i)
    return click.option(opt.flag, opt.name, **kwargs)


def _show_default(opt: Option) -> str:
    from cronwrap.config import format_duration

    if opt.kind == "duration":
        return format_duration(float(opt.default))  # type: ignore[arg-type]
    if opt.kind == "size":
        return f"{int(opt.default) // (1024 * 1024)}M"  # type: ignore[call-overload]
    return str(opt.default)


def _run_command() -> click.Command:
    @click.command(
        "run",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": False},
    )
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    @click.pass_context
    def run(ctx: click.Context, /, command: tuple[str, ...], **flags: Any) -> None:
        """Run COMMAND under supervision.

        Takes the overlap lock, enforces the timeout, retries retryable failures, logs
        every start, attempt and end as JSON lines, records the run in the history, and
        exits with the command's own exit status (124 timeout, 125 cronwrap's own error,
        126 cannot execute, 127 not found, 128+N killed by signal N).

        \b
        Example:
          cronwrap run --name backup --timeout 2h --retries 2 -- /usr/local/bin/backup
        """
        from cronwrap.run import entry as runcmd

        config_path = ctx.obj.get("config_path") if ctx.obj else None
        ctx.exit(runcmd.execute(flags, list(command), environment(), config_path=config_path))

    for opt in RUN_OPTIONS:
        run = _click_option(opt)(run)
    return run


run_cmd = _run_command()
