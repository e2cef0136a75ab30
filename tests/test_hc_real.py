"""cronwrap against the real Healthchecks server (hc-peer): what the server itself records —
status, ping kinds, exit statuses and bodies read back through its API and database — must
be what cronwrap recorded. Skips without hc-peer locally; CRONWRAP_REQUIRE_HC_PEER=1 (CI)
makes a missing peer a failure."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cronwrap, cw_env, popen_cronwrap, wait_for
from tests.hcpeer import Peer, Relay, peer_dir, peer_script, start_peer, stop_peer

PY = sys.executable


@pytest.fixture(scope="session")
def peer() -> Iterator[Peer]:
    script = peer_script()
    if script is None:
        if os.environ.get("CRONWRAP_REQUIRE_HC_PEER"):
            raise RuntimeError("hc-peer not found and CRONWRAP_REQUIRE_HC_PEER is set")
        pytest.skip("hc-peer not found (../shared/peers/hc-peer or $CRONWRAP_HC_PEER)")
    server, started = start_peer(script, peer_dir())
    yield server
    if started:
        stop_peer(server)


def run(home: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return cronwrap(home, "run", *args, env=env)


def ping_args(peer: Peer, code: str) -> list[str]:
    return ["--ping", peer.ping_url + code]


def kinds(peer: Peer, code: str) -> list[str]:
    return [str(p["type"]) for p in peer.pings(code)]


# ---------------------------------------------------------------- what the server shows


def test_success_is_up_with_one_run_id(home: Path, peer: Peer) -> None:
    code = str(peer.new_check()["uuid"])
    result = run(home, "--name", "ok", *ping_args(peer, code), "--", "echo", "hello")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert peer.status(code) == "up"
    pings = peer.pings(code)
    assert [p["type"] for p in pings] == ["start", "success"]
    with sqlite3.connect(home / "runs.db") as db:
        [(run_id,)] = db.execute("SELECT run_id FROM runs").fetchall()
    assert pings[0]["rid"] == pings[1]["rid"] == run_id
    assert peer.check(code)["started"] is False
    body = peer.body(code, int(pings[1]["n"]))
    assert b"success" in body and b"hello" in body


# cronwrap's result -> what the server must record: (status, ping kind, exit status)
RESULTS = {
    "exit-3": (["--", "sh", "-c", "exit 3"], 3, ("down", "fail", 3)),
    "timeout": (["--timeout", "300ms", "--", "sleep", "30"], 124, ("down", "fail", 124)),
    "min-runtime": (["--min-runtime", "5s", "--", "true"], 0, ("down", "fail", None)),
    "ok-exit-code-24": (
        ["--ok-exit-codes", "0,24", "--", "sh", "-c", "exit 24"],
        24,
        ("up", "success", None),
    ),
    "exit-0-not-ok": (["--ok-exit-codes", "24", "--", "true"], 0, ("down", "fail", None)),
    "signal": (["--", "sh", "-c", "kill -TERM $$"], 143, ("down", "fail", 143)),
    "success": (["--", "true"], 0, ("up", "success", 0)),
}


def test_server_records_cronwrap_result(home: Path, peer: Peer) -> None:
    """One check per case; the exit statuses are read from the server's database at once."""
    codes = {}
    for case, (args, exit_code, _) in RESULTS.items():
        codes[case] = code = str(peer.new_check()["uuid"])
        result = run(home, "--name", case, *ping_args(peer, code), *args)
        assert result.returncode == exit_code, (case, result.stderr)
        assert "cronwrap: warning" not in result.stderr, (case, result.stderr)
    recorded = peer.exit_statuses(list(codes.values()))
    for case, (_, _, (status, kind, server_exit)) in RESULTS.items():
        code = codes[case]
        got = (peer.status(code), kinds(peer, code), recorded[code][-1])
        assert got == (status, ["start", kind], (kind, server_exit)), case


def test_cancelled_run_sends_its_exit_status(home: Path, peer: Peer, tmp_path: Path) -> None:
    code = str(peer.new_check()["uuid"])
    marker = tmp_path / "started"
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "c",
        *ping_args(peer, code),
        "--",
        "sh",
        "-c",
        f"touch {marker}; sleep 30",
    )
    wait_for(marker.exists, timeout=30)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 143
    assert peer.status(code) == "down"
    assert peer.exit_statuses([code])[code] == [("start", None), ("fail", 143)]


def test_tolerated_failures_leave_the_check_up_past_grace(home: Path, peer: Peer) -> None:
    """--alert-after 3: the first two failures must not page anyone, even after start +
    grace (the server marks a check down when a /start is not closed within grace)."""
    code = str(peer.new_check()["uuid"])
    peer.set_grace([code], 2)
    args = ["--name", "tol", "--alert-after", "3", *ping_args(peer, code)]
    for _ in range(2):
        assert run(home, *args, "--", "sh", "-c", "echo oops; exit 5").returncode == 5
    time.sleep(3.5)  # past the last /start + grace
    assert peer.status(code) == "up"
    assert peer.check(code)["started"] is False
    pings = peer.pings(code)
    assert [p["type"] for p in pings] == ["start", "success", "start", "success"]
    body = peer.body(code, int(pings[3]["n"]))
    assert b"tolerated: failure 2 of --alert-after 3" in body and b"exit 5" in body
    # the third failure in a row is a failure for Healthchecks too
    assert run(home, *args, "--", "sh", "-c", "exit 5").returncode == 5
    assert peer.status(code) == "down"
    assert peer.exit_statuses([code])[code][-1] == ("fail", 5)


def test_retried_attempt_is_logged_and_the_run_ends_up(
    home: Path, peer: Peer, tmp_path: Path
) -> None:
    code = str(peer.new_check()["uuid"])
    flag = tmp_path / "second"
    script = f"if [ -e {flag} ]; then exit 0; fi; touch {flag}; echo first-fails; exit 7"
    result = run(
        home,
        "--name",
        "rt",
        *ping_args(peer, code),
        "--retries",
        "1",
        "--retry-delay",
        "0",
        "--",
        "sh",
        "-c",
        script,
    )
    assert result.returncode == 0, result.stderr
    assert kinds(peer, code) == ["start", "log", "success"]
    assert len({p["rid"] for p in peer.pings(code)}) == 1
    assert peer.status(code) == "up"


def test_slug_from_the_job_name_reaches_the_synced_check(home: Path, peer: Peer) -> None:
    tag = uuid.uuid4().hex[:8]
    check = peer.new_check(slug=f"s5-upper-{tag}")
    result = run(
        home,
        "--name",
        f"S5.Upper.{tag}",
        "--ping-key",
        peer.ping_key,
        "--ping-base",
        peer.ping_url,
        "--",
        "true",
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert kinds(peer, str(check["uuid"])) == ["start", "success"]


# ---------------------------------------------------------------- bodies


def test_body_is_redacted_before_it_is_cut(home: Path, peer: Peer) -> None:
    """Every line holds a token, so every cut goes through one: none may reach the server
    in part; the last line is kept; the bare check UUID in the output is masked."""
    code = str(peer.new_check()["uuid"])
    script = (
        "import sys\n"
        f"print('check {code}')\n"
        "for i in range(3000): print(f'{i:05d} ghp_' + 'A' * 36)\n"
        "print('LAST LINE')\n"
    )
    result = run(home, "--name", "big", *ping_args(peer, code), "--", PY, "-c", script)
    assert result.returncode == 0, result.stderr
    pings = peer.pings(code)
    body = peer.body(code, int(pings[-1]["n"]))
    assert len(body) <= 10_000
    assert b"ghp_" not in body and b"AAAAAAAAAA" not in body
    assert b"[REDACTED]" in body and b"LAST LINE" in body and b"bytes omitted here" in body
    assert code.encode() not in body


# ---------------------------------------------------------------- outbox


def test_outbox_replays_in_order_when_the_server_comes_back(home: Path, peer: Peer) -> None:
    code = str(peer.new_check()["uuid"])
    relay = Relay(peer.port)
    url = f"http://127.0.0.1:{relay.port}/ping/{code}"
    args = ["--ping", url, "--ping-start-budget", "300ms", "--ping-finish-budget", "300ms"]
    big = "import sys; print('x' * 30000); print('LAST LINE'); sys.exit({})"
    for exit_code in (2, 0, 5):
        result = run(home, "--name", "ob", *args, "--", PY, "-c", big.format(exit_code))
        assert result.returncode == exit_code and "queued" in result.stderr
    relay.start()
    try:
        done = cronwrap(home, "flush")
    finally:
        relay.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 pings delivered, 0 still queued" in done.stdout
    assert peer.exit_statuses([code])[code] == [("fail", 2), ("success", 0), ("fail", 5)]
    assert peer.status(code) == "down"
    for p in peer.pings(code):
        body = peer.body(code, int(p["n"]))
        assert b"late: this ping could not be delivered" in body
        assert b"LAST LINE" in body and len(body) <= 10_000  # the tail survives the late line


def test_stale_failure_is_not_replayed_over_a_newer_success(
    home: Path, peer: Peer, tmp_path: Path
) -> None:
    code = str(peer.new_check()["uuid"])
    relay = Relay(peer.port)
    url = f"http://127.0.0.1:{relay.port}/ping/{code}"
    args = ["--ping", url, "--ping-start-budget", "300ms", "--ping-finish-budget", "300ms"]
    assert run(home, "--name", "st", *args, "--", "sh", "-c", "exit 2").returncode == 2
    args[-1] = "10s"  # the run below finishes after the relay is back
    marker = tmp_path / "running"
    proc = popen_cronwrap(
        home, "run", "--name", "st", *args, "--", "sh", "-c", f"touch {marker}; sleep 1"
    )
    wait_for(marker.exists, timeout=30)
    relay.start()  # back while the job runs: its success is delivered, the old failure not
    try:
        assert proc.wait(60) == 0
        assert peer.status(code) == "up"
        done = cronwrap(home, "flush")
    finally:
        relay.stop()
    assert done.returncode == 0 and "1 ping delivered" in done.stdout, done.stdout
    assert peer.status(code) == "up"  # the job recovered; the late failure did not flip it
    assert kinds(peer, code) == ["success", "log"]
    late = peer.body(code, int(peer.pings(code)[-1]["n"]))
    assert b"exit 2" in late and b"a newer result was delivered" in late


def test_unknown_check_is_not_counted_as_delivered(home: Path, peer: Peer) -> None:
    relay = Relay(peer.port)
    missing = "00000000-0000-4000-8000-000000000000"
    url = f"http://127.0.0.1:{relay.port}/ping/{missing}"
    args = ["--ping", url, "--ping-start-budget", "300ms", "--ping-finish-budget", "300ms"]
    assert run(home, "--name", "nf", *args, "--", "true").returncode == 0
    relay.start()
    try:
        done = cronwrap(home, "flush")
    finally:
        relay.stop()
    assert done.returncode == 1, done.stdout
    assert "0 pings delivered, 1 refused by the server (HTTP 404" in done.stdout
    again = cronwrap(home, "flush")
    assert "0 pings delivered" in again.stdout and again.returncode == 0


def test_malformed_outbox_records_never_stop_the_job(home: Path, peer: Peer) -> None:
    code = str(peer.new_check()["uuid"])
    outbox = home / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "00000000000000000001-1.json").write_text("{}")
    (outbox / "00000000000000000002-1.json").write_bytes(b"\xff\x00garbage")
    result = run(home, "--name", "mal", *ping_args(peer, code), "--", "sh", "-c", "echo ran")
    assert result.returncode == 0 and result.stdout == "ran\n"
    assert result.stderr.count("cronwrap:") == 1 and "2 malformed outbox records" in result.stderr
    assert peer.status(code) == "up"
    assert sorted(p.name for p in (outbox / "quarantine").iterdir()) == [
        "00000000000000000001-1.json",
        "00000000000000000002-1.json",
    ]
    again = run(home, "--name", "mal", *ping_args(peer, code), "--", "true")
    assert again.returncode == 0 and again.stderr == ""
    flushed = cronwrap(home, "flush")
    assert flushed.returncode == 0 and flushed.stderr == ""


# ---------------------------------------------------------------- hc sync


def sync(home: Path, peer: Peer, tab: Path, *args: str, host: str, url: str | None = None):  # type: ignore[no-untyped-def]
    env = cw_env(home, CRONWRAP_HC_API_KEY=peer.api_key, CRONWRAP_HOST_ID=host, TZ="UTC")
    api_url = url or peer.url
    return cronwrap(home, "hc", "sync", "--api-url", api_url, "--crontab", str(tab), *args, env=env)


def test_sync_makes_checks_that_notify(home: Path, peer: Peer, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    host = f"host-{tag}"
    tab = tmp_path / "tab"
    tab.write_text(
        f"CRON_TZ=Europe/Berlin\n"
        f"30 2 * * * cronwrap run --name Backup.{tag} --timeout 2h -- /usr/bin/backup --all\n"
        f"@daily cronwrap run --name report-{tag} -- /usr/bin/report\n"
    )
    first = sync(home, peer, tab, host=host)
    assert first.returncode == 0, first.stdout + first.stderr
    checks = {str(c["slug"]): c for c in peer.checks(tag=host)}
    assert set(checks) == {f"backup-{tag}", f"report-{tag}"}
    [channel] = peer.api("GET", "channels/")["channels"]  # type: ignore[index]
    backup = checks[f"backup-{tag}"]
    assert backup["channels"] == channel["id"]  # all integrations, as ?create=1 gives
    assert backup["schedule"] == "30 2 * * *" and backup["tz"] == "Europe/Berlin"
    assert backup["grace"] == 2 * 3600 + 120  # outlasts --timeout 2h
    assert backup["tags"] == f"cronwrap {host}"
    assert host in str(backup["desc"]) and "/usr/bin/backup --all" in str(backup["desc"])
    assert backup["methods"] == ""
    assert checks[f"report-{tag}"]["schedule"] == "0 0 * * *"

    again = sync(home, peer, tab, host=host)
    assert again.returncode == 0 and again.stderr == ""
    assert [ln.split()[-1] for ln in again.stdout.splitlines()[1:3]] == ["unchanged"] * 2

    # someone edits the schedule on the server: dry run warns, sync puts it back
    peer.api("POST", f"checks/{backup['uuid']}", {"schedule": "0 3 * * *"})
    dry = sync(home, peer, tab, "--dry-run", host=host)
    assert "the server's schedule '0 3 * * *' differs from the crontab's '30 2 * * *'" in (
        dry.stderr
    )
    assert peer.check(str(backup["uuid"]))["schedule"] == "0 3 * * *"
    fixed = sync(home, peer, tab, "--post-only", "--channels", "", host=host)
    assert fixed.returncode == 0, fixed.stdout
    assert "updated schedule, methods, channels" in fixed.stdout
    now = peer.check(str(backup["uuid"]))
    assert (now["schedule"], now["methods"], now["channels"]) == ("30 2 * * *", "POST", "")


def test_sync_pauses_or_deletes_removed_jobs(home: Path, peer: Peer, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    host = f"host-{tag}"
    tab = tmp_path / "tab"
    tab.write_text(
        f"0 1 * * * cronwrap run --name a-{tag} -- /bin/true\n"
        f"0 2 * * * cronwrap run --name b-{tag} -- /bin/true\n"
    )
    assert sync(home, peer, tab, host=host).returncode == 0
    tab.write_text(f"0 1 * * * cronwrap run --name a-{tag} -- /bin/true\n")
    kept = sync(home, peer, tab, host=host)
    assert "not in the crontab: kept" in kept.stdout
    [b] = peer.checks(slug=f"b-{tag}")
    assert b["status"] == "new"
    paused = sync(home, peer, tab, "--removed", "pause", host=host)
    assert paused.returncode == 0 and "not in the crontab: paused" in paused.stdout
    assert peer.check(str(b["uuid"]))["status"] == "paused"
    deleted = sync(home, peer, tab, "--removed", "delete", host=host)
    assert deleted.returncode == 0 and "not in the crontab: deleted" in deleted.stdout
    assert peer.checks(slug=f"b-{tag}") == []
    assert len(peer.checks(slug=f"a-{tag}")) == 1  # the job still in the crontab stays


def test_sync_with_a_wrong_api_url_says_so_in_one_line(
    home: Path, peer: Peer, tmp_path: Path
) -> None:
    tab = tmp_path / "tab"
    tab.write_text("0 1 * * * cronwrap run --name x -- /bin/true\n")
    result = sync(home, peer, tab, host="h", url=peer.url + "/healthchecks")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "check --api-url" in result.stderr, result.stderr
    assert "<" not in result.stderr + result.stdout  # no Django HTML


# ---------------------------------------------------------------- long jobs, --ping-create


def test_keepalive_logs_while_a_long_job_runs(home: Path, peer: Peer) -> None:
    code = str(peer.new_check()["uuid"])
    args = ["--name", "long", *ping_args(peer, code), "--ping-keepalive", "1s"]
    result = run(home, *args, "--", "sleep", "3.6")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    got = kinds(peer, code)
    assert got[0] == "start" and got[-1] == "success"
    assert 2 <= got.count("log") <= 4 and set(got[1:-1]) == {"log"}, got
    assert len({p["rid"] for p in peer.pings(code)}) == 1
    first_log = peer.body(code, int(peer.pings(code)[1]["n"]))
    assert b"still running after" in first_log
    assert peer.status(code) == "up"


def test_ping_create_applies_the_schedule_through_the_api(home: Path, peer: Peer) -> None:
    tag = uuid.uuid4().hex[:8]
    env = cw_env(home, CRONWRAP_HC_API_KEY=peer.api_key, CRONWRAP_HC_API_URL=peer.url)
    args = [
        "--name",
        f"made-{tag}",
        "--ping-key",
        peer.ping_key,
        "--ping-base",
        peer.ping_url,
        "--ping-create",
        "--schedule",
        "30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--timeout",
        "2h",
    ]
    result = run(home, *args, "--", "true", env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    [check] = peer.checks(slug=f"made-{tag}")
    assert (check["schedule"], check["tz"], check["grace"]) == ("30 2 * * *", "Europe/Berlin", 7320)
    assert check["channels"]  # ?create=1 gave it every integration; kept
    assert kinds(peer, str(check["uuid"])) == ["start", "success"]
    assert check["status"] == "up"


def test_ping_create_without_an_api_key_says_what_it_could_not_do(home: Path, peer: Peer) -> None:
    tag = uuid.uuid4().hex[:8]
    args = [
        "--name",
        f"bare-{tag}",
        "--ping-key",
        peer.ping_key,
        "--ping-base",
        peer.ping_url,
        "--ping-create",
        "--schedule",
        "30 2 * * *",
    ]
    result = run(home, *args, "--", "true")
    assert result.returncode == 0
    assert result.stderr.count("cronwrap:") == 1 and "CRONWRAP_HC_API_KEY" in result.stderr
    [check] = peer.checks(slug=f"bare-{tag}")
    assert "schedule" not in check  # the server's default: a simple daily check


# ---------------------------------------------------------------- the fake agrees


def _answers(base: str, check: str, key: str, slug: str, fresh: str) -> list[tuple]:  # type: ignore[type-arg]
    from cronwrap.notify.http import request

    paths = [
        f"{check}",
        f"{check}/start",
        f"{check}/fail",
        f"{check}/log",
        f"{check}/0",
        f"{check}/255",
        f"{check}/256",
        f"{check}/-1",
        f"{check}/foo",
        f"{check}?rid=not-a-uuid",
        f"{check}?rid={check.upper()}",
        "00000000-0000-4000-8000-000000000000",
        f"{key}/{slug}",
        f"{key}/{slug}/3",
        f"{key}/{slug.upper()}",
        f"{key}/{fresh}",
        f"{key}/{fresh}/start?create=1",
        f"{key}/{fresh}?create=1",
        "nokey123/x",
    ]
    out = []
    for path in paths:
        status, headers, body = request(
            "POST", base + path, b"hello", headers={"Content-Type": "text/plain"}, timeout=30
        )
        out.append(
            (
                path.replace(check, "U")
                .replace(check.upper(), "U")
                .replace(key, "K")
                .replace(fresh, "NEW"),
                status,
                body.decode().strip(),
                "ping-body-limit" in headers,
            )
        )
    return out


def test_the_fake_server_answers_as_the_real_one(peer: Peer) -> None:
    from tests.hcserver import HCServer

    tag = uuid.uuid4().hex[:8]
    slug, fresh = f"known-{tag}", f"fresh-{tag}"
    real_check = str(peer.new_check(slug=slug)["uuid"])
    real = _answers(peer.ping_url, real_check, peer.ping_key, slug, fresh)
    fake = HCServer()
    fake_check = fake.new_check()
    fake.slugs[peer.ping_key] = {slug}
    fake.start()
    try:
        got = _answers(fake.base, fake_check, peer.ping_key, slug, fresh)
    finally:
        fake.stop()
    assert got == real
