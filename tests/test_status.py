"""`cronwrap status`, `history` and `logs` over real runs, real crontab files and a fixed clock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cronwrap.cron.crontab import parse_crontab
from cronwrap.views.status import crontab_jobs
from tests.conftest import (
    cronwrap,
    cw_env,
    popen_cronwrap,
    popen_sleeping_job,
    wait_for,
    wait_supervised,
)

PY = sys.executable

USER_TAB = """\
# sync every 15 minutes
SHELL=/bin/sh
MAILTO=""
CRON_TZ=Europe/Berlin
*/15 * * * * /usr/local/bin/cronwrap run --name sync --timeout 10m -- /usr/local/bin/sync.sh
@daily cronwrap run -- /usr/local/bin/report --daily
0 3 * * * /usr/local/bin/unwrapped.sh
"""

SYSTEM_TAB = """\
PATH=/usr/sbin:/usr/bin:/sbin:/bin
17 * * * * root cd / && run-parts --report /etc/cron.hourly
30 2 * * * backup cronwrap run --name backup -- /usr/bin/backup
"""


def status(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cronwrap(home, "status", "--crontab", "/dev/null", *args)


def status_json(home: Path, *args: str) -> list[dict]:
    result = status(home, "--json", *args)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


# ---------------------------------------------------------------- discovery


def test_discovery_from_user_and_system_crontabs(home: Path, tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.write_text(USER_TAB)
    system = tmp_path / "system"
    system.write_text(SYSTEM_TAB)
    tabs = [
        parse_crontab(USER_TAB, source=str(user), system=False),
        parse_crontab(SYSTEM_TAB, source="/etc/crontab", system=True),
    ]
    jobs = {j.name: j for j in crontab_jobs(tabs) if j.wrapped}
    assert jobs["sync"].schedule == "*/15 * * * *" and jobs["sync"].tz == "Europe/Berlin"
    report = [n for n in jobs if n.startswith("report-")]
    assert len(report) == 1 and jobs[report[0]].schedule == "@daily"
    assert jobs["backup"].schedule == "30 2 * * *" and jobs["backup"].location == "/etc/crontab:3"
    unwrapped = [j for j in crontab_jobs(tabs) if not j.wrapped]
    assert len(unwrapped) == 2  # unwrapped.sh and run-parts


def test_derived_name_matches_what_run_would_use(home: Path) -> None:
    tab = parse_crontab(
        "@daily cronwrap run --timeout 5m -- echo hello\n", source="t", system=False
    )
    [job] = crontab_jobs([tab])
    assert cronwrap(home, "run", "--timeout", "5m", "--", "echo", "hello").returncode == 0
    rows = by_name(status_json(home))
    assert job.name in rows


def test_status_lists_crontab_jobs_never_run_and_unmonitored_with_all(
    home: Path, tmp_path: Path
) -> None:
    user = tmp_path / "user"
    user.write_text(USER_TAB)
    result = cronwrap(
        home, "status", "--crontab", str(user), "--json", "--now", "2026-06-01T12:00:00+00:00"
    )
    rows = by_name(json.loads(result.stdout))
    assert rows["sync"]["result"] == "never run" and rows["sync"]["tz"] == "Europe/Berlin"
    assert rows["sync"]["next_run"] == "2026-06-01T14:15:00+02:00"
    assert rows["sync"]["location"] == f"{user}:5"
    assert not any(r["unmonitored"] for r in rows.values())
    everything = json.loads(
        cronwrap(home, "status", "--crontab", str(user), "--json", "--all").stdout
    )
    unmon = [r for r in everything if r["unmonitored"]]
    assert len(unmon) == 1 and unmon[0]["result"] == "unmonitored"
    assert unmon[0]["name"] == "/usr/local/bin/unwrapped.sh"  # what it runs, not where it is
    assert unmon[0]["location"] == f"{user}:7"
    table = cronwrap(home, "status", "--crontab", str(user), "--all").stdout
    assert "unwrapped" in table and f"({user}:7)" not in table


def test_crontab_from_stdin(home: Path) -> None:
    result = cronwrap(home, "status", "--crontab", "-", "--json", input=USER_TAB)
    assert "sync" in by_name(json.loads(result.stdout))


# ---------------------------------------------------------------- results


def test_every_result_state(home: Path, tmp_path: Path) -> None:
    cronwrap(home, "run", "--name", "ok", "--", "true")
    cronwrap(home, "run", "--name", "bad", "--", "sh", "-c", "exit 2")
    cronwrap(home, "run", "--name", "slow", "--timeout", "200ms", "--", "sleep", "5")
    cronwrap(home, "run", "--name", "sig", "--", "sh", "-c", "kill -KILL $$")
    # cancelled: SIGTERM to cronwrap
    marker = tmp_path / "c"
    proc = popen_cronwrap(
        home, "run", "--name", "cancel", "--", "sh", "-c", f"touch {marker}; exec sleep 30"
    )
    wait_for(marker.exists)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    # crashed: SIGKILL to cronwrap
    marker2 = tmp_path / "k"
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "crash",
        "--",
        "sh",
        "-c",
        f"touch {marker2}; echo started; exec sleep 30",
    )
    wait_for(marker2.exists)
    wait_supervised(home, "crash")
    proc.kill()
    proc.wait()
    # running: still going while we look
    marker3 = tmp_path / "r"
    running = popen_cronwrap(
        home, "run", "--name", "busy", "--", "sh", "-c", f"touch {marker3}; exec sleep 30"
    )
    wait_for(marker3.exists)
    # skipped: overlapping the running one
    cronwrap(home, "run", "--name", "busy", "--", "true")
    try:
        rows = by_name(status_json(home))
    finally:
        running.terminate()
        running.wait(10)
    assert rows["ok"]["result"] == "ok" and rows["ok"]["healthy"]
    assert rows["bad"]["result"] == "failed (exit 2)" and not rows["bad"]["healthy"]
    assert rows["slow"]["result"] == "timeout"
    assert rows["sig"]["result"] == "failed (SIGKILL)"
    assert rows["cancel"]["result"] == "cancelled"
    assert rows["crash"]["result"] == "crashed" and rows["crash"]["state"] == "failing"
    # the newest busy row is the skipped attempt, but the run holding the lock decides
    assert rows["busy"]["result"].startswith("running ") and rows["busy"]["state"] == "running"
    assert rows["busy"]["last_run"]["status"] == "skipped"


def test_running_is_shown_with_elapsed_time(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "r"
    proc = popen_cronwrap(
        home, "run", "--name", "busy", "--", "sh", "-c", f"touch {marker}; exec sleep 30"
    )
    wait_for(marker.exists)
    try:
        row = by_name(status_json(home))["busy"]
        assert row["result"].startswith("running ") and row["state"] == "running"
        assert row["healthy"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_missed_run_with_a_fixed_clock(home: Path) -> None:
    cronwrap(
        home, "run", "--name", "hourly", "--schedule", "0 * * * *", "--tz", "UTC", "--", "true"
    )
    started = datetime.fromisoformat(by_name(status_json(home))["hourly"]["last_run"]["started_at"])
    soon = (started + timedelta(minutes=1)).isoformat()
    row = by_name(status_json(home, "--now", soon))["hourly"]
    assert not row["missed"] and row["healthy"]
    later = (started + timedelta(hours=3)).isoformat()
    result = status(home, "--now", later, "--json")
    assert result.returncode == 1
    row = by_name(json.loads(result.stdout))["hourly"]
    assert row["missed"] and not row["healthy"]
    expected = datetime.fromisoformat(row["expected_at"])
    assert expected.minute == 0 and expected > started
    # within the grace the newest fire time is not yet missed
    just_after = (
        started.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=3)
    ).isoformat()
    assert not by_name(status_json(home, "--now", just_after))["hourly"]["missed"]
    assert by_name(status_json(home, "--now", just_after, "--grace", "1m"))["hourly"]["missed"]


def test_exit_status_and_filters(home: Path) -> None:
    cronwrap(home, "run", "--name", "good", "--", "true")
    assert status(home).returncode == 0
    cronwrap(home, "run", "--name", "broken", "--", "false")
    assert status(home).returncode == 1
    assert status(home, "--job", "good").returncode == 0
    names = [r["name"] for r in status_json(home, "--failed")]
    assert names == ["broken"]


def test_json_schema_is_stable(home: Path) -> None:
    cronwrap(home, "run", "--name", "j", "--schedule", "@daily", "--", "true")
    [row] = status_json(home)
    assert set(row) == {
        "name",
        "host",
        "schedule",
        "tz",
        "description",
        "source",
        "location",
        "result",
        "state",
        "healthy",
        "missed",
        "expected_at",
        "next_run",
        "durations_s",
        "unmonitored",
        "schedule_error",
        "zone_note",
        "dead_letters",
        "degraded",
        "warnings",
        "tz_warning",
        "reason",
        "missed_first_at",
        "missed_count",
        "run_state",
        "current_run",
        "last_run",
    }
    assert set(row["last_run"]) == {
        "run_id",
        "job",
        "host",
        "pid",
        "started_at",
        "ended_at",
        "status",
        "exit_code",
        "signal",
        "attempts",
        "warnings",
        "duration_s",
        "reason",
        "exit_origin",
        "log_path",
        "flags",
        "state",
    }
    datetime.fromisoformat(row["next_run"])
    assert datetime.fromisoformat(row["last_run"]["started_at"]).tzinfo is not None


def test_plain_output_without_tty_and_no_color(home: Path) -> None:
    cronwrap(
        home, "run", "--name", "a-rather-long-job-name-that-keeps-going-and-going", "--", "false"
    )
    plain = status(home)
    assert "\x1b[" not in plain.stdout
    assert "NAME" in plain.stdout and "failed (exit 1)" in plain.stdout
    # piped output is not cut at all; COLUMNS limits it, wrapping between words
    assert "a-rather-long-job-name-that-keeps-going-and-going" in plain.stdout
    narrow = cronwrap(home, "status", "--crontab", "/dev/null", env=cw_env(home, COLUMNS="80"))
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    assert "failed (exit 1)" in narrow.stdout
    env = cw_env(home, NO_COLOR="1")
    forced = cronwrap(home, "status", "--crontab", "/dev/null", "--color", "always", env=env)
    assert "\x1b[" in forced.stdout  # --color beats NO_COLOR
    nocolor = cronwrap(
        home, "status", "--crontab", "/dev/null", env=cw_env(home, NO_COLOR="1", FORCE_COLOR="1")
    )
    assert "\x1b[3" not in nocolor.stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
@pytest.mark.parametrize("width", [80, 160])
def test_table_in_a_real_terminal(home: Path, width: int) -> None:
    for name, cmd in (("nightly-backup-of-the-main-database", "true"), ("sync", "false")):
        cronwrap(home, "run", "--name", name, "--schedule", "*/15 * * * *", "--", cmd)
    session = f"cwtest{width}-{os.getpid()}"  # one tmux server is shared by every test run
    env_args = ["-e", f"CRONWRAP_HOME={home}"]
    # COLUMNS/LINES from the test runner would override the real terminal size
    cmd = f"env -u COLUMNS -u LINES {PY} -m cronwrap status --crontab /dev/null; sleep 5"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", str(width), "-y", "20", *env_args, cmd],
        check=True,
    )
    try:
        screen = ""
        for _ in range(100):
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if "listed" in screen:
                break
            time.sleep(0.05)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    lines = [ln for ln in screen.splitlines() if ln.strip()]
    header = lines[0]
    for col in ("NAME", "SCHEDULE", "LAST RUN", "RESULT", "DURATION", "NEXT RUN"):
        assert col in header, header
    if width >= 140:
        assert "HOST" in header
        assert "At minutes 0, 15, 30" in screen
    assert "2 jobs listed, 1 need attention." in screen
    assert all(len(ln) <= width for ln in lines)


# ---------------------------------------------------------------- history and logs


def test_history_lists_runs_newest_first(home: Path) -> None:
    for code in (0, 3, 0):
        cronwrap(home, "run", "--name", "h", "--", "sh", "-c", f"exit {code}")
    result = cronwrap(home, "history", "h", "--json", "--limit", "2")
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [r["exit_code"] for r in runs] == [0, 3]
    assert runs[1]["attempts_detail"][0]["exit_code"] == 3
    table = cronwrap(home, "history", "h")
    assert table.returncode == 0 and "STARTED" in table.stdout and "failed" in table.stdout
    missing = cronwrap(home, "history", "nope")
    assert missing.returncode == 1 and missing.stderr.startswith("cronwrap: no runs")


def test_logs_prints_the_captured_output(home: Path) -> None:
    cronwrap(home, "run", "--name", "lg", "--", "sh", "-c", "echo first")
    cronwrap(home, "run", "--name", "lg", "--", "sh", "-c", "echo second; echo err >&2")
    last = cronwrap(home, "logs", "lg")
    assert last.returncode == 0 and set(last.stdout.split()) == {"second", "err"}
    run_id = json.loads(cronwrap(home, "history", "lg", "--json").stdout)[1]["run_id"]
    assert cronwrap(home, "logs", "lg", run_id[:6]).stdout == "first\n"


def test_logs_follow_streams_a_running_job(home: Path, tmp_path: Path) -> None:
    script = "import time\nfor i in range(3):\n    print(f'tick {i}', flush=True); time.sleep(0.4)"
    proc = popen_cronwrap(
        home, "run", "--name", "fol", "--", PY, "-c", script, stdout=subprocess.DEVNULL
    )
    wait_for(
        lambda: (home / "output" / "fol").exists() and any((home / "output" / "fol").iterdir())
    )
    follow = cronwrap(home, "logs", "fol", "--follow", timeout=20)
    proc.wait(10)
    assert follow.returncode == 0
    assert follow.stdout.split("\n")[:3] == ["tick 0", "tick 1", "tick 2"]


def test_logs_json(home: Path) -> None:
    cronwrap(
        home,
        "run",
        "--name",
        "lj",
        "--quiet",
        "--",
        PY,
        "-c",
        "import sys; sys.stdout.buffer.write(b'ok \\xff\\n')",
    )
    result = cronwrap(home, "logs", "lj", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["output"] == "ok \ufffd\n" and doc["output_bytes"] == 5
    assert doc["job"] == "lj" and doc["status"] == "success"


def test_run_flags_show_in_the_table(home: Path) -> None:
    cronwrap(home, "run", "--name", "long", "--max-runtime", "100ms", "--", "sleep", "0.5")
    table = status(home)
    assert "max-runtime" in table.stdout


def test_status_of_one_job_computes_only_that_job(home: Path) -> None:
    """`status --job NAME` filters before computing: the other jobs are never looked at
    (a store of 5,000 jobs costs the same as one), and an unknown name still lists the
    known ones."""
    from datetime import timezone

    from cronwrap.config import resolve_paths
    from cronwrap.state.store import Store
    from cronwrap.views.status import job_statuses, load_status

    for name in ("a", "b", "c"):
        assert cronwrap(home, "run", "--name", name, "--", "true").returncode == 0
    paths = resolve_paths(cw_env(home))
    now = datetime.now(timezone.utc)
    with Store.open(paths.db_file) as store:
        got = job_statuses(store, [], paths, now=now, grace=timedelta(0), only=["b"])
    assert [st.name for st in got] == ["b"] and got[0].last is not None
    report = load_status(paths, [], now=now, grace=timedelta(0), names=["nosuch"])
    assert "known: a, b, c" in (report.problem or "")


def test_jobs_sharing_a_schedule_in_other_zones_get_their_own_times(home: Path) -> None:
    """status computes each (schedule, zone) once: a job must never get another zone's."""
    for name, tz in (("berlin", "Europe/Berlin"), ("utc", "UTC"), ("berlin2", "Europe/Berlin")):
        cronwrap(home, "run", "--name", name, "--schedule", "0 9 * * *", "--tz", tz, "--", "true")
    now = "2026-01-15T12:00:00+00:00"
    rows = by_name(status_json(home, "--now", now))
    assert rows["berlin"]["next_run"] == "2026-01-16T09:00:00+01:00"
    assert rows["berlin2"]["next_run"] == "2026-01-16T09:00:00+01:00"
    assert rows["utc"]["next_run"] == "2026-01-16T09:00:00+00:00"
    assert rows["berlin"]["expected_at"] == "2026-01-15T09:00:00+01:00"
    assert rows["utc"]["expected_at"] == "2026-01-15T09:00:00+00:00"


def test_durations_leave_out_skips_and_the_run_going_on(home: Path, tmp_path: Path) -> None:
    """status reads whole only a job's newest row, the newest that ran and running ones:
    the durations of the others come from their stored status and duration alone."""
    for _ in range(3):
        assert cronwrap(home, "run", "--name", "d", "--", "true").returncode == 0
    marker = tmp_path / "m"
    proc = popen_cronwrap(
        home, "run", "--name", "d", "--", "sh", "-c", f"touch {marker}; exec sleep 30"
    )
    wait_for(marker.exists)
    try:
        skipped = cronwrap(home, "run", "--name", "d", "--", "true")
        assert skipped.returncode == 0, skipped.stderr
        row = by_name(status_json(home))["d"]
        assert row["state"] == "running" and row["last_run"]["state"] == "skipped"
        assert row["current_run"]["state"] == "running"
        assert len(row["durations_s"]) == 3
    finally:
        proc.terminate()
        proc.wait(10)
    row = by_name(status_json(home))["d"]
    assert row["last_run"]["state"] == "skipped"  # the newest row still decides
    assert len(row["durations_s"]) == 4  # the ended run's duration counts now


def test_a_long_output_tail_is_not_read_by_status(home: Path) -> None:
    """What status shows of a run leaves its output out; the tail stays for history/logs."""
    script = "import sys; sys.stdout.write('x' * 200000)"
    assert cronwrap(home, "run", "--name", "loud", "--", PY, "-c", script).returncode == 0
    row = by_name(status_json(home))["loud"]
    assert row["state"] == "ok" and row["last_run"]["state"] == "success"
    logs = cronwrap(home, "logs", "loud")
    assert logs.returncode == 0 and len(logs.stdout) == 200000


def test_status_job_reads_only_the_jobs_asked_for(home: Path) -> None:
    """--job reads the named jobs' rows alone: another job's dead letters stay its own."""
    assert cronwrap(home, "run", "--name", "fine", "--", "true").returncode == 0
    assert cronwrap(home, "run", "--name", "broken", "--", "false").returncode == 1
    result = status(home, "--job", "fine", "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["name"] == "fine" and row["dead_letters"] == 0
    result = status(home, "--job", "broken", "--job", "fine", "--json")
    assert result.returncode == 1, result.stderr
    rows = by_name(json.loads(result.stdout))
    assert rows["broken"]["dead_letters"] == 1 and rows["fine"]["dead_letters"] == 0


def test_a_zone_the_system_lacks_is_looked_for_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every job naming a zone this host does not have says so, and the zone is looked for
    once: each lookup searches every tzdata directory (0.07 ms), and 5,000 jobs with
    different schedules in one such zone paid it 5,000 times (0.35 s)."""
    from datetime import timezone

    import cronwrap.views.status as status_view
    from cronwrap.views.jobstatus import JobStatus

    calls: list[str | None] = []

    def counting_zone(name: str | None) -> object:
        calls.append(name)
        return real_zone(name)

    real_zone = status_view.zone
    monkeypatch.setattr(status_view, "zone", counting_zone)
    status_view._zone.cache_clear()
    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    jobs = [JobStatus(f"j{n}", schedule=f"{n} * * * *", tz="Nowhere/Lost") for n in range(50)]
    seen: dict = {}  # type: ignore[type-arg]
    for st in jobs:
        status_view.fill_schedule(st, now=now, grace=timedelta(minutes=1), seen=seen)
    assert {st.schedule_error for st in jobs} == {
        "unknown time zone 'Nowhere/Lost': use an IANA name such as Europe/Berlin or UTC"
    }
    assert all(st.next_run is None for st in jobs)
    assert calls == ["Nowhere/Lost"]


def test_logs_json_says_the_state_history_says(home: Path, tmp_path: Path) -> None:
    """logs --json gave "state": null for every run; a run whose cronwrap was killed read
    "status": "running" there while status and history said crashed."""
    proc, _ = popen_sleeping_job(home, "k", tmp_path)
    proc.kill()  # its watchdog ends the job
    proc.wait()
    [hist] = json.loads(cronwrap(home, "history", "k", "--json").stdout)
    doc = json.loads(cronwrap(home, "logs", "k", "--json").stdout)
    assert hist["state"] == "crashed" and doc["state"] == "crashed" and doc["status"] == "running"
