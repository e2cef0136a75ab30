"""The fleet store's readers (state/fleetread.py) on a real PostgreSQL cluster: through libpq
by ctypes and through psycopg they read the same values, exactly the values psycopg decodes
from the tables themselves, and status, history and logs print the same bytes either way;
status through libpq never imports psycopg."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cronwrap.errors import ConfigError, ExitCode
from cronwrap.state import libpq
from cronwrap.state.fleetread import FleetStoreError, open_reader
from cronwrap.state.fleetschema import SCHEMA_VERSION
from cronwrap.state.fleetstore import FleetStore
from cronwrap.state.records import RUN_COLUMNS, AttemptRecord, RunRecord
from tests.conftest import cw_env
from tests.pgserver import PASSWORD, BlackHole, require_postgres

require_postgres()

T0 = datetime(2026, 12, 1, 3, 0, 0, 123457, tzinfo=timezone.utc)
ODD_TEXT = 'tab\there, "quoted" \\ back\nslash, ünïcødé ✓ 🐘, \x01 control'
DRIVERS = ("libpq", "psycopg")


def run(run_id: str, *, host: str, job: str, at: timedelta, **extra: object) -> RunRecord:
    fields = dict.fromkeys(RUN_COLUMNS) | {
        "run_id": run_id,
        "host": host,
        "job": job,
        "pid": 4242,
        "command": "backup.sh --all",
        "started_at": T0 + at,
        "ended_at": T0 + at + timedelta(seconds=1, microseconds=654321),
        "status": "success",
        "exit_code": 0,
        "attempts": 1,
        "duration_s": 1.654321,
        "schedule": "*/5 * * * *",
        "tz": "Europe/Berlin",
        "exit_origin": "child",
        "dead": False,
    }
    return RunRecord(**(fields | extra))


def fill(url: str) -> None:
    """Runs whose values a text or JSON encoding could get wrong: microseconds, durations
    that are whole or tiny or long, text with tabs, quotes, backslashes, newlines, non-ASCII
    and control characters, NULLs, a skip on top of a failure, attempts."""
    runs = [
        run("a1", host="alpha", job="backup", at=timedelta(minutes=0), duration_s=2.0),
        run("a2", host="alpha", job="backup", at=timedelta(minutes=5, microseconds=1),
            duration_s=0.1 + 0.2, status="failed", exit_code=3, reason=ODD_TEXT,
            output_tail=ODD_TEXT + "\n", flags="slow", warnings="ping not sent\nmetrics: full"),
        run("a3", host="alpha", job="backup", at=timedelta(minutes=10), status="skipped",
            ended_at=None, duration_s=None, exit_code=None, reason="ran on beta (slot x)"),
        run("b1", host="beta", job=ODD_TEXT, at=timedelta(days=-400), duration_s=1e-7,
            signal=9, status="failed", exit_code=None, log_path="/var/log/x y\tz"),
        run("b2", host="beta", job="sync", at=timedelta(hours=1), status="running",
            ended_at=None, duration_s=None, exit_code=None, schedule=None, tz=None),
        run("c1", host="gamma ✓", job="report", at=timedelta(seconds=30),
            duration_s=123456.789012345, status="timeout", exit_code=None, signal=15),
    ]  # fmt: skip
    attempts = [
        AttemptRecord("a2", n, T0 + timedelta(minutes=5, seconds=n), None if n == 2 else
                      T0 + timedelta(minutes=5, seconds=n, microseconds=999999), "failed",
                      3, None, 0.999999 if n == 1 else None)
        for n in (1, 2)
    ]  # fmt: skip
    with FleetStore.open(url) as fleet:
        fleet.upsert(runs, attempts)


def reads(url: str, driver: str) -> dict[str, object]:
    """Everything a reader gives, as plain values (types included)."""
    with open_reader(url, timeout_s=10, statement_timeout_s=30, driver=driver) as reader:
        jobs = sorted(reader.jobs(), key=lambda j: (j.host, j.name))
        return {
            "jobs": [
                (j.host, j.name, j.schedule, j.tz, j.last, j.last_ran, j.durations) for j in jobs
            ],
            "named": [j.name for j in reader.jobs(host="alpha", names=["backup", "nope"])],
            "runs": reader.runs(None, limit=100),
            "runs_of": reader.runs("backup", host="alpha", limit=2),
            "run": reader.run("a2"),
            "missing": reader.run("nope"),
            "attempts": reader.attempts("a2"),
            "failures": reader.failures(),
            "hosts": reader.hosts(),
            "job_names": reader.job_names(host="beta"),
            "count": reader.count_runs(),
            "schema": reader.schema_version,
        }


def types(value: object) -> object:
    """The value with each scalar's type beside it: 2 and 2.0 are equal, but print apart."""
    if isinstance(value, list | tuple):
        return [types(v) for v in value]
    if isinstance(value, datetime):
        return (value.isoformat(), value.utcoffset())
    return (type(value).__name__, value)


def test_both_drivers_read_the_same_values_of_every_type(pg_url: str) -> None:
    fill(pg_url)
    got = {driver: reads(pg_url, driver) for driver in DRIVERS}
    assert got["libpq"] == got["psycopg"]
    assert types(list(got["libpq"].values())) == types(list(got["psycopg"].values()))
    [a2] = [r for r in got["libpq"]["runs"] if r.run_id == "a2"]  # type: ignore[attr-defined]
    assert (a2.reason, a2.output_tail, a2.duration_s) == (ODD_TEXT, ODD_TEXT + "\n", 0.1 + 0.2)
    assert got["libpq"]["named"] == ["backup"] and got["libpq"]["missing"] is None


def test_what_is_read_is_what_psycopg_decodes_from_the_tables(pg_url: str) -> None:
    """The JSON the readers ask PostgreSQL for loses nothing: every run and attempt is the
    row psycopg reads from the table in binary (times to the microsecond, doubles exact)."""
    import psycopg

    fill(pg_url)
    columns = ", ".join(RUN_COLUMNS)
    with psycopg.connect(pg_url) as conn:
        cur = conn.cursor(binary=True)
        cur.execute(f"SELECT {columns} FROM cronwrap_runs ORDER BY started_at DESC")  # noqa: S608
        runs = [RunRecord(*r) for r in cur.fetchall()]
        cur.execute("SELECT * FROM cronwrap_attempts ORDER BY attempt")
        attempts = [AttemptRecord(*r) for r in cur.fetchall()]
    for driver in DRIVERS:
        with open_reader(pg_url, timeout_s=10, statement_timeout_s=30, driver=driver) as reader:
            assert reader.runs(None, limit=100) == runs
            assert types(reader.runs(None, limit=100)) == types(runs)
            assert reader.attempts("a2") == attempts


def cli(home: Path, driver: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cronwrap", *args],
        env=cw_env(home, CRONWRAP_FLEET_DRIVER=driver, COLUMNS="150"),
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--json"),
        ("status", "--all", "--failed"),
        ("status", "--host", "alpha", "--json"),
        ("status", "--host", "nowhere"),
        ("status", "--job", "backup", "--job", "nope", "--json"),
        ("status", "--html", "{page}"),
        ("history",),
        ("history", "backup", "--json"),
        ("history", "--host", "beta", "--limit", "3"),
        ("logs", "backup"),
        ("logs", "backup", "--json"),
        ("logs", "backup", "--host", "gamma"),
    ],
    ids=lambda args: " ".join(args).replace("{page}", "PAGE"),
)
def test_status_history_and_logs_print_the_same_bytes_either_way(
    tmp_path: Path, pg_url: str, args: tuple[str, ...]
) -> None:
    fill(pg_url)
    now = ["--now", "2026-12-01T04:00:00+00:00"] if args[0] == "status" else []
    out = {}
    for driver in DRIVERS:
        page = tmp_path / f"{driver}.html"
        argv = [a.replace("{page}", str(page)) for a in args]
        result = cli(tmp_path / "home", driver, *argv, *now, "--fleet-store", pg_url)
        shown = page.read_bytes() if page.exists() else b""
        out[driver] = (result.returncode, result.stdout, result.stderr, shown)
    assert out["libpq"] == out["psycopg"]
    assert out["libpq"][1] or out["libpq"][3] or out["libpq"][2], out  # it said something


def test_history_json_keeps_microseconds_and_doubles(tmp_path: Path, pg_url: str) -> None:
    fill(pg_url)
    shown = cli(tmp_path, "libpq", "history", "backup", "--json", "--fleet-store", pg_url)
    docs = json.loads(shown.stdout)
    assert [d["run_id"] for d in docs] == ["a3", "a2", "a1"]
    assert docs[1]["started_at"] == "2026-12-01T03:05:00.123458+00:00"
    assert docs[1]["duration_s"] == 0.30000000000000004 and docs[2]["duration_s"] == 2.0
    assert docs[1]["attempts_detail"][0]["ended_at"] == "2026-12-01T03:05:02.123456+00:00"
    assert docs[1]["warnings"] == ["ping not sent", "metrics: full"]


def test_status_through_libpq_never_imports_psycopg(tmp_path: Path, pg_url: str) -> None:
    fill(pg_url)

    def imported(driver: str, *args: str) -> bool:
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "cronwrap", *args, "--fleet-store", pg_url],
            env=cw_env(tmp_path, CRONWRAP_FLEET_DRIVER=driver),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode in (0, 1), result.stderr
        return any(line.rstrip().endswith("| psycopg") for line in result.stderr.splitlines())

    for args in (("status",), ("status", "--json"), ("history",), ("logs", "backup")):
        assert not imported("", *args), args  # unset: libpq, which loads here
    assert imported("psycopg", "status")  # the knob's other side, so the probe can see it


def test_an_older_schema_is_upgraded_through_psycopg_then_read(pg_url: str) -> None:
    from tests.test_lease_pg import old_store_held_open

    old_store_held_open(pg_url).close()  # type: ignore[attr-defined]
    with open_reader(pg_url, timeout_s=10, statement_timeout_s=30, driver="libpq") as reader:
        assert reader.schema_version == SCHEMA_VERSION and reader.jobs() == []


def test_a_newer_schema_is_refused_either_way(pg_url: str) -> None:
    with FleetStore.open(pg_url) as fleet:
        fleet.conn.execute("INSERT INTO cronwrap_schema (version) VALUES (99)")
    messages = set()
    for driver in DRIVERS:
        with pytest.raises(FleetStoreError, match="newer than this cronwrap") as info:
            open_reader(pg_url, timeout_s=10, statement_timeout_s=30, driver=driver)
        messages.add(str(info.value))
    assert len(messages) == 1


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_store_it_cannot_reach_is_one_line_and_exit_3(tmp_path: Path, driver: str) -> None:
    hole = BlackHole()
    try:
        for url in ("postgresql://cw@127.0.0.1:1/none", hole.url()):
            result = cli(tmp_path, driver, "status", "--json", "--fleet-store", url)
            assert (result.returncode, result.stdout) == (ExitCode.UNKNOWN, b"")  # not `[]`
            [line] = result.stderr.decode().splitlines()
            assert line.startswith("cronwrap: status unknown: fleet store postgresql://")
            assert " unavailable: " in line and PASSWORD not in line
    finally:
        hole.close()


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_wrong_password_and_a_bad_url_are_told_apart(pg_url: str, driver: str) -> None:
    with pytest.raises(FleetStoreError, match="password authentication failed") as info:
        open_reader(pg_url.replace(PASSWORD, "wrong-pw"), timeout_s=5, statement_timeout_s=5,
                    driver=driver)  # fmt: skip
    assert "wrong-pw" not in str(info.value) and PASSWORD not in str(info.value)
    with pytest.raises(ConfigError, match='invalid percent-encoded token: "%zz"'):
        open_reader("postgresql://%zz@h/d", timeout_s=5, statement_timeout_s=5, driver=driver)


def test_the_driver_knob_takes_only_its_values(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="CRONWRAP_FLEET_DRIVER=pq: expected one of libpq"):
        open_reader(pg_url, timeout_s=5, statement_timeout_s=5, driver="pq")


def test_libpq_loads_from_psycopg_binary_and_from_the_system(pg_url: str) -> None:
    """The copy psycopg-binary bundles is found without importing it (and the system's
    libpq.so.5 works alike, where there is one)."""
    import ctypes

    bundled = libpq._bundled()
    assert bundled and all("psycopg_binary.libs" in p for p in bundled)
    assert "psycopg" not in subprocess.run(
        [sys.executable, "-c", "import sys; from cronwrap.state import libpq; "
         "assert libpq.load(); print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    paths = [bundled[0]]
    try:
        ctypes.CDLL("libpq.so.5")
        paths.append("libpq.so.5")
    except OSError:
        pass
    for path in paths:
        lib = ctypes.CDLL(path)
        for name, (restype, argtypes) in libpq._PROTOTYPES.items():
            getattr(lib, name).restype, getattr(lib, name).argtypes = restype, argtypes
        conn = libpq.Connection.open(lib, pg_url, {"application_name": "cronwrap-test"})
        try:
            sql = "SELECT json_build_array(current_setting('application_name'), 'ü')::text"
            assert conn.first_column(sql, []) == ['["cronwrap-test", "ü"]'.encode()]
        finally:
            conn.close()


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_job_with_only_skips_reads_as_never_ran_either_way(pg_url: str, driver: str) -> None:
    """Its summary has no run that ran (a NULL in the ids looked up under a skip)."""
    skip = run("s1", host="alpha", job="lease", at=timedelta(0), status="skipped",
               ended_at=None, duration_s=None, exit_code=None)  # fmt: skip
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([skip, run("r1", host="alpha", job="backup", at=timedelta(0))], [])
    with open_reader(pg_url, timeout_s=10, statement_timeout_s=30, driver=driver) as reader:
        jobs = {j.name: j for j in reader.jobs()}
    assert (jobs["lease"].last, jobs["lease"].last_ran) == (skip._replace(command=None), None)
    assert jobs["backup"].last_ran is not None


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://cw:hunter2pw%zz@db.example/d",
        "postgresql://cw:hunter2pw@[::1/d",
        "postgresql://db.example/d?password=hunter2pw%zz",
    ],
    ids=["bad escape in password", "whole URL quoted", "password parameter"],
)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_url_libpq_refuses_never_shows_its_password(driver: str, url: str) -> None:
    """libpq quotes the token it could not read, or the whole URL: not when it holds the
    password."""
    with pytest.raises(ConfigError) as info:
        open_reader(url, timeout_s=5, statement_timeout_s=5, driver=driver)
    assert "hunter2pw" not in str(info.value)
    assert str(info.value).startswith("fleet store ")


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_name_with_a_byte_not_utf8_is_looked_up_not_a_traceback(
    tmp_path: Path, pg_url: str, driver: str
) -> None:
    """argv keeps such a byte (a typo) as a lone surrogate, which encoding raised on
    (UnicodeEncodeError, a traceback); the readers look it up as the shipper stores text."""
    with FleetStore.open(pg_url) as fleet:
        fleet.upsert([run("x1", host="alpha", job="backup", at=timedelta(0))], [])
    name, host = "caf\udce9", "h\udcff"
    with open_reader(pg_url, timeout_s=10, statement_timeout_s=30, driver=driver) as reader:
        assert reader.jobs(host=host, names=[name]) == reader.jobs(names=[name]) == []
        assert reader.runs(name, host=host) == reader.failures(host=host, jobs=[name]) == []
        assert reader.job_names(host=host) == []
    for args, code in ((("history", name), 1), (("status", "--job", name), ExitCode.UNKNOWN)):
        result = cli(tmp_path, driver, *args, "--fleet-store", pg_url)
        assert result.returncode == code, result.stderr
        [line] = result.stderr.decode().splitlines()
        assert line.startswith("cronwrap: ") and "caf" in line


def test_a_server_that_stops_answering_mid_read_is_given_up_on(pg_url: str) -> None:
    """A backend that hangs (stopped here: its kernel still acknowledges, so neither the
    server's statement_timeout nor tcp_user_timeout can end the wait) is waited for as long
    as a statement may take and a connect beside it, then given up on: not forever."""
    import os
    import signal
    import time

    reader = open_reader(pg_url, timeout_s=2, statement_timeout_s=1, driver="libpq")
    [[pid]] = reader._rows("SELECT json_build_array(pg_backend_pid())::text", ())
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(FleetStoreError, match="no answer in 3 s"):
            reader.jobs()
        assert time.monotonic() - started < 10
    finally:
        os.kill(pid, signal.SIGCONT)
        reader.close()
