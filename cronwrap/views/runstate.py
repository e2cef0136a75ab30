"""The one model of what state a run is in, used by `status`, `history`, `logs` and their
--json: a stored row says `running` until its end is recorded, so whether it still runs, or
its cronwrap died (crashed), is decided here, against the host id the run recorded."""

from __future__ import annotations

import os
from enum import Enum

from cronwrap.paths import is_absent
from cronwrap.pids import pid_alive
from cronwrap.run.lock import is_locked
from cronwrap.state.records import RunRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime
    from pathlib import Path

    from cronwrap.config import Paths
    from cronwrap.state.store import Store

PROBLEMS = frozenset({"failed", "timeout", "crashed", "cancelled", "error"})


class RunState(str, Enum):
    """Each state a run can be in (the README lists them)."""

    RUNNING = "running"  # its cronwrap is alive (checked on this host; taken on trust elsewhere)
    SUCCESS = "success"
    FAILED = "failed"  # the command exited non-zero or died from a signal
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"  # cronwrap got SIGTERM/SIGINT/SIGHUP and stopped the job
    CRASHED = "crashed"  # cronwrap died (SIGKILL, power loss) before recording the end
    ERROR = "error"  # cronwrap could not start the command
    SKIPPED = "skipped"  # not started: the previous run still held the lock
    RAN_ELSEWHERE = "ran-elsewhere"  # not started here: another host ran this slot (fleet)
    NOT_RUN = "not-run"  # not started: the fleet lock was unavailable (--lock-unavailable skip)

    @property
    def is_problem(self) -> bool:
        return self._value_ in PROBLEMS  # not .value: an Enum's property, in Python

    @property
    def is_skip(self) -> bool:
        """The job was not started by this attempt."""
        return self in _SKIPS


_SKIPS = frozenset({RunState.SKIPPED, RunState.RAN_ELSEWHERE, RunState.NOT_RUN})
# a stored status's state, by dict (status reads thousands: the enum's own lookup is slower)
_BY_STATUS = {state.value: state for state in RunState}


class LocalHost:
    """What a status reader knows about this machine: the host ids its runs record (the node
    name, or --host-id / CRONWRAP_HOST_ID / the config's host_id) and its lock dir."""

    __slots__ = ("ids", "lock_dir")

    def __init__(self, lock_dir: str | Path, ids: frozenset[str] = frozenset()) -> None:
        self.lock_dir = lock_dir
        # what `run` records by default; gethostname(2) is this same uname field on Linux,
        # and not importing socket keeps `history` and `status` quicker to start
        self.ids = ids | {os.uname().nodename}

    def owns(self, run: RunRecord) -> bool:
        return str(run.host) in self.ids


class _Elsewhere(LocalHost):
    """A reader that is none of the hosts: every run is judged by its own host's records."""

    __slots__ = ()

    def owns(self, run: RunRecord) -> bool:
        return False


def remote_host() -> LocalHost:
    """How a fleet view judges runs: by their hosts' records, never by a local pid."""
    return _Elsewhere("/nonexistent")


def run_state(run: RunRecord, local: LocalHost) -> RunState:
    """The state of one stored run; a `running` row of this host is checked against its pid
    and lock, so a cronwrap killed mid-run reads `crashed` everywhere at once."""
    status = str(run.status)
    if status == "running":
        if local.owns(run) and not _alive(run, local.lock_dir):
            return RunState.CRASHED
        return RunState.RUNNING
    if status == "skipped":
        reason = str(run.reason or "")
        if reason.startswith("ran on "):
            return RunState.RAN_ELSEWHERE
        if reason.startswith("not run"):
            return RunState.NOT_RUN
        return RunState.SKIPPED
    # a status written by a newer cronwrap reads as an error: do not read it as fine
    return _BY_STATUS.get(status, RunState.ERROR)


def is_verified(run: RunRecord, local: LocalHost) -> bool:
    """False for another host's running run: this host cannot check its pid."""
    return str(run.status) != "running" or local.owns(run)


def result_text(run: RunRecord, state: RunState) -> str:
    """A run's result in a few words, as the tables show it."""
    if state is RunState.SUCCESS:
        return "ok"
    if state is RunState.FAILED:
        if run.signal:
            # here, not at the top: the process module's imports (signal, select) cost
            # every `status` start-up time, and only a run killed by a signal needs it
            from cronwrap.run.process import signal_name

            return f"failed ({signal_name(run.signal)})"
        return f"failed (exit {run.exit_code})"
    if state is RunState.RAN_ELSEWHERE:
        return f"skipped ({str(run.reason).split(' (slot')[0]})"
    if state is RunState.NOT_RUN:
        return "not run (lock unavailable)"
    return str(state.value)


def _alive(run: RunRecord, lock_dir: str | Path) -> bool:
    if not pid_alive(run.pid):
        return False
    lock = os.path.join(lock_dir, f"{run.job}.lock")
    return is_locked(lock) or is_runs_process(run.pid, run.started_at)


def is_runs_process(pid: int, started_at: datetime) -> bool:
    """A run with --on-overlap allow (or a fleet lease) has no local lock: its live pid must
    still be its cronwrap, not a process that reused the number. It is when the process
    began by the time the run was recorded (one that reused the pid began later, whatever
    its name: another cronwrap too), or, for a clock stepped forward since, when its command
    line names cronwrap."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        began = boot + ticks / os.sysconf("SC_CLK_TCK")
        if began <= started_at.timestamp() + 2:  # btime is whole seconds
            return True
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"cronwrap" in f.read()
    except (OSError, ValueError, IndexError, StopIteration):
        return False


def open_store_readonly(paths: Paths) -> Store | None:
    """The run store if it exists (status never creates one, nor needs write access)."""
    from cronwrap.state.store import Store

    # not lexists: a store this user cannot look at is one status cannot read (open_readonly
    # says why), not "no runs yet"; and a dangling symlink is a store run refuses
    if is_absent(paths.db_path):
        return None
    return Store.open_readonly(paths.db_path)


def configured_host_ids(paths: Paths, env: Mapping[str, str]) -> frozenset[str]:
    """The host ids `cronwrap run` records on this machine besides the node name:
    CRONWRAP_HOST_ID and the config file's host_id values (a broken config adds none; `run`
    and `config` report it)."""
    from cronwrap.config import load_config
    from cronwrap.errors import CronwrapError

    ids = {env["CRONWRAP_HOST_ID"]} if env.get("CRONWRAP_HOST_ID") else set()
    try:
        config = load_config(paths.config_path, strict=False)  # the part `run` uses too
    except CronwrapError:
        return frozenset(ids)
    for section in (config.defaults, *config.jobs.values()):
        if section.get("host_id"):
            ids.add(str(section["host_id"]))
    return frozenset(ids)


def local_host(paths: Paths, env: Mapping[str, str], host_ids: Iterable[str] = ()) -> LocalHost:
    """This machine, as `history`, `logs` and `status` judge runs against it."""
    return LocalHost(paths.lock_path, frozenset(host_ids) | configured_host_ids(paths, env))
