"""Prometheus textfile output, checked with prometheus_client's own parser."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cronwrap.state import metrics
from tests.conftest import alive, cronwrap, popen_cronwrap, wait_for, wait_supervised

parser = pytest.importorskip("prometheus_client.parser")


def parse(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in parser.text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_file_after_runs(home: Path, tmp_path: Path) -> None:
    mdir = tmp_path / "textfile"
    args = [
        "--name",
        "db.backup",
        "--metrics-dir",
        str(mdir),
        "--schedule",
        "*/15 * * * *",
        "--timeout",
        "1h",
    ]
    assert cronwrap(home, "run", *args, "--", "true").returncode == 0
    assert cronwrap(home, "run", *args, "--", "sh", "-c", "exit 3").returncode == 3
    path = mdir / "cronwrap_db.backup.prom"  # the name as it is: backup_db would not collide
    s = parse(path)
    job = {"cronjob": "db.backup"}  # the exact job name
    assert value(s, "cronwrap_last_exit_code", **job) == 3
    assert value(s, "cronwrap_last_attempts", **job) == 1
    assert value(s, "cronwrap_running", **job) == 0
    assert value(s, "cronwrap_last_result", result="failure", **job) == 1
    assert value(s, "cronwrap_last_result", result="success", **job) == 0
    assert value(s, "cronwrap_runs_total", result="success", **job) == 1
    assert value(s, "cronwrap_runs_total", result="failure", **job) == 1
    assert value(s, "cronwrap_expected_interval_seconds", **job) == 900
    assert value(s, "cronwrap_timeout_seconds", **job) == 3600
    ok_at = value(s, "cronwrap_last_success_timestamp_seconds", **job)
    bad_at = value(s, "cronwrap_last_failure_timestamp_seconds", **job)
    start = value(s, "cronwrap_last_start_timestamp_seconds", **job)
    end = value(s, "cronwrap_last_end_timestamp_seconds", **job)
    assert 0 < ok_at < bad_at and start <= end
    assert value(s, "cronwrap_last_duration_seconds", **job) >= 0
    text = path.read_text()
    assert "{job=" not in text and ",job=" not in text and 'instance="' not in text
    # no timestamps: every sample line is "name{labels} value"
    assert all(len(line.split(" ")) == 2 for line in text.splitlines() if not line.startswith("#"))
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_running_is_1_while_the_job_runs(home: Path, tmp_path: Path) -> None:
    mdir = tmp_path / "m"
    marker = tmp_path / "go"
    proc = popen_cronwrap(
        home,
        "run",
        "--name",
        "busy",
        "--metrics-dir",
        str(mdir),
        "--",
        "sh",
        "-c",
        f"touch {marker}; sleep 1",
    )
    wait_for(marker.exists)
    assert value(parse(mdir / "cronwrap_busy.prom"), "cronwrap_running", cronjob="busy") == 1
    proc.wait(10)
    assert value(parse(mdir / "cronwrap_busy.prom"), "cronwrap_running", cronjob="busy") == 0


def test_a_crashed_run_is_counted_and_shown_as_the_last_result(home: Path, tmp_path: Path) -> None:
    """cronwrap SIGKILLed mid-run: the next run finds it crashed, and the metrics say so
    (a crash that never reached runs_total could never fire an alert)."""
    mdir = tmp_path / "m"
    marker = tmp_path / "go"
    args = ["run", "--name", "crashy", "--metrics-dir", str(mdir)]
    assert cronwrap(home, *args, "--", "true").returncode == 0
    proc = popen_cronwrap(
        home, *args, "--", "sh", "-c", f"echo $$ > {marker}; echo started; exec sleep 60"
    )
    wait_for(lambda: marker.exists() and marker.read_text().strip())
    wait_supervised(home, "crashy")
    proc.kill()
    proc.wait(10)
    job_pid = int(marker.read_text())
    wait_for(lambda: not alive(job_pid), timeout=30)  # the watchdog's work
    prom = mdir / "cronwrap_crashy.prom"
    release = tmp_path / "release"
    nxt = popen_cronwrap(
        home,
        *args,
        "--",
        "sh",
        "-c",
        f"touch {tmp_path}/second; while [ ! -e {release} ]; do sleep 0.05; done",
    )
    wait_for((tmp_path / "second").exists)
    during = parse(prom)
    job = {"cronjob": "crashy"}
    assert value(during, "cronwrap_runs_total", result="crashed", **job) == 1
    assert value(during, "cronwrap_last_result", result="crashed", **job) == 1
    assert value(during, "cronwrap_last_result", result="success", **job) == 0
    assert value(during, "cronwrap_running", **job) == 1
    release.touch()
    assert nxt.wait(30) == 0
    after = parse(prom)
    assert value(after, "cronwrap_runs_total", result="crashed", **job) == 1
    assert value(after, "cronwrap_runs_total", result="success", **job) == 2
    assert value(after, "cronwrap_last_result", result="success", **job) == 1


def test_help_and_type_lines_are_identical_in_every_file(home: Path, tmp_path: Path) -> None:
    mdir = tmp_path / "m"
    cronwrap(home, "run", "--name", "a", "--metrics-dir", str(mdir), "--", "true")
    cronwrap(
        home, "run", "--name", "b", "--metrics-dir", str(mdir), "--timeout", "5m", "--", "false"
    )
    meta: dict[str, set[str]] = {}
    for path in mdir.iterdir():
        for line in path.read_text().splitlines():
            if line.startswith("# "):
                metric = line.split()[2]
                meta.setdefault(metric, set()).add(line)
    for metric, lines in meta.items():
        assert len(lines) == 2, (metric, lines)  # one HELP and one TYPE, byte-identical


def test_concurrent_writers_never_leave_a_partial_file(tmp_path: Path) -> None:
    """Many writers replace the same file while a reader parses it the whole time."""
    mdir = tmp_path / "m"
    mdir.mkdir()
    text = metrics.render(
        "job",
        {"cronwrap_running": 0, "cronwrap_last_exit_code": 0},
        result="success",
        totals={"success": 5},
    )
    metrics.write_atomic(str(mdir), "job", text)
    code = (
        "import sys; from cronwrap.state import metrics\n"
        "for i in range(300):\n"
        "    metrics.write_atomic(sys.argv[1], 'job', metrics.render('job', "
        "{'cronwrap_running': i % 2, 'cronwrap_last_exit_code': i}, result='success', "
        "totals={'success': i}))\n"
    )
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        path = mdir / "cronwrap_job.prom"
        while not stop.is_set():
            content = path.read_text()
            try:
                families = list(parser.text_string_to_metric_families(content))
            except ValueError as err:  # a torn file would not parse
                bad.append(str(err))
                continue
            if len(families) != 4:
                bad.append(content)

    thread = threading.Thread(target=reader)
    thread.start()
    writers = [subprocess.Popen([sys.executable, "-c", code, str(mdir)]) for _ in range(4)]
    for w in writers:
        assert w.wait(60) == 0
    stop.set()
    thread.join()
    assert bad == []
    assert [p.name for p in mdir.iterdir()] == ["cronwrap_job.prom"]  # no temp files left


def test_metrics_prune(home: Path, tmp_path: Path) -> None:
    mdir = tmp_path / "m"
    cronwrap(home, "run", "--name", "alive", "--metrics-dir", str(mdir), "--", "true")
    metrics.write_atomic(str(mdir), "gone", "x 1\n")
    dry = cronwrap(
        home, "metrics", "prune", "--metrics-dir", str(mdir), "--crontab", "/dev/null", "--dry-run"
    )
    assert dry.returncode == 0 and "would remove cronwrap_gone.prom" in dry.stdout
    assert (mdir / "cronwrap_gone.prom").exists()
    done = cronwrap(home, "metrics", "prune", "--metrics-dir", str(mdir), "--crontab", "/dev/null")
    assert done.returncode == 0
    assert sorted(os.listdir(mdir)) == ["cronwrap_alive.prom"]


def test_unwritable_metrics_dir_is_a_warning(home: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cronwrap(
        home, "run", "--name", "w", "--metrics-dir", str(blocker / "m"), "--", "sh", "-c", "exit 4"
    )
    assert result.returncode == 4 and "cannot write metrics" in result.stderr


def test_a_run_without_metrics_loads_no_metrics_code(home: Path, tmp_path: Path) -> None:
    """The run path stays light: the schedule engine the next-run gauges need is imported only
    with --metrics-dir (and --schedule), and so is the metrics module itself."""
    probe = (
        "import os, sys; os.environ['CRONWRAP_HOME'] = sys.argv[1]\n"
        "from cronwrap.run import entry\n"
        "args = sys.argv[2:]\n"
        "assert entry.main(args, os.environ) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('cronwrap.')))\n"
    )

    def loaded(*args: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", probe, str(home), *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own printed list

    plain = loaded("--name", "p", "--", "true")
    assert "cronwrap.cron.schedule" not in plain and "cronwrap.state.metrics" not in plain
    with_metrics = loaded(
        "--name", "p", "--schedule", "0 * * * *", "--metrics-dir", str(tmp_path / "m"), "--", "true"
    )
    assert "cronwrap.state.metrics" in with_metrics and "cronwrap.cron.schedule" in with_metrics
    import ast

    tree = ast.parse(Path(metrics.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name for n in top for a in n.names} | {
        n.module for n in top if isinstance(n, ast.ImportFrom) and n.module
    }
    assert names - {"annotations", "__future__"} == {"os"}, names
