"""Prometheus metrics for node_exporter's textfile collector: one file per job, written
atomically (temp file in the same directory, then rename), with byte-identical HELP/TYPE lines
in every file and no timestamps. Rendered by hand: the format is simple and prometheus_client
costs ~86 ms of import.

The interface is stable (README "Prometheus"): the metric names below and two labels only,
`cronjob` (the exact job name) and `result` on the two per-result families. No `host` or
`instance`: node_exporter's target adds `instance`. Each job's file is
cronwrap_<job>.prom with the name kept as it is where it is safe in a file name and %XX
elsewhere, so two jobs never share a file (backup.nightly and backup_nightly stay apart) and
`metrics prune` reads the job back from the file name."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

RESULTS = ("success", "failure", "timeout", "cancelled", "skipped", "crashed")
PREFIX, SUFFIX = "cronwrap_", ".prom"
# a run may start this late after its slot (cron's start-up, a busy host) before it counts as
# missed, on top of the job's own --jitter and, with --on-overlap wait, its --lock-wait
GRACE_S = 300.0
TREND_RUNS = 20  # duration trend over the last 20 successful runs ...
TREND_MIN_RUNS = 5  # ... once there are 5 (the numbers the --slow-factor check uses)

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
    "cronwrap_duration_median_seconds": (
        "gauge",
        "Median wall time of the job's last 20 successful runs (once there are 5).",
    ),
    "cronwrap_duration_p95_seconds": (
        "gauge",
        "95th percentile (nearest rank) of the wall time of the job's last 20 successful runs "
        "(once there are 5).",
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
    "cronwrap_next_run_timestamp_seconds": (
        "gauge",
        "Unix time of the first scheduled slot after the most recent start (with --schedule).",
    ),
    "cronwrap_expected_by_timestamp_seconds": (
        "gauge",
        "Unix time by which that slot's run must have started: the slot plus grace. "
        "time() > this means a run was missed.",
    ),
}

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@+-")


def file_name(job: str) -> str:
    """cronwrap_<job>.prom, with every byte outside [A-Za-z0-9._@+-] written %XX: one file
    per job name, never shared, and readable for the usual names."""
    stem = "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in job)
    return f"{PREFIX}{stem}{SUFFIX}"


def job_of(entry: str) -> str | None:
    """The job whose file this is (the inverse of file_name), or None for other files."""
    if not (entry.startswith(PREFIX) and entry.endswith(SUFFIX)):
        return None
    stem = entry[len(PREFIX) : -len(SUFFIX)]
    raw = bytearray()
    i = 0
    while i < len(stem):
        c = stem[i]
        if c == "%":
            try:
                raw.append(int(stem[i + 1 : i + 3], 16))
            except ValueError:
                return None
            i += 3
            continue
        if c not in _SAFE:
            return None
        raw += c.encode()
        i += 1
    try:
        name = raw.decode()
    except UnicodeDecodeError:
        return None
    return name if name and file_name(name) == entry else None


def label_value(text: str) -> str:
    """A label value in the text exposition format: backslash, quote and newline escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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
    lab = f'cronjob="{label_value(job)}"'
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


def schedule_gauges(
    schedule: str | None, tz: str | None, *, after: datetime, grace_s: float
) -> dict[str, float | None]:
    """next run, expected-by (next run + grace) and the interval, from the first two slots
    after `after` (the run's start); nothing without a clock schedule."""
    if not schedule:
        return {}
    from cronwrap.cron.schedule import parse, zone
    from cronwrap.errors import CronwrapError

    try:
        slots = parse(schedule).next_runs(after, zone(tz), 2)
    except CronwrapError:
        return {}
    if not slots:
        return {}
    first = slots[0].timestamp()
    out: dict[str, float | None] = {
        "cronwrap_next_run_timestamp_seconds": first,
        "cronwrap_expected_by_timestamp_seconds": first + grace_s,
    }
    if len(slots) == 2:
        out["cronwrap_expected_interval_seconds"] = slots[1].timestamp() - first
    return out


def grace(jitter_s: float | None, lock_wait_s: float | None) -> float:
    """How late a run may legitimately start after its slot: GRACE_S, plus --jitter, plus
    --lock-wait when the job waits for the lock."""
    return GRACE_S + (jitter_s or 0.0) + (lock_wait_s or 0.0)


def duration_gauges(durations: Sequence[float]) -> dict[str, float | None]:
    """Median and p95 (nearest rank) of recent successful runs, once there are enough."""
    if len(durations) < TREND_MIN_RUNS:
        return {}
    ordered = sorted(durations)
    n = len(ordered)
    mid = n // 2
    median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    p95 = ordered[max(0, -(-95 * n // 100) - 1)]
    return {
        "cronwrap_duration_median_seconds": round(median, 6),
        "cronwrap_duration_p95_seconds": round(p95, 6),
    }


# what a run's start keeps from the file of the run before: the facts of the last finished run,
# so that alerts on them (failing, slow) do not clear while the next run is going on
CARRIED = (
    "cronwrap_last_end_timestamp_seconds",
    "cronwrap_last_duration_seconds",
    "cronwrap_last_exit_code",
    "cronwrap_last_attempts",
)


def previous_run(directory: str, job: str) -> tuple[dict[str, float | None], str | None]:
    """The last finished run's gauges and result as the job's current file has them; empty
    when there is no file or it is not one we wrote."""
    values: dict[str, float | None] = {}
    result = None
    try:
        with open(path_for(directory, job), encoding="utf-8") as f:
            text = f.read(1 << 20)
    except (OSError, UnicodeError):
        return {}, None
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, _, rest = line.partition("{")
        labels, _, number = rest.rpartition("} ")
        try:
            value = float(number)
        except ValueError:
            continue
        if name in CARRIED:
            values[name] = value
        elif name == "cronwrap_last_result" and value == 1 and 'result="' in labels:
            found = labels.rsplit('result="', 1)[1].split('"', 1)[0]
            result = found if found in RESULTS else None
    return values, result


def path_for(directory: str, job: str) -> str:
    return os.path.join(directory, file_name(job))


def write_atomic(directory: str, job: str, text: str) -> str:
    """Temp file in the same directory (ignored by the collector: it reads *.prom), chmod
    0644, then rename over the old file; readers see the old file or the new one, whole."""
    final = path_for(directory, job)
    tmp = os.path.join(directory, f".{file_name(job)}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, text.encode())
        os.fchmod(fd, 0o644)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    return final


def stale(directory: str, keep: set[str]) -> list[str]:
    """cronwrap's files in directory whose job is not in `keep` (exact names), sorted; files
    of an older naming that no longer map back to a job count as stale too."""
    out = []
    for entry in sorted(os.listdir(directory)):
        if not (entry.startswith(PREFIX) and entry.endswith(SUFFIX)):
            continue
        job = job_of(entry)
        if job is None or job not in keep:
            out.append(entry)
    return out


def prune(directory: str, keep: set[str]) -> list[str]:
    """Remove the files of jobs not in `keep`; returns what was removed."""
    removed = []
    for entry in stale(directory, keep):
        try:
            os.unlink(os.path.join(directory, entry))
        except FileNotFoundError:
            continue  # another prune was quicker
        removed.append(entry)
    return removed
