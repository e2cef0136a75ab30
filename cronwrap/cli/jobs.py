"""What a job needs to be resumable and never silently dropped: `state` (its checkpoint
keys), `failed` (dead letters), `rerun` and `catch-up`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cronwrap.cli.common import (
    complete_jobs,
    environment,
    jobs_option,
    parse_now,
    state_paths,
)
from cronwrap.errors import CronwrapError, ExitCode, UsageError

# ------------------------------------------------------------------ state


def _state_dir(ctx: click.Context, name: str | None) -> Path:
    """The job's state dir: --name, else CRONWRAP_STATE_DIR (set inside a job), else
    CRONWRAP_NAME."""
    from cronwrap.config import validate_name
    from cronwrap.state.kv import job_state_path

    env = environment()
    job = name or (None if env.get("CRONWRAP_STATE_DIR") else env.get("CRONWRAP_NAME"))
    if job:
        return Path(job_state_path(state_paths(ctx).state_path, validate_name(job)))
    if env.get("CRONWRAP_STATE_DIR"):
        return Path(env["CRONWRAP_STATE_DIR"])
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
    from cronwrap.errors import StateError
    from cronwrap.state import kv

    kv.check_key(key)
    if value is None:  # read no more than the limit allows (`< /dev/zero` ends at once)
        data = sys.stdin.buffer.read(kv.MAX_VALUE_SIZE + 1)
        if len(data) > kv.MAX_VALUE_SIZE:
            raise StateError(
                f"value for state key {key!r} on stdin is over the limit, {kv.MAX_VALUE_SIZE} "
                "bytes (keep big data in a file in $CRONWRAP_STATE_DIR)"
            )
    else:
        data = value.encode("utf-8", "surrogateescape")
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
    from cronwrap.paths import is_absent
    from cronwrap.state.store import Store

    db = state_paths(ctx).db_path
    if is_absent(db):  # what the user cannot look at, opening says why (not Path.exists)
        raise JobNotFoundError(f"no runs recorded yet (no run store at {db})")
    return Store.open(db, recover=False) if write else Store.open_readonly(db)


def _find_run(store: Any, run_id: str) -> Any:
    from cronwrap.errors import JobNotFoundError

    record = store.find_run(run_id)
    if record is None:
        raise JobNotFoundError(f"no run {run_id!r} in the history (see cronwrap failed)")
    return record


@click.command("failed")
@jobs_option
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
        from cronwrap.errors import JobNotFoundError

        unknown = sorted(set(job_names) - set(store.job_names()))
        if unknown:  # "no dead letters" would read as "all resolved" for a mistyped name
            raise JobNotFoundError(f"no job {unknown[0]!r} in the run store (see cronwrap status)")
        records = []
        for job in job_names or (None,):
            records += store.dead_letters(job, resolved=include_resolved)
    records.sort(key=lambda r: r.started_at)
    if as_json:
        click.echo(json.dumps([dead_letter_json(r) for r in records], indent=2))
    else:
        click.echo(render_dead_letters(records, now, lines=lines), nl=False)


# ------------------------------------------------------------------ rerun, catch-up


def _run_again(
    ctx: click.Context, spec: Any, *, slot: Any, rerun_of: str | None, trigger: str
) -> int:
    """Run a stored spec through the same path as `cronwrap run` (same lock, same store)."""
    import os

    from cronwrap.argv import RunArgv
    from cronwrap.run import entry
    from cronwrap.run.context import RunOrigin

    env = environment()
    env.update(spec.env)  # the original run's CRONWRAP_* option values
    parsed = RunArgv()
    parsed.flags = dict(spec.flags)
    parsed.command = list(spec.command)
    config_path = (ctx.obj.get("config_path") if ctx.obj else None) or spec.config
    if config_path:  # named from where cronwrap was started, before entering the job's dir
        config_path = os.path.abspath(os.path.expanduser(str(config_path)))
    here = os.getcwd()
    if spec.cwd:
        try:
            os.chdir(spec.cwd)
        except OSError as err:
            click.echo(
                f"cronwrap: warning: cannot enter {spec.cwd} (the original run's directory):"
                f" {err.strerror}; running in {os.getcwd()}",
                err=True,
            )
    origin = RunOrigin(
        flags=parsed.flags,
        config_file=config_path,
        slot=slot,
        rerun_of=rerun_of,
        trigger=trigger,
        cwd=spec.cwd,
        needs_lock_url=any(d in ("--lock-url", "CRONWRAP_LOCK_URL") for d in spec.dropped),
    )
    try:
        return entry.execute(parsed, env, config_path=config_path, origin=origin)
    finally:
        os.chdir(here)  # `catch-up` runs several jobs: the next starts where cronwrap did


@click.command("rerun")
@click.argument("run_id", metavar="RUN")
@click.pass_context
def rerun_cmd(ctx: click.Context, run_id: str) -> None:
    """Run the command of run RUN again, with the same options, under the same lock.

    The new run gets CRONWRAP_SLOT of the original and CRONWRAP_RERUN_OF=RUN, is recorded
    as a new run linked to it, and resolves its dead letter when it succeeds. Secrets are
    read again from the config, the environment or their file: (they are never stored).
    Exits with the command's exit status, like `cronwrap run`.

    \b
    Example:
      cronwrap failed
      cronwrap rerun 3f2a9c1e
    """
    from cronwrap.run.context import load_spec

    with _open_store(ctx) as store:
        record = _find_run(store, run_id)
        spec = load_spec(
            store.run_spec(record.run_id), what=f"run {record.run_id[:8]} of {record.job}"
        )
    for what in spec.dropped:
        click.echo(
            f"cronwrap: warning: {what} of the original run held a secret and was not stored;"
            " it comes from the config or the environment now, if at all",
            err=True,
        )
    slot = record.slot or record.started_at
    ctx.exit(_run_again(ctx, spec, slot=slot, rerun_of=record.run_id, trigger="rerun"))


@click.command("catch-up")
@jobs_option
@click.option(
    "--grace",
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="A slot younger than this is left to cron (it may still be starting).",
)
@click.option(
    "--crontab",
    "crontab_files",
    multiple=True,
    metavar="FILE",
    help="Where the jobs are scheduled (repeatable; - for stdin; default: the user's crontab, "
    "and for root /etc/crontab and /etc/cron.d).",
)
@click.option(
    "--forget",
    "forget",
    multiple=True,
    metavar="NAME",
    help="Stop catching up this job (one taken out of the crontab); repeatable.",
    shell_complete=lambda c, p, i: complete_jobs(i),
)
@click.option("--dry-run", is_flag=True, help="Say what would run; run nothing.")
@click.option("--now", "now_text", hidden=True, help="Pretend it is this time (for tests).")
@click.pass_context
def catch_up_cmd(
    ctx: click.Context,
    job_names: tuple[str, ...],
    grace: str,
    crontab_files: tuple[str, ...],
    forget: tuple[str, ...],
    dry_run: bool,
    now_text: str | None,
) -> None:
    """Run once, now, every job with --catch-up whose most recent scheduled slot was missed.

    Like systemd's Persistent= and anacron: put it in an @reboot line and/or an hourly one.
    Each job runs with CRONWRAP_SLOT set to the missed slot, under its own lock; a slot is
    never caught up twice (in fleet mode, never twice across hosts), and not when it is
    older than the job's --catch-up-max-age. Silent when nothing was missed. Exits 0 when
    every job it ran succeeded, else 1.

    \b
    Example crontab lines:
      @reboot    cronwrap catch-up
      17 * * * * cronwrap catch-up
    """
    from datetime import timedelta

    from cronwrap.config import parse_duration
    from cronwrap.run.catchup import plan
    from cronwrap.run.context import load_spec, rfc3339

    try:
        grace_td = timedelta(seconds=parse_duration(grace))
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--grace") from None
    now = parse_now(now_text)
    if not state_paths(ctx).db_file.exists():
        return  # nothing recorded yet, so nothing was missed
    if forget:
        with _open_store(ctx, write=True) as store:
            for name in forget:
                if not store.forget_catch_up(name):
                    raise CronwrapError(f"job {name!r} is not caught up (see --dry-run)")
                click.echo(f"{name}: no longer caught up")
        return
    with _open_store(ctx) as store:
        verdicts = plan(store, now=now, grace=grace_td, only=job_names)
    scheduled = _scheduled_names(crontab_files) if any(v.due for v in verdicts) else None
    worst = 0
    for verdict in verdicts:
        if not verdict.due:
            if dry_run:
                click.echo(f"{verdict.job}: not run: {verdict.reason}")
            continue
        assert verdict.slot is not None
        slot = rfc3339(verdict.slot)
        if scheduled is not None and verdict.job not in scheduled:
            # known from the store only: it may have been taken out of the crontab, and a
            # catch-up must not bring a removed job back to life
            click.echo(
                f"cronwrap: {verdict.job}: missed slot {slot} not caught up: the job is in no"
                " crontab read (removed? `cronwrap catch-up --forget "
                f"{verdict.job}`; or name its crontab with --crontab)",
                err=True,
            )
            worst = 1
            continue
        if dry_run:
            click.echo(f"{verdict.job}: would run for slot {slot}: {verdict.reason}")
            continue
        try:
            spec = load_spec(verdict.spec, what=f"job {verdict.job}")
        except CronwrapError as err:
            click.echo(f"cronwrap: {verdict.job}: not caught up: {err}", err=True)
            worst = 1
            continue
        click.echo(f"cronwrap: {verdict.job}: catching up slot {slot} ({verdict.reason})", err=True)
        code = _run_again(ctx, spec, slot=verdict.slot, rerun_of=None, trigger="catch-up")
        worst = worst or (1 if code else 0)
    if worst:
        sys.exit(ExitCode.ERROR)


def _scheduled_names(files: tuple[str, ...]) -> set[str] | None:
    """Names of the `cronwrap run` jobs in the crontabs, or None when no crontab with a
    cronwrap line could be read (then every job in the store counts as scheduled)."""
    from cronwrap.cli.common import read_crontabs
    from cronwrap.views.status import crontab_jobs

    names = {j.name for j in crontab_jobs(read_crontabs(files)) if j.wrapped}
    return names or None
