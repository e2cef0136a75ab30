"""What the run store holds, as values: runs, attempts and jobs (namedtuples), and the
conversions between them and SQLite rows. A value of the wrong type in a row reads as missing:
one bad row (edited by hand, written by a broken tool) must never stop a run or `status`."""

from __future__ import annotations

import collections

from cronwrap.stdlib import datetime, sqlite3, timezone

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


def iso(dt: datetime) -> str:
    """Aware datetime -> ISO 8601 UTC with microseconds (sorts as text)."""
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def result_of(status: str) -> str:
    """The counter a run's status adds to (success, failure, skipped, ...): the store's
    per-result totals and the metrics files' `result` label."""
    return {"failed": "failure", "error": "failure"}.get(status, status)


def from_iso(text: object) -> datetime | None:
    """A stored time, or None for one that is missing or not a time: one bad row (edited
    by hand, written by a broken tool) must never stop a run or `status`."""
    if not text or not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def as_number(value: object) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def as_text(value: object) -> str | None:
    """Text as stored; a command stored as bytes (argv that is not UTF-8) comes back as the
    same str it was, surrogate escapes and all."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return None if value is None else str(value)


def storable(text: str | None) -> str | bytes | None:
    """`text` as SQLite can hold it: a str with surrogate escapes (non-UTF-8 argv) becomes
    its original bytes, so nothing is lost and nothing raises."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


# namedtuples, not dataclasses: the run path must not pay for importing dataclasses
RunRecord = collections.namedtuple(
    "RunRecord",
    [
        "run_id",
        "job",
        "host",
        "pid",
        "command",
        "started_at",
        "ended_at",
        "status",
        "exit_code",
        "signal",
        "attempts",
        "duration_s",
        "output_tail",
        "reason",
        "schedule",
        "tz",
        "log_path",
        "exit_origin",
        "flags",
        "slot",
        "rerun_of",
        "dead",
        "resolved_at",
        "resolved_by",
        "warnings",
    ],
)
RUN_COLUMNS: tuple[str, ...] = RunRecord._fields
RunRecord.__doc__ = """One run as stored; started_at/ended_at are aware UTC datetimes.
status: running|success|failed|timeout|cancelled|skipped|error|crashed; slot: the scheduled
time (aware UTC) the run belongs to; dead: an unresolved dead letter."""

AttemptRecord = collections.namedtuple(
    "AttemptRecord",
    ("run_id", "attempt", "started_at", "ended_at", "status", "exit_code", "signal", "duration_s"),
)


def attempt_row(
    run_id: str,
    attempt: int,
    started_at: datetime,
    ended_at: datetime,
    status: str,
    exit_code: int | None,
    signal: int | None,
) -> tuple[object, ...]:
    duration = (ended_at - started_at).total_seconds()
    return (run_id, attempt, iso(started_at), iso(ended_at), status, exit_code, signal, duration)


def in_chunks(values: Sequence[object]) -> Iterator[tuple[str, tuple[object, ...]]]:
    """`values` in pieces for `IN (...)`, each well under SQLite's limit of bound values:
    (the placeholders, the piece)."""
    for at in range(0, len(values), 500):
        chunk = tuple(values[at : at + 500])
        yield ",".join("?" * len(chunk)), chunk


def row_to_run(row: Sequence[object]) -> RunRecord:
    """A stored row as a RunRecord; a value of the wrong type reads as missing. (Written out
    column by column: status decodes thousands of rows.)"""
    (
        run_id, job, host, pid, command, started_at, ended_at, status, exit_code, signal,
        attempts, duration_s, output_tail, reason, schedule, tz, log_path, exit_origin, flags,
        slot, rerun_of, dead, resolved_at, resolved_by, warnings,
    ) = row  # fmt: skip
    # the common values (text, whole numbers, NULL) inline: a call each was most of the cost;
    # and the tuple made as RunRecord's own __new__ makes it, without its Python frame of 25
    # arguments
    return _new_tuple(
        RunRecord,
        (
            run_id,
            job,
            host,
            (pid if type(pid) is int else _as_int(pid)) or 0,
            command if type(command) is str else _text(command),
            from_iso(started_at) or EPOCH,
            None if ended_at is None else from_iso(ended_at),
            status,
            exit_code if exit_code is None or type(exit_code) is int else _as_int(exit_code),
            signal if signal is None or type(signal) is int else _as_int(signal),
            (attempts if type(attempts) is int else _as_int(attempts)) or 0,
            duration_s
            if duration_s is None or type(duration_s) is float
            else as_number(duration_s),
            output_tail if output_tail is None or type(output_tail) is str else _text(output_tail),
            reason if reason is None or type(reason) is str else _text(reason),
            schedule if schedule is None or type(schedule) is str else _text(schedule),
            tz if tz is None or type(tz) is str else _text(tz),
            log_path if log_path is None or type(log_path) is str else _text(log_path),
            exit_origin,
            flags if flags is None or type(flags) is str else _text(flags),
            None if slot is None else from_iso(slot),
            rerun_of if rerun_of is None or type(rerun_of) is str else _text(rerun_of),
            bool(dead) if type(dead) is int else bool(as_number(dead)),
            None if resolved_at is None else from_iso(resolved_at),
            resolved_by if resolved_by is None or type(resolved_by) is str else _text(resolved_by),
            warnings if warnings is None or type(warnings) is str else _text(warnings),
        ),
    )


_new_tuple = tuple.__new__


def _as_int(value: object) -> int | None:
    if type(value) is int:
        return value
    number = as_number(value)
    return int(number) if number is not None else None


def _text(value: object) -> str | None:
    return value if value is None or type(value) is str else as_text(value)


JobRecord = collections.namedtuple(
    "JobRecord",
    (
        "name",
        "schedule",
        "tz",
        "last_started_at",
        "spec",
        "catch_up",
        "catch_up_max_age",
        "last_success_at",
        "last_success_slot",
    ),
)
JobRecord.__doc__ = """One job as last recorded: its schedule, how to run it again (spec, JSON),
its catch-up settings and its last success (start and slot, aware UTC)."""
JOB_COLUMNS = ", ".join(JobRecord._fields)


def row_to_job(row: sqlite3.Row) -> JobRecord:
    """A stored job row; as with runs, a value of the wrong type reads as missing."""
    name, schedule, tz, started, spec, catch_up, max_age, ok_at, ok_slot = row
    return JobRecord(
        name,
        schedule if isinstance(schedule, str) else None,
        tz if isinstance(tz, str) else None,
        from_iso(started),
        spec if isinstance(spec, str) else None,
        bool(as_number(catch_up)),
        as_number(max_age),
        from_iso(ok_at),
        from_iso(ok_slot),
    )
