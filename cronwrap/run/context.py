"""The job context: the scheduled slot a run belongs to, the CRONWRAP_* variables that tell
the child which attempt, slot, last success, state dir and deadline it runs under, and the
spec (argv, flags, config path) stored so `rerun` and `catch-up` can run the job again.
Never imports click; json and the cron parser only when they are needed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from cronwrap.errors import CronwrapError
from cronwrap.options import RUN_OPTIONS
from cronwrap.stdlib import datetime, timedelta, timezone

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from typing import Any

    from cronwrap.options import Job
    from cronwrap.redact import Redactor
    from cronwrap.run.reporting import Run

SPEC_VERSION = 1
# set by cronwrap for the child; inherited values (a cronwrap inside a job) are dropped first
CONTEXT_VARS = (
    "CRONWRAP_ATTEMPT",
    "CRONWRAP_ATTEMPTS_MAX",
    "CRONWRAP_SLOT",
    "CRONWRAP_LAST_SUCCESS_AT",
    "CRONWRAP_LAST_SUCCESS_SLOT",
    "CRONWRAP_STATE_DIR",
    "CRONWRAP_RERUN_OF",
    "CRONWRAP_DEADLINE",
)


class RunOrigin:
    """How this run came about: the raw flags and config file (for the spec), and for a
    rerun or catch-up the slot it belongs to and the run it repeats."""

    __slots__ = ("config_file", "cwd", "flags", "needs_lock_url", "rerun_of", "slot", "trigger")

    def __init__(
        self,
        *,
        flags: Mapping[str, Any] | None = None,
        config_file: str | None = None,
        slot: datetime | None = None,
        rerun_of: str | None = None,
        trigger: str = "cron",
        cwd: str | None = None,
        needs_lock_url: bool = False,
    ) -> None:
        self.flags = flags or {}
        self.config_file = config_file
        self.slot = slot  # given: a rerun's or a catch-up's slot; else computed at start
        self.rerun_of = rerun_of
        self.trigger = trigger  # cron | rerun | catch-up
        self.cwd = cwd
        # the original ran in fleet mode but its --lock-url (with a password) was not
        # stored: without one now, a rerun or catch-up could run twice across hosts
        self.needs_lock_url = needs_lock_url


def rfc3339(at: datetime) -> str:
    """UTC, seconds precision, with a Z: `2026-12-01T03:00:00Z`."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_slot(schedule: str | None, tz: str | None, at: datetime) -> datetime:
    """The slot a run started at `at` belongs to: the latest fire time of `schedule` at or
    before `at` (a run cron started at 03:00 that began at 03:00:00.4 is the 03:00 run); with
    no schedule (or @reboot), the minute it started, since cron fires on minute boundaries.
    Raises ScheduleError for a schedule cron would reject."""
    if schedule:
        from cronwrap.cron.schedule import parse, zone

        runs = parse(schedule).prev_runs(at + timedelta(microseconds=1), zone(tz), 1)
        if runs:
            return runs[0].astimezone(timezone.utc)
    return at.astimezone(timezone.utc).replace(second=0, microsecond=0)


def context_env(
    job: Job,
    env: Mapping[str, str],
    *,
    slot: datetime,
    last_success: tuple[datetime | None, datetime | None],
    state_dir: str | None,
    rerun_of: str | None,
) -> dict[str, str]:
    """The child's environment with the run's context (per-attempt values are added by
    attempt_env)."""
    out = {k: v for k, v in env.items() if k not in CONTEXT_VARS}
    out["CRONWRAP_ATTEMPTS_MAX"] = str(job.retries + 1)
    out["CRONWRAP_SLOT"] = rfc3339(slot)
    ok_at, ok_slot = last_success
    if ok_at is not None:
        out["CRONWRAP_LAST_SUCCESS_AT"] = rfc3339(ok_at)
    if ok_slot is not None:
        out["CRONWRAP_LAST_SUCCESS_SLOT"] = rfc3339(ok_slot)
    if state_dir is not None:
        out["CRONWRAP_STATE_DIR"] = state_dir
    if rerun_of is not None:
        out["CRONWRAP_RERUN_OF"] = rerun_of
    return out


def attempt_env(env: Mapping[str, str], attempt: int, deadline: float | None) -> dict[str, str]:
    """`env` for one attempt: its number and, with a timeout, the Unix time (whole seconds,
    rounded down) at which SIGTERM will come."""
    out = dict(env)
    out["CRONWRAP_ATTEMPT"] = str(attempt)
    if deadline is not None:
        out["CRONWRAP_DEADLINE"] = str(int(deadline))
    else:
        out.pop("CRONWRAP_DEADLINE", None)
    return out


# ------------------------------------------------------------------ in the run's phases


def begin(run: Run, origin: RunOrigin | None, env: Mapping[str, str], invoked_at: datetime) -> None:
    """Before the lock: how the run came about, the slot it belongs to, and its spec."""
    from cronwrap.run.reporting import guard  # (reporting imports this module)

    if origin is not None:
        run.origin = origin
    run.invoked_at = invoked_at
    run.slot = slot_of(run, invoked_at)
    run.spec = guard(run, "the command is not stored for rerun", spec_of, run, env)


def slot_of(run: Run, invoked_at: datetime) -> datetime:
    """The slot this run belongs to: a rerun's or catch-up's own, else from --schedule and
    the time cron started us (a bad schedule: the start minute, and a warning)."""
    if run.origin.slot is not None:
        return run.origin.slot
    try:
        return scheduled_slot(run.job.schedule, run.job.tz, invoked_at)
    except CronwrapError as err:  # a schedule or zone cron would reject
        run.warn(f"CRONWRAP_SLOT is the start minute: {err}")
        return scheduled_slot(None, None, invoked_at)


def check_origin(job: Job, origin: RunOrigin) -> None:
    """A rerun or catch-up of a fleet run must take the fleet lock too (before anything)."""
    if origin.needs_lock_url and not job.lock_url:
        raise CronwrapError(
            f"{job.name}: the original run was in fleet mode and its --lock-url (it holds a"
            " password) is not stored; put it in the config, CRONWRAP_LOCK_URL or a file:"
            " so this run takes the same fleet lock"
        )


def spec_of(run: Run, env: Mapping[str, str]) -> str:
    spec, _ = job_spec(run.job, run.origin, env, run.redact)
    return spec


def slot_already_ran(run: Run) -> str | None:
    """A catch-up whose slot ran meanwhile (another catch-up, cron itself) is skipped: checked
    under the job's lock, so two catch-ups at once never both run it."""
    if run.origin.trigger != "catch-up" or run.slot is None:
        return None
    slot = run.slot
    if run.query("the catch-up check", lambda s: s.has_run_for_slot(run.job.name, slot)):
        return f"slot {slot.isoformat()} already ran"
    return None


class ContextReporter:
    """First of the reporters: at the start (under the lock, before the first attempt) it
    gives the child its context; nothing to report after that."""

    name = "cannot give the job its context"

    def start(self, run: Run) -> None:
        add_to_env(run)

    def attempt(self, run: Run, attempt: object) -> None:
        pass

    def end(self, run: Run, outcome: object) -> None:
        pass


def add_to_env(run: Run) -> None:
    """CRONWRAP_SLOT, _ATTEMPTS_MAX, _LAST_SUCCESS_*, _STATE_DIR and _RERUN_OF for the child."""
    from cronwrap.run.reporting import guard  # (reporting imports this module)
    from cronwrap.state.kv import ensure_state_dir, job_state_path

    job = run.job
    assert run.slot is not None  # set before the lock
    record = run.query("the last success", lambda s: s.job(job.name))
    last = (record.last_success_at, record.last_success_slot) if record else (None, None)
    state_dir = guard(
        run,
        "CRONWRAP_STATE_DIR is not set",
        ensure_state_dir,
        job_state_path(run.paths.state_path, job.name),
    )
    run.child_env = context_env(
        job,
        run.child_env,
        slot=run.slot,
        last_success=last,
        state_dir=str(state_dir) if state_dir is not None else None,
        rerun_of=run.origin.rerun_of,
    )


# ------------------------------------------------------------------ the spec


def job_spec(
    job: Job,
    origin: RunOrigin,
    env: Mapping[str, str],
    redact: Redactor,
) -> tuple[str, list[str]]:
    """What `rerun` and `catch-up` need to run the job again, as JSON, and the options left
    out of it. Secrets are never stored in clear: a secret given as `file:PATH` is stored as
    that reference, one given in clear is left out (the config or the environment at rerun
    time supplies it again); a command or value the redactor would mask is left out too."""

    dropped: list[str] = []

    def is_clear(value: str) -> bool:
        return redact.text(value) == value

    def storable(secret: bool, value: str, what: str) -> bool:
        if secret:  # only a reference to the secret, or an address without one
            return value.startswith("file:") or _is_plain_lock_url(what, value)
        return is_clear(value)

    def clean(secret: bool, raw: Any, what: str) -> Any:
        """`raw` without what must not be stored (None or [] if nothing is left)."""
        values = raw if isinstance(raw, tuple | list) else (raw,)
        kept = [v for v in values if not isinstance(v, str) or storable(secret, v, what)]
        if len(kept) < len(values):
            dropped.append(what)
        if isinstance(raw, tuple | list):
            return kept
        return kept[0] if kept else None

    flags: dict[str, Any] = {}
    saved_env: dict[str, str] = {}
    for opt in RUN_OPTIONS:
        raw = origin.flags.get(opt.name)
        if raw is not None and raw != () and raw is not False:
            value = clean(opt.secret, raw, opt.flag)
            if value not in (None, []):
                flags[opt.name] = value
        elif opt.env in env:
            value = clean(opt.secret, env[opt.env], opt.env)
            if value is not None:
                saved_env[opt.env] = value
    if "name" not in flags:
        flags["name"] = job.name  # a derived name is derived again from the same argv anyway
    command: list[str] | None = list(job.command)
    # word by word, and as one line: `-u USER:PASSWORD` is a secret only beside its option
    if not all(is_clear(arg) for arg in job.command) or not is_clear(" ".join(job.command)):
        command = None
        dropped.append("the command")
    spec = {
        "v": SPEC_VERSION,
        "command": command,
        "flags": flags,
        "env": saved_env,
        "config": origin.config_file,
        "cwd": origin.cwd if origin.cwd is not None else _cwd(),
        "dropped": dropped,
    }
    return _json(spec), dropped


def _is_plain_lock_url(what: str, value: str) -> bool:
    """A --lock-url without a password is an address, not a secret: it is stored, so a
    rerun or catch-up takes the same fleet lock."""
    if what not in ("--lock-url", "CRONWRAP_LOCK_URL"):
        return False
    from urllib.parse import urlsplit

    try:
        return urlsplit(value).password is None
    except ValueError:
        return False


def _json(value: object) -> str:
    """JSON for the spec's plain values, without the json module (its import costs every
    run start-up time; `load_spec`, outside the run path, reads it with json)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        out = []
        for ch in value:
            code = ord(ch)
            if ch in '"\\':
                out.append("\\" + ch)
            elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
                out.append(f"\\u{code:04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ", ".join(f"{_json(str(k))}: {_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_json(v) for v in value) + "]"
    return _json(str(value))


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


class Spec:
    """A stored spec, read back: argv, raw flags and CRONWRAP_* values, config, cwd."""

    __slots__ = ("command", "config", "cwd", "dropped", "env", "flags")

    def __init__(
        self,
        command: Sequence[str],
        flags: Mapping[str, Any],
        env: Mapping[str, str],
        config: str | None,
        cwd: str | None,
        dropped: Sequence[str],
    ) -> None:
        self.command = list(command)
        self.flags = dict(flags)
        self.env = dict(env)
        self.config = config
        self.cwd = cwd
        self.dropped = list(dropped)


def load_spec(text: str | None, *, what: str) -> Spec:
    """Parse a stored spec; CronwrapError says why the run cannot be run again."""
    import json

    if not text:
        raise CronwrapError(
            f"{what} has no stored command (it was recorded by an older cronwrap): "
            "run the job once with this version first"
        )
    try:
        data = json.loads(text)
    except ValueError:
        raise CronwrapError(f"{what}: the stored command is corrupt") from None
    if not isinstance(data, dict) or data.get("v") != SPEC_VERSION:
        raise CronwrapError(f"{what}: the stored command has an unknown format")
    if not data.get("command"):
        raise CronwrapError(
            f"{what}: its command holds a secret, so it was not stored; "
            "run it again by hand (or keep the secret in a file or the environment)"
        )
    flags = {
        k: tuple(v) if isinstance(v, list) else v for k, v in (data.get("flags") or {}).items()
    }
    return Spec(
        data["command"],
        flags,
        data.get("env") or {},
        data.get("config"),
        data.get("cwd"),
        data.get("dropped") or [],
    )
