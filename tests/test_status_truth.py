"""`status` tells the truth (issue 17): DST nights in four zones, missed-run accounting,
unknown is never healthy, and one run-state model shared by status, history and logs.

Runs are recorded at chosen times through the real Store API (or are real `cronwrap run`
processes), and status is asked with `--now`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from cronwrap.cli.app import cli
from cronwrap.config import ensure_dir, resolve_paths
from cronwrap.cron.schedule import parse
from cronwrap.errors import ExitCode
from cronwrap.state.store import Store
from cronwrap.views.status import MISSED_COUNT_CAP, load_status
from tests.conftest import cronwrap, cw_env, popen_cronwrap, wait_for, wait_supervised

UTC = timezone.utc
GRACE = timedelta(minutes=5)

# (zone, the transition's UTC instant, a fixed wall time in the skipped or repeated time)
TRANSITIONS = [
    ("America/New_York", datetime(2025, 3, 9, 7, 0, tzinfo=UTC), "30 2"),
    ("America/New_York", datetime(2025, 11, 2, 6, 0, tzinfo=UTC), "30 1"),
    ("Europe/London", datetime(2025, 3, 30, 1, 0, tzinfo=UTC), "30 1"),
    ("Europe/London", datetime(2025, 10, 26, 1, 0, tzinfo=UTC), "30 1"),
    ("Australia/Sydney", datetime(2025, 4, 5, 16, 0, tzinfo=UTC), "30 2"),
    ("Australia/Sydney", datetime(2025, 10, 4, 16, 0, tzinfo=UTC), "30 2"),
    ("Australia/Lord_Howe", datetime(2025, 4, 5, 15, 0, tzinfo=UTC), "45 1"),
    ("Australia/Lord_Howe", datetime(2025, 10, 4, 15, 30, tzinfo=UTC), "15 2"),
]
IDS = [
    "new-york-spring",
    "new-york-fall",
    "london-spring",
    "london-fall",
    "sydney-fall",
    "sydney-spring",
    "lord-howe-fall",
    "lord-howe-spring",
]


class Recorder:
    """A run store in CRONWRAP_HOME with runs recorded at chosen instants."""

    def __init__(self, home: Path) -> None:
        self.paths = resolve_paths({"CRONWRAP_HOME": str(home)})
        ensure_dir(self.paths.state_dir)
        self.store = Store.open(self.paths.db_file)
        self.n = 0

    def run(
        self,
        job: str,
        at: datetime,
        *,
        schedule: str | None,
        tz: str | None,
        status: str = "success",
        host: str | None = None,
        pid: int = 1,
        reason: str | None = None,
        end: bool = True,
    ) -> str:
        self.n += 1
        run_id = f"run-{self.n}"
        self.store.record_start(
            run_id=run_id,
            job=job,
            host=host or os.uname().nodename,
            pid=pid,
            command="true",
            started_at=at,
            schedule=schedule,
            tz=tz,
            log_path=None,
            status="skipped" if status == "skipped" else "running",
        )
        if end:
            self.store.record_end(
                run_id=run_id,
                ended_at=at + timedelta(seconds=1),
                status=status,
                exit_code=0 if status in ("success", "skipped") else 1,
                signal=None,
                attempts=1,
                duration_s=1.0,
                output_tail=None,
                reason=reason,
            )
        return run_id

    def close(self) -> None:
        self.store.close()


def _fires(expr: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    out = []
    for at in parse(expr).iter_runs(start, tz):
        if at.astimezone(UTC) > end:
            break
        out.append(at.astimezone(UTC))
    return out


def _status_at(rec: Recorder, now: datetime, zone: str) -> dict[str, object]:
    report = load_status(rec.paths, [], now=now, grace=GRACE, default_tz=zone)
    assert report.problem is None
    return {j.name: j for j in report.jobs}


def _sweep(
    rec: Recorder, zone: str, jobs: dict[str, str], transition: datetime, skip: set[datetime]
) -> dict[str, list[tuple[datetime, object]]]:
    """Record each job's runs (20 s after each fire time, minus `skip`) as simulated time
    passes, and ask status every 3 minutes from 3 h before to 4 h after the transition."""
    tz = ZoneInfo(zone)
    start, end = transition - timedelta(hours=30), transition + timedelta(hours=4)
    pending = sorted(
        (at + timedelta(seconds=20), name)
        for name, expr in jobs.items()
        for at in _fires(expr, tz, start, end)
        if at not in skip
    )
    seen: dict[str, list[tuple[datetime, object]]] = {name: [] for name in jobs}
    now = transition - timedelta(hours=3)
    while now <= end:
        while pending and pending[0][0] <= now:
            at, name = pending.pop(0)
            rec.run(name, at, schedule=jobs[name], tz=zone)
        for name, st in _status_at(rec, now, zone).items():
            seen[name].append((now, st))
        now += timedelta(minutes=3)
    return seen


@pytest.mark.parametrize(("zone", "transition", "fixed"), TRANSITIONS, ids=IDS)
def test_no_false_missed_across_dst(
    home: Path, zone: str, transition: datetime, fixed: str
) -> None:
    """Every run cron starts (at the times the real daemon starts them) keeps status
    healthy through both DST transitions: no wall-clock arithmetic anywhere."""
    rec = Recorder(home)
    jobs = {"hourly": "0 * * * *", "quarter": "*/15 * * * *", "fixed": f"{fixed} * * *"}
    try:
        seen = _sweep(rec, zone, jobs, transition, skip=set())
    finally:
        rec.close()
    for name, snaps in seen.items():
        bad = [(now.isoformat(), st.missed_first) for now, st in snaps if not st.healthy]
        assert not bad, f"{zone} {name}: unhealthy at {bad[:3]} (of {len(snaps)} snapshots)"


@pytest.mark.parametrize(("zone", "transition", "fixed"), TRANSITIONS, ids=IDS)
def test_a_real_miss_across_dst_is_seen_and_named(
    home: Path, zone: str, transition: datetime, fixed: str
) -> None:
    """The mirror image: a run cron should have started right after the transition but did
    not is MISSED from its fire time plus the grace until the next run, and the note names
    that first missed fire time."""
    tz = ZoneInfo(zone)
    expr = "0 * * * *"
    fires = _fires(expr, tz, transition - timedelta(hours=30), transition + timedelta(hours=4))
    lost = next(at for at in fires if at >= transition)
    following = next(at for at in fires if at > lost)
    rec = Recorder(home)
    try:
        seen = _sweep(rec, zone, {"hourly": expr}, transition, skip={lost})
    finally:
        rec.close()
    for now, st in seen["hourly"]:
        should_miss = lost + GRACE <= now < following + timedelta(seconds=20)
        assert st.missed is should_miss, (zone, now.isoformat(), st.missed_first)
        if should_miss:
            assert st.missed_first.astimezone(UTC) == lost
            assert st.missed_count == (2 if now >= following + GRACE else 1)


@pytest.mark.parametrize(("zone", "transition", "fixed"), TRANSITIONS, ids=IDS)
def test_status_command_at_dst(home: Path, zone: str, transition: datetime, fixed: str) -> None:
    """The same through `cronwrap status --now --json`, in the daemon's zone (TZ)."""
    tz = ZoneInfo(zone)
    expr = f"{fixed} * * *"
    rec = Recorder(home)
    try:
        for at in _fires(expr, tz, transition - timedelta(days=3), transition + timedelta(hours=6)):
            rec.run("fixed", at + timedelta(seconds=20), schedule=expr, tz=None)
    finally:
        rec.close()
    runner = CliRunner()
    for hours in (-1, 0.5, 1, 3, 5):
        now = (transition + timedelta(hours=hours)).isoformat()
        result = runner.invoke(
            cli,
            ["status", "--crontab", "/dev/null", "--json", "--now", now],
            env={"CRONWRAP_HOME": str(home), "TZ": zone},
        )
        assert result.exit_code == 0, (now, result.output)
        [row] = json.loads(result.stdout)
        assert row["healthy"] and not row["missed"] and row["tz"] == zone, (now, row)
    later = (transition + timedelta(days=1, hours=6)).isoformat()
    result = runner.invoke(
        cli,
        ["status", "--crontab", "/dev/null", "--json", "--now", later],
        env={"CRONWRAP_HOME": str(home), "TZ": zone},
    )
    assert result.exit_code == ExitCode.ERROR, result.output
    [row] = json.loads(result.stdout)
    assert row["missed"] and row["missed_count"] == 1


# ---------------------------------------------------------------- missed-run accounting


def test_one_missed_minute_is_not_credited_to_the_previous_run(home: Path) -> None:
    rec = Recorder(home)
    t0 = datetime(2026, 6, 1, 10, 0, 5, tzinfo=UTC)
    rec.run("minutely", t0, schedule="* * * * *", tz="UTC")
    rec.close()
    # 10:01 was never started; with a 1-minute grace it is missed from 10:02 on
    report = load_status(
        rec.paths,
        [],
        now=datetime(2026, 6, 1, 10, 2, 30, tzinfo=UTC),
        grace=timedelta(minutes=1),
        default_tz="UTC",
    )
    [st] = report.jobs
    assert st.missed and st.missed_count == 1
    assert st.missed_first == datetime(2026, 6, 1, 10, 1, tzinfo=UTC)


def test_the_note_names_the_first_missed_run_and_how_many(home: Path) -> None:
    rec = Recorder(home)
    rec.run("hourly", datetime(2026, 6, 1, 9, 0, 40, tzinfo=UTC), schedule="0 * * * *", tz="UTC")
    rec.close()
    result = cronwrap(home, "status", "--crontab", "/dev/null", "--now", "2026-06-01T13:10+00:00")
    assert result.returncode == ExitCode.ERROR, result.stderr
    assert "MISSED 4 since Mon 10:00 UTC" in result.stdout, result.stdout
    doc = json.loads(
        cronwrap(
            home, "status", "--crontab", "/dev/null", "--json", "--now", "2026-06-01T13:10+00:00"
        ).stdout
    )
    assert doc[0]["missed_first_at"] == "2026-06-01T10:00:00+00:00"
    assert doc[0]["missed_count"] == 4
    assert doc[0]["expected_at"] == "2026-06-01T13:00:00+00:00"


def test_a_late_start_still_answers_its_fire_time(home: Path) -> None:
    """--jitter or a lock wait start a run late: it answers the fire time before it."""
    rec = Recorder(home)
    rec.run("j", datetime(2026, 6, 1, 9, 4, 50, tzinfo=UTC), schedule="0 * * * *", tz="UTC")
    rec.close()
    report = load_status(
        rec.paths, [], now=datetime(2026, 6, 1, 9, 59, tzinfo=UTC), grace=GRACE, default_tz="UTC"
    )
    assert not report.jobs[0].missed


# ---------------------------------------------------------------- unknown is not healthy


def test_unknown_job_exits_3_with_a_reason(home: Path) -> None:
    cronwrap(home, "run", "--name", "real", "--", "true")
    result = cronwrap(home, "status", "--crontab", "/dev/null", "--job", "nosuch")
    assert result.returncode == ExitCode.UNKNOWN, result.stdout
    assert "no job named 'nosuch'" in result.stderr and "real" in result.stderr
    assert "nosuch" in result.stdout and "unknown job" in result.stdout
    assert "1 job listed, 1 unknown." in result.stdout
    assert "unknown: no job named 'nosuch'" in result.stdout
    both = cronwrap(home, "status", "--crontab", "/dev/null", "--job", "real", "--job", "nosuch")
    assert both.returncode == ExitCode.UNKNOWN
    assert cronwrap(home, "status", "--crontab", "/dev/null", "--job", "real").returncode == 0


def test_a_known_failure_wins_over_an_unknown(home: Path) -> None:
    cronwrap(home, "run", "--name", "bad", "--", "false")
    result = cronwrap(home, "status", "--crontab", "/dev/null", "--job", "bad", "--job", "nosuch")
    assert result.returncode == ExitCode.ERROR


@pytest.mark.parametrize(
    ("mode", "why"),
    [(0o777, "world-writable"), (0o1777, "world-writable"), (0o770, "group-writable")],
    ids=["world", "sticky", "group"],
)
def test_a_state_dir_that_run_refuses_is_unknown(
    home: Path, tmp_path: Path, mode: int, why: str
) -> None:
    """Status judges the state dir as run does: a group-writable one, or a world-writable one
    with the sticky bit, made run record nothing while status said the job was fine."""
    tab = tmp_path / "tab"
    tab.write_text("0 * * * * cronwrap run --name hourly -- true\n")
    cronwrap(home, "run", "--name", "hourly", "--", "true")
    home.chmod(mode)
    try:
        refused = cronwrap(home, "run", "--name", "hourly", "--", "false")
        assert refused.returncode == 1 and why in refused.stderr
        result = cronwrap(home, "status", "--crontab", str(tab), "--json")
    finally:
        home.chmod(0o750)
    assert result.returncode == ExitCode.UNKNOWN, result.stderr
    assert why in result.stderr and "status unknown" in result.stderr
    [row] = json.loads(result.stdout)
    assert row["state"] == "unknown" and not row["healthy"] and why in row["reason"]


@pytest.mark.parametrize("damage", ["garbage", "directory"])
def test_a_store_status_cannot_read_is_unknown(home: Path, tmp_path: Path, damage: str) -> None:
    tab = tmp_path / "tab"
    tab.write_text("0 * * * * cronwrap run --name hourly -- true\n")
    home.mkdir(mode=0o750)
    db = home / "runs.db"
    if damage == "garbage":
        db.write_bytes(b"this is not a database, just some bytes\n" * 100)
    else:
        db.mkdir()
    result = cronwrap(home, "status", "--crontab", str(tab))
    assert result.returncode == ExitCode.UNKNOWN, (result.stdout, result.stderr)
    assert "status unknown: " in result.stderr and "run store" in result.stderr
    assert "unknown" in result.stdout and "never run" not in result.stdout


@pytest.mark.parametrize(
    "command",
    [["forget", "a", "--yes"], ["failed", "--resolve", "00000000"], ["catch-up", "--forget", "a"]],
    ids=["forget", "resolve", "catch-up-forget"],
)
def test_a_damaged_store_is_left_for_status_to_report(home: Path, command: list[str]) -> None:
    """forget and failed --resolve moved a damaged store aside without a word and started a
    fresh one, so status went from "unknown" (exit 3) to "0 jobs listed." (exit 0)."""
    assert cronwrap(home, "run", "--name", "a", "--", "false").returncode == 1
    db = home / "runs.db"
    for extra in ("runs.db-wal", "runs.db-shm"):
        (home / extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database, just some bytes\n" * 100)
    result = cronwrap(home, *command)
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert "damaged" in line and "left as it is" in line, line
    assert db.read_bytes().startswith(b"this is not a database")
    assert not list(home.glob("runs.db.corrupt-*"))
    after = cronwrap(home, "status", "--crontab", "/dev/null")
    assert after.returncode == ExitCode.UNKNOWN, (after.stdout, after.stderr)


@pytest.mark.parametrize("damage", ["garbage", "directory", "symlink", "dangling", "fifo"])
def test_a_store_status_cannot_read_is_unknown_with_no_crontab_job(home: Path, damage: str) -> None:
    """No job to mark unknown: the unreadable store alone makes the answer unknown (exit 3).
    A FIFO is refused without opening it (that blocks until a writer comes)."""
    home.mkdir(mode=0o750)
    db = home / "runs.db"
    if damage == "directory":
        db.mkdir()
    elif damage == "fifo":
        os.mkfifo(db)
    elif damage == "dangling":
        db.symlink_to("nowhere.db")
    else:
        (home / "other.db").write_bytes(b"this is not a database, just some bytes\n" * 100)
        if damage == "symlink":
            db.symlink_to("other.db")
        else:
            (home / "other.db").rename(db)
    for json_flag in ([], ["--json"]):
        result = cronwrap(home, "status", "--crontab", "/dev/null", *json_flag, timeout=30)
        assert result.returncode == ExitCode.UNKNOWN, (result.stdout, result.stderr)
        assert "status unknown: " in result.stderr and "run store" in result.stderr
    history = cronwrap(home, "history", timeout=30)
    assert history.returncode != 0 and len(history.stderr.splitlines()) == 1, history.stderr


@pytest.mark.parametrize("target", ["garbage", "store"])
def test_a_symlinked_store_is_refused_as_run_refuses_it(home: Path, target: str) -> None:
    """`run` refuses a symlinked store (it records nothing there, nor moves it aside), so
    status does not report what is behind it and says so."""
    cronwrap(home, "run", "--name", "real", "--", "true")
    db = home / "runs.db"
    if target == "garbage":
        db.unlink()
        (home / "other.db").write_bytes(b"not a database\n" * 100)
    else:
        db.rename(home / "other.db")
    db.symlink_to("other.db")
    result = cronwrap(home, "status", "--crontab", "/dev/null")
    assert result.returncode == ExitCode.UNKNOWN, (result.stdout, result.stderr)
    assert "is a symlink; cronwrap run refuses it" in result.stderr
    assert "moves it aside" not in result.stderr
    run = cronwrap(home, "run", "--name", "real", "--", "true")
    assert run.returncode == 0 and "is a symlink" in run.stderr and db.is_symlink()


@pytest.mark.parametrize("odd", ["symlink-loop", "dangling-symlink", "name-too-long"])
def test_a_state_dir_status_cannot_look_at_is_unknown(home: Path, tmp_path: Path, odd: str) -> None:
    """A state dir that stat cannot answer for (a symlink loop, a dangling symlink, a name
    too long) is where `run` records nothing: status says so in one line and exits 3, not
    "0 jobs listed" with exit 0, nor a traceback."""
    if odd == "symlink-loop":
        home.symlink_to(home)
    elif odd == "dangling-symlink":
        home.symlink_to(tmp_path / "nowhere")
    else:
        home = tmp_path / ("a" * 300)
    run = cronwrap(home, "run", "--name", "j", "--", "true")
    assert run.returncode == 0 and "run history is not recorded" in run.stderr, run.stderr
    for json_flag in ([], ["--json"]):
        result = cronwrap(home, "status", "--crontab", "/dev/null", *json_flag)
        assert result.returncode == ExitCode.UNKNOWN, (result.stdout, result.stderr)
        assert result.stderr.startswith("cronwrap: status unknown: "), result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_a_store_the_reader_cannot_look_at_is_unknown_not_absent(tmp_path: Path) -> None:
    """A monitoring user that cannot search root's state dir (0700) does not learn from
    status that every job is healthy: lexists said no store there (0 jobs listed, exit 0),
    history said no runs were recorded, and failed raised PermissionError."""
    if os.geteuid() != 0:
        home = tmp_path / "home"
        cronwrap(home, "run", "--name", "bad", "--", "false")
        home.chmod(0o600)  # no search: the store is there, unseen
        reader: list[str] = []
    else:  # root sees everything: read as nobody, from a base nobody can pass through
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to read as another user")
        base = Path(tempfile.mkdtemp(dir="/tmp"))
        base.chmod(0o711)
        home = base / "home"
        cronwrap(home, "run", "--name", "bad", "--", "false")
        home.chmod(0o700)
        reader = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    try:
        env = cw_env(home)
        readers = (["status", "--crontab", "/dev/null"], 3), (["history"], 1), (["failed"], 1)
        for args, code in readers:
            cmd = [*reader, sys.executable, "-m", "cronwrap", *args]
            result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            assert result.returncode == code, (args, result.stdout, result.stderr)
            assert "cannot read run store" in result.stderr, (args, result.stderr)
            assert len(result.stderr.splitlines()) == 1, (args, result.stderr)
    finally:
        home.chmod(0o750)
        if reader:
            shutil.rmtree(base)


def test_no_run_store_yet_is_not_a_problem(home: Path) -> None:
    result = cronwrap(home, "status", "--crontab", "/dev/null")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_run_skipped_because_the_fleet_lock_was_unavailable_is_unknown(home: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    ran = cronwrap(
        home,
        "run",
        "--name",
        "fleet",
        "--lock-url",
        f"redis://127.0.0.1:{dead}/0",
        "--lock-unavailable",
        "skip",
        "--",
        "true",
    )
    assert ran.returncode == 0, ran.stderr
    result = cronwrap(home, "status", "--crontab", "/dev/null", "--json")
    assert result.returncode == ExitCode.UNKNOWN, result.stderr
    [row] = json.loads(result.stdout)
    assert row["state"] == "unknown" and row["run_state"] == "not-run"
    assert row["result"] == "not run (lock unavailable)" and "did not start" in row["reason"]


# ---------------------------------------------------------------- one run-state model


def _history(home: Path, *args: str) -> list[dict[str, object]]:
    result = cronwrap(home, "history", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_running_not_the_skipped_attempt_while_the_lock_is_held(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    proc = popen_cronwrap(
        home, "run", "--name", "long", "--", "sh", "-c", f"touch {marker}; exec sleep 30"
    )
    try:
        wait_for(marker.exists)
        skip = cronwrap(home, "run", "--name", "long", "--", "true")
        assert skip.returncode == 0
        result = cronwrap(home, "status", "--crontab", "/dev/null")
        doc = json.loads(cronwrap(home, "status", "--crontab", "/dev/null", "--json").stdout)
        runs = _history(home, "long")
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == 0, result.stdout
    assert "▶ running" in result.stdout and "skipped" not in result.stdout
    assert doc[0]["state"] == "running" and doc[0]["last_run"]["state"] == "skipped"
    assert doc[0]["current_run"]["state"] == "running"
    assert [r["state"] for r in runs] == ["skipped", "running"]


def test_after_sigkill_history_and_status_agree_it_crashed(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    proc = popen_cronwrap(
        home, "run", "--name", "k", "--", "sh", "-c", f"touch {marker}; echo started; exec sleep 30"
    )
    wait_for(marker.exists)
    wait_supervised(home, "k")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    doc = json.loads(cronwrap(home, "status", "--crontab", "/dev/null", "--json").stdout)
    runs = _history(home, "k")
    table = cronwrap(home, "history", "k")
    assert doc[0]["result"] == "crashed" and doc[0]["run_state"] == "crashed"
    assert runs[0]["state"] == "crashed" and runs[0]["status"] == "running"  # row not yet fixed
    assert "crashed" in table.stdout and "running" not in table.stdout
    logs = cronwrap(home, "logs", "k", "--follow", timeout=20)
    assert logs.returncode == 0  # --follow ends: a crashed run is not running


def test_host_id_runs_are_judged_against_the_id_they_recorded(home: Path, tmp_path: Path) -> None:
    tab = tmp_path / "tab"
    tab.write_text("* * * * * cronwrap run --name hid --host-id web1 -- sleep 30\n")
    marker = tmp_path / "m"
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "hid",
        "--host-id",
        "web1",
        "--",
        "sh",
        "-c",
        f"touch {marker}; echo started; exec sleep 30",
    )
    wait_for(marker.exists)
    wait_supervised(home, "hid")
    alive = json.loads(cronwrap(home, "status", "--crontab", str(tab), "--json").stdout)
    assert alive[0]["result"].startswith("running ") and "on web1" not in alive[0]["result"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    for args in (["--crontab", str(tab)], ["--crontab", "/dev/null", "--host-id", "web1"]):
        result = cronwrap(home, "status", *args, "--json")
        row = json.loads(result.stdout)[0]
        assert row["result"] == "crashed", (args, row["result"])
        assert result.returncode == ExitCode.ERROR
    env_result = cronwrap(
        home,
        "status",
        "--crontab",
        "/dev/null",
        "--json",
        env={**os.environ, "CRONWRAP_HOME": str(home), "CRONWRAP_HOST_ID": "web1"},
    )
    assert json.loads(env_result.stdout)[0]["result"] == "crashed"
    # without knowing web1 is this machine, it is another host's run: not checkable
    blind = json.loads(cronwrap(home, "status", "--crontab", "/dev/null", "--json").stdout)
    assert blind[0]["result"].endswith("on web1")


def test_another_hosts_running_run_is_taken_on_trust(home: Path) -> None:
    rec = Recorder(home)
    rec.run("remote", datetime.now(UTC), schedule=None, tz=None, host="db9", pid=1, end=False)
    rec.close()
    [row] = json.loads(cronwrap(home, "status", "--crontab", "/dev/null", "--json").stdout)
    assert row["state"] == "running" and row["result"].endswith(" on db9")


def test_fleet_skip_ran_elsewhere_is_healthy(home: Path) -> None:
    rec = Recorder(home)
    rec.run(
        "f",
        datetime(2026, 6, 1, 9, 0, 3, tzinfo=UTC),
        schedule="0 * * * *",
        tz="UTC",
        status="skipped",
        reason="ran on web2 (slot 2026-06-01T09:00:00+00:00)",
    )
    rec.close()
    result = cronwrap(
        home, "status", "--crontab", "/dev/null", "--json", "--now", "2026-06-01T09:30+00:00"
    )
    assert result.returncode == 0, result.stdout
    [row] = json.loads(result.stdout)
    assert row["result"] == "skipped (ran on web2)" and row["run_state"] == "ran-elsewhere"


# ---------------------------------------------------------------- history, forget, watch


def test_history_without_a_name_lists_recent_runs_of_every_job(home: Path) -> None:
    for name in ("a", "b", "a"):
        cronwrap(home, "run", "--name", name, "--", "true")
    runs = _history(home)
    assert [r["job"] for r in runs] == ["a", "b", "a"]
    assert all(r["state"] == "success" for r in runs)
    assert [r["job"] for r in _history(home, "--limit", "2")] == ["a", "b"]
    table = cronwrap(home, "history")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("JOB ") and [ln.split()[0] for ln in lines[1:]] == ["a", "b", "a"]


def test_forget_removes_a_job_and_its_output(home: Path, tmp_path: Path) -> None:
    cronwrap(home, "run", "--name", "gone", "--", "sh", "-c", "echo bye")
    cronwrap(home, "run", "--name", "kept", "--", "true")
    assert any((home / "output" / "gone").iterdir())
    asked = cronwrap(home, "forget", "gone", stdin=subprocess.DEVNULL)
    assert asked.returncode == ExitCode.ERROR and "--yes" in asked.stderr
    tab = tmp_path / "tab"
    tab.write_text("@daily cronwrap run --name gone -- true\n")
    result = cronwrap(home, "forget", "gone", "--yes", "--crontab", str(tab))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "forgot gone: 1 run removed\n"
    assert f"still in {tab}:1" in result.stderr
    names = [
        j["name"]
        for j in json.loads(cronwrap(home, "status", "--json", "--crontab", "/dev/null").stdout)
    ]
    assert names == ["kept"]
    assert not (home / "output" / "gone").exists()
    again = cronwrap(home, "forget", "gone", "--yes")
    assert again.returncode == ExitCode.ERROR and "no job 'gone'" in again.stderr


def test_forget_refuses_a_running_job(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    proc = popen_cronwrap(
        home, "run", "--name", "busy", "--", "sh", "-c", f"touch {marker}; exec sleep 30"
    )
    try:
        wait_for(marker.exists)
        result = cronwrap(home, "forget", "busy", "--yes")
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == ExitCode.ERROR and "is running" in result.stderr


def test_status_watch_redraws_until_interrupted(home: Path) -> None:
    cronwrap(home, "run", "--name", "w", "--", "true")
    proc = popen_cronwrap(
        home,
        "status",
        "--crontab",
        "/dev/null",
        "--watch",
        "0.1s",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen = 0
    try:
        while seen < 3:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            seen += b"1 job listed." in line
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
    assert code == 0


# ---------------------------------------------------------------- zones


def test_status_uses_the_zone_cron_fires_in_and_says_the_tz_is_wrong(
    home: Path, tmp_path: Path
) -> None:
    """The old example: `tz: Europe/Berlin` on a UTC server. cron fires 0 7 at 07:00 UTC, so
    believing the tz would report MISSED every weekday."""
    tab = tmp_path / "tab"
    tab.write_text("0 7 * * 1-5 cronwrap run --name report --tz Europe/Berlin -- true\n")
    rec = Recorder(home)
    rec.run(
        "report",
        datetime(2026, 6, 1, 7, 0, 30, tzinfo=UTC),
        schedule="0 7 * * 1-5",
        tz="Europe/Berlin",
    )
    rec.close()
    env = {**os.environ, "CRONWRAP_HOME": str(home), "TZ": "Etc/UTC"}
    result = cronwrap(
        home, "status", "--crontab", str(tab), "--json", "--now", "2026-06-01T12:00+00:00", env=env
    )
    assert result.returncode == 0, result.stdout
    [row] = json.loads(result.stdout)
    assert row["tz"] == "Etc/UTC" and not row["missed"]
    assert "tz Europe/Berlin is not the zone cron fires this line in" in row["tz_warning"]
    assert "cronwrap: warning: report: tz Europe/Berlin" in result.stderr
    # with CRON_TZ (cronie) the line's zone is Berlin, and the tz agrees
    tab.write_text("CRON_TZ=Europe/Berlin\n" + tab.read_text())
    berlin = json.loads(cronwrap(home, "status", "--crontab", str(tab), "--json", env=env).stdout)[
        0
    ]
    assert berlin["tz"] == "Europe/Berlin" and berlin["tz_warning"] is None


def test_lint_and_config_warn_about_a_tz_cron_cannot_honour(home: Path, tmp_path: Path) -> None:
    home.mkdir(mode=0o750)
    (home / "config.yaml").write_text(
        "jobs:\n  report:\n    tz: Europe/Berlin\n    schedule: '0 7 * * 1-5'\n"
    )
    env = {**os.environ, "CRONWRAP_HOME": str(home), "TZ": "Etc/UTC"}
    config = cronwrap(home, "config", env=env)
    assert config.returncode == 0, config.stderr
    assert "jobs.report.tz Europe/Berlin is not this host's zone (Etc/UTC)" in config.stderr
    tab = tmp_path / "tab"
    tab.write_text(
        "0 7 * * 1-5 /usr/bin/cronwrap run --name report -- /bin/true\n"
        "0 8 * * * /usr/bin/cronwrap run --name other --tz UTC -- /bin/true\n"
    )
    lint = cronwrap(home, "lint", str(tab), "--json", env=env)
    codes = {(f["line"], f["code"]) for f in json.loads(lint.stdout)}
    assert (1, "tz-not-cron") in codes and (2, "tz-not-cron") not in codes
    message = next(f["message"] for f in json.loads(lint.stdout) if f["code"] == "tz-not-cron")
    assert message.startswith("the config's tz Europe/Berlin is not the zone cron fires")


def test_the_example_config_no_longer_moves_a_job_with_tz(home: Path) -> None:
    from tests.conftest import ROOT

    env = {
        **os.environ,
        "CRONWRAP_HOME": str(home),
        "CRONWRAP_CONFIG": str(ROOT / "examples" / "config.yaml"),
        "TZ": "Etc/UTC",
    }
    result = cronwrap(home, "config", env=env)
    assert result.returncode == 0, result.stderr
    assert "tz" not in result.stderr


# ---------------------------------------------------------------- the table


def test_at_80_columns_nothing_is_cut_mid_word(home: Path) -> None:
    rec = Recorder(home)
    rec.run(
        "nightly-backup-of-the-main-database",
        datetime(2026, 6, 1, 9, 0, 30, tzinfo=UTC),
        schedule="0 9,10,11,12,13 * * 1-5",
        tz=None,
    )
    rec.run("sync", datetime(2026, 6, 1, 13, 0, 2, tzinfo=UTC), schedule="0 * * * *", tz=None)
    rec.close()
    args = ["status", "--crontab", "/dev/null", "--now", "2026-06-01T13:10+00:00"]
    env = {**os.environ, "CRONWRAP_HOME": str(home), "TZ": "Etc/UTC"}
    narrow = cronwrap(home, *args, env={**env, "COLUMNS": "80"})
    assert narrow.returncode == ExitCode.ERROR, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 80, narrow.stdout
    tokens = set(narrow.stdout.split())
    for word in ("MISSED", "4", "since", "Mon", "10:00", "UTC", "9,10,11,12,13", "1-5", "ok"):
        assert word in tokens, (word, narrow.stdout)
    piped = cronwrap(home, *args, env=env)  # not a terminal, no COLUMNS: not cut at all
    assert "nightly-backup-of-the-main-database" in piped.stdout
    assert "MISSED 4 since Mon 10:00 UTC" in piped.stdout
    assert len(piped.stdout.splitlines()) == 4  # header, two jobs, the count


def test_a_long_outage_is_counted_up_to_a_cap(home: Path) -> None:
    rec = Recorder(home)
    rec.run("q", datetime(2026, 6, 1, 0, 0, 5, tzinfo=UTC), schedule="*/15 * * * *", tz="UTC")
    rec.close()
    report = load_status(
        rec.paths, [], now=datetime(2026, 6, 3, tzinfo=UTC), grace=GRACE, default_tz="UTC"
    )
    [st] = report.jobs
    assert st.missed_count == MISSED_COUNT_CAP
    assert st.missed_first == datetime(2026, 6, 1, 0, 15, tzinfo=UTC)
    table = cronwrap(home, "status", "--crontab", "/dev/null", "--now", "2026-06-03T00:00+00:00")
    assert f"MISSED {MISSED_COUNT_CAP}+ since Mon 00:15 UTC" in table.stdout, table.stdout


def test_a_tz_line_in_a_crontab_does_not_move_the_schedule(home: Path, tmp_path: Path) -> None:
    """`TZ=Asia/Tokyo` is only the commands' environment: cron (Debian and cronie) still fires
    `0 9 * * *` at 09:00 in its own zone, so that is the run status expects; CRON_TZ moves it."""
    tab = tmp_path / "tab"
    tab.write_text("TZ=Asia/Tokyo\n0 9 * * * cronwrap run --name tokyo -- true\n")
    rec = Recorder(home)
    rec.run("tokyo", datetime(2026, 6, 1, 9, 0, 20, tzinfo=UTC), schedule="0 9 * * *", tz=None)
    rec.close()
    env = {**os.environ, "CRONWRAP_HOME": str(home), "TZ": "Etc/UTC"}
    now = ["--now", "2026-06-01T12:00+00:00"]
    result = cronwrap(home, "status", "--crontab", str(tab), "--json", *now, env=env)
    [row] = json.loads(result.stdout)
    assert row["tz"] == "Etc/UTC" and not row["missed"], row
    assert row["next_run"] == "2026-06-02T09:00:00+00:00"
    assert result.returncode == 0
    tab.write_text("CRON_TZ=Asia/Tokyo\n0 9 * * * cronwrap run --name tokyo -- true\n")
    [row] = json.loads(
        cronwrap(home, "status", "--crontab", str(tab), "--json", *now, env=env).stdout
    )
    assert row["tz"] == "Asia/Tokyo" and row["next_run"] == "2026-06-02T09:00:00+09:00"


def test_a_config_problem_does_not_change_what_status_says(home: Path) -> None:
    """`run` keeps the valid part of a config with a typo in it; status reads it the same way
    (it exited 78, outside its 0/1/3, over one unknown key)."""
    home.mkdir(exist_ok=True)
    (home / "config.yaml").write_text("defaults:\n  timout: 1s\n  host_id: box-a\n")
    assert cronwrap(home, "run", "--name", "t", "--", "true").returncode == 0
    # the run said so and is degraded: status exits 1 for it, as for any degraded job
    result = cronwrap(home, "status", "--crontab", "/dev/null")
    assert result.returncode == 1 and "DEGRADED" in result.stdout, result.stderr
    assert cronwrap(home, "history", "t").returncode == 0
    [row] = json.loads(cronwrap(home, "status", "--crontab", "/dev/null", "--json").stdout)
    assert row["host"] == "box-a" and row["degraded"] and "timout" in row["warnings"][0]


def test_a_host_no_job_ran_on_is_unknown_not_healthy(home: Path) -> None:
    """`status --host` with a typo must not read as a host whose jobs are all fine."""
    assert cronwrap(home, "run", "--name", "a", "--host-id", "web1", "--", "true").returncode == 0
    good = cronwrap(home, "status", "--crontab", "/dev/null", "--host", "web1", "--json")
    assert good.returncode == 0, good.stderr
    assert [j["name"] for j in json.loads(good.stdout)] == ["a"]
    typo = cronwrap(home, "status", "--crontab", "/dev/null", "--host", "wbe1")
    assert typo.returncode == ExitCode.UNKNOWN, typo.stderr
    assert typo.stderr.strip() == (
        "cronwrap: status unknown: no job's last run was on host 'wbe1' (hosts: web1)"
    )


def test_history_and_logs_of_one_host_read_that_hosts_runs_not_the_newest_filtered(
    home: Path,
) -> None:
    """--host picks the host's runs before --limit cuts: with the newest runs from another
    host, the host's older runs are still found (they were cut first, then filtered away)."""
    for host in ("web1", "web2", "web2", "web2"):
        done = cronwrap(home, "run", "--name", "h", "--host-id", host, "--", "echo", host)
        assert done.returncode == 0, done.stderr
    hist = cronwrap(home, "history", "h", "--host", "web1", "--limit", "2", "--json")
    assert hist.returncode == 0, hist.stderr
    assert [d["host"] for d in json.loads(hist.stdout)] == ["web1"]
    every = cronwrap(home, "history", "--host", "web1", "--limit", "1", "--json")
    assert [d["host"] for d in json.loads(every.stdout)] == ["web1"], every.stderr
    logs = cronwrap(home, "logs", "h", "--host", "web1")
    assert (logs.returncode, logs.stdout) == (0, "web1\n"), logs.stderr
    none = cronwrap(home, "history", "h", "--host", "web3")
    assert none.returncode == 1
    assert none.stderr.strip() == (
        "cronwrap: no runs recorded for job 'h' on host 'web3' (see cronwrap status)"
    )
    nojob = cronwrap(home, "logs", "nosuch")
    assert nojob.stderr.strip() == (
        "cronwrap: no runs recorded for job 'nosuch' (see cronwrap status)"
    )


@pytest.mark.parametrize(
    ("schedule", "zone", "around"),
    [
        ("*/15 * * * *", "UTC", datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)),
        ("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 1, 0, tzinfo=timezone.utc)),
        ("*/5 1-3 * * *", "Europe/Berlin", datetime(2026, 10, 25, 0, 0, tzinfo=timezone.utc)),
        ("0 0 * * *", "America/Sao_Paulo", datetime(2018, 2, 18, 1, 0, tzinfo=timezone.utc)),
        # offsets of seconds: fire times fall mid-minute in UTC, local midnights too
        ("* * * * *", "Africa/Monrovia", datetime(1971, 1, 1, 0, 40, tzinfo=timezone.utc)),
        ("0 * * * *", "Europe/Amsterdam", datetime(1935, 6, 1, 23, 0, tzinfo=timezone.utc)),
    ],
    ids=["utc", "berlin-spring", "berlin-autumn", "sao-paulo-midnight", "monrovia", "amsterdam"],
)
def test_missed_runs_counted_once_per_minute_are_those_counted_per_job(
    schedule: str, zone: str, around: datetime
) -> None:
    """status counts the missed runs once for every start in the same minute: for starts
    all over the minutes around fire times, the count and the first missed run are what
    counting from each start itself gives."""
    from zoneinfo import ZoneInfo

    from cronwrap.cron.schedule import parse
    from cronwrap.views.jobstatus import JobStatus
    from cronwrap.views.status import _count_missed

    parsed, tz = parse(schedule), ZoneInfo(zone)
    for due_hours in (0.2, 1, 5, 30):
        due_by = around + timedelta(hours=due_hours)
        memo: dict = {}  # type: ignore[type-arg]
        for step in range(0, 6 * 3600, 7):  # every 7 s over six hours, seconds and all
            start = around - timedelta(hours=3) + timedelta(seconds=step, microseconds=step % 3)
            once, each = JobStatus("a"), JobStatus("b")
            _count_missed(once, parsed, tz, start, due_by, memo)
            _count_missed(each, parsed, tz, start, due_by)
            assert (once.missed_count, once.missed_first) == (each.missed_count, each.missed_first)
            assert once.missed_first is None or once.missed_first.utcoffset() == (
                each.missed_first.utcoffset()  # type: ignore[union-attr]
            )


def test_a_run_that_outlasts_twelve_of_its_skips_still_decides_the_state(
    home: Path, tmp_path: Path
) -> None:
    """An every-minute job that runs for 13 minutes has 12 skips newer than the run holding
    the lock: status read only the newest 12 rows, so it said `skipped` (healthy) while the
    run went on, and still after it failed."""
    go, started = tmp_path / "go", tmp_path / "started"
    script = f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; exit 5"
    holder = popen_cronwrap(home, "run", "--name", "long", "--", "sh", "-c", script)
    try:
        wait_for(started.exists, 30)
        for _ in range(13):
            skip = cronwrap(home, "run", "--name", "long", "--", "true")
            assert skip.returncode == 0, skip.stderr
        during = cronwrap(home, "status", "--crontab", "/dev/null", "--job", "long", "--json")
        [doc] = json.loads(during.stdout)
        assert doc["state"] == "running", doc
        assert doc["last_run"]["status"] == "skipped" and doc["current_run"]["status"] == "running"
    finally:
        go.touch()
        assert holder.wait(timeout=60) == 5
    after = cronwrap(home, "status", "--crontab", "/dev/null", "--job", "long", "--json")
    assert after.returncode == ExitCode.ERROR, after.stderr
    [doc] = json.loads(after.stdout)
    assert doc["state"] == "failing", doc  # the skips say the lock holder failed


def test_a_live_run_is_known_by_when_its_process_began_not_by_its_name(tmp_path: Path) -> None:
    """A run with no lock to check (--on-overlap allow, a fleet lease) is alive while its pid
    is its process: one that began by the run's start. Looking for "cronwrap" in the command
    line called a live run started through a link of another name crashed."""
    from cronwrap.views.runstate import is_runs_process

    proc = subprocess.Popen(["sleep", "30"])  # no "cronwrap" in its command line
    try:
        time.sleep(0.05)
        began_before = datetime.now(timezone.utc)
        assert is_runs_process(proc.pid, began_before)
        # a pid that a process took over after the run was recorded is not the run's
        assert not is_runs_process(proc.pid, began_before - timedelta(minutes=5))
    finally:
        proc.kill()
        proc.wait()
    assert not is_runs_process(proc.pid, began_before)


@pytest.mark.parametrize(
    ("zone", "around"),
    [
        ("Africa/Monrovia", datetime(1971, 1, 1, 0, 44, tzinfo=timezone.utc)),  # -0:44:30
        ("Europe/Amsterdam", datetime(1935, 6, 1, 22, 40, tzinfo=timezone.utc)),  # +1:19:32
        ("Europe/Berlin", datetime(2026, 3, 29, 0, 59, tzinfo=timezone.utc)),
        ("America/Sao_Paulo", datetime(2018, 2, 18, 1, 59, tzinfo=timezone.utc)),
        ("Asia/Kolkata", datetime(2026, 3, 1, 18, 29, tzinfo=timezone.utc)),
    ],
    ids=["monrovia", "amsterdam", "berlin-spring", "sao-paulo-midnight", "kolkata"],
)
def test_a_minute_on_one_local_day_is_one_by_every_second(zone: str, around: datetime) -> None:
    """The missed-run memo credits a start to its minute's local day without converting it
    when the whole minute is on that day at one offset: that holds only where every second
    of the minute (and its last microsecond) says so."""
    from zoneinfo import ZoneInfo

    from cronwrap.views.status import _one_local_day

    tz = ZoneInfo(zone)
    seen = set()
    for step in range(-30, 30):
        minute = around + timedelta(minutes=step)
        ends = [minute + timedelta(seconds=s) for s in range(60)]
        ends.append(minute + timedelta(seconds=59, microseconds=999999))
        local = {(at.astimezone(tz).date(), at.astimezone(tz).utcoffset()) for at in ends}
        assert _one_local_day(minute, tz) == (len(local) == 1), minute
        seen.add(len(local) == 1)
    # local midnights fall mid-minute only where the offset has seconds
    assert seen == ({True, False} if zone in ("Africa/Monrovia", "Europe/Amsterdam") else {True})


@pytest.mark.parametrize("damage", ["syntax", "directory"])
def test_a_broken_config_is_said_by_status(home: Path, tmp_path: Path, damage: str) -> None:
    """The config may name the fleet store: status showed this host's jobs, exit 0, and said
    nothing when the file could not be read or parsed (cronwrap config exits 78 on it)."""
    assert cronwrap(home, "run", "--name", "a", "--", "true").returncode == 0
    config = tmp_path / "cronwrap.yaml"
    if damage == "syntax":
        config.write_text("defaults:\n  fleet_store: postgresql://u:pw@127.0.0.1:1/db\n  x: [\n")
    else:
        config.mkdir()
    result = cronwrap(home, "--config", str(config), "status", "--crontab", "/dev/null")
    [line] = result.stderr.splitlines()
    assert line.startswith(f"cronwrap: warning: config {config}") and "pw" not in line, line
    assert "1 job listed." in result.stdout
