"""Shared fixtures: an isolated CRONWRAP_HOME per test and a helper that runs the real
`cronwrap` in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# a pytest-xdist worker is given the runner's terminal size as COLUMNS and LINES: the cronwrap
# processes the tests start see the environment a cron job has, without them
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)
# nor SIGINT and SIGQUIT ignored: a suite started in the background of a non-interactive shell
# (`cmd &`, nohup) inherits them ignored, and passes that on to every process it starts; cron
# starts a job with neither ignored (an ignored SIGINT left `status --watch` deaf to Ctrl-C,
# and the job's dispositions were compared with an ignored SIGINT cronwrap itself catches)
for _sig in (signal.SIGINT, signal.SIGQUIT):
    if signal.getsignal(_sig) == signal.SIG_IGN:
        signal.signal(_sig, signal.default_int_handler if _sig == signal.SIGINT else signal.SIG_DFL)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    h = tmp_path / "home"
    monkeypatch.setenv("CRONWRAP_HOME", str(h))
    for var in list(os.environ):
        keep = var in ("CRONWRAP_HOME", "CRONWRAP_FLEET_DRIVER") or var.startswith(
            "CRONWRAP_REQUIRE_"
        )
        if var.startswith("CRONWRAP_") and not keep:
            monkeypatch.delenv(var)
    yield h


def cw_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CRONWRAP_") or k == "CRONWRAP_FLEET_DRIVER"  # see fleet_driver
    }
    env["CRONWRAP_HOME"] = str(home)
    env.update(extra)
    return env


def cronwrap(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as cron would."""
    return subprocess.run(
        [sys.executable, "-m", "cronwrap", *args],
        capture_output=True,
        text=True,
        env=env or cw_env(home),
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


def popen_cronwrap(
    home: Path, *args: str, env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cronwrap", *args],
        env=env or cw_env(home),
        **kwargs,  # type: ignore[call-overload]
    )


def events(home: Path) -> list[dict[str, object]]:
    import json

    path = home / "cronwrap.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def catches(pid: int, sig: int) -> bool:
    """The process has a handler for `sig` (SigCgt in /proc/PID/status): a signal sent
    before that, while a busy machine still starts the interpreter, kills it instead."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught >> (sig - 1) & 1)


def alive(pid: int) -> bool:
    """True while `pid` runs: a zombie is dead (killed, not yet reaped by its new parent, and
    here PID 1 reaps late, so /proc/PID stays for seconds after the kill)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_supervised(home: Path, job: str) -> None:
    """Wait until cronwrap has passed the job's "started" line to the job's log: it is then
    past the spawn and has told its watchdog the job's pid, so a SIGKILL of cronwrap ends
    the job too. A job that merely began may have run before that (a window of a few
    instructions, which a busy machine stretches): killed then, the job lived on."""
    logs = home / "output" / job
    wait_for(lambda: logs.exists() and any("started" in p.read_text() for p in logs.iterdir()))


def popen_sleeping_job(home: Path, job: str, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """`cronwrap run --name JOB` of a job that sleeps for a minute, once it is supervised
    (see wait_supervised): the cronwrap process and the job's pid."""
    pidfile = tmp_path / f"{job}.pid"
    child = (
        f"import os,pathlib,time; pathlib.Path({str(pidfile)!r}).write_text("
        "str(os.getpid())); print('started', flush=True); time.sleep(60)"
    )
    proc = popen_cronwrap(
        home, "run", "--name", job, "--", sys.executable, "-c", child, stdout=subprocess.DEVNULL
    )
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", timeout=30)
    wait_supervised(home, job)
    return proc, int(pidfile.read_text())


def seconds_between(home: Path, first: str, then: str) -> float:
    """Seconds from the first `first` event of the event log to the next `then`, by the
    log's own timestamps: what the run did in between, without the start-up of the
    interpreters around it, which a busy machine stretches by seconds."""
    from datetime import datetime

    log = events(home)
    i = next(n for n, e in enumerate(log) if e["event"] == first)
    j = next(n for n in range(i + 1, len(log)) if log[n]["event"] == then)
    at = [datetime.fromisoformat(str(log[n]["ts"]).replace("Z", "+00:00")) for n in (i, j)]
    return (at[1] - at[0]).total_seconds()


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Poll until `predicate()` is true; fail the test after `timeout` seconds (generous:
    the machine may be busy, and a condition that holds returns at once)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[object]:
    """One real PostgreSQL cluster for the whole session (see tests/pgserver.py)."""
    from tests.pgserver import PgServer, require_postgres

    server = PgServer(require_postgres()).init().start()
    yield server
    server.cleanup()


@pytest.fixture(params=["libpq", "psycopg"])
def fleet_driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A test that reads the fleet store runs twice: status, history and logs read it through
    libpq by ctypes, and through psycopg when libpq does not load (CRONWRAP_FLEET_DRIVER
    forces either), and both must behave alike."""
    monkeypatch.setenv("CRONWRAP_FLEET_DRIVER", request.param)
    return str(request.param)


@pytest.fixture
def pg_url(pg_cluster: object, request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's cluster, as a postgresql:// URL with a password."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]", "_", request.node.name.lower())[:50]
    pg_cluster.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
    return pg_cluster.create_db(name)  # type: ignore[attr-defined,no-any-return]


def fleet_shippers(home: Path) -> list[int]:
    """The pids of the detached fleet shippers (run/ship.py) at work for this home."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except OSError:
            continue
        ours = any(b"cronwrap.run.ship import main" in a for a in argv)
        if ours and not zombie and str(home).encode() in argv:
            pids.append(int(entry))
    return pids


def wait_shipped(home: Path, timeout: float = 60.0) -> None:
    """Wait for this home's shipper to be done: no shipper at work and its queue empty (the
    timeout is generous: the machine may be busy)."""
    import sqlite3

    def done() -> bool:
        if fleet_shippers(home):
            return False
        db = sqlite3.connect(home / "runs.db")
        try:
            return int(db.execute("SELECT count(*) FROM fleet_outbox").fetchone()[0]) == 0
        finally:
            db.close()

    wait_for(done, timeout)


def history(home: Path, job: str) -> list[dict[str, object]]:
    import json

    out = cronwrap(home, "history", job, "--json", "--limit", "100")
    return json.loads(out.stdout) if out.returncode == 0 else []


def slot_this_minute() -> list[str]:
    """A daily schedule firing at the current UTC minute, with a tolerance that covers the
    test: every run of the test has the same nearest slot (an every-minute schedule would
    flip to the next slot half-way through a minute, and runs either side are two slots)."""
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    return [
        "--schedule",
        f"{now.minute} {now.hour} * * *",
        "--tz",
        "UTC",
        "--slot-tolerance",
        "10m",
    ]


def assert_one_slot_run_across_hosts(home: Path, ran: Path, lock_url: str) -> str:
    """Six hosts start job `report` for the same slot through `lock_url` at once: exactly one
    runs it, the others record a skip naming the winner. Returns the winner."""
    slot = slot_this_minute()
    procs = [
        popen_cronwrap(
            home,
            "run",
            "--name",
            "report",
            "--host-id",
            f"host{i}",
            "--lock-url",
            lock_url,
            *slot,
            "--",
            "sh",
            "-c",
            f"echo host{i} >> {ran}; sleep 0.5",
        )
        for i in range(6)
    ]
    for p in procs:
        assert p.wait(60) == 0
    winners = ran.read_text().split()
    assert len(winners) == 1
    runs = history(home, "report")
    assert sorted(str(r["status"]) for r in runs) == ["skipped"] * 5 + ["success"]
    for r in runs:
        if r["status"] == "skipped":
            assert str(r["reason"]).startswith(f"ran on {winners[0]}")
    return winners[0]
