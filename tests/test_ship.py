"""The detached fleet shipper (run/ship.py) with real `cronwrap run` processes and a real
PostgreSQL cluster: the run never waits for it, one shipper per host at a time, bounded, and
nothing lost or doubled when the store is slow, down or black-holed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cronwrap.run.ship import backlog_note, note_failure, shipper_bound_s
from cronwrap.state.store import Store
from tests.conftest import cronwrap, cw_env, fleet_shippers, wait_for, wait_shipped
from tests.pgserver import PASSWORD, BlackHole, PgServer, free_port, require_postgres

require_postgres()


def run_cmd(home: Path, url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "cronwrap", "run", "--fleet-store", url, *args]


def run(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cronwrap(home, "run", "--fleet-store", url, *args)


def db_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_runs_at_once_share_one_connection_and_all_arrive(
    tmp_path: Path, pg_cluster: PgServer, pg_url: str
) -> None:
    import psycopg

    home = tmp_path / "h"
    env = cw_env(home)
    assert run(home, pg_url, "--name", "warm", "--", "true").returncode == 0
    wait_shipped(home)
    most, stop = [0], threading.Event()

    def watch() -> None:  # how many cronwrap connections PostgreSQL has at once
        with psycopg.connect(pg_cluster.socket_url(db_of(pg_url)), autocommit=True) as conn:
            while not stop.is_set():
                n = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name = 'cronwrap'",
                    (db_of(pg_url),),
                ).fetchone()
                most[0] = max(most[0], int(n[0]) if n else 0)
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        procs = [
            subprocess.Popen(
                run_cmd(home, pg_url, "--name", f"j{n}", "--", "sh", "-c", f"exit {n % 3}"),
                env=env,
            )
            for n in range(20)
        ]
        codes = [p.wait(timeout=120) for p in procs]
        wait_shipped(home)
    finally:
        stop.set()
        watcher.join()
    assert codes == [n % 3 for n in range(20)]
    assert most[0] <= 1  # one shipper per host, however many runs
    rows = pg_cluster.sql("SELECT run_id, status FROM cronwrap_runs", db_of(pg_url))
    assert len(rows) == 21 and len({r[0] for r in rows}) == 21
    assert {r[1] for r in rows} == {"success", "failed"}


def test_cron_capture_ends_with_the_job_not_with_the_shipment(tmp_path: Path) -> None:
    """cron mails a run's output once every holder of the pipe closed it."""
    home = tmp_path / "h"
    hole = BlackHole()
    try:
        proc = subprocess.Popen(
            run_cmd(home, hole.url(), "--fleet-budget", "30s", "--name", "j", "--",
                    "sh", "-c", "echo out; echo err >&2"),
            env=cw_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert (out, err) == (b"out\n", b"err\n")  # the job's, and nothing of cronwrap's
        assert fleet_shippers(home)  # the shipper still waits for the black hole
    finally:
        hole.close()  # the waiting connect is refused now
    wait_for(lambda: not fleet_shippers(home), 60)


def test_a_shipper_never_holds_the_job_lock(tmp_path: Path) -> None:
    home = tmp_path / "h"
    hole = BlackHole()
    try:
        for _ in range(2):
            r = cronwrap(
                home, "run", "--fleet-store", hole.url(), "--fleet-budget", "30s",
                "--name", "j", "--", "true",
            )  # fmt: skip
            assert r.returncode == 0, r.stderr
            assert r.stderr == ""  # not skipped as an overlap: the job lock is free
            assert fleet_shippers(home)
        history = cronwrap(home, "history", "j")
        assert history.stdout.count("success") == 2, history.stdout
    finally:
        hole.close()
    wait_for(lambda: not fleet_shippers(home), 60)


def test_a_store_that_hangs_a_statement_costs_the_shipper_its_budget_only(
    tmp_path: Path, pg_cluster: PgServer, pg_url: str
) -> None:
    import psycopg

    home = tmp_path / "h"
    assert run(home, pg_url, "--name", "j", "--", "true").returncode == 0
    wait_shipped(home)
    with psycopg.connect(pg_cluster.socket_url(db_of(pg_url))) as blocker:
        blocker.execute("LOCK TABLE cronwrap_runs IN ACCESS EXCLUSIVE MODE")  # held open
        for code in (0, 5):
            r = run(home, pg_url, "--fleet-budget", "1s", "--name", "j", "--",
                    "sh", "-c", f"exit {code}")  # fmt: skip
            assert r.returncode == code and "fleet" not in r.stderr, r.stderr
        # gone within its bound (generous: a busy machine), having said why in a file
        wait_for(lambda: not fleet_shippers(home), shipper_bound_s(1.0) + 30)
        status = cronwrap(home, "status")
        assert "not shipped yet" in status.stderr and "statement timeout" in status.stderr
        blocker.rollback()
    assert run(home, pg_url, "--name", "j", "--", "true").returncode == 0
    wait_shipped(home)
    rows = pg_cluster.sql("SELECT run_id, exit_code FROM cronwrap_runs", db_of(pg_url))
    assert len(rows) == 4 and len({r[0] for r in rows}) == 4
    assert sorted(r[1] for r in rows) == [0, 0, 0, 5]
    assert "not shipped" not in cronwrap(home, "status").stderr


@pytest.mark.parametrize("failed", [False, True], ids=["behind", "after-a-failure"])
def test_backlog_note_says_how_many_how_old_and_why(tmp_path: Path, failed: bool) -> None:
    from datetime import datetime, timezone

    store = Store.open(tmp_path / "runs.db")
    try:
        assert backlog_note(store, str(tmp_path), now=datetime.now(timezone.utc)) is None
        store.queue_for_fleet("r1")
        store.queue_for_fleet("r2")
        oldest = store.fleet_oldest_queued_at()
        assert oldest is not None
        if failed:
            note_failure(str(tmp_path), "fleet store x unavailable: refused", now=oldest)
        soon = backlog_note(store, str(tmp_path), now=oldest + timedelta(seconds=5))
        assert (soon is not None) == failed  # fresh changes are normal, unless shipping failed
        late = backlog_note(store, str(tmp_path), now=oldest + timedelta(minutes=3))
        assert late is not None and late.startswith("fleet store: 2 run changes not shipped yet")
        assert "the oldest queued 3m ago" in late
        assert ("failed: fleet store x unavailable: refused" in late) == failed
    finally:
        store.close()


@pytest.mark.parametrize("store", ["up", "down"])
def test_a_fleet_store_changes_nothing_the_run_says_or_keeps(
    tmp_path: Path, pg_url: str, store: str
) -> None:
    """Exit code, stdout, stderr lines and the local history are those of the same run
    without a fleet store."""
    import json
    import re

    dead = f"postgresql://postgres:x@127.0.0.1:{free_port()}/db"  # a closed port
    url = pg_url if store == "up" else dead
    job = ["--name", "j", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]
    plain_home, fleet_home = tmp_path / "plain", tmp_path / "fleet"
    plain = cronwrap(plain_home, "run", *job)
    shipped = run(fleet_home, url, *job)
    wait_for(lambda: not fleet_shippers(fleet_home), 60)

    def said(r: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
        return r.returncode, r.stdout, re.sub(r"\(\d+\.\ds\)", "(T)", r.stderr)

    assert said(shipped) == said(plain)

    def kept(home: Path) -> list[dict[str, object]]:
        volatile = {"run_id", "pid", "started_at", "ended_at", "duration_s", "log_path", "host"}
        docs = json.loads(cronwrap(home, "history", "j", "--json").stdout)
        for d in docs:
            d["attempts_detail"] = [
                {k: v for k, v in a.items() if k not in volatile} for a in d["attempts_detail"]
            ]
        return [{k: v for k, v in d.items() if k not in volatile} for d in docs]

    assert kept(fleet_home) == kept(plain_home)


def test_a_shipper_that_fails_unexpectedly_leaves_word_for_status(tmp_path: Path) -> None:
    """A failure no layer turned into a CronwrapError (a bug, an error of a library's that
    was not foreseen) ended the detached shipper with a traceback into /dev/null: status then
    said only that runs were not shipped, never why. The note says it, without the URL's
    password."""
    import os

    url = "postgresql://cw:hunter2secret@127.0.0.1:1/fleet"
    code = (
        "import os, sys\n"
        "fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR); os.dup2(fd, 3)\n"
        "from cronwrap.run import ship\n"
        "def boom(self): raise RuntimeError(f'no way to {os.environ[ship.URL_ENV]}')\n"
        "ship._Shipper._ship_queue = boom  # stands for a bug in the shipping code\n"
        "sys.exit(ship.main([sys.argv[2], sys.argv[3], '5.0']))\n"
    )
    state = tmp_path / "state"
    state.mkdir()
    env = {**os.environ, "CRONWRAP_FLEET_STORE": url}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "lock"), str(state), str(state / "runs.db")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    failed = (state / "fleet-ship.failed").read_text()
    assert "the shipper failed (RuntimeError: no way to" in failed
    assert "hunter2secret" not in failed and "with fleet store postgresql://127.0.0.1:1/" in failed


def test_a_shipper_stopped_at_its_bound_says_so(tmp_path: Path) -> None:
    """Past its bound a shipper is ended; it left no word, so status showed the backlog with
    no reason. It now notes why before it goes (here its bound is cut to 3 s and the fleet
    store is a black hole that a 30 s budget would wait for)."""
    home = tmp_path / "h"
    hole = BlackHole()
    try:
        r = cronwrap(
            home, "run", "--fleet-store", hole.url(), "--fleet-budget", "30s",
            "--name", "j", "--", "true",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        for pid in fleet_shippers(home):  # the run's own shipper, with the full bound
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not fleet_shippers(home), 30)
        script = (
            "import os, sys\n"
            "import cronwrap.run.ship as ship\n"
            "ship.shipper_bound_s = lambda budget_s: 3.0\n"
            "os.dup2(ship.take_lock(sys.argv[1]), ship.LOCK_FD)\n"
            "sys.exit(ship.main([sys.argv[1], sys.argv[2], '30']))\n"
        )
        started = time.monotonic()
        shipper = subprocess.run(
            [sys.executable, "-c", script, str(home), str(home / "runs.db")],
            env={**cw_env(home), "CRONWRAP_FLEET_STORE": hole.url()},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - started
    finally:
        hole.close()
    assert shipper.returncode == 1, (shipper.returncode, shipper.stderr)
    assert took < 30  # well before the 30 s budget it would have waited
    note = (home / "fleet-ship.failed").read_text()
    assert "stopped after 2s, its bound" in note and PASSWORD not in note
    late = backlog_note(Store.open(home / "runs.db"), str(home), now=datetime.now(timezone.utc))
    assert late is not None and "stopped after 2s" in late
