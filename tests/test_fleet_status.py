"""`cronwrap status --fleet-store` through the real CLI on a real PostgreSQL cluster, with
runs written straight into the store (no shipping): what it says about the jobs asked for."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from cronwrap.errors import ExitCode
from cronwrap.state.fleetstore import FleetStore
from tests.conftest import cronwrap
from tests.pgserver import require_postgres
from tests.test_fleet_summary import T0, rec

# the stored runs are of T0's day (a daily job at 03:00): judged an hour after, not today,
# when a day's slot has passed with no run (the suite failed from 03:05 UTC the next day)
NOW = ("--now", (T0 + timedelta(hours=1)).isoformat())

require_postgres()


def stored(url: str) -> None:
    with FleetStore.open(url) as fleet:
        fleet.upsert(
            [
                rec("a1", host="a", job="backup"),
                rec("b1", host="b", job="backup"),
                rec("b2", host="b", job="sync"),
            ],
            [],
        )


def test_an_unknown_job_is_shown_as_unknown_and_exits_3(
    home: Path, pg_url: str, fleet_driver: str
) -> None:
    stored(pg_url)
    result = cronwrap(home, "status", *NOW, "--fleet-store", pg_url, "--job", "nosuch", "--json")
    assert result.returncode == ExitCode.UNKNOWN, result.stderr
    assert "no job named 'nosuch' in the fleet store (known: backup, sync)" in result.stderr
    [doc] = json.loads(result.stdout)
    assert (doc["name"], doc["state"], doc["result"]) == ("nosuch", "unknown", "unknown job")

    table = cronwrap(
        home, "status", *NOW, "--fleet-store", pg_url, "--job", "backup", "--job", "nosuch"
    )
    assert table.returncode == ExitCode.UNKNOWN, table.stderr
    names = [line.split()[0] for line in table.stdout.splitlines()[1:-1] if line.strip()]
    assert names[:3] == ["backup", "backup", "nosuch"]
    assert "unknown job" in table.stdout

    known = cronwrap(home, "status", *NOW, "--fleet-store", pg_url, "--job", "backup", "--json")
    assert known.returncode == ExitCode.OK, known.stderr
    assert sorted(d["host"] for d in json.loads(known.stdout)) == ["a", "b"]


def test_a_job_not_on_the_host_asked_for_is_unknown(
    home: Path, pg_url: str, fleet_driver: str
) -> None:
    stored(pg_url)
    args = ("status", *NOW, "--fleet-store", pg_url, "--host", "a", "--json")
    result = cronwrap(home, *args, "--job", "sync")
    assert result.returncode == ExitCode.UNKNOWN, result.stderr
    assert "no job named 'sync' in the fleet store on host 'a' (known: backup)" in result.stderr
    assert [(d["name"], d["state"]) for d in json.loads(result.stdout)] == [("sync", "unknown")]
    assert cronwrap(home, *args, "--job", "backup").returncode == ExitCode.OK


def test_an_unknown_host_is_said_to_be_unknown_with_or_without_a_job(
    home: Path, pg_url: str, fleet_driver: str
) -> None:
    """`--host nosuch` names the hosts the store knows, with --job too (it said "no job named
    'x' ... (known: none)", as though the host were known and empty), and exits 3, as local
    status does for a host no run came from."""
    stored(pg_url)
    why = "cronwrap: status unknown: no job's last run was on host 'nosuch' (hosts: a, b)"
    for job in ([], ["--job", "backup"], ["--job", "x"]):
        args = ("status", *NOW, "--fleet-store", pg_url, "--host", "nosuch", "--json", *job)
        result = cronwrap(home, *args)
        assert result.returncode == ExitCode.UNKNOWN, result.stderr
        assert result.stderr.strip() == why, job
        assert json.loads(result.stdout) == []
