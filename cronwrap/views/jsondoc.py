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
    building and walking those dicts, then in a call per value. Text goes to json's C
    encoder and whole numbers to int's repr without a call of ours; anything else to the
    scalar writer. A run shown twice (a job's current and last run are often one) is
    written once. A value of a type the documents do not hold is left to the general
    path (the C encoder refuses a non-str with TypeError, the scalar writer with
    _Unusual), which writes it as json does."""
    encode_basestring_ascii = _ascii_text()
    v = _scalar_writer(encode_basestring_ascii)
    when, durations = _times(), _durations(v)
    try:
        texts = [_job_text(j, v, encode_basestring_ascii, when, durations) for j in jobs]
    except (_Unusual, TypeError):
        return dumps([status_json(j) for j in jobs])
    if not texts:
        return "[]"
    # one join, not "[" + join + "]": each + copies the megabytes of thousands of jobs
    texts[0] = "[\n" + texts[0]
    texts[-1] += "\n]"  # (the same text when there is one job)
    return ",\n".join(texts)


def _job_text(
    j: JobStatus,
    v: Callable[[object], str],
    s: Callable[[str], str],
    when: Callable[[Any], str],
    durations: Callable[[Any], str],
) -> str:
    """One job as dumps writes it: `s` writes text (and refuses anything else), `v` the
    other scalars, `when` the times and `durations` the durations, each distinct one once."""
    current, last = j.current, j.last
    current_text = _run_text(current, j.run_state, v, s, when) if current else "null"
    same = current is not None and current is last and j.run_state is j.last_state
    last_text = (
        current_text if same else _run_text(last, j.last_state, v, s, when) if last else "null"
    )
    state = j.run_state.value if j.run_state is not None else None
    host = j.host or (last.host if last else None)
    schedule, tz, description, location = j.schedule, j.tz, j.description, j.location
    reason, note, tz_warning, error = j.reason, j.zone_note, j.tz_warning, j.schedule_error
    count, dead = j.missed_count, j.dead_letters
    return (
        f'  {{\n    "name": {s(j.name)},\n'
        f'    "host": {"null" if host is None else s(host)},\n'
        f'    "schedule": {"null" if schedule is None else s(schedule)},\n'
        f'    "tz": {"null" if tz is None else s(tz)},\n'
        f'    "description": {"null" if description is None else s(description)},\n'
        f'    "source": {s(j.source)},\n'
        f'    "location": {"null" if location is None else s(location)},\n'
        f'    "result": {s(j.result)},\n    "state": {s(j.state)},\n'
        f'    "reason": {"null" if reason is None else s(reason)},\n'
        f'    "healthy": {v(j.healthy)},\n    "missed": {v(j.missed)},\n'
        f'    "missed_first_at": {when(j.missed_first)},\n'
        f'    "missed_count": {int.__repr__(count) if type(count) is int else v(count)},\n'
        f'    "expected_at": {when(j.expected)},\n    "next_run": {when(j.next_run)},\n'
        f'    "durations_s": {durations(j.durations)},\n'
        f'    "unmonitored": {v(j.unmonitored)},\n'
        f'    "zone_note": {"null" if note is None else s(note)},\n'
        f'    "tz_warning": {"null" if tz_warning is None else s(tz_warning)},\n'
        f'    "schedule_error": {"null" if error is None else s(error)},\n'
        f'    "dead_letters": {int.__repr__(dead) if type(dead) is int else v(dead)},\n'
        f'    "degraded": {v(j.degraded)},\n'
        f'    "warnings": {_list(j.warnings, "    ", v)},\n'
        f'    "run_state": {"null" if state is None else s(state)},\n'
        f'    "current_run": {current_text},\n    "last_run": {last_text}\n  }}'
    )


def _run_text(
    r: RunRecord,
    state: RunState | None,
    v: Callable[[object], str],
    s: Callable[[str], str],
    when: Callable[[Any], str],
) -> str:
    """run_json(r, state) as dumps writes it inside a job."""
    warnings = r.warnings.splitlines() if r.warnings else []
    pid, started, ended, code, sig, attempts = (
        r.pid, r.started_at, r.ended_at, r.exit_code, r.signal, r.attempts,
    )  # fmt: skip
    reason, flags, log_path = r.reason, r.flags, r.log_path
    value = state.value if state is not None else None
    return (
        f'{{\n      "run_id": {s(r.run_id)},\n      "job": {s(r.job)},\n'
        f'      "host": {s(r.host)},\n'
        f'      "pid": {int.__repr__(pid) if type(pid) is int else v(pid)},\n'
        f'      "started_at": {when(started)},\n'
        f'      "ended_at": {when(ended)},\n'
        f'      "status": {s(r.status)},\n'
        f'      "state": {"null" if value is None else s(value)},\n'
        f'      "exit_code": {int.__repr__(code) if type(code) is int else v(code)},\n'
        f'      "signal": {int.__repr__(sig) if type(sig) is int else v(sig)},\n'
        f'      "attempts": {int.__repr__(attempts) if type(attempts) is int else v(attempts)},\n'
        f'      "duration_s": {v(r.duration_s)},\n'
        f'      "reason": {"null" if reason is None else s(reason)},\n'
        f'      "exit_origin": {s(r.exit_origin)},\n'
        f'      "flags": {"null" if flags is None else s(flags)},\n'
        f'      "warnings": {_list(warnings, "      ", v)},\n'
        f'      "log_path": {"null" if log_path is None else s(log_path)}\n    }}'
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


def _ascii_text() -> Callable[[str], str]:
    """json's string encoder (its C one) without importing json and its decoder (a `status
    --json` start-up cost): json.encoder takes it from _json too, else writes its own."""
    try:
        from _json import encode_basestring_ascii
    except ImportError:  # an interpreter without the C accelerator
        from json.encoder import encode_basestring_ascii
    return encode_basestring_ascii


def _times() -> Callable[[Any], str]:
    """A function writing an instant (or None) as dumps writes its isoformat(), each distinct
    instant once: thousands of jobs share a few next runs and expected runs (and, where they
    started in one slot, their start and end), and isoformat is dear (printf in C). Keyed by
    the value, its zone and its fold: equal instants in two zones, or the two passes of a
    repeated hour (equal wall times), write apart."""
    done: dict[tuple[datetime, object, int], str] = {}

    def when(at: Any) -> str:
        if at is None:
            return "null"
        if type(at) is not datetime:
            return '"' + str(at.isoformat()) + '"'
        key = (at, at.tzinfo, at.fold)
        text = done.get(key)
        if text is None:
            # isoformat writes digits, signs, T, : and . only: nothing JSON escapes
            text = done[key] = '"' + at.isoformat() + '"'
        return text

    return when


def _durations(v: Callable[[object], str]) -> Callable[[Any], str]:
    """A function writing a job's durations as _list does, each distinct list of floats
    once (float.__repr__ was a sixth of the document where jobs share their durations).
    Lists holding a zero are always written: -0.0 equals 0.0 and writes apart."""
    done: dict[tuple[float, ...], str] = {}

    def durations(values: Any) -> str:
        # floats only: 1 and 1.0 are equal too
        if type(values) is not list or 0.0 in values or set(map(type, values)) != {float}:
            return _list(values, "    ", v)
        key = tuple(values)
        text = done.get(key)
        if text is None:
            text = done[key] = _list(values, "    ", v)
        return text

    return durations


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
