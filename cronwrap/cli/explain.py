"""`cronwrap explain` (the fast path in cronwrap.views.explain skips click)."""

from __future__ import annotations

import sys

import click

from cronwrap.cli.common import color_option


@click.command("explain")
@click.argument("expression", nargs=-1, required=True)
@click.option("--tz", metavar="ZONE", help="Time zone for next runs (default: the system zone).")
@click.option(
    "--count",
    default=5,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="How many next run times to show.",
)
@click.option(
    "--after",
    metavar="DATETIME",
    help="Start from this moment (ISO 8601; without an offset it is in --tz).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead.")
@color_option
def explain_cmd(
    expression: tuple[str, ...],
    tz: str | None,
    count: int,
    after: str | None,
    as_json: bool,
    color: str,
) -> None:
    """Explain a cron EXPRESSION (or a whole crontab line) exactly as cron runs it.

    Prints the meaning in plain words (including the day-of-month / day-of-week OR rule and
    its star exception), the fields, the next run times with UTC beside them, what the next
    12 months of DST changes do to the schedule, and pitfalls. Exits 1 for an invalid
    expression or one that can never run.

    \b
    Example:
      cronwrap explain "0 0 15 * 5" --tz Europe/Berlin --count 3
      cronwrap explain "*/15 * * * * /usr/local/bin/sync.sh"
    """
    from cronwrap.errors import UsageError
    from cronwrap.views.explain import explain_main

    try:
        explain_main(
            " ".join(expression),
            tz=tz,
            count=count,
            after=after,
            as_json=as_json,
            color=color,
            out=sys.stdout,
        )
    except UsageError as err:
        raise click.UsageError(str(err)) from None
