"""Dead letters for people: one block per failed run (what, where, which slot, how it ended,
the last lines it printed) and their JSON shape. Standard library only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cronwrap.run.process import signal_name
from cronwrap.views.humanize import printable, relative

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cronwrap.state.records import RunRecord


def _utc(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ") if at is not None else "-"


def dead_letter_json(r: RunRecord) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "job": r.job,
        "host": r.host,
        "slot": r.slot.isoformat() if r.slot else None,
        "started_at": r.started_at.isoformat() if r.started_at else None,
        "ended_at": r.ended_at.isoformat() if r.ended_at else None,
        "status": r.status,
        "attempts": r.attempts,
        "exit_code": r.exit_code,
        "signal": r.signal,
        "reason": r.reason,
        "output_tail": r.output_tail,
        "resolved": not r.dead,
        "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None,
        "resolved_by": r.resolved_by,
        "log_path": r.log_path,
    }


def render_dead_letters(records: Sequence[RunRecord], now: datetime, *, lines: int = 5) -> str:
    """Each dead letter as a few lines; `lines` lines of its output tail. What the run stored
    (names, host id, reason, output) is made printable: it goes to a terminal."""
    if not records:
        return "no dead letters: every failed run is resolved\n"
    out: list[str] = []
    for r in records:
        exit_text = f"exit {r.exit_code}" if r.exit_code is not None else "no exit code"
        if r.signal:
            exit_text += f" ({signal_name(r.signal)})"
        attempts = f"{r.attempts} attempt{'s' if r.attempts != 1 else ''}"
        when = relative(r.started_at, now) if r.started_at else "-"
        out.append(
            f"{printable(r.run_id[:8])}  {printable(r.job)}  on {printable(r.host)}  "
            f"slot {_utc(r.slot)}  "
            f"{r.status} after {attempts}, {exit_text}  (started {when})"
        )
        if r.reason:
            out.append(f"  reason: {printable(r.reason)}")
        if not r.dead:
            by = f" by {printable(r.resolved_by[:8])}" if r.resolved_by else ""
            out.append(f"  resolved {_utc(r.resolved_at)}{by}")
        tail = printable(r.output_tail or "", multiline=True).rstrip("\n").splitlines()
        tail = tail[-lines:] if lines else []
        out.extend(f"  | {line}" for line in tail)
        out.append("")
    open_ = sum(1 for r in records if r.dead)
    out.append(
        f"{open_} dead letter{'s' if open_ != 1 else ''}: "
        "cronwrap rerun RUN runs one again, cronwrap failed --resolve RUN acknowledges it"
    )
    return "\n".join(out) + "\n"
