"""What the commands share: state paths, the --color option, crontab reading, job-name
completion, the Healthchecks zone check and the JSON shape of a run."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from cronwrap.views.report import hc_zones as hc_zones  # noqa: PLC0414
from cronwrap.views.report import open_fleet_store as open_fleet_store  # noqa: PLC0414
from cronwrap.views.report import read_crontabs as read_crontabs  # noqa: PLC0414

if TYPE_CHECKING:
    from cronwrap.options import Option

color_option = click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    help="Colour output (NO_COLOR and FORCE_COLOR are honoured in auto).",
)


def _complete_job_option(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
    return complete_jobs(incomplete)


jobs_option = click.option(
    "--job",
    "job_names",
    multiple=True,
    metavar="NAME",
    help="Only this job (repeatable).",
    shell_complete=_complete_job_option,
)


def environment() -> dict[str, str]:
    return dict(os.environ)


def state_paths(ctx: click.Context) -> Any:

    from cronwrap.config import resolve_paths

    config_path = ctx.obj.get("config_path") if ctx.obj else None
    return resolve_paths(environment(), config_file=config_path)


def parse_now(value: str | None) -> Any:
    from cronwrap.views.report import parse_instant

    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date-time", param_hint="--now"
        ) from None


def complete_path(incomplete: str, kind: str) -> list[Any]:
    """Let the shell complete a file name (kind "file") or a directory ("dir")."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type=kind)]


def complete_jobs(incomplete: str) -> list[Any]:
    """Shell completion of job names from the run store."""
    from click.shell_completion import CompletionItem

    try:
        from cronwrap.config import resolve_paths
        from cronwrap.views.runstate import open_store_readonly

        store = open_store_readonly(resolve_paths(environment()))
        if store is None:
            return []
        with store:
            names = store.job_names()
    except Exception:
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def default_text(opt: Option) -> str | None:
    """An option's default as a user writes it (10m, 10MiB, 0,24, 3), for --help and the man
    pages; None when it has none worth showing."""
    from cronwrap.views.humanize import duration, size

    value = opt.default
    if value is None or value is False or value == ():
        return None
    if opt.kind == "duration" and isinstance(value, int | float):
        return duration(float(value))
    if opt.kind == "size" and isinstance(value, int):
        return size(value)
    if isinstance(value, frozenset):  # exit codes
        return _codes(sorted(value))
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _codes(codes: list[int]) -> str:
    """[0, 24, 100, 101, 102] -> 0,24,100-102 (the form --ok-exit-codes takes)."""
    parts: list[str] = []
    i = 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        parts.append(str(codes[i]) if i == j else f"{codes[i]}-{codes[j]}")
        i = j + 1
    return ",".join(parts)


fleet_store_option = click.option(
    "--fleet-store",
    "fleet_store",
    metavar="URL",
    help="The shared PostgreSQL fleet store (postgresql://...; file:PATH reads the URL "
    "from a file): status, history and logs read every host's runs from it instead of this "
    "host's run store; flush ships this host's queued runs to it.  "
    "[env CRONWRAP_FLEET_STORE; config fleet_store]",
)
host_option = click.option("--host", "host", metavar="NAME", help="Only runs of this host.")


def fleet_store_url(ctx: click.Context, flag: str | None) -> str | None:
    """--fleet-store, else CRONWRAP_FLEET_STORE, else `fleet_store` in the config defaults."""
    from cronwrap.views.report import fleet_store_url

    return fleet_store_url(state_paths(ctx), flag)
