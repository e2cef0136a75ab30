"""The event log's JSON encoder agrees with json.dumps on everything a record can hold."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cronwrap.state.events import encode, to_json


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'quote " and \\ backslash',
        "\n\r\t\b\f\x00\x1f\x7f é 日本 \U0001f600",
        "\udcff lone surrogate",
        0,
        -12345678901234567890,
        1.5,
        1e-7,
        123456789.123,
        float("nan"),
        float("inf"),
        -float("inf"),
        True,
        False,
        None,
        ["a", 1, None, ["b"]],
        ("t", 2),
        {"k": "v", "n": [1.0, {"x": None}]},
        datetime(2026, 12, 1, tzinfo=timezone.utc),
    ],
)
def test_to_json_matches_json_dumps(value: object) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    assert to_json(value) == expected


def test_a_record_is_one_line_of_json() -> None:
    record = {"ts": "2026-12-01T00:00:00.000Z", "message": "two\nlines", "flags": ["slow"]}
    line = encode(record, "json")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == record


def _append_records(path: str, n: int) -> None:
    from cronwrap.state.events import EventLog

    log = EventLog(path, fmt="json", job="j", run_id="r", host="h")
    for _ in range(n):
        log.emit("run.start", "x" * 3000)


def test_runs_appending_at_once_leave_no_blank_lines(tmp_path: Path) -> None:
    """Four processes append 1,500 records each, as a burst of runs does: every line is a
    whole record. Without the lock around the look back, 525 of 6,000 came after an empty
    line (the look saw another run's record half written)."""
    import multiprocessing

    path = str(tmp_path / "events.log")
    procs = [multiprocessing.Process(target=_append_records, args=(path, 1500)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    lines = Path(path).read_text().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 6000
    assert all(json.loads(line)["event"] == "run.start" for line in lines[:-1])
