"""The `--json` documents of `status`, `history` and `logs`: one function per record, so
each shape is written once (the README documents them; keep them stable)."""

from __future__ import annotations

import math
from datetime import datetime

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from cronwrap.state.records import AttemptRecord, RunRecord
    from cronwrap.views.runstate import RunState
    from cronwrap.views.status import JobStatus


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def run_json(r: RunRecord, state: RunState | None = None) -> dict[str, Any]:
    """A run as JSON; `state` is its views.runstate.RunState (`status` is the stored row's)."""
    return {
        "run_id": r.run_id,
        "job": r.job,
        "host": r.host,
        "pid": r.pid,
        "started_at": _iso(r.started_at),
        "ended_at": _iso(r.ended_at),
        "status": r.status,
        "state": state.value if state is not None else None,
        "exit_code": r.exit_code,
        "signal": r.signal,
        "attempts": r.attempts,
        "duration_s": r.duration_s,
        "reason": r.reason,
        "exit_origin": r.exit_origin,
        "flags": r.flags,
        "warnings": r.warnings.splitlines() if r.warnings else [],
        "log_path": r.log_path,
    }


def status_json(j: JobStatus) -> dict[str, Any]:
    """One job of `status --json`."""
    current = run_json(j.current, j.run_state) if j.current else None
    same = j.current is not None and j.current is j.last and j.run_state is j.last_state
    return {
        "name": j.name,
        "host": j.host or (j.last.host if j.last else None),
        "schedule": j.schedule,
        "tz": j.tz,
        "description": j.description,
        "source": j.source,
        "location": j.location,
        "result": j.result,
        "state": j.state,
        "reason": j.reason,
        "healthy": j.healthy,
        "missed": j.missed,
        "missed_first_at": _iso(j.missed_first),
        "missed_count": j.missed_count,
        "expected_at": _iso(j.expected),
        "next_run": _iso(j.next_run),
        "durations_s": j.durations,
        "unmonitored": j.unmonitored,
        "zone_note": j.zone_note,
        "tz_warning": j.tz_warning,
        "schedule_error": j.schedule_error,
        "dead_letters": j.dead_letters,
        "degraded": j.degraded,
        "warnings": j.warnings,
        "run_state": j.run_state.value if j.run_state is not None else None,
        "current_run": current,
        # often the same run: one dict for both, which dumps writes once
        "last_run": current if same else run_json(j.last, j.last_state) if j.last else None,
    }


def status_document(jobs: Sequence[JobStatus]) -> str:
    """`dumps([status_json(j) for j in jobs])`, the same text (a test holds it), written
    straight from the jobs: `status --json` of thousands of jobs spent most of its time
    building and walking those dicts. A run shown twice (a job's current and last run are
    often one) is written once. A value of a type the documents do not hold is left to
    the general path."""
    from json.encoder import encode_basestring_ascii

    v = _scalar_writer(encode_basestring_ascii)
    try:
        texts = [_job_text(j, v) for j in jobs]
    except _Unusual:
        return dumps([status_json(j) for j in jobs])
    return "[\n" + ",\n".join(texts) + "\n]" if texts else "[]"


def _job_text(j: JobStatus, v: Callable[[object], str]) -> str:
    when = _when
    current = _run_text(j.current, j.run_state, v) if j.current else "null"
    same = j.current is not None and j.current is j.last and j.run_state is j.last_state
    last = current if same else _run_text(j.last, j.last_state, v) if j.last else "null"
    state = j.run_state.value if j.run_state is not None else None
    return (
        f'  {{\n    "name": {v(j.name)},\n'
        f'    "host": {v(j.host or (j.last.host if j.last else None))},\n'
        f'    "schedule": {v(j.schedule)},\n    "tz": {v(j.tz)},\n'
        f'    "description": {v(j.description)},\n    "source": {v(j.source)},\n'
        f'    "location": {v(j.location)},\n    "result": {v(j.result)},\n'
        f'    "state": {v(j.state)},\n    "reason": {v(j.reason)},\n'
        f'    "healthy": {v(j.healthy)},\n    "missed": {v(j.missed)},\n'
        f'    "missed_first_at": {when(j.missed_first)},\n'
        f'    "missed_count": {v(j.missed_count)},\n'
        f'    "expected_at": {when(j.expected)},\n    "next_run": {when(j.next_run)},\n'
        f'    "durations_s": {_list(j.durations, "    ", v)},\n'
        f'    "unmonitored": {v(j.unmonitored)},\n    "zone_note": {v(j.zone_note)},\n'
        f'    "tz_warning": {v(j.tz_warning)},\n'
        f'    "schedule_error": {v(j.schedule_error)},\n'
        f'    "dead_letters": {v(j.dead_letters)},\n    "degraded": {v(j.degraded)},\n'
        f'    "warnings": {_list(j.warnings, "    ", v)},\n    "run_state": {v(state)},\n'
        f'    "current_run": {current},\n    "last_run": {last}\n  }}'
    )


def _run_text(r: RunRecord, state: RunState | None, v: Callable[[object], str]) -> str:
    """run_json(r, state) as dumps writes it inside a job."""
    when = _when
    warnings = r.warnings.splitlines() if r.warnings else []
    return (
        f'{{\n      "run_id": {v(r.run_id)},\n      "job": {v(r.job)},\n'
        f'      "host": {v(r.host)},\n      "pid": {v(r.pid)},\n'
        f'      "started_at": {when(r.started_at)},\n      "ended_at": {when(r.ended_at)},\n'
        f'      "status": {v(r.status)},\n'
        f'      "state": {v(state.value if state is not None else None)},\n'
        f'      "exit_code": {v(r.exit_code)},\n      "signal": {v(r.signal)},\n'
        f'      "attempts": {v(r.attempts)},\n      "duration_s": {v(r.duration_s)},\n'
        f'      "reason": {v(r.reason)},\n      "exit_origin": {v(r.exit_origin)},\n'
        f'      "flags": {v(r.flags)},\n      "warnings": {_list(warnings, "      ", v)},\n'
        f'      "log_path": {v(r.log_path)}\n    }}'
    )


def _scalar_writer(text: Callable[[str], str]) -> Callable[[object], str]:
    """A function writing one scalar as dumps writes it, by exact type (`text`: json's
    string encoder)."""

    def value(v: object) -> str:
        kind = type(v)
        if kind is str:
            return text(v)  # type: ignore[arg-type]
        if v is None:
            return "null"
        if kind is bool:
            return "true" if v else "false"
        if kind is int:
            return int.__repr__(v)
        if kind is float:
            return _number(v)  # type: ignore[arg-type]
        raise _Unusual

    return value


def _when(at: datetime | None) -> str:
    # isoformat writes digits, signs, T, : and . only: nothing JSON escapes
    return "null" if at is None else '"' + at.isoformat() + '"'


def _list(values: list[Any], pad: str, v: Callable[[object], str]) -> str:
    if type(values) is not list:
        raise _Unusual
    if not values:
        return "[]"
    inner = ",\n  " + pad
    if set(map(type, values)) == {float}:  # durations: one pass in C
        text = inner.join(map(float.__repr__, values))
        if "n" not in text and "f" not in text:  # no nan, inf (json's NaN, Infinity)
            return "[\n  " + pad + text + "\n" + pad + "]"
    return "[\n  " + pad + inner.join([v(x) for x in values]) + "\n" + pad + "]"


def attempt_json(a: AttemptRecord) -> dict[str, Any]:
    """One attempt of `history --json`."""
    return {
        "attempt": a.attempt,
        "started_at": _iso(a.started_at),
        "ended_at": _iso(a.ended_at),
        "status": a.status,
        "exit_code": a.exit_code,
        "signal": a.signal,
        "duration_s": a.duration_s,
    }


def dumps(value: object) -> str:
    """`json.dumps(value, indent=2)`, the same text, written faster for what the documents
    hold (dicts with str keys, lists, str, int, float, bool, None): with an indent, json's C
    encoder is not used, and `status --json` of thousands of jobs spent its time there.
    Each dict is written through a template of its keys at its indent (thousands of jobs
    and runs share a few), and a dict met again (a job's current and last run are often
    one) is written once. Anything else is left to json."""
    try:
        return _Writer().write(value, "")
    except _Unusual:
        import json

        return json.dumps(value, indent=2)


class _Writer:
    __slots__ = ("scalar_of", "templates", "text", "written")

    def __init__(self) -> None:
        from json.encoder import encode_basestring_ascii

        self.text = encode_basestring_ascii
        # by exact type: a subclass (an IntEnum, a str subclass) is json's to write
        scalars: dict[type, Any] = {
            str: encode_basestring_ascii,
            type(None): _null,
            bool: _bool,
            int: int.__repr__,
            float: _number,
        }
        self.scalar_of = scalars.get
        self.templates: dict[tuple[tuple[object, ...], str], str] = {}
        self.written: dict[tuple[int, str], tuple[object, str]] = {}

    def write(self, v: object, pad: str) -> str:
        one = self.scalar_of(type(v))
        if one is not None:
            return str(one(v))
        if type(v) is dict:
            return self._dict(v, pad) if v else "{}"
        if type(v) is list:
            return self._list(v, pad) if v else "[]"
        raise _Unusual

    def _dict(self, v: dict[object, object], pad: str) -> str:
        done = self.written.get((id(v), pad))
        if done is not None and done[0] is v:
            return done[1]
        keys = tuple(v)
        template = self.templates.get((keys, pad))
        if template is None:
            if any(type(k) is not str for k in keys):
                raise _Unusual
            inner = pad + "  "
            items = [self.text(k).replace("%", "%%") + ": %s" for k in keys]  # type: ignore[arg-type]
            template = "{\n" + inner + (",\n" + inner).join(items) + "\n" + pad + "}"
            self.templates[(keys, pad)] = template
        scalar_of, inner = self.scalar_of, pad + "  "
        text = template % tuple(
            [
                one(x) if (one := scalar_of(type(x))) is not None else self.write(x, inner)
                for x in v.values()
            ]
        )
        self.written[(id(v), pad)] = (v, text)
        return text

    def _list(self, v: list[object], pad: str) -> str:
        scalar_of, inner = self.scalar_of, pad + "  "
        items = [
            one(x) if (one := scalar_of(type(x))) is not None else self.write(x, inner) for x in v
        ]
        return "[\n" + inner + (",\n" + inner).join(items) + "\n" + pad + "]"


def _null(v: None) -> str:
    return "null"


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _number(v: float) -> str:
    if math.isfinite(v):
        return float.__repr__(v)
    return "NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity"


class _Unusual(Exception):
    """A value `dumps` leaves to json (a tuple, a subclass, a non-str key)."""
