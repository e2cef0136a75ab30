"""Prometheus metrics for node_exporter's textfile collector: one file per job, written
atomically (temp file in the same directory, then rename), with byte-identical HELP/TYPE lines
in every file, the label cronjob="<name>" and no timestamps. Rendered by hand: the format is
simple and prometheus_client costs ~86 ms of import."""

from __future__ import annotations

import os
import re

RESULTS = ("success", "failure", "timeout", "cancelled", "skipped", "crashed")

HELP = {
    "cronwrap_last_start_timestamp_seconds": ("gauge", "Unix time the most recent run started."),
    "cronwrap_last_end_timestamp_seconds": ("gauge", "Unix time the most recent run ended."),
    "cronwrap_last_success_timestamp_seconds": (
        "gauge",
        "Unix time of the most recent successful run (0 = never).",
    ),
    "cronwrap_last_failure_timestamp_seconds": (
        "gauge",
        "Unix time of the most recent failed run (0 = never).",
    ),
    "cronwrap_last_duration_seconds": (
        "gauge",
        "Wall time of the most recent run, retries included.",
    ),
    "cronwrap_last_exit_code": (
        "gauge",
        "Exit status of the most recent run (124 timeout, 128+N signal).",
    ),
    "cronwrap_last_attempts": ("gauge", "Attempts the most recent run took."),
    "cronwrap_last_result": ("gauge", "Outcome of the most recent run (1 for the current one)."),
    "cronwrap_running": ("gauge", "1 while a run of the job is going on."),
    "cronwrap_runs_total": ("counter", "Runs of the job by result."),
    "cronwrap_timeout_seconds": ("gauge", "The job's --timeout."),
    "cronwrap_expected_interval_seconds": (
        "gauge",
        "Seconds between two scheduled runs of the job.",
    ),
}


def label(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def result_of(status: str) -> str:
    return {"failed": "failure", "error": "failure"}.get(status, status)


def _num(value: float | None) -> str:
    if value is None:
        return "0"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render(
    job: str, values: dict[str, float | None], *, result: str | None, totals: dict[str, int]
) -> str:
    """The file's text. `values` holds the plain gauges; absent ones are left out."""
    lab = f'cronjob="{label(job)}"'
    lines: list[str] = []
    for metric, (kind, help_text) in HELP.items():
        samples: list[tuple[str, float | None]]
        if metric == "cronwrap_last_result":
            if result is None:
                continue
            samples = [(f'{{{lab},result="{r}"}}', 1 if r == result else 0) for r in RESULTS]
        elif metric == "cronwrap_runs_total":
            samples = [(f'{{{lab},result="{r}"}}', totals.get(r, 0)) for r in RESULTS]
        elif metric in values:
            samples = [(f"{{{lab}}}", values[metric])]
        else:
            continue
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} {kind}")
        lines += [f"{metric}{labels} {_num(v)}" for labels, v in samples]
    return "\n".join(lines) + "\n"


def path_for(directory: str, job: str) -> str:
    return os.path.join(directory, f"cronwrap_{label(job)}.prom")


def write_atomic(directory: str, job: str, text: str) -> str:
    """Temp file in the same directory (ignored by the collector: it reads *.prom), chmod
    0644, then rename over the old file; readers see the old file or the new one, whole."""
    final = path_for(directory, job)
    tmp = os.path.join(directory, f".cronwrap_{label(job)}.prom.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, text.encode())
        os.fchmod(fd, 0o644)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    return final


def prune(directory: str, keep: set[str]) -> list[str]:
    """Remove the files of jobs not in `keep` (labels); returns what was removed."""
    removed = []
    keep_labels = {label(k) for k in keep}
    for entry in sorted(os.listdir(directory)):
        m = re.fullmatch(r"cronwrap_(.+)\.prom", entry)
        if m and m.group(1) not in keep_labels:
            os.unlink(os.path.join(directory, entry))
            removed.append(entry)
    return removed
