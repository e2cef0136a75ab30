"""The event log's JSON encoder agrees with json.dumps on everything a record can hold."""

from __future__ import annotations

import json
from datetime import datetime, timezone

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
