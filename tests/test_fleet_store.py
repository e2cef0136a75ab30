"""The fleet store end to end: real `cronwrap run` processes on several "hosts" (one
CRONWRAP_HOME and --host-id each) shipping to a real PostgreSQL cluster, and `status`,
`history`, `logs` and `flush` reading and shipping through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cronwrap, cw_env, fleet_shippers, popen_cronwrap, wait_for, wait_shipped
from tests.pgserver import PASSWORD, BlackHole, PgServer, require_postgres

require_postgres()

SECRET = "fleet-s3cret-token-value"


def host_home(tmp_path: Path, name: str) -> Path:
    return tmp_path / f"host-{name}"


def run_on(
    home: Path, host: str, url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # a generous budget (how long the shipper waits for answers: the machine may be busy);
    # tests of the budget itself pass their own --fleet-budget, which wins (given later)
    return cronwrap(
        home,
        "run",
        "--host-id",
        host,
        "--fleet-store",
        url,
        "--fleet-budget",
        "30s",
        *args,
        env=env,
    )


def fleet(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cronwrap(home, *args, "--fleet-store", url)


def fleet_runs(cluster: PgServer, db: str) -> list[tuple[object, ...]]:
    return cluster.sql("SELECT run_id, host, job, status, exit_code FROM cronwrap_runs", db)


def test_two_hosts_one_store(tmp_path: Path, pg_url: str, fleet_driver: str) -> None:
    a, b = host_home(tmp_path, "a"), host_home(tmp_path, "b")
    env_b = cw_env(b, API_TOKEN=SECRET)
    assert (
        run_on(
            a, "alpha", pg_url, "--name", "sync", "--schedule", "*/5 * * * *", "--", "true"
        ).returncode
        == 0
    )
    assert (
        run_on(a, "alpha", pg_url, "--name", "backup", "--", "sh", "-c", "sleep 0.1").returncode
        == 0
    )
    bad = run_on(
        b,
        "beta",
        pg_url,
        "--name",
        "backup",
        "--",
        "sh",
        "-c",
        'echo "token $API_TOKEN"; echo disk full >&2; exit 3',
        env=env_b,
    )
    assert bad.returncode == 3, bad.stderr
    assert "fleet store" not in bad.stderr  # the run leaves shipping to the shipper
    wait_shipped(a)
    wait_shipped(b)

    status = fleet(a, pg_url, "status", "--json")
    assert status.returncode == 1, status.stderr  # beta's backup is failing
    rows = {(j["host"], j["name"]): j for j in json.loads(status.stdout)}
    assert set(rows) == {("alpha", "sync"), ("alpha", "backup"), ("beta", "backup")}
    assert rows["alpha", "backup"]["state"] == "ok"
    assert rows["beta", "backup"]["state"] == "failing"
    assert rows["beta", "backup"]["result"] == "failed (exit 3)"
    assert rows["beta", "backup"]["last_run"]["exit_code"] == 3
    assert rows["alpha", "sync"]["next_run"] is not None

    table = cronwrap(a, "status", "--fleet-store", pg_url, env=cw_env(a, COLUMNS="100"))
    header = table.stdout.splitlines()[0].split()
    assert header[:2] == ["NAME", "HOST"]
    assert any(line.split()[:2] == ["backup", "beta"] for line in table.stdout.splitlines())

    only_a = fleet(b, pg_url, "status", "--json", "--host", "alpha")
    assert only_a.returncode == 0, only_a.stderr
    assert {j["host"] for j in json.loads(only_a.stdout)} == {"alpha"}
    # a host no job ran on (a typo) is unknown, not an empty healthy fleet
    typo = fleet(b, pg_url, "status", "--json", "--host", "alpah")
    assert typo.returncode == 3, typo.stderr
    assert json.loads(typo.stdout) == []
    assert typo.stderr.strip() == (
        "cronwrap: status unknown: no job's last run was on host 'alpah' (hosts: alpha, beta)"
    )

    hist = fleet(a, pg_url, "history", "backup", "--json")
    assert hist.returncode == 0, hist.stderr
    docs = json.loads(hist.stdout)
    assert sorted(d["host"] for d in docs) == ["alpha", "beta"]
    assert [d["attempts_detail"][0]["exit_code"] for d in docs if d["host"] == "beta"] == [3]

    tail = fleet(a, pg_url, "logs", "backup", "--host", "beta")
    assert tail.returncode == 0, tail.stderr
    assert "disk full" in tail.stdout and "[REDACTED]" in tail.stdout
    assert SECRET not in tail.stdout
    nowhere = fleet(a, pg_url, "logs", "backup", "--host", "gamma")
    assert nowhere.returncode == 1
    assert nowhere.stderr.strip() == (
        "cronwrap: no runs in the fleet store for job 'backup' on host 'gamma'"
    )

    page = tmp_path / "fleet.html"
    html = fleet(a, pg_url, "status", "--html", str(page))
    assert html.returncode == 1, html.stderr
    text = page.read_text()
    assert "Host alpha" in text and "Host beta" in text and "disk full" in text
    assert SECRET not in text and PASSWORD not in text
    # the page of one job lists that job's failures only: sync never failed
    html = fleet(a, pg_url, "status", "--html", str(page), "--job", "sync")
    assert html.returncode == 0, html.stderr
    assert "No recent failures." in page.read_text() and "disk full" not in page.read_text()


def test_password_from_a_file_and_never_shown(
    tmp_path: Path, pg_url: str, fleet_driver: str
) -> None:
    home = host_home(tmp_path, "a")
    secret_file = tmp_path / "fleet-url"
    secret_file.write_text(pg_url + "\n")
    ok = run_on(home, "a", f"file:{secret_file}", "--name", "j", "--", "true")
    assert ok.returncode == 0, ok.stderr
    wait_shipped(home)
    bad_url = pg_url.replace(PASSWORD, "wrong-pw-value")
    bad = run_on(home, "a", bad_url, "--name", "j", "--", "true")
    assert bad.returncode == 0
    assert bad.stderr == ""  # the run does not wait for the shipper, nor speak for it
    wait_for(lambda: not fleet_shippers(home), 60)
    # status (of this host) says what is not shipped and why
    local = cronwrap(home, "status")
    assert local.returncode == 0, local.stderr
    assert "fleet store: 2 run changes not shipped yet" in local.stderr
    assert "password authentication failed" in local.stderr
    shown = fleet(home, f"file:{secret_file}", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    everything = local.stderr + shown.stdout + (home / "cronwrap.log").read_text()
    everything += (home / "fleet-ship.failed").read_text()
    assert PASSWORD not in everything and "wrong-pw-value" not in everything
    assert PASSWORD.encode() not in (home / "runs.db").read_bytes()


def test_server_down_then_back_loses_and_doubles_nothing(
    tmp_path: Path, pg_cluster: PgServer, pg_url: str
) -> None:
    db = pg_url.rsplit("/", 1)[1]
    home = host_home(tmp_path, "a")
    assert run_on(home, "a", pg_url, "--name", "first", "--", "true").returncode == 0
    wait_shipped(home)
    pg_cluster.stop()
    try:
        for code in (0, 4, 0):
            t = time.monotonic()
            r = run_on(home, "a", pg_url, "--name", "down", "--", "sh", "-c", f"exit {code}")
            took = time.monotonic() - t
            assert r.returncode == code, r.stderr
            assert took < 10, took  # the job's time, not a wait for the store (generous)
            assert "fleet store" not in r.stderr, r.stderr  # the run does not wait to know
        wait_for(lambda: not fleet_shippers(home), 60)  # the shipper gave up, and is gone
        local = cronwrap(home, "status")
        assert "fleet store: 6 run changes not shipped yet" in local.stderr, local.stderr
        assert "failed: fleet store" in local.stderr and "unavailable" in local.stderr
    finally:
        pg_cluster.start()
    # the next run (cron's next tick) hands everything kept to the shipper, in order
    next_run = run_on(home, "a", pg_url, "--name", "down", "--", "true")
    assert next_run.returncode == 0, next_run.stderr
    wait_shipped(home)
    assert "not shipped" not in cronwrap(home, "status").stderr
    rows = fleet_runs(pg_cluster, db)
    assert len(rows) == 5 and len({r[0] for r in rows}) == 5
    assert sorted(r[4] for r in rows if r[2] == "down") == [0, 0, 0, 4]
    local_runs = json.loads(cronwrap(home, "history", "down", "--json").stdout)
    remote = json.loads(fleet(home, pg_url, "history", "down", "--json").stdout)
    assert [(d["run_id"], d["status"], d["exit_code"]) for d in local_runs] == [
        (d["run_id"], d["status"], d["exit_code"]) for d in remote
    ]


def test_black_holed_server_costs_the_run_nothing_then_flush(
    tmp_path: Path, pg_cluster: PgServer, pg_url: str
) -> None:
    db = pg_url.rsplit("/", 1)[1]
    home = host_home(tmp_path, "a")
    hole = BlackHole()
    try:
        for code in (0, 9):
            t = time.monotonic()
            r = run_on(
                home, "a", hole.url(), "--name", "bh", "--fleet-budget", "20s",
                "--", "sh", "-c", f"exit {code}",
            )  # fmt: skip
            assert r.returncode == code, r.stderr
            assert time.monotonic() - t < 15  # less than the shipper's connect timeout
            assert "fleet store" not in r.stderr, r.stderr
        assert len(fleet_shippers(home)) == 1  # still waiting for the black hole, alone
        wait_for(lambda: not fleet_shippers(home), 60)
    finally:
        hole.close()
    flushed = cronwrap(home, "flush", "--fleet-store", pg_url)
    assert flushed.returncode == 0, flushed.stderr
    # each run's start and end
    assert "4 run changes shipped to the fleet store, 0 still queued" in flushed.stdout
    again = cronwrap(home, "flush", "--fleet-store", pg_url)
    assert "0 run changes shipped" in again.stdout
    rows = fleet_runs(pg_cluster, db)
    assert sorted((r[3], r[4]) for r in rows) == [("failed", 9), ("success", 0)]
    assert "not shipped" not in cronwrap(home, "status").stderr


def test_a_crashed_run_is_judged_by_its_hosts_records(
    tmp_path: Path, pg_url: str, fleet_driver: str
) -> None:
    home = host_home(tmp_path, "a")
    marker = tmp_path / "started"
    proc = popen_cronwrap(
        home,
        "run",
        "--host-id",
        "a",
        "--fleet-store",
        pg_url,
        "--name",
        "c",
        "--",
        "sh",
        "-c",
        f"touch {marker}; exec sleep 30",
        start_new_session=True,
    )
    wait_for(marker.exists, 30)

    def shown() -> dict:
        out = fleet(tmp_path, pg_url, "status", "--json")
        rows = json.loads(out.stdout) if out.stdout.strip() else []
        return rows[0] if rows else {}

    wait_for(lambda: shown().get("state") == "running", 30)
    assert shown()["result"].endswith(" on a")  # as a's records say; no pid check from here
    os.killpg(proc.pid, signal.SIGKILL)  # cronwrap and its job die without a word
    proc.wait()
    assert shown()["state"] == "running"  # nothing new from a yet
    assert run_on(home, "a", pg_url, "--name", "c", "--", "true").returncode == 0
    wait_shipped(home)
    hist = json.loads(fleet(tmp_path, pg_url, "history", "c", "--json").stdout)
    assert [d["status"] for d in hist] == ["success", "crashed"]
    assert "died during the run" in hist[1]["reason"]


@pytest.mark.slow
def test_300_simultaneous_runs_across_hosts_all_arrive(
    tmp_path: Path, pg_cluster: PgServer, pg_url: str
) -> None:
    """300 real runs at once (forked from one warm interpreter, see tests/burst.py, so the
    machine pays for 300 runs rather than 300 interpreter start-ups), 50 on each of 6 hosts."""
    db = pg_url.rsplit("/", 1)[1]
    hosts = [host_home(tmp_path, h) for h in "abcdef"]
    for home in hosts:  # the stores exist, so 300 processes do not race to create them
        assert run_on(home, home.name, pg_url, "--name", "warm", "--", "true").returncode == 0
    burst = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.burst",
            "50",
            *map(str, hosts),
            "--",
            "--host-id",
            "{host}",
            "--fleet-store",
            pg_url,
            "--fleet-budget",
            "5s",
            "--on-overlap",
            "allow",
            "--name",
            "job{n}",
            "--",
            "sh",
            "-c",
            "exit $(( {n} % 3 ))",
        ],
        env=cw_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    assert burst.returncode == 0, burst.stderr[-3000:]
    codes = json.loads(burst.stdout)
    assert len(codes) == 300
    assert all(code == n % 3 for n, code in codes), codes  # every job kept its exit code
    for home in hosts:  # each host's shipper ships all of it, without a flush
        wait_shipped(home, 170)
    rows = fleet_runs(pg_cluster, db)
    assert len(rows) == 306 and len({r[0] for r in rows}) == 306
    by_host = {h.name: sum(1 for r in rows if r[1] == h.name) for h in hosts}
    assert by_host == {h.name: 51 for h in hosts}
    assert all(r[3] in ("success", "failed") for r in rows)
    assert sorted(r[4] for r in rows if r[2] != "warm") == sorted(n % 3 for n, _ in codes)


def test_the_run_never_imports_psycopg_its_shipper_does(
    tmp_path: Path, pg_cluster: PgServer, pg_url: str
) -> None:
    home = host_home(tmp_path, "a")

    def imported(*args: str) -> bool:
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "cronwrap", "run", *args, "--", "true"],
            env=cw_env(home),
            capture_output=True,
            text=True,
            check=True,
        )
        return any(line.rstrip().endswith("| psycopg") for line in out.stderr.splitlines())

    assert not imported("--name", "light")
    assert not imported("--name", "heavy", "--fleet-store", pg_url)
    wait_shipped(home)
    assert fleet_runs(pg_cluster, pg_url.rsplit("/", 1)[1])[0][2] == "heavy"


def test_a_bad_fleet_store_url_is_one_warning_and_the_job_still_runs(tmp_path: Path) -> None:
    home = host_home(tmp_path, "a")
    r = run_on(home, "a", "mysql://x/y", "--name", "j", "--", "sh", "-c", "exit 5")
    assert r.returncode == 5
    assert "expected a postgresql:// URL" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "--fleet-store" in ln]) == 1


def test_a_fleet_store_url_that_is_not_utf8_is_one_line_everywhere(tmp_path: Path) -> None:
    """A byte that is not UTF-8 (an environment or a file in latin-1) was a traceback in
    status and flush, and a run shipped it to a shipper that died on it."""
    home = host_home(tmp_path, "a")
    url = b"postgresql://u:secret@127.0.0.1:1/caf\xe9"
    env = {**cw_env(home), "CRONWRAP_FLEET_STORE": url.decode(errors="surrogateescape")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cronwrap", *args],
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
            check=False,
        )

    ran = run("run", "--name", "j", "--", "sh", "-c", "exit 5")
    assert ran.returncode == 5
    [line] = [ln for ln in ran.stderr.splitlines() if "fleet" in ln]
    assert "not UTF-8" in line and "secret" not in line
    for args in (("status",), ("status", "--json"), ("flush",)):
        r = run(*args)
        assert "Traceback" not in r.stderr, args
        assert r.returncode == (1 if args == ("flush",) else 78), (args, r.stderr)  # as mysql://
        assert r.stderr.count("\n") == 1 and "not UTF-8" in r.stderr, args
        assert "secret" not in r.stderr + r.stdout
    assert "not UTF-8" in (home / "fleet-ship.failed").read_text()  # flush's note, for status


def test_status_of_a_fleet_store_it_cannot_read_is_unknown(
    tmp_path: Path, pg_url: str, fleet_driver: str
) -> None:
    """Down, black-holed, or an upgrade it cannot make now (another session's transaction
    holds the tables): status cannot know, so it exits 3 with one line, and the dashboard
    says so instead of 'no jobs'. It exited 1 (down), or hung behind the upgrade."""
    from tests.test_lease_pg import old_store_held_open

    home = host_home(tmp_path, "a")
    down = fleet(home, "postgresql://cw@127.0.0.1:1/none", "status", "--json")
    assert (down.returncode, down.stdout) == (3, ""), down.stderr  # not `[]`: no jobs
    [line] = down.stderr.splitlines()
    assert line.startswith("cronwrap: status unknown: fleet store postgresql://"), line
    reader = old_store_held_open(pg_url)
    try:
        page = tmp_path / "page.html"
        held = cronwrap(home, "status", "--fleet-store", pg_url, "--html", str(page), timeout=60)
        assert held.returncode == 3, held.stderr
        [line] = held.stderr.splitlines()
        assert line.startswith("cronwrap: status unknown: fleet store") and "lock" in line, line
        assert PASSWORD not in held.stderr
        text = page.read_text()
        assert "Status unknown:" in text and "No jobs recorded yet" not in text
        assert PASSWORD not in text
    finally:
        reader.close()  # type: ignore[attr-defined]
    after = fleet(home, pg_url, "status", "--json")  # nothing holds it now: it upgrades
    assert (after.returncode, after.stdout.strip()) == (0, "[]"), after.stderr


def test_fleet_and_local_status_agree_after_the_clock_steps_back(
    tmp_path: Path, pg_url: str, fleet_driver: str
) -> None:
    """The host's clock steps back an hour between two runs (NTP, a VM restored): the run it
    recorded last, which failed, is its newest in local status (by record order) and in the
    fleet's too (by arrival order), though it started "before" the other. The clocks are set
    with libfaketime."""
    from tests.test_prometheus import _faketime

    home = host_home(tmp_path, "alpha")
    for at, code in (("2026-12-01 10:00:00", 0), ("2026-12-01 09:00:00", 3)):
        env = cw_env(home, **_faketime(at), FAKETIME_DONT_FAKE_MONOTONIC="1")
        ran = run_on(home, "alpha", pg_url, "--name", "backup", "--", "sh", "-c", f"exit {code}",
                     env=env)  # fmt: skip
        assert ran.returncode == code, ran.stderr
        wait_shipped(home)
    local = cronwrap(home, "status", "--crontab", "/dev/null", "--json", "--job", "backup")
    shared = fleet(home, pg_url, "status", "--json", "--job", "backup")
    seen = []
    for result in (local, shared):
        assert result.returncode == 1, result.stderr  # failing
        [doc] = json.loads(result.stdout)
        seen.append((doc["state"], doc["last_run"]["exit_code"], doc["last_run"]["started_at"]))
    assert seen[0] == seen[1]
    assert seen[0][:2] == ("failing", 3) and seen[0][2].startswith("2026-12-01T09:00")
    # one host's history, newest first, as that host's own
    local_history = cronwrap(home, "history", "backup", "--json")
    shared_history = fleet(home, pg_url, "history", "backup", "--json", "--host", "alpha")
    orders = [
        [d["exit_code"] for d in json.loads(h.stdout)] for h in (local_history, shared_history)
    ]
    assert orders == [[3, 0], [3, 0]], (local_history.stderr, shared_history.stderr)


def test_a_password_on_the_command_line_never_reaches_the_fleet_store(
    tmp_path: Path, pg_url: str, fleet_driver: str
) -> None:
    """The command as the fleet store keeps it, and its output tail (a `set -x` trace), are
    the masked ones: curl's run-together -su, inside a `sh -c` string."""
    import psycopg

    home = host_home(tmp_path, "alpha")
    script = f"set -x; : curl -fsSu alice:{SECRET} https://x.invalid; : ldapsearch -w {SECRET}"
    ran = run_on(home, "alpha", pg_url, "--name", "cred", "--", "sh", "-c", script)
    assert ran.returncode == 0, ran.stderr
    wait_shipped(home)
    with psycopg.connect(pg_url) as conn:
        [(command, tail, row)] = conn.execute(
            "SELECT command, output_tail, r::text FROM cronwrap_runs r WHERE job = 'cred'"
        ).fetchall()
    assert "-fsSu [REDACTED]" in command and "-w [REDACTED]" in command, command
    assert "-fsSu [REDACTED]" in tail
    assert SECRET not in row


def test_a_nul_byte_in_the_output_does_not_stop_the_hosts_shipping(
    tmp_path: Path, pg_url: str, pg_cluster: PgServer
) -> None:
    """PostgreSQL text cannot hold NUL: a job that printed one (find -print0, a binary
    dump) made every shipment of its host fail, its run and every later run of every job
    of that host stayed queued for good, and the fleet's status did not know the host. The
    tail goes with each NUL as U+FFFD, as it goes with bytes that are not UTF-8."""
    home = host_home(tmp_path, "gamma")
    ran = run_on(home, "gamma", pg_url, "--name", "bin", "--", "printf", "a\\000b\\n")
    assert ran.returncode == 0, ran.stderr
    assert run_on(home, "gamma", pg_url, "--name", "plain", "--", "true").returncode == 0
    wait_shipped(home)
    assert not (home / "fleet-ship.failed").exists()
    db = pg_url.rsplit("/", 1)[1]
    rows = pg_cluster.sql("SELECT job, output_tail FROM cronwrap_runs ORDER BY job", db)
    assert rows == [("bin", "a\ufffdb\n"), ("plain", None)], rows


def test_a_command_that_is_not_utf8_does_not_stop_the_hosts_shipping(
    tmp_path: Path, pg_url: str, pg_cluster: PgServer
) -> None:
    """A crontab line naming a file in Latin-1 (rm /srv/caf\\xe9.txt): the local store keeps
    the command's bytes as they are, and the shipper died on them (UnicodeEncodeError, no
    FleetStoreError: not even a failure noted), leaving its host's queue stuck for good. The
    byte goes as U+FFFD, as a tail's bytes that are not UTF-8 do."""
    home = host_home(tmp_path, "delta")
    latin1 = os.fsdecode(b"caf\xe9.txt")
    assert run_on(home, "delta", pg_url, "--name", "rm", "--", "true", latin1).returncode == 0
    assert run_on(home, "delta", pg_url, "--name", "plain", "--", "true").returncode == 0
    wait_shipped(home)
    db = pg_url.rsplit("/", 1)[1]
    rows = pg_cluster.sql("SELECT job, command FROM cronwrap_runs ORDER BY job", db)
    assert rows == [("plain", "true"), ("rm", "true 'caf\ufffd.txt'")], rows


def test_a_shipper_waits_out_another_hosts_schema_upgrade(tmp_path: Path, pg_url: str) -> None:
    """Another host upgrading the store (it holds the upgrade's advisory lock) for longer than
    the --fleet-budget: the run ends at once, and its shipper waits for the upgrade rather
    than give up after the budget and leave the run queued until the host's next run."""
    import psycopg

    from cronwrap.state.fleetschema import MIGRATE_LOCK

    home = host_home(tmp_path, "a")
    upgrading = psycopg.connect(pg_url)
    upgrading.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))  # held till commit
    try:
        began = time.monotonic()
        done = run_on(home, "a", pg_url, "--fleet-budget", "1s", "--name", "j", "--", "true")
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert time.monotonic() - began < 20  # the run never waits for the store
        time.sleep(4)  # longer than the budget: the shipper would have given up by now
        assert fleet_shippers(home), "the shipper gave up on the upgrade"
    finally:
        upgrading.commit()
        upgrading.close()
    wait_shipped(home)
    assert not (home / "fleet-ship.failed").exists()
    assert [j["name"] for j in json.loads(fleet(home, pg_url, "status", "--json").stdout)] == ["j"]
