"""Healthchecks pings against a real HTTP server on 127.0.0.1 that follows the protocol."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cronwrap.notify import healthchecks
from cronwrap.notify.healthchecks import PingTarget, fit_body, join_url, target_from
from cronwrap.redact import Redactor, redact_url
from tests.conftest import (
    alive,
    cronwrap,
    cw_env,
    events,
    popen_cronwrap,
    seconds_between,
    wait_for,
    wait_supervised,
)
from tests.hcserver import BlackHole, HCServer, free_port

PY = sys.executable


@pytest.fixture
def hc() -> Iterator[HCServer]:
    server = HCServer().start()
    yield server
    server.stop()


def started_marker_cmd(marker: Path, code: int = 0) -> list[str]:
    return [
        PY,
        "-c",
        f"import pathlib,time,sys; pathlib.Path({str(marker)!r}).write_text("
        f"repr(time.time())); print('job output'); sys.exit({code})",
    ]


def test_a_run_with_a_ping_loads_no_pathlib(home: Path, hc: HCServer) -> None:
    """Start-up (issue 21): the ping path keeps paths as strings too, with the outbox and the
    body-limit cache in play (this run reads what the first one learnt); and it loads neither
    json (the cache is plain lines), urllib.parse with ipaddress (URLs are split by
    notify.http for the common forms) nor the socket module (a plain http ping speaks through
    _socket)."""
    check = hc.new_check()
    assert (
        cronwrap(home, "run", "--name", "p", "--ping", hc.url(check), "--", "true").returncode == 0
    )
    code = (
        "import os, sys; os.environ['CRONWRAP_HOME'] = sys.argv[1]\n"
        "from cronwrap.run import entry\n"
        "args = ['--name', 'p', '--ping', sys.argv[2], '--', 'true']\n"
        "assert entry.main(args, os.environ) == 0\n"
        "heavy = ('pathlib', 'typing', 'json', 'urllib', 'ipaddress', 'socket', 'selectors',"
        " 'sqlite3', 'datetime')\n"
        # nothing is queued: the outbox and its spool stay unloaded
        "idle = ('cronwrap.notify.outbox', 'cronwrap.notify.spool')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in idle))\n"
    )
    out = subprocess.run(
        [PY, "-c", code, str(home), hc.url(check)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr
    assert hc.kinds() == ["start", "0", "start", "0"]


@pytest.mark.parametrize(
    "text",
    [
        "5b5f1a2e-8c3d-4e6f-9a0b-1c2d3e4f5a6b",
        "5B5F1A2E-8C3D-4E6F-9A0B-1C2D3E4F5A6B\n",
        "5b5f1a2e-8c3d-4e6f-9a0b-1c2d3e4f5a6",
        "5b5f1a2e-8c3d-4e6f-9a0b-1c2d3e4f5a6bb",
        "5b5f1a2e8c3d-4e6f-9a0b-1c2d3e4f5a6b-",
        "5b5f1a2g-8c3d-4e6f-9a0b-1c2d3e4f5a6b",
        "5b5f1a2e-8c3d-4e6f-9a0b-1c2d3e4f5a6b\n\n",
        "\n5b5f1a2e-8c3d-4e6f-9a0b-1c2d3e4f5a6b",
        "٣b5f1a2e-8c3d-4e6f-9a0b-1c2d3e4f5a6b",
        "",
    ],
)
def test_uuid_check_agrees_with_the_regex_it_replaced(text: str) -> None:
    """A UUID (and a slug) are checked without compiling a regex on every pinging run."""
    uuid_re = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    assert healthchecks._is_uuid(text) == bool(re.match(uuid_re, text))
    for slug in (text, text[:5], text.lower()[-6:], "a b", "a_b-\n", "-", "\n"):
        assert healthchecks._is_slug(slug) == bool(re.match(r"^[a-z0-9_-]+$", slug))


# ---------------------------------------------------------------- the sequence


def test_success_sends_start_then_exit_code_with_one_rid(home: Path, hc: HCServer) -> None:
    check = hc.new_check()
    result = cronwrap(home, "run", "--name", "ok", "--ping", hc.url(check), "--", "echo", "hi")
    assert result.returncode == 0 and result.stdout == "hi\n", result.stderr
    assert result.stderr == ""
    assert hc.kinds() == ["start", "0"]
    start, end = hc.pings
    assert start.rid == end.rid and start.rid is not None
    with sqlite3.connect(home / "runs.db") as db:
        [(run_id,)] = db.execute("SELECT run_id FROM runs").fetchall()
    assert start.rid == run_id
    assert b"success" in end.body and b"hi" in end.body and b"attempt 1/1" in end.body
    assert end.headers["Content-Type"].startswith("text/plain")


def test_failure_sends_the_exact_exit_code(home: Path, hc: HCServer) -> None:
    check = hc.new_check()
    result = cronwrap(
        home,
        "run",
        "--name",
        "f",
        "--ping",
        hc.url(check),
        "--",
        "sh",
        "-c",
        "echo broken >&2; exit 3",
    )
    assert result.returncode == 3
    assert hc.kinds() == ["start", "3"]
    assert b"broken" in hc.pings[1].body and b"exit 3" in hc.pings[1].body


def test_timeout_sends_its_exit_status_with_the_reason(home: Path, hc: HCServer) -> None:
    check = hc.new_check()
    result = cronwrap(
        home,
        "run",
        "--name",
        "t",
        "--ping",
        hc.url(check),
        "--timeout",
        "300ms",
        "--",
        "sleep",
        "10",
    )
    assert result.returncode == 124
    assert hc.kinds() == ["start", "124"]
    assert b"timed out after 0.3s" in hc.pings[1].body


def test_command_that_cannot_start_sends_127(home: Path, hc: HCServer) -> None:
    check = hc.new_check()
    result = cronwrap(home, "run", "--name", "nf", "--ping", hc.url(check), "--", "/no/such/cmd")
    assert result.returncode == 127
    assert hc.kinds() == ["start", "127"]
    assert b"command not found" in hc.pings[1].body


def test_signal_death_is_128_plus_n(home: Path, hc: HCServer) -> None:
    check = hc.new_check()
    result = cronwrap(
        home, "run", "--name", "sg", "--ping", hc.url(check), "--", "sh", "-c", "kill -TERM $$"
    )
    assert result.returncode == 143
    assert hc.kinds() == ["start", "143"]
    assert b"signal 15" in hc.pings[1].body


def test_skipped_run_sends_log_only(home: Path, hc: HCServer, tmp_path: Path) -> None:
    check = hc.new_check()
    marker, release = tmp_path / "m", tmp_path / "release"
    # held until released: a slow machine's start-up of the second run outlasted a 2 s hold
    hold = f"touch {marker}; while [ ! -e {release} ]; do sleep 0.05; done"
    first = popen_cronwrap(home, "run", "--name", "s", "--", "sh", "-c", hold)
    wait_for(marker.exists)
    try:
        result = cronwrap(home, "run", "--name", "s", "--ping", hc.url(check), "--", "true")
    finally:
        release.touch()
    assert first.wait(30) == 0
    assert result.returncode == 0
    assert hc.kinds() == ["log"]
    assert b"skipped" in hc.pings[0].body


def test_retried_attempt_is_logged_not_failed(home: Path, hc: HCServer) -> None:
    check = hc.new_check()
    result = cronwrap(
        home,
        "run",
        "--name",
        "r",
        "--ping",
        hc.url(check),
        "--retries",
        "1",
        "--retry-delay",
        "0",
        "--",
        "sh",
        "-c",
        "exit 5",
    )
    assert result.returncode == 5
    assert hc.kinds() == ["start", "log", "5"]
    assert b"retrying" in hc.pings[1].body and b"attempt 2/2" in hc.pings[2].body
    assert len({p.rid for p in hc.pings}) == 1


def test_crashed_run_is_failed_by_the_next_run(home: Path, hc: HCServer, tmp_path: Path) -> None:
    check = hc.new_check()
    marker = tmp_path / "m"
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "c",
        "--ping",
        hc.url(check),
        "--",
        "sh",
        "-c",
        f"echo $$ > {marker}.tmp; mv {marker}.tmp {marker}; echo started; exec sleep 30",
    )
    wait_for(marker.exists)
    wait_supervised(home, "c")
    job = int(marker.read_text())
    proc.kill()
    proc.wait()
    crashed_rid = hc.pings[0].rid
    # the job, which holds the lock, is gone (not 0.3 s later: on a slow machine it may
    # still hold the lock, and the next run is a skip)
    wait_for(lambda: not alive(job))
    assert (
        cronwrap(home, "run", "--name", "c", "--ping", hc.url(check), "--", "true").returncode == 0
    )
    assert hc.kinds() == ["start", "fail", "start", "0"]
    assert hc.pings[1].rid == crashed_rid and b"died" in hc.pings[1].body


# ---------------------------------------------------------------- addressing


def test_slug_urls_with_create(home: Path, hc: HCServer) -> None:
    hc.slugs["pk123456"] = set()
    result = cronwrap(
        home,
        "run",
        "--name",
        "db-backup",
        "--ping-key",
        "pk123456",
        "--ping-create",
        "--ping-base",
        hc.base.rstrip("/"),
        "--",
        "true",
    )
    assert result.returncode == 0, result.stderr
    assert [p.status for p in hc.pings] == [201, 200]
    assert hc.pings[0].path.startswith("/ping/pk123456/db-backup/start?rid=")
    assert "create=1" in hc.pings[0].path


def test_uuid_with_base_and_secret_from_file(home: Path, hc: HCServer, tmp_path: Path) -> None:
    check = hc.new_check()
    secret = tmp_path / "uuid"
    secret.write_text(check + "\n")
    result = cronwrap(
        home,
        "run",
        "--name",
        "u",
        "--ping-uuid",
        f"file:{secret}",
        "--ping-base",
        hc.base,
        "--",
        "true",
    )
    assert result.returncode == 0, result.stderr
    assert hc.kinds() == ["start", "0"]


def test_url_joining() -> None:
    assert join_url("https://hc.example/ping", "abc") == "https://hc.example/ping/abc"
    assert join_url("https://hc.example/ping/", "/abc") == "https://hc.example/ping/abc"
    t = target_from(
        ping=None,
        uuid=None,
        key="k",
        slug=None,
        create=True,
        base="https://hc-ping.com",
        job_name="nightly",
    )
    assert t == PingTarget("https://hc-ping.com/k/nightly", create=True)
    assert t.url_for("start", "r1") == "https://hc-ping.com/k/nightly/start?rid=r1&create=1"
    assert PingTarget("https://x/ping/u/").url_for("", None) == "https://x/ping/u"


def test_job_name_maps_to_the_slug_hc_sync_creates(home: Path, hc: HCServer) -> None:
    hc.slugs["pk123456"] = {"s5-upper"}
    base = ["--ping-key", "pk123456", "--ping-base", hc.base]
    result = cronwrap(home, "run", "--name", "S5.Upper", *base, "--", "true")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert [p.path.split("?")[0] for p in hc.pings] == [
        "/ping/pk123456/s5-upper/start",
        "/ping/pk123456/s5-upper/0",
    ]


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["--ping-key", "k", "--ping-slug", "Has.Dots"], "slug"),
        (["--ping-uuid", "not-a-uuid"], "UUID"),
    ],
    ids=["upper-case-slug", "bad-uuid"],
)
def test_bad_ping_address_is_named(home: Path, args: list[str], what: str) -> None:
    result = cronwrap(home, "run", "--name", "j", *args, "--", "true")
    assert what in result.stderr, result.stderr
    assert "hc-ping.com" not in result.stderr  # refused before any ping was tried


# ---------------------------------------------------------------- delivery


def test_unknown_check_is_a_logged_failure_not_queued(home: Path, hc: HCServer) -> None:
    result = cronwrap(
        home,
        "run",
        "--name",
        "u404",
        "--ping",
        hc.url("00000000-0000-4000-8000-000000000000"),
        "--",
        "echo",
        "x",
    )
    assert result.returncode == 0 and result.stdout == "x\n"
    assert result.stderr.count("cronwrap: ") == 1
    assert "HTTP 404" in result.stderr
    errors = [e for e in events(home) if e["event"] == "ping.error"]
    assert len(errors) == 2 and errors[0]["http_status"] == 404
    assert not (home / "outbox").exists() or not list((home / "outbox").iterdir())


def test_ok_with_another_body_is_not_delivered(home: Path, hc: HCServer) -> None:
    hc.mode = "notfound-ok"
    check = hc.new_check()
    result = cronwrap(home, "run", "--name", "nf", "--ping", hc.url(check), "--", "true")
    assert result.returncode == 0
    assert "OK (not found)" in result.stderr


def test_retries_on_503_within_the_budget(home: Path, hc: HCServer) -> None:
    hc.fail_first = 2
    check = hc.new_check()
    result = cronwrap(home, "run", "--name", "r503", "--ping", hc.url(check), "--", "true")
    assert result.returncode == 0 and result.stderr == ""
    assert [p.status for p in hc.pings] == [503, 503, 200, 200]


def assert_held_within_the_budgets(home: Path, *, start: float, finish: float) -> None:
    """The run held its job back for the start ping (run.start to attempt.start) and its end
    for the finish ping (attempt.end to run.end) within each budget, plus a margin for a busy
    machine (3 s at the end, which writes the run's row too): with 1 s budgets, not the 3 s
    and 10 s defaults, nor a hang."""
    held = seconds_between(home, "run.start", "attempt.start")
    assert held < start + 2, f"the job started {held:.1f}s after the run"
    held = seconds_between(home, "attempt.end", "run.end")
    assert held < finish + 3, f"the run ended {held:.1f}s after the job"


def test_dead_server_delays_the_job_by_at_most_the_budgets(home: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/ping/{'a' * 8}-aaaa-4aaa-8aaa-{'a' * 12}"
    marker = tmp_path / "m"
    t0 = time.time()
    result = cronwrap(
        home,
        "run",
        "--name",
        "dead",
        "--ping",
        url,
        "--ping-start-budget",
        "1s",
        "--ping-finish-budget",
        "1s",
        "--",
        *started_marker_cmd(marker, 4),
    )
    total = time.time() - t0
    assert result.returncode == 4 and "job output" in result.stdout
    assert marker.exists()
    # each ping within its budget, as the run's own clock saw it (the two windows hold little
    # else: the margin is for a busy machine); the whole run, start-ups too, is not held up
    assert_held_within_the_budgets(home, start=1, finish=1)
    assert total < 1 + 1 + 15
    assert "queued" in result.stderr


def test_black_holed_server_delays_the_job_by_at_most_the_budgets(
    home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "m"
    with BlackHole() as hole:
        url = hole.url(f"{'b' * 8}-bbbb-4bbb-8bbb-{'b' * 12}")
        t0 = time.time()
        result = cronwrap(
            home,
            "run",
            "--name",
            "hole",
            "--ping",
            url,
            "--ping-start-budget",
            "1500ms",
            "--ping-finish-budget",
            "1500ms",
            "--",
            *started_marker_cmd(marker),
        )
        total = time.time() - t0
    assert result.returncode == 0 and marker.exists()
    assert_held_within_the_budgets(home, start=1.5, finish=1.5)
    assert total < 1.5 + 1.5 + 15
    assert "timed out" in result.stderr


def test_default_start_budget_is_3_seconds(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    with BlackHole() as hole:
        url = hole.url(f"{'c' * 8}-cccc-4ccc-8ccc-{'c' * 12}")
        cronwrap(
            home,
            "run",
            "--name",
            "budget",
            "--ping",
            url,
            "--ping-finish-budget",
            "0",
            "--",
            *started_marker_cmd(marker),
        )
    assert marker.exists()
    held = seconds_between(home, "run.start", "attempt.start")
    assert 2.5 < held < 3 + 3, held  # the 3 s budget, not the 10 s finish budget or a hang


def test_outbox_replays_in_order_after_the_server_comes_back(home: Path) -> None:
    port = free_port()
    server = HCServer(port=port)
    check = server.new_check()
    url = f"http://127.0.0.1:{port}/ping/{check}"
    args = ["--ping", url, "--ping-start-budget", "300ms", "--ping-finish-budget", "300ms"]
    assert cronwrap(home, "run", "--name", "ob", *args, "--", "sh", "-c", "exit 2").returncode == 2
    assert cronwrap(home, "run", "--name", "ob", *args, "--", "true").returncode == 0
    assert len(list((home / "outbox").iterdir())) == 2
    server.start()
    # the server is up now: budgets a busy machine cannot run out of before it answers (the
    # replay goes within them), so this asserts the order, not the machine's speed
    live = ["--ping", url, "--ping-start-budget", "20s", "--ping-finish-budget", "20s"]
    try:
        assert cronwrap(home, "run", "--name", "ob", *live, "--", "true").returncode == 0
        assert server.kinds() == ["2", "0", "start", "0"]
        first = server.pings[0].body
        assert b"late: this ping could not be delivered" in first and b"exit 2" in first
        assert not list((home / "outbox").iterdir())
    finally:
        server.stop()


def test_flush_command_replays_the_outbox(home: Path) -> None:
    port = free_port()
    server = HCServer(port=port)
    check = server.new_check()
    url = f"http://127.0.0.1:{port}/ping/{check}"
    cronwrap(
        home,
        "run",
        "--name",
        "fl",
        "--ping",
        url,
        "--ping-start-budget",
        "200ms",
        "--ping-finish-budget",
        "200ms",
        "--",
        "true",
    )
    still = cronwrap(home, "flush", "--budget", "500ms")
    assert still.returncode == 1 and "1 still queued" in still.stdout
    server.start()
    try:
        done = cronwrap(home, "flush")
        assert done.returncode == 0 and "1 ping delivered" in done.stdout
        assert server.kinds() == ["0"]
    finally:
        server.stop()


# ---------------------------------------------------------------- bodies


def test_body_keeps_head_and_tail_within_the_advertised_limit(home: Path) -> None:
    server = HCServer(body_limit=2000).start()
    try:
        check = server.new_check()
        script = "for i in range(5000): print(f'line {i:04d}')"
        result = cronwrap(
            home, "run", "--name", "big", "--ping", server.url(check), "--", PY, "-c", script
        )
        assert result.returncode == 0
        body = server.pings[1].body
        assert len(body) <= 2000
        assert b"line 0000" in body and b"line 4999" in body
        assert b"bytes omitted here" in body
        # the limit is cached per server: a later run's log ping uses it too
        limits = home / "ping-limits"
        assert limits.read_text() == f"http://127.0.0.1:{server.port} 2000\n"
    finally:
        server.stop()


def test_body_limit_override_and_summary_only(home: Path, hc: HCServer) -> None:
    check = hc.new_check()
    cronwrap(
        home,
        "run",
        "--name",
        "o",
        "--ping",
        hc.url(check),
        "--ping-body-limit",
        "300",
        "--",
        PY,
        "-c",
        "print('x' * 5000)",
    )
    assert len(hc.pings[1].body) <= 300
    cronwrap(
        home,
        "run",
        "--name",
        "o",
        "--ping",
        hc.url(check),
        "--no-output-in-ping",
        "--",
        "echo",
        "private",
    )
    assert b"private" not in hc.pings[3].body and b"success" in hc.pings[3].body


def test_fit_body_is_exact_when_it_fits() -> None:
    assert fit_body("h\n", b"abc", b"", 0, 100) == b"h\n--- output ---\nabc"
    cut = fit_body("h\n", b"a" * 500, b"z" * 500, 1000, 200)
    assert len(cut) <= 200 and cut.count(b"a") > 10 and cut.endswith(b"z")


# ---------------------------------------------------------------- secrets


def test_no_secret_in_logs_history_or_terminal(home: Path, hc: HCServer) -> None:
    check = hc.new_check()
    env = cw_env(home, API_TOKEN="s3cr3t-token-value", DB_PASSWORD="hunter2hunter2")
    result = cronwrap(
        home,
        "run",
        "--name",
        "sec",
        "--ping",
        hc.url(check),
        "--redact",
        r"card=\d+",
        "--",
        "sh",
        "-c",
        "echo token=$API_TOKEN pw=$DB_PASSWORD card=1234; exit 1",
        env=env,
    )
    assert result.returncode == 1
    # the job's own output passes through unchanged (as cron would mail it) ...
    assert "s3cr3t-token-value" in result.stdout
    # ... but nothing cronwrap writes or sends holds a secret
    body = hc.pings[1].body.decode()
    store = b"".join(Path(home / "runs.db").read_bytes().split(b"\0"))
    log = (home / "cronwrap.log").read_text()
    for secret in ("s3cr3t-token-value", "hunter2hunter2", "card=1234"):
        assert secret not in body
        assert secret.encode() not in store
        assert secret not in log
        assert secret not in result.stderr
    assert "[REDACTED]" in body
    assert check not in log and check not in result.stderr
    assert check.encode() not in store


def test_ping_url_is_redacted_in_warnings(home: Path) -> None:
    secret = "12345678-1234-4234-8234-123456789abc"
    url = f"http://127.0.0.1:{free_port()}/ping/{secret}"
    result = cronwrap(
        home,
        "run",
        "--name",
        "w",
        "--ping",
        url,
        "--ping-start-budget",
        "200ms",
        "--ping-finish-budget",
        "200ms",
        "--",
        "true",
    )
    assert secret not in result.stderr and "…9abc" in result.stderr
    assert secret not in (home / "cronwrap.log").read_text()


def test_redactor_masks_token_shapes_and_env() -> None:
    r = Redactor(
        env={"MY_API_KEY": "abcd1234", "HOME": "/root"},
        env_globs=["*KEY*"],
        patterns=[r"\d{3}-\d{4}"],
        secrets=["uuid-like-secret"],
    )
    text = (
        "key=abcd1234 home=/root ghp_" + "x" * 36 + " 555-1234 uuid-like-secret "
        "https://user:pw@host/x Bearer abcdefghijklmnopqrstuvwxyz"
    )
    out = r.text(text)
    assert "abcd1234" not in out and "/root" in out
    assert "ghp_" not in out and "555-1234" not in out and "uuid-like-secret" not in out
    assert "user:pw" not in out and "abcdefghijklmnop" not in out


def test_redact_url() -> None:
    assert (
        redact_url("https://hc-ping.com/1d2f3a4b-0000-4000-8000-00000000a1b2")
        == "https://hc-ping.com/…a1b2"
    )
    assert (
        redact_url("https://u:p@hooks.example.com:8443/x/y?token=1")
        == "https://hooks.example.com:8443/…xy"
    )
    assert redact_url("1d2f3a4b-0000-4000-8000-00000000a1b2") == "…a1b2"  # a bare id
    # not a URL: a libpq keyword string showed its password's last 4 characters
    assert redact_url("host=db password=Sekr1tPW") == "…"
    assert redact_url("db.example.com:5432/x?password=Sekr1tPW") == "…"


def test_job_duration_excludes_the_start_ping_time(home: Path) -> None:
    """A black-holed server takes the start ping's whole budget; the run's recorded
    duration is still the job's."""
    with BlackHole() as hole:
        url = hole.url(f"{'d' * 8}-dddd-4ddd-8ddd-{'d' * 12}")
        result = cronwrap(
            home,
            "run",
            "--name",
            "dur",
            "--ping",
            url,
            "--ping-start-budget",
            "3s",
            "--ping-finish-budget",
            "300ms",
            "--",
            "true",
        )
    assert result.returncode == 0
    with sqlite3.connect(home / "runs.db") as db:
        [(duration,)] = db.execute("SELECT duration_s FROM runs").fetchall()
    assert duration < 2.5, duration  # the start ping alone waited 3 s


def _queue_pings(outbox_dir: Path, checks: list[str], port: int, per_check: int) -> None:
    """Finish pings as runs leave them when the server is down: `per_check` for each check,
    exit codes 1, 2, ... in the order they happened."""
    from cronwrap.notify.healthchecks import PingBody
    from cronwrap.notify.outbox import Outbox

    outbox = Outbox(outbox_dir)
    for n in range(1, per_check + 1):
        for check in checks:
            outbox.put(
                check=f"http://127.0.0.1:{port}/ping/{check}",
                kind=str(n),
                rid=None,
                body=PingBody(f"run {n}"),
                limit=10_000,
                job="ob",
                at="2026-12-01T12:00:00+00:00",
            )


def test_runs_replaying_one_outbox_at_once_send_each_ping_once_in_order(home: Path) -> None:
    """A burst after an outage: many runs find the same queued pings. Each is sent once,
    and each check's pings arrive in the order they happened."""
    port = free_port()
    server = HCServer(port=port, delay=0.02)
    checks = [server.new_check() for _ in range(4)]
    _queue_pings(home / "outbox", checks, port, per_check=6)
    server.start()
    try:
        flushes = [popen_cronwrap(home, "flush", "--budget", "60s") for _ in range(6)]
        for p in flushes:
            p.communicate(timeout=120)
        # 1 = "still queued": another flush was sending that check's pings just then
        assert {p.returncode for p in flushes} <= {0, 1}
        sent = [(p.check, p.kind) for p in server.pings]
        assert len(sent) == len(set(sent)) == 24, sorted(sent)
        for check in checks:
            assert [k for c, k in sent if c == check] == ["1", "2", "3", "4", "5", "6"]
        assert not list((home / "outbox").glob("*.json*"))
    finally:
        server.stop()


def test_a_ping_claimed_by_a_process_that_died_is_sent_by_the_next_replay(home: Path) -> None:
    """SIGKILLed mid-send: its claimed record goes back to the queue, nothing is lost. A
    record a live process holds (a run rewriting it) stops the replay there, so that no
    later ping overtakes it; the next replay goes on from it, in order."""
    port = free_port()
    server = HCServer(port=port)
    gone, busy = server.new_check(), server.new_check()
    _queue_pings(home / "outbox", [gone, busy], port, per_check=2)
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    gone1, busy1 = sorted((home / "outbox").glob("*.json"))[:2]
    gone1.rename(gone1.with_name(f"{gone1.name}.sending-{dead.pid}"))
    held = busy1.with_name(f"{busy1.name}.sending-{alive.pid}")
    busy1.rename(held)
    server.start()
    try:
        first = cronwrap(home, "flush", "--budget", "5s")
        assert [(p.check, p.kind) for p in server.pings] == [(gone, "1")], (
            gone,
            busy,
            [(p.check, p.kind) for p in server.pings],
        )
        assert first.returncode == 1 and "3 still queued" in first.stdout
        assert held.exists()
        alive.kill()
        alive.wait()
        assert cronwrap(home, "flush", "--budget", "5s").returncode == 0
        rest = [(p.check, p.kind) for p in server.pings][1:]
        assert rest == [(busy, "1"), (gone, "2"), (busy, "2")]
        assert not list((home / "outbox").glob("*.json*"))
    finally:
        alive.kill()
        server.stop()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ("curl https://x/?password=hunter2&x=1", "hunter2"),
        ("DB_PASSWORD: hunter2", "hunter2"),
        ("token=abc123def, secret=s3cr3t", "abc123def"),
        ("token=abc123def, secret=s3cr3t", "s3cr3t"),
        ("API_KEY=k3yk3yk3y", "k3yk3yk3y"),
        ("stripe sk_live_" + "a1" * 12, "sk_live_"),
        ("google AIza" + "B" * 35, "AIza"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "MIIE",
        ),
        ("tail cut mid-key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE", "b3Bl"),
    ],
)
def test_redactor_masks_more_credential_shapes(text: str, secret: str) -> None:
    """Shapes the reviewer found passing through: basic auth, key=value secrets, PEM keys
    (whole, or cut off by the tail), Stripe and Google keys."""
    out = Redactor().text(text)
    assert secret not in out and "[REDACTED]" in out, out


def test_redactor_leaves_ordinary_words_alone() -> None:
    text = "a basic configuration; the password policy; tokens used: 12"
    assert Redactor().text(text) == text


def test_a_failure_nobody_can_count_is_not_tolerated(home: Path) -> None:
    """--alert-after 2 tolerates a first failure as a success ping; with the run store
    unusable the streak is unknown, and the failure must go out as one, every time (it was
    taken for a first failure, and three failures in a row pinged success)."""
    server = HCServer().start()
    try:
        check = server.new_check()
        home.mkdir(exist_ok=True)
        (home / "runs.db").mkdir()
        for _ in range(2):
            result = cronwrap(
                home,
                "run",
                "--name",
                "nc",
                "--ping",
                server.url(check),
                "--alert-after",
                "2",
                "--",
                "sh",
                "-c",
                "exit 3",
            )
            assert result.returncode == 3
        assert server.kinds() == ["start", "3", "start", "3"]
    finally:
        server.stop()
