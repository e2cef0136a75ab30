"""Fleet mode on PostgreSQL (--lock-url postgresql://): a real cluster started by the tests,
several "hosts" (--host-id) sharing one CRONWRAP_HOME for their history, real processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from cronwrap.run.lease_pg import LOCK_CLASS, lock_key
from tests.conftest import (
    assert_one_slot_run_across_hosts,
    catches,
    cronwrap,
    events,
    history,
    popen_cronwrap,
    slot_this_minute,
    wait_for,
)
from tests.pgserver import PASSWORD, BlackHole, PgServer, require_postgres

require_postgres()


def lease_held(cluster: PgServer, db: str, job: str) -> bool:
    key = lock_key(job) % 2**32
    rows = cluster.sql(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "  # noqa: S608
        f"AND classid = {LOCK_CLASS} AND objid = {key}",
        db,
    )
    return bool(rows[0][0])


def test_one_run_per_slot_across_hosts(home: Path, tmp_path: Path, pg_url: str) -> None:
    # the lease tables exist before the six hosts start: on a fresh database all six created
    # them at once within the lock server's 15 s budget, which on a busy machine none met
    # (every host skipped, "unavailable: no answer within 15s", and none ran the slot)
    warm = cronwrap(home, "run", "--name", "warm", "--lock-url", pg_url, "--", "true")
    assert warm.returncode == 0, warm.stderr
    assert_one_slot_run_across_hosts(home, tmp_path / "ran", pg_url)


def test_a_held_lease_skips_and_a_killed_holder_frees_it(
    home: Path, tmp_path: Path, pg_url: str
) -> None:
    marker = tmp_path / "m"
    holder = popen_cronwrap(
        home,
        "run",
        "--name",
        "k",
        "--host-id",
        "a",
        "--lock-url",
        pg_url,
        "--",
        "sh",
        "-c",
        f"touch {marker}; exec sleep 30",
    )
    wait_for(marker.exists, 30)
    blocked = cronwrap(
        home, "run", "--name", "k", "--host-id", "b", "--lock-url", pg_url, "--", "true"
    )
    assert blocked.returncode == 0, blocked.stderr
    holder.kill()  # cronwrap dies: its session ends and the server drops the advisory lock
    holder.wait()
    wait_for(
        lambda: (
            cronwrap(
                home, "run", "--name", "k", "--host-id", "b", "--lock-url", pg_url, "--", "true"
            ).returncode
            == 0
            and history(home, "k")[0]["status"] == "success"
        ),
        30,
    )
    runs = history(home, "k")
    skipped = [r for r in runs if r["status"] == "skipped"]
    assert skipped and "previous run still holds the lease on a" in skipped[-1]["reason"]
    assert runs[0]["host"] == "b" and runs[0]["status"] == "success"


@pytest.mark.parametrize(
    ("policy", "code", "ran", "status"),
    [("skip", 0, False, "skipped"), ("run", 0, True, "success"), ("fail", 125, False, None)],
)
def test_unreachable_lock_server(
    home: Path, tmp_path: Path, policy: str, code: int, ran: bool, status: str | None
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    marker = tmp_path / "ran"
    t = time.monotonic()
    result = cronwrap(
        home,
        "run",
        "--name",
        "u",
        "--lock-url",
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:{dead}/x",
        "--lock-unavailable",
        policy,
        "--",
        "touch",
        str(marker),
    )
    assert time.monotonic() - t < 20  # bounded connection timeouts
    assert result.returncode == code, result.stderr
    assert marker.exists() is ran
    assert "unavailable" in result.stderr and PASSWORD not in result.stderr
    runs = history(home, "u")
    assert (runs[0]["status"] if runs else None) == status


def test_black_holed_lock_server_is_bounded(home: Path, tmp_path: Path) -> None:
    hole = BlackHole()
    try:
        t = time.monotonic()
        result = cronwrap(
            home,
            "run",
            "--name",
            "bh",
            "--lock-url",
            hole.url(),
            "--lock-unavailable",
            "run",
            "--",
            "sh",
            "-c",
            "exit 7",
        )
        assert time.monotonic() - t < 20
    finally:
        hole.close()
    assert result.returncode == 7, result.stderr
    assert "unavailable" in result.stderr
    assert PASSWORD not in result.stderr


def test_lease_survives_a_server_restart(
    home: Path, tmp_path: Path, pg_cluster: PgServer, pg_url: str
) -> None:
    """The slot claim is a committed row, so a host starting after the restart is still
    skipped; the holder reconnects and takes its advisory lock again within --lock-ttl."""
    db = pg_url.rsplit("/", 1)[1]
    marker, done, release = tmp_path / "m", tmp_path / "done", tmp_path / "release"
    common = ["--lock-url", pg_url, "--lock-ttl", "6s", *slot_this_minute()]
    first = popen_cronwrap(
        home,
        "run",
        "--name",
        "r",
        "--host-id",
        "a",
        *common,
        "--",
        "sh",
        "-c",
        # runs until the test releases it: no assumption about how fast anything is
        f"touch {marker}; while [ ! -e {release} ]; do sleep 0.05; done; touch {done}",
        stderr=subprocess.PIPE,
    )
    wait_for(marker.exists, 30)
    assert lease_held(pg_cluster, db, "r")
    pg_cluster.restart()
    wait_for(lambda: lease_held(pg_cluster, db, "r"), 30)  # a took it back
    second = cronwrap(
        home,
        "run",
        "--name",
        "r",
        "--host-id",
        "b",
        *common,
        "--",
        "true",
    )
    assert second.returncode == 0, second.stderr
    no_slot = cronwrap(
        home, "run", "--name", "r", "--host-id", "c", "--lock-url", pg_url, "--", "true"
    )
    assert no_slot.returncode == 0, no_slot.stderr
    release.touch()
    assert first.wait(60) == 0
    assert first.stderr is not None
    assert "lost" not in first.stderr.read().decode()
    assert done.exists()
    runs = {r["host"]: r for r in history(home, "r")}
    assert runs["a"]["status"] == "success"
    assert runs["b"]["status"] == "skipped" and runs["b"]["reason"].startswith("ran on a")
    assert runs["c"]["status"] == "skipped" and "holds the lease on a" in runs["c"]["reason"]
    assert not any(e["event"] == "lock.lost" for e in events(home))


def test_server_gone_for_longer_than_the_ttl_loses_the_lease(
    home: Path, tmp_path: Path, pg_cluster: PgServer, pg_url: str
) -> None:
    marker = tmp_path / "m"
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "gone",
        "--lock-url",
        pg_url,
        "--lock-ttl",
        "2s",
        "--on-lock-lost",
        "kill",
        "--kill-after",
        "1s",
        "--",
        "sh",
        "-c",
        f"touch {marker}; sleep 30",
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(marker.exists, 30)
        pg_cluster.stop()
        assert proc.wait(60) == 143
    finally:
        if not pg_cluster.is_up():
            pg_cluster.start()
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    assert "fleet lease of gone lost" in stderr
    [run] = history(home, "gone")
    assert run["status"] == "failed" and "--on-lock-lost kill" in run["reason"]
    assert "lock-lost" in (run["flags"] or "")


def test_sigterm_ends_a_wait_for_the_lease_at_once(home: Path, tmp_path: Path, pg_url: str) -> None:
    """--on-overlap wait on a fleet lease stops waiting when SIGTERM comes, as it does on
    the local lock: the job is not started and the run is cancelled (it waited out the
    whole --lock-wait)."""
    marker, ran = tmp_path / "m", tmp_path / "ran"
    common = ["run", "--name", "w", "--lock-url", pg_url]
    holder = popen_cronwrap(
        home, *common, "--host-id", "a", "--", "sh", "-c", f"touch {marker}; exec sleep 60"
    )
    try:
        wait_for(marker.exists, 30)
        waiter = popen_cronwrap(
            home, *common, "--host-id", "b", "--on-overlap", "wait", "--lock-wait", "50s",
            "--", "touch", str(ran),
        )  # fmt: skip
        time.sleep(2)  # long enough to be inside the wait on a quiet machine
        # on a busy one, cronwrap may still be starting: the SIGTERM must find its handler
        # (before it, the default action kills the process: -15, which is not what is tested)
        wait_for(lambda: catches(waiter.pid, signal.SIGTERM), 60)
        t0 = time.monotonic()
        waiter.send_signal(signal.SIGTERM)
        code = waiter.wait(40)
        assert code == 143 and time.monotonic() - t0 < 20
        assert not ran.exists()
    finally:
        holder.kill()
        holder.wait()


def old_store_held_open(url: str) -> object:
    """A fleet store at schema 2 (as cronwrap 2026-11 left it), and a session in the middle of
    a transaction that has read cronwrap_jobs (a report, pg_dump): an upgrade that alters it
    must wait for that session. Returns the session; close it to let go."""
    import psycopg

    from cronwrap.state.fleetschema import MIGRATIONS

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE cronwrap_schema "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for number in (0, 1):
            conn.execute(MIGRATIONS[number])
            conn.execute("INSERT INTO cronwrap_schema (version) VALUES (%s)", (number + 1,))
    reader = psycopg.connect(url)
    reader.execute("SELECT count(*) FROM cronwrap_jobs").fetchone()  # its transaction stays open
    return reader


def test_a_pending_schema_upgrade_never_holds_up_a_leased_job(
    home: Path, tmp_path: Path, pg_url: str
) -> None:
    """The lease uses only tables every schema has: a store that another session keeps from
    being upgraded must not cost the job its budget, nor its run (it waited 15 s, then the
    lock was 'unavailable' and the run skipped, on every host at once)."""
    reader = old_store_held_open(pg_url)
    try:
        marker = tmp_path / "ran"
        done = cronwrap(
            home, "run", "--name", "up", "--lock-url", pg_url, "--", "touch", str(marker),
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert marker.exists(), done.stderr
        assert history(home, "up")[0]["status"] == "success"
        assert done.stderr == ""
    finally:
        reader.close()  # type: ignore[attr-defined]
