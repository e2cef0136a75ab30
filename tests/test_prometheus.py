"""The metrics files as Prometheus sees them: scraped through a real node_exporter textfile
collector started here (Debian's prometheus-node-exporter), parsed with prometheus_client, and
the example alert rules checked by promtool (Debian's prometheus). Skips when the binaries are
missing, unless CRONWRAP_REQUIRE_PROMETHEUS=1 (CI), where it fails instead."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cronwrap.state import metrics
from tests.conftest import ROOT, cronwrap, cw_env

parser = pytest.importorskip("prometheus_client.parser")

RULES = ROOT / "examples" / "prometheus-rules.yml"
RULES_TEST = ROOT / "tests" / "prometheus-rules.test.yml"


def _tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CRONWRAP_REQUIRE_PROMETHEUS"):
        raise RuntimeError(f"{names[0]} is not on PATH, and CRONWRAP_REQUIRE_PROMETHEUS is set")
    pytest.skip(f"{names[0]} not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NodeExporter:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.url = f"http://127.0.0.1:{port}/metrics"

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the scrape: (name, sorted labels) -> value."""
        with urllib.request.urlopen(self.url, timeout=30) as resp:
            text = resp.read().decode()
        out = {}
        for family in parser.text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        # node_exporter reports a file it could not read or parse here, and then drops it
        assert out[("node_textfile_scrape_error", ())] == 0, text
        return out


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[NodeExporter]:
    binary = _tool("prometheus-node-exporter", "node_exporter")
    directory = tmp_path / "textfile"
    directory.mkdir()
    for _ in range(5):  # another process may take the free port between probe and bind
        port = _free_port()
        proc = subprocess.Popen(
            [
                binary,
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={directory}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        ne = NodeExporter(directory, port)
        for _ in range(300):  # up to 30 s on a busy machine
            if proc.poll() is not None:
                break
            try:
                ne.scrape()
                break
            except (OSError, KeyError):
                import time

                time.sleep(0.1)
        if proc.poll() is None:
            break
    else:
        raise AssertionError(f"node_exporter did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
    try:
        yield ne
    finally:
        proc.terminate()
        proc.wait(10)


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def jobs_in(samples: dict, name: str) -> dict[str, float]:
    return {dict(k[1])["cronjob"]: v for k, v in samples.items() if k[0] == name}


def test_colliding_names_stay_apart_with_exact_labels(home: Path, exporter: NodeExporter) -> None:
    """backup.nightly and backup_nightly used to share cronwrap_backup_nightly.prom."""
    mdir = str(exporter.directory)
    names = {"backup.nightly": 0, "backup_nightly": 3, "db+replica@eu-1": 5}
    for name, code in names.items():
        out = cronwrap(
            home, "run", "--name", name, "--metrics-dir", mdir, "--", "sh", "-c", f"exit {code}"
        )
        assert out.returncode == code, out.stderr
    assert sorted(os.listdir(mdir)) == [
        "cronwrap_backup.nightly.prom",
        "cronwrap_backup_nightly.prom",
        "cronwrap_db+replica@eu-1.prom",
    ]
    scraped = exporter.scrape()
    assert jobs_in(scraped, "cronwrap_last_exit_code") == names
    for name, code in names.items():
        result = "success" if code == 0 else "failure"
        assert value(scraped, "cronwrap_last_result", cronjob=name, result=result) == 1
        assert value(scraped, "cronwrap_runs_total", cronjob=name, result=result) == 1
    # minimal labels: cronjob, and result on the per-result families; never host
    label_names = {n for (m, labels) in scraped if m.startswith("cronwrap_") for n, _ in labels}
    assert label_names == {"cronjob", "result"}


def test_label_values_are_escaped_not_mangled(exporter: NodeExporter) -> None:
    """Names cronwrap accepts are plain, but a label must survive any character."""
    odd = 'we"ird\\job\nname'
    metrics.write_atomic(
        str(exporter.directory),
        odd,
        metrics.render(odd, {"cronwrap_running": 1}, result=None, totals={}),
    )
    assert metrics.job_of(metrics.file_name(odd)) == odd
    assert value(exporter.scrape(), "cronwrap_running", cronjob=odd) == 1


def _faketime(at: str) -> dict[str, str]:
    """The environment that makes a process see the clock start at `at` (UTC) and run on."""
    return {"FAKETIME": f"@{at}", "LD_PRELOAD": _libfaketime(), "TZ": "UTC"}


def _libfaketime() -> str:
    for path in (
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ):
        if os.path.exists(path):
            return path
    if os.environ.get("CRONWRAP_REQUIRE_PROMETHEUS"):
        raise RuntimeError("libfaketime not found, and CRONWRAP_REQUIRE_PROMETHEUS is set")
    pytest.skip("libfaketime not installed (Debian package faketime)")


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def missed(samples: dict, job: str, now: float) -> bool:
    """The example rule CronJobMissed, `time() > cronwrap_expected_by_timestamp_seconds`."""
    return now > value(samples, "cronwrap_expected_by_timestamp_seconds", cronjob=job)


def test_missed_run_alert_is_true_after_a_slot_without_a_run_and_false_after_the_run(
    home: Path, exporter: NodeExporter
) -> None:
    """The job runs at 10:00:30 on a */5 schedule; nothing runs in the 10:05 slot; at 10:11
    the run comes (late). The clock of each run is set with faketime."""
    args = ["run", "--name", "sync", "--schedule", "*/5 * * * *", "--tz", "UTC"]
    args += ["--metrics-dir", str(exporter.directory), "--", "true"]
    first = cronwrap(home, *args, env=cw_env(home, **_faketime("2026-12-01 10:00:30")))
    assert first.returncode == 0, first.stderr
    s = exporter.scrape()
    assert value(s, "cronwrap_next_run_timestamp_seconds", cronjob="sync") == _ts(
        "2026-12-01 10:05"
    )
    assert value(s, "cronwrap_expected_by_timestamp_seconds", cronjob="sync") == _ts(
        "2026-12-01 10:10"
    )  # the slot plus the 5 minute grace
    assert value(s, "cronwrap_expected_interval_seconds", cronjob="sync") == 300
    assert not missed(s, "sync", _ts("2026-12-01 10:04"))  # before the slot
    assert not missed(s, "sync", _ts("2026-12-01 10:09:59"))  # within the grace
    assert missed(s, "sync", _ts("2026-12-01 10:10:01"))  # the slot passed without a run

    late = cronwrap(home, *args, env=cw_env(home, **_faketime("2026-12-01 10:11:00")))
    assert late.returncode == 0, late.stderr
    s = exporter.scrape()
    assert not missed(s, "sync", _ts("2026-12-01 10:11:01"))  # the run came: no longer missed
    assert value(s, "cronwrap_next_run_timestamp_seconds", cronjob="sync") == _ts(
        "2026-12-01 10:15"
    )
    assert missed(s, "sync", _ts("2026-12-01 10:20:01"))  # and the next slot counts again


def test_waiting_for_the_lock_widens_the_grace(home: Path, exporter: NodeExporter) -> None:
    args = ["run", "--name", "w", "--schedule", "0 * * * *", "--tz", "UTC"]
    args += ["--on-overlap", "wait", "--lock-wait", "2m"]
    args += ["--metrics-dir", str(exporter.directory), "--", "true"]
    out = cronwrap(home, *args, env=cw_env(home, **_faketime("2026-12-01 10:00:00")))
    assert out.returncode == 0, out.stderr
    expected = value(exporter.scrape(), "cronwrap_expected_by_timestamp_seconds", cronjob="w")
    assert expected == _ts("2026-12-01 11:00") + 300 + 120


def test_duration_trend_from_recent_successful_runs(home: Path, exporter: NodeExporter) -> None:
    mdir = str(exporter.directory)
    for i in range(6):
        code = 1 if i == 2 else 0  # a failed run does not count
        cronwrap(
            home, "run", "--name", "t", "--metrics-dir", mdir, "--", "sh", "-c", f"exit {code}"
        )
        if i == 3:  # four successes so far: too few for a trend
            assert (
                "cronwrap_duration_median_seconds",
                (("cronjob", "t"),),
            ) not in exporter.scrape()
    s = exporter.scrape()
    import json

    runs = json.loads(cronwrap(home, "history", "t", "--json").stdout)
    ok = sorted(r["duration_s"] for r in runs if r["status"] == "success")
    assert len(ok) == 5
    assert value(s, "cronwrap_duration_median_seconds", cronjob="t") == pytest.approx(
        ok[2], abs=1e-5
    )
    assert value(s, "cronwrap_duration_p95_seconds", cronjob="t") == pytest.approx(ok[4], abs=1e-5)
    assert value(s, "cronwrap_last_duration_seconds", cronjob="t") > 0


def test_promtool_accepts_the_example_rules() -> None:
    promtool = _tool("promtool")
    out = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 4 rules found" in out.stdout + out.stderr


def test_the_example_rules_fire_when_they_should() -> None:
    """promtool's rule unit tests (tests/prometheus-rules.test.yml) run the rules on series."""
    promtool = _tool("promtool")
    out = subprocess.run(
        [promtool, "test", "rules", str(RULES_TEST)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_readme_shows_the_example_rules() -> None:
    rules = RULES.read_text()
    body = rules[rules.index("groups:") :]
    assert f"```yaml\n{body}```" in (ROOT / "README.md").read_text()


def test_prune_removes_stale_files_and_says_so(
    home: Path, exporter: NodeExporter, tmp_path: Path
) -> None:
    mdir = str(exporter.directory)
    crontab = tmp_path / "crontab"
    crontab.write_text("*/5 * * * * cronwrap run --name backup.nightly -- true\n")
    for name in ("backup.nightly", "backup_nightly"):  # both scheduled; one line was removed
        cronwrap(
            home,
            "run",
            "--name",
            name,
            "--schedule",
            "*/5 * * * *",
            "--metrics-dir",
            mdir,
            "--",
            "true",
        )
    cronwrap(home, "run", "--name", "manual", "--metrics-dir", mdir, "--", "true")  # no schedule
    (exporter.directory / "cronwrap_db_backup.prom").write_text("")  # an old-style name
    (exporter.directory / "other.prom").write_text("other_metric 1\n")  # not ours
    base = ["metrics", "prune", "--metrics-dir", mdir, "--crontab", str(crontab)]
    dry = cronwrap(home, *base, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "would remove cronwrap_backup_nightly.prom (job backup_nightly)",
        "would remove cronwrap_db_backup.prom (job db_backup)",
    ]
    assert len(os.listdir(mdir)) == 5
    done = cronwrap(home, *base)
    assert done.returncode == 0 and done.stdout.splitlines() == [
        "removed cronwrap_backup_nightly.prom (job backup_nightly)",
        "removed cronwrap_db_backup.prom (job db_backup)",
    ]
    assert sorted(os.listdir(mdir)) == [
        "cronwrap_backup.nightly.prom",
        "cronwrap_manual.prom",
        "other.prom",
    ]
    assert set(jobs_in(exporter.scrape(), "cronwrap_running")) == {"backup.nightly", "manual"}
    again = cronwrap(home, *base)
    assert again.stdout.startswith("nothing to remove")


def test_prune_of_a_missing_directory_is_one_clear_line(home: Path, tmp_path: Path) -> None:
    out = cronwrap(
        home, "metrics", "prune", "--metrics-dir", str(tmp_path / "nope"), "--crontab", "/dev/null"
    )
    assert out.returncode == 1 and out.stderr.startswith("cronwrap: cannot prune"), out.stderr
    assert "Traceback" not in out.stderr


def test_the_last_result_stays_while_the_next_run_is_going_on(
    home: Path, exporter: NodeExporter, tmp_path: Path
) -> None:
    """A failing job's alert must not clear each time it starts again: while run 2 goes on,
    the scrape still shows run 1's result, exit code and duration beside running=1."""
    from tests.conftest import popen_cronwrap, wait_for

    mdir = str(exporter.directory)
    assert (
        cronwrap(
            home, "run", "--name", "f", "--metrics-dir", mdir, "--", "sh", "-c", "exit 3"
        ).returncode
        == 3
    )
    before = exporter.scrape()
    marker, release = tmp_path / "started", tmp_path / "release"
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "f",
        "--metrics-dir",
        mdir,
        "--",
        "sh",
        "-c",
        # runs until scraped (2 s were not enough for a scrape on a slow machine)
        f"touch {marker}; while [ ! -e {release} ]; do sleep 0.05; done",
    )
    try:
        wait_for(marker.exists, timeout=60)
        during = exporter.scrape()
    finally:
        release.touch()
        assert proc.wait(60) == 0
    assert value(during, "cronwrap_running", cronjob="f") == 1
    assert value(during, "cronwrap_last_result", cronjob="f", result="failure") == 1
    for name in (
        "cronwrap_last_exit_code",
        "cronwrap_last_duration_seconds",
        "cronwrap_last_attempts",
    ):
        assert value(during, name, cronjob="f") == value(before, name, cronjob="f"), name
    assert value(during, "cronwrap_last_start_timestamp_seconds", cronjob="f") > value(
        before, "cronwrap_last_start_timestamp_seconds", cronjob="f"
    )
    after = exporter.scrape()
    assert value(after, "cronwrap_running", cronjob="f") == 0
    assert value(after, "cronwrap_last_result", cronjob="f", result="success") == 1
    assert value(after, "cronwrap_last_exit_code", cronjob="f") == 0
