"""views.jsondoc: the fast indented writer says exactly what json.dumps(indent=2) says."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import pytest

from cronwrap.views.jsondoc import dumps
from tests.conftest import cronwrap


class Level(enum.IntEnum):
    HIGH = 3


CASES = {
    "scalars": [None, True, False, 0, -7, 10**30, 1.5, 2.0, 1e-300, float("nan")],
    "infinities": [float("inf"), float("-inf")],
    "text": ["", "plain", 'quote " back\\slash', "tab\tnew\nline", "\x00\x1f", "zoné ☃ 𝄞"],
    "empties": {"a": [], "b": {}, "c": [[], {}], "": ""},
    "nested": [{"job": {"runs": [{"warnings": ["w1", "w2"], "exit": None}]}}],
    "top-level scalar": "just text",
    "top-level empty": [],
    "subclass left to json": {"level": Level.HIGH},
    "tuple left to json": {"t": (1, 2)},
}


@pytest.mark.parametrize("value", CASES.values(), ids=CASES.keys())
def test_dumps_is_json_dumps_indent_2(value: object) -> None:
    assert dumps(value) == json.dumps(value, indent=2)


def test_dumps_of_a_status_document(home: Path) -> None:
    ran = cronwrap(home, "run", "--name", "a", "--schedule", "*/5 * * * *", "--", "true")
    assert ran.returncode == 0, ran.stderr
    out = cronwrap(home, "status", "--crontab", "/dev/null", "--json")
    assert out.stdout == json.dumps(json.loads(out.stdout), indent=2) + "\n"
