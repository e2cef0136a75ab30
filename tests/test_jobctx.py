"""The job context a run gives its command (CRONWRAP_SLOT, _ATTEMPT, _LAST_SUCCESS_*,
_STATE_DIR, _DEADLINE, _RERUN_OF), `rerun` and `catch-up`, with real cronwrap processes,
real signals and the batch example from examples/."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cronwrap.state.store import Store
from tests.conftest import ROOT, cronwrap, cw_env, popen_cronwrap, wait_for

PY = sys.executable
UTC = timezone.utc
BATCH = ROOT / "examples" / "batch_job.py"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
DUMP = (
    "import json, os, sys; "
    "keys = [k for k in os.environ if k.startswith('CRONWRAP_')]; "
    "open(sys.argv[1], 'a').write(json.dumps({k: os.environ[k] for k in keys}) + '\\n'); "
    "sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)"
)


def runs(home: Path, job: str) -> list:  # type: ignore[type-arg]
    with Store.open(home / "runs.db") as store:
        return store.runs(job, limit=100)


def dumps(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# ---------------------------------------------------------------- the context


def test_child_gets_attempt_slot_deadline_and_state_dir(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.jsonl"
    flaky = (
        "import os, subprocess, sys; "
        f"subprocess.run([sys.executable, '-c', {DUMP!r}, {str(out)!r}]); "
        "sys.exit(0 if os.environ['CRONWRAP_ATTEMPT'] == '2' else 3)"
    )
    args = ["--schedule", "*/5 * * * *", "--tz", "UTC", "--timeout", "1h"]
    before = time.time()
    result = cronwrap(
        home, "run", "--name", "ctx", *args, "--retries", "1", "--retry-delay", "0", "--",
        PY, "-c", flaky,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = dumps(out)
    assert (first["CRONWRAP_ATTEMPT"], second["CRONWRAP_ATTEMPT"]) == ("1", "2")
    assert first["CRONWRAP_ATTEMPTS_MAX"] == "2"
    [run] = runs(home, "ctx")
    slot = parse_utc(first["CRONWRAP_SLOT"])
    assert RFC3339.match(first["CRONWRAP_SLOT"]) and slot.minute % 5 == 0
    assert slot <= run.started_at < slot + timedelta(minutes=5)
    assert run.slot == slot and second["CRONWRAP_SLOT"] == first["CRONWRAP_SLOT"]
    deadline = int(first["CRONWRAP_DEADLINE"])
    assert before + 3600 - 1 <= deadline <= time.time() + 3600
    assert int(second["CRONWRAP_DEADLINE"]) >= deadline  # each attempt has its own timeout
    state_dir = Path(first["CRONWRAP_STATE_DIR"])
    assert state_dir == home / "jobs" / "ctx"
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
    assert "CRONWRAP_LAST_SUCCESS_AT" not in first and "CRONWRAP_RERUN_OF" not in first

    out2 = tmp_path / "env2.jsonl"
    again = cronwrap(home, "run", "--name", "ctx", *args, "--", PY, "-c", DUMP, str(out2))
    assert again.returncode == 0, again.stderr
    [ctx] = dumps(out2)
    assert ctx["CRONWRAP_LAST_SUCCESS_AT"] == run.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ctx["CRONWRAP_LAST_SUCCESS_SLOT"] == first["CRONWRAP_SLOT"]


def test_without_schedule_the_slot_is_the_start_minute_and_no_deadline(
    home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "env.jsonl"
    env = cw_env(home, CRONWRAP_RERUN_OF="inherited", CRONWRAP_DEADLINE="1")
    result = cronwrap(home, "run", "--name", "plain", "--", PY, "-c", DUMP, str(out), env=env)
    assert result.returncode == 0, result.stderr
    [ctx] = dumps(out)
    [run] = runs(home, "plain")
    assert parse_utc(ctx["CRONWRAP_SLOT"]) == run.started_at.replace(second=0, microsecond=0)
    # values inherited from an outer cronwrap are not this run's context
    assert "CRONWRAP_RERUN_OF" not in ctx and "CRONWRAP_DEADLINE" not in ctx


# ---------------------------------------------------------------- the batch example


def _batch_env(home: Path, **extra: str) -> dict[str, str]:
    return cw_env(home, **{"BATCH_SIZE": "5", "ITEM_SECONDS": "0.05", **extra})


def test_batch_example_resumes_after_timeouts_and_does_every_item_once(
    home: Path, tmp_path: Path
) -> None:
    # 6 s of work under a 3 s timeout: no run can do it all, however fast the machine, and
    # each has time to get going however slow it is (with 1 s, a slow machine's start-ups
    # left the runs next to nothing, and 40 of them outlasted the test's 180 s)
    items = tmp_path / "in.txt"
    items.write_text("".join(f"item-{i}\n" for i in range(60)))
    output = tmp_path / "out.txt"
    env = _batch_env(home, BATCH_IGNORE_DEADLINE="1", ITEM_SECONDS="0.1")
    statuses = []
    for _ in range(40):
        result = cronwrap(
            home, "run", "--name", "batch", "--timeout", "3s", "--kill-after", "20s", "--",
            PY, str(BATCH), str(items), str(output), env=env,
        )  # fmt: skip
        statuses.append(result.returncode)
        if result.returncode == 0:
            break
    assert statuses[-1] == 0 and 124 in statuses, statuses  # timed out at least once, then done
    assert output.read_text().splitlines() == [f"item-{i}" for i in range(60)]
    assert {r.status for r in runs(home, "batch")} == {"timeout", "success"}


def test_batch_example_stops_before_the_deadline_on_its_own(home: Path, tmp_path: Path) -> None:
    # 4 s of work under an 8 s timeout, stopping 5 s before the deadline: each run does about
    # 2 s and leaves the rest, and a stall of up to 5 s (fsyncs on a busy CI disk) still ends
    # before the SIGTERM; with 3 s and a 1 s margin, CI once saw a timeout
    items = tmp_path / "in.txt"
    items.write_text("".join(f"item-{i}\n" for i in range(80)))
    output = tmp_path / "out.txt"
    results = []
    for _ in range(40):
        result = cronwrap(
            home, "run", "--name", "polite", "--timeout", "8s", "--",
            PY, str(BATCH), str(items), str(output), env=_batch_env(home, BATCH_MARGIN="5"),
        )  # fmt: skip
        results.append(result)
        if "done: 80 items" in result.stdout:
            break
    assert "done: 80 items" in results[-1].stdout
    assert output.read_text().splitlines() == [f"item-{i}" for i in range(80)]
    assert len(results) > 1 and "stopping before the deadline" in results[0].stdout
    assert {r.status for r in runs(home, "polite")} == {"success"}  # it never timed out


def test_batch_example_after_sigkill_then_rerun_resolves_the_dead_letter(
    home: Path, tmp_path: Path
) -> None:
    items = tmp_path / "in.txt"
    items.write_text("".join(f"item-{i}\n" for i in range(50)))
    output = tmp_path / "out.txt"
    args = ["run", "--name", "import", "--keep-runs", "1", "--", PY, str(BATCH)]
    for kill_after_lines in (7, 23):  # mid-batch: past a checkpoint, before the next
        proc = popen_cronwrap(home, *args, str(items), str(output), env=_batch_env(home))
        wait_for(
            lambda n=kill_after_lines: (
                output.exists() and len(output.read_text().splitlines()) >= n
            ),
            timeout=60,
        )
        proc.send_signal(signal.SIGKILL)  # cronwrap dies; its child goes with it
        proc.wait()
        wait_for(lambda: not _job_alive(items), timeout=30)
    # the next run finds the killed ones (crashed: dead letters) and resumes the batch
    done = cronwrap(home, *args, str(items), str(output), env=_batch_env(home))
    assert done.returncode == 0, done.stderr
    assert output.read_text().splitlines() == [f"item-{i}" for i in range(50)]
    letters = json.loads(cronwrap(home, "failed", "--json").stdout)
    assert [x["status"] for x in letters] == ["crashed", "crashed"]  # kept despite --keep-runs 1
    rerun = cronwrap(home, "rerun", letters[0]["run_id"], env=_batch_env(home))
    assert rerun.returncode == 0, rerun.stderr
    assert f"rerun-of {letters[0]['run_id']}" in rerun.stdout
    assert f"slot {letters[0]['slot'][:19]}" in rerun.stdout.replace("Z", "+").replace("+", "")
    remaining = json.loads(cronwrap(home, "failed", "--json").stdout)
    assert [x["run_id"] for x in remaining] == [letters[1]["run_id"]]
    assert output.read_text().splitlines() == [f"item-{i}" for i in range(50)]  # nothing redone


def _job_alive(items: Path) -> bool:
    """Is a batch_job.py of this test still running (the one SIGKILL should have ended)?"""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if str(items).encode() in cmdline and b"batch_job.py" in cmdline and fields[0] != "Z":
            return True
    return False


# ---------------------------------------------------------------- rerun


def test_rerun_repeats_the_command_with_its_options_and_slot(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.jsonl"
    secret_file = tmp_path / "uuid"
    secret_file.write_text("0f6a1e8e-7d0b-4f8e-9c1a-5b2a4f3e2d1c\n")
    failed = cronwrap(
        home, "run", "--name", "rep", "--schedule", "0 3 * * *", "--tz", "UTC",
        "--env", "MODE=full", "--ping", "http://127.0.0.1:9/s3cr3t-ping-path",
        "--ping-uuid", f"file:{secret_file}", "--ping-start-budget", "0.2",
        "--ping-finish-budget", "0.2", "--", PY, "-c", DUMP, str(out), "4",
    )  # fmt: skip
    assert failed.returncode == 4, failed.stderr
    [original] = runs(home, "rep")
    with Store.open(home / "runs.db") as store:
        spec = store.run_spec(original.run_id)
    assert spec is not None and "s3cr3t" not in spec and f"file:{secret_file}" in spec
    rerun = cronwrap(home, "rerun", original.run_id[:8])
    assert rerun.returncode == 4, rerun.stderr  # the command's own exit status
    assert "--ping of the original run held a secret and was not stored" in rerun.stderr
    first, second = dumps(out)
    assert second["CRONWRAP_RERUN_OF"] == original.run_id
    assert second["CRONWRAP_SLOT"] == first["CRONWRAP_SLOT"]
    assert second["CRONWRAP_JOB"] == "rep"
    newest = runs(home, "rep")[0]
    assert newest.rerun_of == original.run_id and newest.run_id != original.run_id
    # still failing: the original stays the (one) dead letter
    assert [x["run_id"] for x in json.loads(cronwrap(home, "failed", "--json").stdout)] == [
        original.run_id
    ]


def test_rerun_takes_the_same_lock_and_its_success_resolves(home: Path, tmp_path: Path) -> None:
    fixed = tmp_path / "fixed"
    check = f"import os, sys; sys.exit(0 if os.path.exists({str(fixed)!r}) else 1)"
    failed = cronwrap(home, "run", "--name", "locked", "--", PY, "-c", check)
    assert failed.returncode == 1, failed.stderr
    [original] = runs(home, "locked")
    gate, started = tmp_path / "gate", tmp_path / "started"
    hold = (
        f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\n"
        f"while not pathlib.Path({str(gate)!r}).exists(): time.sleep(0.02)"
    )
    holder = popen_cronwrap(home, "run", "--name", "locked", "--", PY, "-c", hold)
    try:
        wait_for(started.exists, timeout=30)
        skipped = cronwrap(home, "rerun", original.run_id)
        assert skipped.returncode == 0, skipped.stderr  # --overlap-exit-code, as `run`
        assert runs(home, "locked")[0].status == "skipped"
        assert runs(home, "locked")[0].rerun_of == original.run_id
    finally:
        gate.touch()
        holder.wait(timeout=30)
    assert len(json.loads(cronwrap(home, "failed", "--json").stdout)) == 1
    fixed.touch()
    ok = cronwrap(home, "rerun", original.run_id)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(cronwrap(home, "failed", "--json").stdout) == []
    resolved = json.loads(cronwrap(home, "failed", "--all", "--json").stdout)
    assert resolved[0]["resolved_by"] == runs(home, "locked")[0].run_id


def test_rerun_of_an_unknown_or_unstored_run(home: Path) -> None:
    assert cronwrap(home, "run", "--name", "x", "--", "true").returncode == 0
    missing = cronwrap(home, "rerun", "ffffffff")
    assert missing.returncode == 1 and "no run" in missing.stderr
    with Store.open(home / "runs.db") as store:
        store._conn.execute("UPDATE runs SET spec=NULL")  # as recorded by an older cronwrap
        [run] = store.runs("x")
    old = cronwrap(home, "rerun", run.run_id)
    assert old.returncode == 1 and "no stored command" in old.stderr


# ---------------------------------------------------------------- catch-up


def _nightly(home: Path, out: Path, *extra: str) -> None:
    result = cronwrap(
        home, "run", "--name", "nightly", "--schedule", "0 3 * * *", "--tz", "UTC",
        "--catch-up", *extra, "--", PY, "-c", DUMP, str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_catch_up_runs_a_missed_slot_once(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.jsonl"
    _nightly(home, out)
    [ran] = dumps(out)
    slot = parse_utc(ran["CRONWRAP_SLOT"])
    assert slot.hour == 3 and slot.minute == 0
    # the host was off from just after that run until 09:00 two days later
    back = (slot + timedelta(days=2, hours=6)).isoformat()
    nothing = cronwrap(
        home, "catch-up", "--crontab", "/dev/null", "--now", (slot + timedelta(hours=5)).isoformat()
    )
    assert nothing.returncode == 0 and nothing.stdout == "" and nothing.stderr == ""
    caught = cronwrap(home, "catch-up", "--crontab", "/dev/null", "--now", back)
    assert caught.returncode == 0, caught.stderr
    missed = slot + timedelta(days=2)
    assert f"catching up slot {missed:%Y-%m-%dT%H:%M:%SZ}" in caught.stderr
    assert [d["CRONWRAP_SLOT"] for d in dumps(out)] == [
        ran["CRONWRAP_SLOT"],
        f"{missed:%Y-%m-%dT%H:%M:%SZ}",
    ]
    again = cronwrap(home, "catch-up", "--crontab", "/dev/null", "--now", back)
    assert again.returncode == 0 and len(dumps(out)) == 2  # never twice for one slot
    dry = cronwrap(home, "catch-up", "--crontab", "/dev/null", "--now", back, "--dry-run")
    assert "nightly: not run: ran for its most recent slot" in dry.stdout


def test_catch_up_skips_slots_older_than_max_age(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.jsonl"
    _nightly(home, out, "--catch-up-max-age", "2h")
    slot = parse_utc(dumps(out)[0]["CRONWRAP_SLOT"])
    late = cronwrap(
        home,
        "catch-up",
        "--crontab",
        "/dev/null",
        "--now",
        (slot + timedelta(days=1, hours=3)).isoformat(),
    )
    assert late.returncode == 0 and len(dumps(out)) == 1, late.stderr
    dry = cronwrap(
        home,
        "catch-up",
        "--crontab",
        "/dev/null",
        "--dry-run",
        "--now",
        (slot + timedelta(days=1, hours=3)).isoformat(),
    )
    assert "older than --catch-up-max-age" in dry.stdout
    soon = cronwrap(
        home,
        "catch-up",
        "--crontab",
        "/dev/null",
        "--now",
        (slot + timedelta(days=1, hours=1)).isoformat(),
    )
    assert soon.returncode == 0 and len(dumps(out)) == 2, soon.stderr


def test_catch_up_on_an_empty_machine_is_silent(home: Path) -> None:
    result = cronwrap(home, "catch-up", "--crontab", "/dev/null")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_catch_up_leaves_a_job_taken_out_of_the_crontab(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.jsonl"
    _nightly(home, out)
    slot = parse_utc(dumps(out)[0]["CRONWRAP_SLOT"])
    back = (slot + timedelta(days=1, hours=6)).isoformat()
    elsewhere = tmp_path / "crontab"
    elsewhere.write_text("0 4 * * * cronwrap run --name other -- true\n")
    gone = cronwrap(home, "catch-up", "--crontab", str(elsewhere), "--now", back)
    assert gone.returncode == 1, gone.stderr
    assert "in no crontab read" in gone.stderr and len(dumps(out)) == 1
    listed = tmp_path / "crontab2"
    listed.write_text(f"0 3 * * * cronwrap run --name nightly --catch-up -- {PY} job.py\n")
    dry = cronwrap(home, "catch-up", "--crontab", str(listed), "--now", back, "--dry-run")
    assert "nightly: would run for slot" in dry.stdout, dry.stdout + dry.stderr
    forgot = cronwrap(home, "catch-up", "--forget", "nightly")
    assert forgot.returncode == 0, forgot.stderr
    quiet = cronwrap(home, "catch-up", "--crontab", str(elsewhere), "--now", back)
    assert quiet.returncode == 0 and quiet.stderr == "" and len(dumps(out)) == 1


def test_rerun_with_a_relative_config_reads_it_from_where_cronwrap_started(
    home: Path, tmp_path: Path
) -> None:
    """rerun enters the original run's directory; a relative --config is still the file
    next to where cronwrap was started (it was looked up in the job's directory, found
    missing, and the run went on without its timeout)."""
    jobdir, confdir = tmp_path / "job", tmp_path / "conf"
    jobdir.mkdir()
    confdir.mkdir()
    (confdir / "cfg.yaml").write_text("defaults:\n  timeout: 1s\n")
    args = ["run", "--name", "rel", "--", "sleep", "5"]
    first = cronwrap(home, "--config", str(confdir / "cfg.yaml"), *args, cwd=jobdir)
    assert first.returncode == 124, first.stderr
    [original] = runs(home, "rel")
    again = cronwrap(home, "--config", "cfg.yaml", "rerun", original.run_id, cwd=confdir)
    assert again.returncode == 124, again.stderr  # the config's timeout applied again
