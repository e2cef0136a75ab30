"""The click group: global options, the ONE place that turns a CronwrapError into a line on
stderr and its exit code, and the commands (one module per group). Core modules are imported
inside the commands so `import cronwrap.cli.app` stays light."""

from __future__ import annotations

from typing import Any

import click

from cronwrap import __version__
from cronwrap.cli import admin, crontab, explain, hc, jobs, run, status
from cronwrap.errors import CronwrapError


class CronwrapGroup(click.Group):
    """Turns CronwrapError into one line on stderr and its exit code, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CronwrapError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"cronwrap: {err}", err=True)
            caret = getattr(err, "caret", None)
            if callable(caret) and caret():
                click.echo(caret(), err=True)
            ctx.exit(err.exit_code)


@click.group(cls=CronwrapGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cronwrap")
@click.option(
    "--debug",
    is_flag=True,
    envvar="CRONWRAP_DEBUG",
    help="Show tracebacks for errors (also CRONWRAP_DEBUG=1).",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    type=click.Path(),  # no checks here (the config loader reports); the shell completes files
    envvar="CRONWRAP_CONFIG",
    help="Config file (default: see `cronwrap config`; also CRONWRAP_CONFIG).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, config_path: str | None) -> None:
    """Supervise cron jobs: overlap locks, timeouts, retries, logs, history and pings.

    \b
    Example crontab line:
      */15 * * * *  cronwrap run --name sync --timeout 10m -- /usr/local/bin/sync.sh
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["config_path"] = config_path


for _command in (
    run.run_cmd,
    admin.config_cmd,
    explain.explain_cmd,
    admin.flush_cmd,
    crontab.lint_cmd,
    status.status_cmd,
    status.history_cmd,
    status.logs_cmd,
    jobs.failed_cmd,
    jobs.rerun_cmd,
    jobs.catch_up_cmd,
    jobs.state_group,
    status.forget_cmd,
    crontab.wrap_cmd,
    hc.hc_group,
    admin.metrics_group,
    admin.man_cmd,
    admin.completion_cmd,
):
    cli.add_command(_command)
