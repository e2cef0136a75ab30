"""A run's captured output for `cronwrap logs`: which run, its bytes, and following it while
it is still running."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cronwrap.errors import CronwrapError, JobNotFoundError

if TYPE_CHECKING:
    from cronwrap.state.records import RunRecord
    from cronwrap.state.store import Store
    from cronwrap.views.runstate import LocalHost

POLL_S = 0.2


def find_run(store: Store, name: str, run_id: str | None, *, host: str | None = None) -> RunRecord:
    """job name's newest run with captured output (on `host`, if given), or the one whose id
    starts with run_id."""
    recorded = store.runs(name, limit=500, host=host)
    on = f" on host {host!r}" if host else ""
    if not recorded and not run_id:
        raise JobNotFoundError(f"no runs recorded for job {name!r}{on} (see cronwrap status)")
    runs = [r for r in recorded if r.log_path]
    if run_id:
        runs = [r for r in runs if r.run_id.startswith(run_id)]
    if not runs:
        raise JobNotFoundError(
            f"no captured output for job {name!r}{on}" + (f" run {run_id!r}" if run_id else "")
        )
    return runs[0]


def read_output(path: str, pos: int = 0) -> bytes:
    """The output file's bytes from pos; CronwrapError when it is gone."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            return f.read()
    except OSError as err:
        raise CronwrapError(f"cannot read {path}: {err.strerror} (pruned?)") from None


def copy_output(
    store: Store, run: RunRecord, out: BinaryIO, *, follow: bool, local: LocalHost | None = None
) -> None:
    """Write run's output to out; with follow, keep writing until the run has ended (by
    views.runstate: a crashed run has ended although its row still says running) and
    everything it wrote is out."""
    from cronwrap.views.runstate import LocalHost, RunState, run_state

    local = local or LocalHost(Path("/nonexistent"))
    assert run.log_path is not None
    pos = 0
    while True:
        chunk = read_output(run.log_path, pos)
        out.write(chunk)
        out.flush()
        pos += len(chunk)
        if not follow:
            return
        current = store.run(run.run_id)
        if current is None or run_state(current, local) is not RunState.RUNNING:
            if not chunk:
                return
            continue
        time.sleep(POLL_S)
