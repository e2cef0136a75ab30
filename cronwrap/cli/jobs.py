"""What a job needs to be resumable and never silently dropped: `state` (its checkpoint
keys), `failed` (dead letters), `rerun` and `catch-up`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cronwrap.cli.common import complete_jobs, environment, state_paths
from cronwrap.errors import CronwrapError, ExitCode, UsageError

# ------------------------------------------------------------------ state


def _state_dir(ctx: click.Context, name: str | None) -> Path:
    """The job's state dir: --name, else CRONWRAP_STATE_DIR (set inside a job), else
    CRONWRAP_NAME."""
    from cronwrap.config import validate_name
    from cronwrap.state.kv import job_state_dir

    env = environment()
    if name:
        return job_state_dir(state_paths(ctx).state_dir, validate_name(name))
    if env.get("CRONWRAP_STATE_DIR"):
        return Path(env["CRONWRAP_STATE_DIR"])
    if env.get("CRONWRAP_NAME"):
        return job_state_dir(state_paths(ctx).state_dir, validate_name(env["CRONWRAP_NAME"]))
    raise UsageError(
        "which job? pass --name NAME (inside `cronwrap run`, CRONWRAP_STATE_DIR says it)"
    )


_name_option = click.option(
    "--name",
    metavar="NAME",
    help="The job (default: the one this runs inside, from CRONWRAP_STATE_DIR; "
    "else CRONWRAP_NAME).",
    shell_complete=lambda c, p, i: complete_jobs(i),
)


@click.group("state")
def state_group() -> None:
    """Small key/values a job keeps across runs, for checkpoints and cursors.

    Each key is a file in the job's state dir ($CRONWRAP_STATE_DIR), written atomically
    (temporary file, fsync, rename, fsync of the directory), so a crash leaves the old
    value or the new one, never half of one. Keys: letters, digits and . _ - (up to 100).

    \b
    Example (in a job's script):
      cursor=$(cronwrap state get cursor --default 0)
      cronwrap state set cursor "$next"
    """


@state_group.command("get")
@click.argument("key")
@click.option("--default", "default", metavar="VALUE", help="Print this if KEY is not set.")
@_name_option
@click.pass_context
def state_get_cmd(ctx: click.Context, key: str, default: str | None, name: str | None) -> None:
    """Print the value of KEY (and a newline). Exits 1 if KEY is not set (unless --default).

    \b
    Example:
      cursor=$(cronwrap state get cursor --default 0)
    """
    from cronwrap.state import kv

    value = kv.get(_state_dir(ctx, name), key)
    if value is None:
        if default is None:
            click.echo(f"cronwrap: state key {key!r} is not set", err=True)
            sys.exit(ExitCode.ERROR)
        value = default.encode()
    sys.stdout.buffer.write(value + b"\n")
    sys.stdout.flush()


@state_group.command("set")
@click.argument("key")
@click.argument("value", required=False)
@_name_option
@click.pass_context
def state_set_cmd(ctx: click.Context, key: str, value: str | None, name: str | None) -> None:
    """Set KEY to VALUE (read from stdin when VALUE is not given), atomically.

    \b
    Example:
      cronwrap state set cursor 1042
      jq -c .last < page.json | cronwrap state set last-page
    """
    from cronwrap.state import kv

    kv.check_key(key)
    data = sys.stdin.buffer.read() if value is None else value.encode("utf-8", "surrogateescape")
    kv.put(kv.ensure_state_dir(_state_dir(ctx, name)), key, data)


@state_group.command("del")
@click.argument("key")
@_name_option
@click.pass_context
def state_del_cmd(ctx: click.Context, key: str, name: str | None) -> None:
    """Remove KEY (exits 0 if it was not set either).

    \b
    Example:
      cronwrap state del cursor
    """
    from cronwrap.state import kv

    kv.delete(_state_dir(ctx, name), key)


@state_group.command("list")
@_name_option
@click.pass_context
def state_list_cmd(ctx: click.Context, name: str | None) -> None:
    """Print the job's keys, one a line.

    \b
    Example:
      cronwrap state list --name sync
    """
    from cronwrap.state import kv

    for key in kv.keys(_state_dir(ctx, name)):
        click.echo(key)


# ------------------------------------------------------------------ failed


def _open_store(ctx: click.Context, *, write: bool = False) -> Any:
    from cronwrap.errors import JobNotFoundError
    from cronwrap.state.store import Store

    db = state_paths(ctx).db_file
    if not db.exists():
        raise JobNotFoundError(f"no runs recorded yet (no run store at {db})")
    return Store.open(db) if write else Store.open_readonly(db)


def _find_run(store: Any, run_id: str) -> Any:
    from cronwrap.errors import JobNotFoundError

    record = store.find_run(run_id)
    if record is None:
        raise JobNotFoundError(f"no run {run_id!r} in the history (see cronwrap failed)")
    return record


@click.command("failed")
@click.option(
    "--job",
    "job_names",
    multiple=True,
    metavar="NAME",
    help="Only this job (repeatable).",
    shell_complete=lambda c, p, i: complete_jobs(i),
)
@click.option("--all", "include_resolved", is_flag=True, help="Also list resolved ones.")
@click.option(
    "--resolve",
    "resolve_ids",
    multiple=True,
    metavar="RUN",
    help="Acknowledge this dead letter (run id or its first characters; repeatable).",
)
@click.option(
    "--lines",
    default=5,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="Lines of each run's output tail to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def failed_cmd(
    ctx: click.Context,
    job_names: tuple[str, ...],
    include_resolved: bool,
    resolve_ids: tuple[str, ...],
    lines: int,
    as_json: bool,
) -> None:
    """List dead letters: runs that failed after their retries, timed out, crashed or were
    cancelled, until they are resolved.

    A dead letter is never pruned. It is resolved by a successful `cronwrap rerun RUN`, by
    `--resolve RUN`, or (with --resolve-on-success on the job) by the job's next success.

    \b
    Example:
      cronwrap failed
      cronwrap failed --resolve 3f2a9c1e
    """
    from datetime import datetime, timezone

    from cronwrap.views.failed import dead_letter_json, render_dead_letters

    now = datetime.now(timezone.utc)
    with _open_store(ctx, write=bool(resolve_ids)) as store:
        if resolve_ids:
            for run_id in resolve_ids:
                record = _find_run(store, run_id)
                if not store.resolve(record.run_id, by="manual", at=now):
                    raise CronwrapError(
                        f"run {record.run_id[:8]} of {record.job} is not an open dead letter"
                    )
                click.echo(f"resolved {record.run_id} ({record.job})")
            return
        records = []
        for job in job_names or (None,):
            records += store.dead_letters(job, resolved=include_resolved)
    records.sort(key=lambda r: r.started_at)
    if as_json:
        click.echo(json.dumps([dead_letter_json(r) for r in records], indent=2))
    else:
        click.echo(render_dead_letters(records, now, lines=lines), nl=False)
