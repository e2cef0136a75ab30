"""The schedule engine against cron's rules. Expected times are worked out by hand from
cron-semantics.md (the day rule, §4.2 for DST), not taken from the engine's output."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cronwrap.cron.schedule import parse
from cronwrap.errors import ScheduleError

REF = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
UTC = "UTC"
NY = "America/New_York"
LON = "Europe/London"
BER = "Europe/Berlin"
SYD = "Australia/Sydney"
LH = "Australia/Lord_Howe"

# (expr, zone, after, expected next instants); [] = never / no clock schedule
CASES: list[tuple[str, str, str, list[str]]] = [
    # --- everyday schedules in UTC (2024-01-01 is a Monday)
    (
        "* * * * *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-01T00:01:00+00:00", "2024-01-01T00:02:00+00:00", "2024-01-01T00:03:00+00:00"],
    ),
    (
        "0 * * * *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-01T01:00:00+00:00", "2024-01-01T02:00:00+00:00"],
    ),
    (
        "*/15 * * * *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        [
            "2024-01-01T00:15:00+00:00",
            "2024-01-01T00:30:00+00:00",
            "2024-01-01T00:45:00+00:00",
            "2024-01-01T01:00:00+00:00",
        ],
    ),
    (
        "5 4 * * *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-01T04:05:00+00:00", "2024-01-02T04:05:00+00:00"],
    ),
    (
        "0 0 1 * *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"],
    ),
    (
        "0 0 * * 0",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-07T00:00:00+00:00", "2024-01-14T00:00:00+00:00"],
    ),
    (
        "0 0 * * 7",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-07T00:00:00+00:00", "2024-01-14T00:00:00+00:00"],
    ),
    (
        "0 0 * * sun",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-07T00:00:00+00:00", "2024-01-14T00:00:00+00:00"],
    ),
    (
        "0 0 * * SUN,sat",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-06T00:00:00+00:00", "2024-01-07T00:00:00+00:00", "2024-01-13T00:00:00+00:00"],
    ),
    (
        "30 12 * * mon-fri",
        UTC,
        "2024-01-05T13:00:00+00:00",
        ["2024-01-08T12:30:00+00:00", "2024-01-09T12:30:00+00:00"],
    ),
    (
        "0 9-17/4 * * *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        [
            "2024-01-01T09:00:00+00:00",
            "2024-01-01T13:00:00+00:00",
            "2024-01-01T17:00:00+00:00",
            "2024-01-02T09:00:00+00:00",
        ],
    ),
    (
        "0-10/5 * * * *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-01T00:05:00+00:00", "2024-01-01T00:10:00+00:00", "2024-01-01T01:00:00+00:00"],
    ),
    (
        "15 10 * * 6,0",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-06T10:15:00+00:00", "2024-01-07T10:15:00+00:00"],
    ),
    (
        "0 0 * * 0-7",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00"],
    ),
    ("0 0 1 1 *", UTC, "2024-01-01T00:00:00+00:00", ["2025-01-01T00:00:00+00:00"]),
    ("0 12 * * *", UTC, "2024-01-01T12:00:00+00:00", ["2024-01-02T12:00:00+00:00"]),
    (
        "59 23 31 12 *",
        UTC,
        "2024-06-01T00:00:00+00:00",
        ["2024-12-31T23:59:00+00:00", "2025-12-31T23:59:00+00:00"],
    ),
    ("0 0 1 1 *", UTC, "2024-12-31T23:59:00+00:00", ["2025-01-01T00:00:00+00:00"]),
    # --- the day rule: OR when both day fields are restricted
    (
        "0 0 15 * 5",
        UTC,
        "2024-01-01T00:00:00+00:00",
        [
            "2024-01-05T00:00:00+00:00",
            "2024-01-12T00:00:00+00:00",
            "2024-01-15T00:00:00+00:00",
            "2024-01-19T00:00:00+00:00",
        ],
    ),
    (
        "0 0 13 * 5",
        UTC,
        "2024-09-01T00:00:00+00:00",
        [
            "2024-09-06T00:00:00+00:00",
            "2024-09-13T00:00:00+00:00",
            "2024-09-20T00:00:00+00:00",
            "2024-09-27T00:00:00+00:00",
        ],
    ),
    (
        "0 0 1,15 * 3",
        UTC,
        "2024-01-01T00:00:00+00:00",
        [
            "2024-01-03T00:00:00+00:00",
            "2024-01-10T00:00:00+00:00",
            "2024-01-15T00:00:00+00:00",
            "2024-01-17T00:00:00+00:00",
        ],
    ),
    (
        "0 0 1-7 * 1",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00", "2024-01-04T00:00:00+00:00"],
    ),
    (
        "0 0 30 2 1",
        UTC,
        "2024-01-01T00:00:00+00:00",
        [
            "2024-02-05T00:00:00+00:00",
            "2024-02-12T00:00:00+00:00",
            "2024-02-19T00:00:00+00:00",
            "2024-02-26T00:00:00+00:00",
            "2025-02-03T00:00:00+00:00",
        ],
    ),
    (
        "0 0 1-31/2 * 1",
        UTC,
        "2025-01-01T00:00:00+00:00",
        [
            "2025-01-03T00:00:00+00:00",
            "2025-01-05T00:00:00+00:00",
            "2025-01-06T00:00:00+00:00",
            "2025-01-07T00:00:00+00:00",
        ],
    ),
    (
        "0 0 8-14 * 2",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-02T00:00:00+00:00", "2024-01-08T00:00:00+00:00", "2024-01-09T00:00:00+00:00"],
    ),
    (
        "0 0 1,* * 1",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00"],
    ),
    # --- a day field starting with '*' makes it AND
    (
        "0 0 */2 * 1",
        UTC,
        "2025-01-01T00:00:00+00:00",
        [
            "2025-01-13T00:00:00+00:00",
            "2025-01-27T00:00:00+00:00",
            "2025-02-03T00:00:00+00:00",
            "2025-02-17T00:00:00+00:00",
        ],
    ),
    (
        "0 0 *,13 * 5",
        UTC,
        "2024-09-01T00:00:00+00:00",
        ["2024-09-06T00:00:00+00:00", "2024-09-13T00:00:00+00:00"],
    ),
    (
        "0 0 13 * *,5",
        UTC,
        "2024-09-01T00:00:00+00:00",
        ["2024-09-13T00:00:00+00:00", "2024-10-13T00:00:00+00:00"],
    ),
    (
        "0 0 */1 * 5",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-05T00:00:00+00:00", "2024-01-12T00:00:00+00:00"],
    ),
    (
        "0 0 *,1 * 1",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-08T00:00:00+00:00", "2024-01-15T00:00:00+00:00"],
    ),
    (
        "0 0 15 * */2",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-02-15T00:00:00+00:00", "2024-06-15T00:00:00+00:00"],
    ),
    # --- never fires (AND with no existing month/day pair)
    ("0 0 30 2 */1", UTC, "2024-01-01T00:00:00+00:00", []),
    ("0 0 31 2,4,6,9,11 *", UTC, "2024-01-01T00:00:00+00:00", []),
    ("0 0 31 4 *", UTC, "2024-01-01T00:00:00+00:00", []),
    ("0 0 30 2 *", UTC, "2024-01-01T00:00:00+00:00", []),
    ("* * 31 6 *", UTC, "2024-01-01T00:00:00+00:00", []),
    ("@reboot", UTC, "2024-01-01T00:00:00+00:00", []),
    # --- leap years and month ends
    (
        "0 0 29 2 *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-02-29T00:00:00+00:00", "2028-02-29T00:00:00+00:00"],
    ),
    ("0 0 29 2 *", UTC, "2097-01-01T00:00:00+00:00", ["2104-02-29T00:00:00+00:00"]),
    (
        "0 0 31 * *",
        UTC,
        "2024-01-31T00:00:00+00:00",
        [
            "2024-03-31T00:00:00+00:00",
            "2024-05-31T00:00:00+00:00",
            "2024-07-31T00:00:00+00:00",
            "2024-08-31T00:00:00+00:00",
        ],
    ),
    (
        "0 0 */10 * *",
        UTC,
        "2024-01-21T00:00:00+00:00",
        ["2024-01-31T00:00:00+00:00", "2024-02-01T00:00:00+00:00", "2024-02-11T00:00:00+00:00"],
    ),
    (
        "0 0 29 2 1",
        UTC,
        "2024-02-27T00:00:00+00:00",
        ["2024-02-29T00:00:00+00:00", "2025-02-03T00:00:00+00:00"],
    ),
    # --- macros
    (
        "@yearly",
        UTC,
        "2024-06-01T00:00:00+00:00",
        ["2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"],
    ),
    ("@annually", UTC, "2024-06-01T00:00:00+00:00", ["2025-01-01T00:00:00+00:00"]),
    ("@monthly", UTC, "2024-06-01T00:00:00+00:00", ["2024-07-01T00:00:00+00:00"]),
    (
        "@weekly",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-07T00:00:00+00:00", "2024-01-14T00:00:00+00:00"],
    ),
    ("@daily", UTC, "2024-01-01T00:00:00+00:00", ["2024-01-02T00:00:00+00:00"]),
    ("@midnight", UTC, "2024-01-01T00:00:00+00:00", ["2024-01-02T00:00:00+00:00"]),
    ("@hourly", UTC, "2024-01-01T00:00:00+00:00", ["2024-01-01T01:00:00+00:00"]),
    # --- names, steps, equal ranges
    (
        "0 0 * JAN,jul *",
        UTC,
        "2024-01-31T12:00:00+00:00",
        ["2024-07-01T00:00:00+00:00", "2024-07-02T00:00:00+00:00"],
    ),
    (
        "0 12 1 jan-mar/2 *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-01T12:00:00+00:00", "2024-03-01T12:00:00+00:00", "2025-01-01T12:00:00+00:00"],
    ),
    (
        "0 0 * * mon-fri/2",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-03T00:00:00+00:00", "2024-01-05T00:00:00+00:00", "2024-01-08T00:00:00+00:00"],
    ),
    (
        "0 0 * * 1-1",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-08T00:00:00+00:00", "2024-01-15T00:00:00+00:00"],
    ),
    (
        "0 20-20/1 * * *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-01T20:00:00+00:00", "2024-01-02T20:00:00+00:00"],
    ),
    (
        "0-0/4 * * * *",
        UTC,
        "2024-01-01T00:00:00+00:00",
        ["2024-01-01T01:00:00+00:00", "2024-01-01T02:00:00+00:00"],
    ),
    ("0-59/61 * * * *", UTC, "2024-01-01T00:00:00+00:00", ["2024-01-01T01:00:00+00:00"]),
    (
        "*/7 * * * *",
        UTC,
        "2024-01-01T00:50:00+00:00",
        ["2024-01-01T00:56:00+00:00", "2024-01-01T01:00:00+00:00", "2024-01-01T01:07:00+00:00"],
    ),
    (
        "0 */5 * * *",
        UTC,
        "2024-01-01T19:00:00+00:00",
        ["2024-01-01T20:00:00+00:00", "2024-01-02T00:00:00+00:00", "2024-01-02T05:00:00+00:00"],
    ),
    # --- zones without DST
    ("0 9 * * *", "Asia/Tokyo", "2024-01-01T00:00:00+00:00", ["2024-01-02T09:00:00+09:00"]),
    ("30 18 * * *", "Asia/Kolkata", "2024-01-01T00:00:00+05:30", ["2024-01-01T18:30:00+05:30"]),
    # --- New York, spring forward 2025-03-09 02:00 EST -> 03:00 EDT
    (
        "0 2 * * *",
        NY,
        "2025-03-08T12:00:00-05:00",
        ["2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00"],
    ),
    (
        "30 2 * * *",
        NY,
        "2025-03-09T00:00:00-05:00",
        ["2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"],
    ),
    (
        "0,30 2 * * *",
        NY,
        "2025-03-09T00:00:00-05:00",
        ["2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00", "2025-03-10T02:30:00-04:00"],
    ),
    (
        "59 1 * * *",
        NY,
        "2025-03-09T00:00:00-05:00",
        ["2025-03-09T01:59:00-05:00", "2025-03-10T01:59:00-04:00"],
    ),
    (
        "*/15 2 * * *",
        NY,
        "2025-03-08T12:00:00-05:00",
        ["2025-03-10T02:00:00-04:00", "2025-03-10T02:15:00-04:00"],
    ),
    (
        "0 */2 * * *",
        NY,
        "2025-03-09T01:00:00-05:00",
        ["2025-03-09T04:00:00-04:00", "2025-03-09T06:00:00-04:00"],
    ),
    (
        "0 0-23/2 * * *",
        NY,
        "2025-03-09T01:00:00-05:00",
        ["2025-03-09T03:00:00-04:00", "2025-03-09T04:00:00-04:00"],
    ),
    (
        "@hourly",
        NY,
        "2025-03-09T01:30:00-05:00",
        ["2025-03-09T03:00:00-04:00", "2025-03-09T04:00:00-04:00"],
    ),
    (
        "0 3 * * *",
        NY,
        "2025-03-09T00:00:00-05:00",
        ["2025-03-09T03:00:00-04:00", "2025-03-10T03:00:00-04:00"],
    ),
    (
        "* * * * *",
        NY,
        "2025-03-09T01:58:00-05:00",
        ["2025-03-09T01:59:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T03:01:00-04:00"],
    ),
    (
        "15 2 9 3 *",
        NY,
        "2025-01-01T00:00:00-05:00",
        ["2025-03-09T03:00:00-04:00", "2026-03-09T02:15:00-04:00"],
    ),
    # --- New York, fall back 2025-11-02 02:00 EDT -> 01:00 EST
    (
        "30 1 * * *",
        NY,
        "2025-11-02T00:00:00-04:00",
        ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"],
    ),
    ("30 1 * * *", NY, "2025-11-02T01:10:00-05:00", ["2025-11-03T01:30:00-05:00"]),
    ("0 1 * * *", NY, "2025-11-02T01:30:00-04:00", ["2025-11-03T01:00:00-05:00"]),
    (
        "0 * * * *",
        NY,
        "2025-11-02T00:30:00-04:00",
        ["2025-11-02T01:00:00-04:00", "2025-11-02T01:00:00-05:00", "2025-11-02T02:00:00-05:00"],
    ),
    (
        "*/30 1 * * *",
        NY,
        "2025-11-02T00:50:00-04:00",
        [
            "2025-11-02T01:00:00-04:00",
            "2025-11-02T01:30:00-04:00",
            "2025-11-02T01:00:00-05:00",
            "2025-11-02T01:30:00-05:00",
            "2025-11-03T01:00:00-05:00",
        ],
    ),
    (
        "0 2 * * *",
        NY,
        "2025-11-02T00:00:00-04:00",
        ["2025-11-02T02:00:00-05:00", "2025-11-03T02:00:00-05:00"],
    ),
    (
        "0,30 * * * *",
        NY,
        "2025-11-02T01:20:00-04:00",
        [
            "2025-11-02T01:30:00-04:00",
            "2025-11-02T01:00:00-05:00",
            "2025-11-02T01:30:00-05:00",
            "2025-11-02T02:00:00-05:00",
        ],
    ),
    ("45 1 * * *", NY, "2025-11-02T01:50:00-04:00", ["2025-11-03T01:45:00-05:00"]),
    (
        "0 */2 * * *",
        NY,
        "2025-11-02T00:30:00-04:00",
        ["2025-11-02T02:00:00-05:00", "2025-11-02T04:00:00-05:00"],
    ),
    ("0 0 * * *", NY, "2025-12-31T23:59:00-05:00", ["2026-01-01T00:00:00-05:00"]),
    (
        "0 0 1 * *",
        NY,
        "2024-12-31T23:59:00-05:00",
        ["2025-01-01T00:00:00-05:00", "2025-02-01T00:00:00-05:00"],
    ),
    (
        "0 22 * * 1-5",
        NY,
        "2024-06-07T23:00:00-04:00",
        ["2024-06-10T22:00:00-04:00", "2024-06-11T22:00:00-04:00"],
    ),
    # --- London: 2025-03-30 01:00 GMT -> 02:00 BST; 2025-10-26 02:00 BST -> 01:00 GMT
    (
        "30 1 * * *",
        LON,
        "2025-03-29T12:00:00+00:00",
        ["2025-03-30T02:00:00+01:00", "2025-03-31T01:30:00+01:00"],
    ),
    (
        "0 1 * * *",
        LON,
        "2025-03-30T00:00:00+00:00",
        ["2025-03-30T02:00:00+01:00", "2025-03-31T01:00:00+01:00"],
    ),
    (
        "0 * * * *",
        LON,
        "2025-03-30T00:30:00+00:00",
        ["2025-03-30T02:00:00+01:00", "2025-03-30T03:00:00+01:00"],
    ),
    (
        "30 1 * * *",
        LON,
        "2025-10-25T12:00:00+01:00",
        ["2025-10-26T01:30:00+01:00", "2025-10-27T01:30:00+00:00"],
    ),
    (
        "*/30 1 * * *",
        LON,
        "2025-10-26T00:50:00+01:00",
        [
            "2025-10-26T01:00:00+01:00",
            "2025-10-26T01:30:00+01:00",
            "2025-10-26T01:00:00+00:00",
            "2025-10-26T01:30:00+00:00",
        ],
    ),
    (
        "0 2 * * *",
        LON,
        "2025-10-26T00:00:00+01:00",
        ["2025-10-26T02:00:00+00:00", "2025-10-27T02:00:00+00:00"],
    ),
    (
        "@daily",
        LON,
        "2024-03-29T12:00:00+00:00",
        ["2024-03-30T00:00:00+00:00", "2024-03-31T00:00:00+00:00", "2024-04-01T00:00:00+01:00"],
    ),
    # --- Berlin: 2025-03-30 02:00 CET -> 03:00 CEST; 2025-10-26 03:00 CEST -> 02:00 CET
    (
        "15 2 30 3 *",
        BER,
        "2025-03-01T00:00:00+01:00",
        ["2025-03-30T03:00:00+02:00", "2026-03-30T02:15:00+02:00"],
    ),
    (
        "30 2 * * *",
        BER,
        "2025-03-29T12:00:00+01:00",
        ["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"],
    ),
    (
        "30 2 * * *",
        BER,
        "2025-10-25T12:00:00+02:00",
        ["2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"],
    ),
    (
        "0 * * * *",
        BER,
        "2025-10-26T01:30:00+02:00",
        ["2025-10-26T02:00:00+02:00", "2025-10-26T02:00:00+01:00", "2025-10-26T03:00:00+01:00"],
    ),
    (
        "*/15 9-17 * * mon-fri",
        BER,
        "2024-07-05T17:40:00+02:00",
        ["2024-07-05T17:45:00+02:00", "2024-07-08T09:00:00+02:00", "2024-07-08T09:15:00+02:00"],
    ),
    (
        "0 2 * * *",
        BER,
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"],
    ),
    ("0 3 * * *", BER, "2025-10-26T00:00:00+02:00", ["2025-10-26T03:00:00+01:00"]),
    # --- Sydney: 2025-04-06 03:00 AEDT -> 02:00 AEST; 2025-10-05 02:00 AEST -> 03:00 AEDT
    (
        "*/20 2 * * *",
        SYD,
        "2025-04-06T01:50:00+11:00",
        [
            "2025-04-06T02:00:00+11:00",
            "2025-04-06T02:20:00+11:00",
            "2025-04-06T02:40:00+11:00",
            "2025-04-06T02:00:00+10:00",
            "2025-04-06T02:20:00+10:00",
        ],
    ),
    (
        "30 2 * * *",
        SYD,
        "2025-04-06T00:00:00+11:00",
        ["2025-04-06T02:30:00+11:00", "2025-04-07T02:30:00+10:00"],
    ),
    (
        "30 2 * * *",
        SYD,
        "2025-10-04T12:00:00+10:00",
        ["2025-10-05T03:00:00+11:00", "2025-10-06T02:30:00+11:00"],
    ),
    (
        "0 * * * *",
        SYD,
        "2025-10-05T01:30:00+10:00",
        ["2025-10-05T03:00:00+11:00", "2025-10-05T04:00:00+11:00"],
    ),
    # --- Lord Howe's 30-minute shift: 2025-10-05 02:00 -> 02:30; 2025-04-06 02:00 -> 01:30
    (
        "15 2 * * *",
        LH,
        "2025-10-04T12:00:00+10:30",
        ["2025-10-05T02:30:00+11:00", "2025-10-06T02:15:00+11:00"],
    ),
    (
        "45 2 * * *",
        LH,
        "2025-10-05T00:00:00+10:30",
        ["2025-10-05T02:45:00+11:00", "2025-10-06T02:45:00+11:00"],
    ),
    (
        "0 * * * *",
        LH,
        "2025-10-05T00:30:00+10:30",
        ["2025-10-05T01:00:00+10:30", "2025-10-05T03:00:00+11:00"],
    ),
    (
        "*/10 2 * * *",
        LH,
        "2025-10-05T01:00:00+10:30",
        ["2025-10-05T02:30:00+11:00", "2025-10-05T02:40:00+11:00", "2025-10-05T02:50:00+11:00"],
    ),
    (
        "0,30 2 * * *",
        LH,
        "2025-10-05T00:00:00+10:30",
        ["2025-10-05T02:30:00+11:00", "2025-10-06T02:00:00+11:00"],
    ),
    (
        "0 2 * * *",
        LH,
        "2025-04-06T00:00:00+11:00",
        ["2025-04-06T02:00:00+10:30", "2025-04-07T02:00:00+10:30"],
    ),
    (
        "30 1 * * *",
        LH,
        "2025-04-06T00:00:00+11:00",
        ["2025-04-06T01:30:00+11:00", "2025-04-07T01:30:00+10:30"],
    ),
    (
        "*/15 1 * * *",
        LH,
        "2025-04-06T01:20:00+11:00",
        [
            "2025-04-06T01:30:00+11:00",
            "2025-04-06T01:45:00+11:00",
            "2025-04-06T01:30:00+10:30",
            "2025-04-06T01:45:00+10:30",
            "2025-04-07T01:00:00+10:30",
        ],
    ),
    (
        "0,30 * * * *",
        LH,
        "2025-04-06T01:10:00+11:00",
        ["2025-04-06T01:30:00+11:00", "2025-04-06T01:30:00+10:30", "2025-04-06T02:00:00+10:30"],
    ),
    # --- Santiago starts DST at midnight: 00:00 does not exist on 2025-09-07
    (
        "0 0 * * *",
        "America/Santiago",
        "2025-09-06T12:00:00-04:00",
        ["2025-09-07T01:00:00-03:00", "2025-09-08T00:00:00-03:00"],
    ),
    # --- the same fixed times in UTC: nothing skipped or repeated
    (
        "30 2 * * *",
        UTC,
        "2025-03-08T12:00:00+00:00",
        ["2025-03-09T02:30:00+00:00", "2025-03-10T02:30:00+00:00"],
    ),
    (
        "30 1 * * *",
        UTC,
        "2025-11-01T12:00:00+00:00",
        ["2025-11-02T01:30:00+00:00", "2025-11-03T01:30:00+00:00"],
    ),
]


def _id(case: tuple[str, str, str, list[str]]) -> str:
    return f"{case[0]} @{case[1].split('/')[-1]} after {case[2][:16]}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_next_runs(case: tuple[str, str, str, list[str]]) -> None:
    expr, tz, after, expected = case
    got = parse(expr).next_runs(datetime.fromisoformat(after), ZoneInfo(tz), len(expected) or 3)
    # compare instants and offsets (aware datetimes in one zone compare by wall time)
    assert [g.isoformat() for g in got] == expected


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 100


def _load(name: str) -> list[dict]:
    return json.loads((REF / name).read_text())["cases"]


@pytest.mark.skipif(not REF.exists(), reason="shared/reference not beside the repo")
@pytest.mark.parametrize(
    "case",
    _load("cron-cases.json") if REF.exists() else [],
    ids=lambda c: f"{c['expr']} @{c['tz']} {c['after'][:16]}",
)
def test_public_cron_cases(case: dict) -> None:
    s = parse(case["expr"])
    got = s.next_runs(datetime.fromisoformat(case["after"]), ZoneInfo(case["tz"]), 5)
    assert [g.isoformat() for g in got] == case["next"]
    assert s.never is case["never"]


@pytest.mark.skipif(not REF.exists(), reason="shared/reference not beside the repo")
@pytest.mark.parametrize(
    "case", _load("cron-syntax-cases.json") if REF.exists() else [], ids=lambda c: c["expr"]
)
def test_public_syntax_cases(case: dict) -> None:
    if case["expected"] == "accept":
        parse(case["expr"])
        return
    with pytest.raises(ScheduleError) as info:
        parse(case["expr"])
    message = str(info.value)
    assert "\n" not in message
    # the message names the offending field (or the field count / the macro)
    expected = case["example_message"]
    for word in (
        "minute",
        "hour",
        "day-of-month",
        "month",
        "day-of-week",
        "5 fields",
        "6th field",
        "time specifier",
    ):
        if word in expected:
            assert word in message, message
            break


@pytest.mark.parametrize(
    ("expr", "fragment", "column"),
    [
        ("61 * * * *", 'minute "61" is out of range 0-59', 0),
        ("0 24 * * *", 'hour "24" is out of range 0-23', 2),
        ("0 0 32 * *", 'day-of-month "32" is out of range 1-31', 4),
        ("0 0 * 13 *", 'month "13" is out of range 1-12', 6),
        ("0 0 * * 8", 'day-of-week "8" is out of range 0-7', 8),
        ("*/0 * * * *", "a step is 1 or more", 0),
        ("5/15 * * * *", "write 5-59/15", 0),
        ("0 22-2 * * *", "write 22-23,0-2", 2),
        ("0 0 * * FRI-SUN", "write 5-7", 8),
        ("0 0 * * Monday", "write MON", 8),
        ("0 0 * Janu *", "names are 3 letters: write JAN", 6),
        ("0 0 * foo *", "'foo' is not a month name", 6),
        ("0 0 L * *", "not cron", 4),
        ("0 0 ? * *", "Quartz", 4),
        ("H * * * *", "Jenkins", 0),
        ("0 0 * * 1#2", "every such weekday", 8),
        ("0 0 1,,2 * *", "empty list item", 6),
        ("*/MON * * * *", "a step is a number", 0),
        ("0 0 * *", "expected 5 fields", None),
        ("0 0 * * * *", "cron has no seconds or year field", 10),
        ("@DAILY", "write @daily", 0),
        ("@every 5m", "bad time specifier", 0),
    ],
    ids=str,
)
def test_errors_name_the_field_and_point_at_it(
    expr: str, fragment: str, column: int | None
) -> None:
    with pytest.raises(ScheduleError) as info:
        parse(expr)
    assert fragment in str(info.value)
    if column is not None:
        assert info.value.column == column
        caret = info.value.caret()
        assert caret is not None and caret.splitlines()[1].index("^") == column


def test_star_flags_and_dst_class() -> None:
    assert parse("0 0 */2 * 1").day_rule == "and"
    assert parse("0 0 1,* * 1").day_rule == "or"
    assert parse("0 0 15 * 5").day_rule == "or"
    assert parse("0 */2 * * *").wildcard
    assert not parse("0 0-23/2 * * *").wildcard
    assert parse("@hourly").wildcard
    assert not parse("@daily").wildcard
    assert parse("@weekly").expression == "0 0 * * 0"


def test_prev_runs() -> None:
    utc = ZoneInfo("UTC")
    prev = parse("0 0 * * *").prev_runs(datetime(2024, 1, 2, tzinfo=timezone.utc), utc, 2)
    assert [p.isoformat() for p in prev] == [
        "2024-01-01T00:00:00+00:00",
        "2023-12-31T00:00:00+00:00",
    ]
    ny = ZoneInfo(NY)
    before = datetime.fromisoformat("2025-11-02T02:00:00-05:00")
    prev = parse("*/30 1 * * *").prev_runs(before, ny, 3)
    assert [p.isoformat() for p in prev] == [
        "2025-11-02T01:30:00-05:00",
        "2025-11-02T01:00:00-05:00",
        "2025-11-02T01:30:00-04:00",
    ]
    before = datetime.fromisoformat("2025-03-09T04:00:00-04:00")
    assert (
        parse("30 2 * * *").prev_runs(before, ny, 1)[0].isoformat() == "2025-03-09T03:00:00-04:00"
    )


def test_never_is_decided_without_scanning() -> None:
    assert parse("0 0 30 2 *").never
    assert parse("0 0 31 4,6 *").never
    assert not parse("0 0 31 4,5 *").never
    assert not parse("0 0 30 2 1").never  # OR: Mondays in February


def test_runs_are_strictly_increasing_and_match() -> None:
    rng = random.Random(7)
    tz = ZoneInfo(NY)
    for _ in range(40):
        expr = " ".join(
            [
                rng.choice(["*", "0", "*/7", "15,45", "0-30/10"]),
                rng.choice(["*", "1", "2", "*/3", "9-17"]),
                rng.choice(["*", "1", "*/2", "15", "28-31"]),
                rng.choice(["*", "3", "11", "jan-jun"]),
                rng.choice(["*", "0", "1-5", "*/2", "sat"]),
            ]
        )
        runs = parse(expr).next_runs(datetime(2025, 1, 1, tzinfo=timezone.utc), tz, 50)
        utc = [r.astimezone(timezone.utc) for r in runs]
        assert utc == sorted(set(utc)), expr


def test_after_in_the_same_zone_is_compared_as_an_instant_not_a_wall_time() -> None:
    """Aware datetimes sharing a tzinfo compare by wall clock: 01:30 EDT is not after
    01:10 EST, although its wall time is later."""
    ny = ZoneInfo("America/New_York")
    est_pass = datetime(2025, 11, 2, 1, 10, tzinfo=ny, fold=1)
    runs = parse("*/30 1 * * *").next_runs(est_pass, ny, 2)
    assert [r.isoformat() for r in runs] == [
        "2025-11-02T01:30:00-05:00",
        "2025-11-03T01:00:00-05:00",
    ]
    before = parse("*/30 1 * * *").prev_runs(datetime(2025, 11, 2, 1, 20, tzinfo=ny), ny, 1)
    assert [r.isoformat() for r in before] == ["2025-11-02T01:00:00-04:00"]


@pytest.mark.parametrize(
    ("expr", "tz", "day"),
    [
        ("*/15 * * * *", "Europe/Berlin", "2026-03-29"),  # spring forward, wildcard
        ("30 2 * * *", "Europe/Berlin", "2026-03-29"),  # a fixed time in the gap
        ("*/20 1-3 * * *", "Europe/Berlin", "2026-10-25"),  # the repeated hour
        ("0,30 1 * * *", "America/New_York", "2026-11-01"),
        ("*/7 * * * *", "UTC", "2026-06-01"),
    ],
    ids=["berlin-spring", "berlin-gap", "berlin-fall", "new-york-fall", "utc"],
)
def test_next_runs_from_any_moment_continue_the_day_s_sequence(
    expr: str, tz: str, day: str
) -> None:
    """The runs after any moment of a day are the day's runs after it, in order, whatever
    the search skips at once (each of them once, as UTC instants)."""
    zone = ZoneInfo(tz)
    schedule = parse(expr)
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    sequence = schedule.next_runs(start, zone, 400)
    for minutes in range(0, 26 * 60, 7):
        after = start + timedelta(minutes=minutes)
        expected = [s for s in sequence if s.astimezone(timezone.utc) > after][:3]
        got = schedule.next_runs(after, zone, 3)
        assert [g.isoformat() for g in got] == [e.isoformat() for e in expected], after


@pytest.mark.parametrize(
    ("expr", "tz"),
    [
        ("*/15 * * * *", "Europe/Berlin"),
        ("30 2 * * *", "Europe/Berlin"),
        ("*/20 1-3 * * *", "Europe/Berlin"),
        ("0,30 1 * * *", "America/New_York"),
        ("0 0 29 2 *", "UTC"),
        ("0 12 * * 1", "Australia/Lord_Howe"),
    ],
)
def test_runs_between_is_iter_runs_up_to_a_bound(expr: str, tz: str) -> None:
    """What status counts as missed: the instants iter_runs yields after a start, up to the
    due time, at most a cap; across DST changes too."""
    zone = ZoneInfo(tz)
    schedule = parse(expr)
    for start in ("2026-03-28T22:10:00", "2026-10-24T23:59:00", "2026-11-01T00:00:00"):
        after = datetime.fromisoformat(start).replace(tzinfo=zone)
        for hours in (0, 1, 3, 7, 30, 24 * 400):
            until = after + timedelta(hours=hours)
            for limit in (1, 10):
                expected = []
                for at in schedule.iter_runs(after, zone):
                    if at.astimezone(timezone.utc) > until or len(expected) >= limit:
                        break
                    expected.append(at)
                got = schedule.runs_between(after, until, zone, limit)
                assert [g.isoformat() for g in got] == [e.isoformat() for e in expected]


@pytest.mark.parametrize("year", [1, 1900, 2000, 2023, 2024, 2100, 9999], ids=str)
def test_days_in_month_is_calendars(year: int) -> None:
    import calendar

    from cronwrap.cron.schedule import days_in_month

    for month in range(1, 13):
        assert days_in_month(year, month) == calendar.monthrange(year, month)[1]
