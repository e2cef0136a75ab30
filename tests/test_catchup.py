"""Catch-up selection: which jobs missed their most recent slot, from recorded runs and a
time passed in (no frozen clocks)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cronwrap.run.catchup import plan
from cronwrap.state.store import Store

UTC = timezone.utc
GRACE = timedelta(minutes=5)
DAY1 = datetime(2026, 12, 1, 3, 0, 0, 400000, tzinfo=UTC)  # a daily 03:00 run, started late


def _record(
    store: Store,
    run_id: str,
    *,
    at: datetime,
    slot: datetime | None,
    catch_up: bool = True,
    max_age: float | None = None,
    schedule: str = "0 3 * * *",
    status: str = "success",
) -> None:
    store.record_start(
        run_id=run_id,
        job="nightly",
        host="h",
        pid=1,
        command="x",
        started_at=at,
        schedule=schedule,
        tz="UTC",
        log_path=None,
        slot=slot,
        spec='{"v": 1}',
        catch_up=catch_up,
        catch_up_max_age=max_age,
    )
    store.record_end(
        run_id=run_id,
        ended_at=at + timedelta(seconds=2),
        status=status,
        exit_code=0,
        signal=None,
        attempts=1,
        duration_s=2.0,
        output_tail=None,
        reason=None,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "runs.db")


def test_a_slot_that_ran_is_not_due(store: Store) -> None:
    _record(store, "r1", at=DAY1, slot=DAY1.replace(microsecond=0))
    [verdict] = plan(store, now=DAY1 + timedelta(hours=5), grace=GRACE)
    assert not verdict.due and "ran for its most recent slot" in verdict.reason


def test_host_off_across_a_slot_makes_it_due_for_that_slot(store: Store) -> None:
    _record(store, "r1", at=DAY1, slot=DAY1.replace(microsecond=0))
    # off from 02:00 on day 2 to 09:00 on day 3: slots day2 03:00 and day3 03:00 missed
    back = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    [verdict] = plan(store, now=back, grace=GRACE)
    assert verdict.due and verdict.slot == datetime(2026, 12, 3, 3, 0, tzinfo=UTC)


def test_the_newest_slot_within_grace_is_left_to_cron(store: Store) -> None:
    _record(store, "r1", at=DAY1, slot=DAY1.replace(microsecond=0))
    just_after = datetime(2026, 12, 2, 3, 2, tzinfo=UTC)
    [verdict] = plan(store, now=just_after, grace=GRACE)
    assert not verdict.due  # the day-1 slot ran; day 2's may still be starting


def test_slots_older_than_max_age_are_not_caught_up(store: Store) -> None:
    _record(store, "r1", at=DAY1, slot=DAY1.replace(microsecond=0), max_age=3600.0)
    [verdict] = plan(store, now=datetime(2026, 12, 2, 6, 0, tzinfo=UTC), grace=GRACE)
    assert not verdict.due and "older than --catch-up-max-age" in verdict.reason
    [young] = plan(store, now=datetime(2026, 12, 2, 3, 30, tzinfo=UTC), grace=GRACE)
    assert young.due


def test_a_caught_up_slot_is_not_due_again(store: Store) -> None:
    _record(store, "r1", at=DAY1, slot=DAY1.replace(microsecond=0))
    back = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    [verdict] = plan(store, now=back, grace=GRACE)
    assert verdict.due and verdict.slot is not None
    _record(store, "catch", at=back, slot=verdict.slot, status="failed")
    [again] = plan(store, now=back + timedelta(minutes=30), grace=GRACE)
    assert not again.due  # even a failed catch-up run: that is a dead letter, not a retry


def test_jobs_without_catch_up_are_not_considered(store: Store) -> None:
    _record(store, "r1", at=DAY1, slot=DAY1.replace(microsecond=0), catch_up=False)
    assert plan(store, now=DAY1 + timedelta(days=3), grace=GRACE) == []


def test_runs_recorded_before_slots_count_by_their_start(store: Store) -> None:
    _record(store, "old", at=datetime(2026, 12, 2, 3, 0, 1, tzinfo=UTC), slot=None)
    [verdict] = plan(store, now=datetime(2026, 12, 2, 9, 0, tzinfo=UTC), grace=GRACE)
    assert not verdict.due


def test_dst_zone_slot_is_the_real_instant(store: Store) -> None:
    store.record_start(
        run_id="r1",
        job="nightly",
        host="h",
        pid=1,
        command="x",
        started_at=datetime(2026, 3, 27, 1, 30, tzinfo=UTC),
        schedule="30 2 * * *",
        tz="Europe/Berlin",
        log_path=None,
        catch_up=True,
        spec='{"v": 1}',
    )
    # 02:30 does not exist in Berlin on 2026-03-29 (spring forward): cron runs it at 03:00
    [verdict] = plan(store, now=datetime(2026, 3, 29, 9, 0, tzinfo=UTC), grace=GRACE)
    assert verdict.due and verdict.slot == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
