"""The status table and `status --json` say, byte for byte, what they said before their fast
paths: a varied set of jobs (every state, long and odd names, notes, wrapped cells, colour,
fleet hosts) drawn at many widths against golden files made by the code before."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cronwrap.state.records import RunRecord
from cronwrap.views.jobstatus import JobStatus
from cronwrap.views.jsondoc import dumps, status_json
from cronwrap.views.runstate import RunState
from cronwrap.views.table import render_status

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc)  # the night Europe/Berlin goes to CEST
WIDTHS = (0, 30, 60, 80, 100, 139, 140, 160, 220)


def _run(n: int, job: str, status: str, **kw: object) -> RunRecord:
    started = NOW - timedelta(minutes=17 * n + 3, seconds=n)
    fields: dict[str, object] = {f: None for f in RunRecord._fields}
    fields.update(
        run_id=f"{n:04d}abcdef{n:06d}",
        job=job,
        host="web1",
        pid=100 + n,
        command="true",
        started_at=started,
        ended_at=None if status == "running" else started + timedelta(seconds=n * 7.25),
        status=status,
        exit_code=None if status in ("running", "skipped") else (0 if status == "success" else 2),
        attempts=1,
        duration_s=None if status in ("running", "skipped") else n * 7.25,
        exit_origin="child",
        dead=False,
    )
    fields.update(kw)
    return RunRecord(**fields)


def jobs(*, fleet: bool = False) -> list[JobStatus]:
    """Jobs of every shape status draws."""
    out = []
    shapes: list[tuple[str, str, RunState | None, dict[str, object]]] = [
        ("backup", "success", RunState.SUCCESS, {}),
        ("db.vacuum-nightly_with.a-very_long.name-that-folds", "failed", RunState.FAILED, {}),
        ("killed", "failed", RunState.FAILED, {"signal": 9, "exit_code": None}),
        ("slow-one", "success", RunState.SUCCESS, {"flags": "slow max-runtime"}),
        ("timeout", "timeout", RunState.TIMEOUT, {}),
        ("crash", "running", RunState.CRASHED, {}),
        ("now-running", "running", RunState.RUNNING, {"host": "elsewhere"}),
        ("skip", "skipped", RunState.SKIPPED, {"reason": "the previous run held the lock"}),
        ("fleet-skip", "skipped", RunState.RAN_ELSEWHERE, {"reason": "ran on web2 (slot x)"}),
        ("noisy", "success", RunState.SUCCESS, {"warnings": "ping to https://hc/x failed: 503\nb"}),
        ("evil\x1b]0;t\x07name", "success", RunState.SUCCESS, {"host": "h\n\x1b[31mx"}),
        ("zoné ☃", "cancelled", RunState.CANCELLED, {}),
    ]
    schedules = ["*/5 * * * *", "0 2 * * *", "30 2 * * 1-5", "@daily", "bad sched", None]
    for n, (name, status, state, kw) in enumerate(shapes, start=1):
        run = _run(n, name, status, **kw)
        st = JobStatus(name, schedule=schedules[n % len(schedules)], tz="Europe/Berlin")
        st.last, st.last_state = run, state
        st.current, st.run_state = run, state
        st.result = {
            RunState.SUCCESS: "ok",
            RunState.FAILED: "failed (SIGKILL)" if kw.get("signal") else "failed (exit 2)",
            RunState.RUNNING: "running 5m on elsewhere",
            RunState.RAN_ELSEWHERE: "skipped (ran on web2)",
        }.get(state, str(state.value) if state else "never run")  # type: ignore[union-attr]
        st.state = {
            RunState.SUCCESS: "ok",
            RunState.RUNNING: "running",
            RunState.SKIPPED: "skipped",
            RunState.RAN_ELSEWHERE: "ok",
        }.get(state, "failing")  # type: ignore[arg-type]
        st.durations = [n * 1.5 + (i % 4) * 0.25 for i in range(n)] if n % 3 else [2.0] * n
        st.next_run = NOW + timedelta(minutes=7 * n)
        st.expected = NOW - timedelta(minutes=5 * n)
        st.description = "At 02:00 every day" if n % 2 else None
        st.dead_letters = 2 if n % 3 == 0 else 0
        if n % 4 == 1:
            st.missed, st.missed_first, st.missed_count = True, NOW - timedelta(hours=n), n
        if n == 5:
            st.missed_count = 10
        if n == 6:
            st.zone_note = "Healthchecks expects UTC"
        if n == 7:
            st.tz_warning = "tz UTC is not the zone cron fires this line in"
        if fleet:
            st.host = f"host{n % 3}"
        out.append(st)
    out.append(JobStatus("never-ran", schedule="0 0 1 1 *", next_run=NOW + timedelta(days=300)))
    out.append(JobStatus("cron-only", source="crontab", state="unmonitored", unmonitored=True))
    gone = JobStatus("gone", source="none", state="unknown", result="unknown job")
    gone.reason = "no job named 'gone' in the run store or the crontabs (known: a, b)"
    out.append(gone)
    bad = JobStatus("bad", schedule="61 * * * *", schedule_error="bad minute")
    out.append(bad)
    return out


def _tables(fleet: bool) -> str:
    out = []
    for width in WIDTHS:
        for color in (False, True):
            for terminal in (False, True):
                text = render_status(
                    jobs(fleet=fleet), NOW, width=width, color=color, terminal=terminal
                )
                out.append(f"=== width={width} color={color} terminal={terminal}\n{text}")
    return "".join(out)


@pytest.fixture(autouse=True)
def _berlin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")


def _golden(name: str, text: str) -> str:
    path = GOLDEN / name
    if os.environ.get("CRONWRAP_WRITE_GOLDEN"):  # only ever from the code before a fast path
        path.write_text(text, encoding="utf-8")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("fleet", [False, True], ids=["local", "fleet"])
def test_status_table_is_byte_identical(fleet: bool) -> None:
    text = _tables(fleet)
    assert text == _golden(f"status-table-{'fleet' if fleet else 'local'}.txt", text)


def test_status_json_is_byte_identical() -> None:
    docs = [status_json(j) for j in jobs()]
    text = dumps(docs)
    assert text == json.dumps(docs, indent=2)
    assert text == _golden("status.json", text)


def _odd_jobs() -> list[JobStatus]:
    """Values a hand-edited store can hold: an int status, bytes-free odd text, a host that
    is a number, NaN and infinite durations, an int duration, warnings on a run."""
    out = jobs() + jobs(fleet=True)
    odd = out[0]
    odd.last = odd.current = odd.last._replace(  # type: ignore[union-attr]
        status=7, host=42, duration_s=float("nan"), warnings="a\nb\u2028c", reason='q"\\'
    )
    out[1].durations = [float("inf"), -0.0, 3, 1e300, float("-inf")]
    out[2].last = out[2].last._replace(run_id="é\x00", flags="")  # type: ignore[union-attr]
    out[3].current = None
    out[4].durations = [float("inf"), -0.0, 1e-7]  # floats only, one not finite
    out[5].durations = [-0.0, 1e-7, 1e22, 2.5]  # floats only, finite
    return out


@pytest.mark.parametrize("case", ["corpus", "fleet", "odd", "none"])
def test_the_status_document_is_dumps_of_status_json(case: str) -> None:
    from cronwrap.views.jsondoc import status_document

    chosen = {"corpus": jobs(), "fleet": jobs(fleet=True), "odd": _odd_jobs(), "none": []}[case]
    assert status_document(chosen) == dumps([status_json(j) for j in chosen])
    assert status_document(chosen) == json.dumps([status_json(j) for j in chosen], indent=2)


def test_a_value_the_documents_do_not_hold_is_left_to_json() -> None:
    from cronwrap.views.jsondoc import status_document

    odd = jobs()
    odd[0].missed_count = True  # a bool where a count goes: written as json writes it
    odd[1].name = type("Name", (str,), {})("sub")  # a str subclass
    assert status_document(odd) == json.dumps([status_json(j) for j in odd], indent=2)


def test_times_that_are_one_instant_or_one_wall_time_are_each_written_as_they_are() -> None:
    """The table and the document draw each time once for thousands of jobs: equal instants
    in two zones, and the two passes of a repeated hour (equal wall times, fold apart), must
    each still read as themselves."""
    from zoneinfo import ZoneInfo

    from cronwrap.views.jsondoc import status_document

    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)  # CEST, then the hour again in CET
    times = [first, first.replace(fold=1), first.astimezone(timezone.utc), first]
    out = [JobStatus(f"j{n}", schedule="30 2 * * *", next_run=at) for n, at in enumerate(times)]
    for n, st in enumerate(out):
        st.expected = times[-1 - n]
    assert status_document(out) == json.dumps([status_json(j) for j in out], indent=2)
    from cronwrap.views.table import _Clock

    clock = _Clock()
    clock.tz = berlin  # as on a host in Berlin, whatever the zone of this one
    assert [clock(at) for at in times] == [
        "Sun 02:30 CEST", "Sun 02:30 CET", "Sun 02:30 CEST", "Sun 02:30 CEST",
    ]  # fmt: skip


def test_equal_instants_are_written_as_their_own_zone_and_fold_say() -> None:
    """The document writes each distinct instant once: an instant shown in two zones, and the
    two passes of a repeated hour (equal wall times, fold 0 and 1), stay apart."""
    from zoneinfo import ZoneInfo

    from cronwrap.views.jsondoc import status_document

    berlin = ZoneInfo("Europe/Berlin")
    repeated = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)  # 02:30 CEST, then 02:30 CET
    chosen = jobs()[:5]
    chosen[0].next_run = NOW
    chosen[1].next_run = NOW.astimezone(berlin)  # equal to NOW, written +01:00
    chosen[2].next_run, chosen[3].next_run = repeated, repeated.replace(fold=1)
    chosen[4].expected = chosen[4].next_run = repeated.replace(fold=1)
    text = status_document(chosen)
    assert text == json.dumps([status_json(j) for j in chosen], indent=2)
    assert '"next_run": "2026-10-25T02:30:00+02:00"' in text
    assert '"next_run": "2026-10-25T02:30:00+01:00"' in text


def test_equal_durations_are_written_as_each_job_has_them() -> None:
    """The document writes each distinct list of durations once: lists that are equal but
    write apart (0.0 and -0.0, 1 and 1.0, nan) stay apart."""
    from cronwrap.views.jsondoc import status_document

    chosen = jobs()[:8]
    lists: list[list[float]] = [
        [1.5, 0.0],
        [1.5, -0.0],
        [2.0, 1.0],
        [2, 1],  # type: ignore[list-item]
        [2.0, 1.0],
        [float("nan"), 3.0],
        [float("nan"), 3.0],
        [2.0, 1],  # type: ignore[list-item]
    ]
    for st, durations in zip(chosen, lists, strict=True):
        st.durations = durations
    text = status_document(chosen)
    assert text == json.dumps([status_json(j) for j in chosen], indent=2)
    assert "-0.0" in text and "NaN" in text


def test_the_table_draws_equal_instants_and_durations_as_each_job_has_them() -> None:
    """The table draws each distinct instant and duration once: the two passes of a repeated
    hour (equal wall times, fold 0 and 1) and 0.0 and -0.0 seconds stay apart, and an instant
    given in another zone is drawn as the same instant."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    repeated = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)
    now = datetime(2026, 10, 24, 23, 0, tzinfo=timezone.utc)
    chosen = jobs()[:4]
    runs = [repeated, repeated.replace(fold=1), repeated.replace(fold=1).astimezone(timezone.utc)]
    for name, st, at in zip("abcd", chosen, [*runs, repeated], strict=True):
        st.name, st.next_run = name, at
    chosen[0].last = chosen[0].last._replace(duration_s=0.0)  # type: ignore[union-attr]
    chosen[1].last = chosen[1].last._replace(duration_s=-0.0)  # type: ignore[union-attr]
    text = render_status(chosen, now, width=220, color=False, terminal=False)
    rows = {line[0]: line for line in text.splitlines() if line[:2] in ("a ", "b ", "c ", "d ")}
    assert "in 1h30m (Sun 02:30 CEST)" in rows["a"]
    assert "in 2h30m (Sun 02:30 CET)" in rows["b"]
    assert "in 2h30m (Sun 02:30 CET)" in rows["c"]
    assert "in 1h30m (Sun 02:30 CEST)" in rows["d"]
    assert " 0s " in rows["a"] and " -0s " in rows["b"]
