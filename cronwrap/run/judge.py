"""Judging a run by more than its exit code: ok exit codes, --min-runtime, which failures
are worth a retry, the backoff between tries, and the slow/max-runtime marks.
Pure functions of the job and the results; never imports click."""

from __future__ import annotations

import os

from cronwrap.run.process import AttemptResult

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from cronwrap.options import Job

NEVER_RETRY = frozenset({126, 127})  # the shell's "cannot execute" and "not found"
# A run must be this much slower than its median, in seconds, before it counts as slow:
# a 10 ms job taking 40 ms is noise, not news.
SLOW_MIN_EXTRA_S = 0.5
SLOW_MIN_HISTORY = 5


def is_retryable(result: AttemptResult, job: Job) -> bool:
    """Only failures worth another try: not 126/127, not a command that could not start,
    not --no-retry-on, only --retry-on when given; timeouts with --retry-on-timeout."""
    if result.status == "timeout":
        return job.retry_on_timeout
    if result.status != "failed" or not result.started:
        return False
    code = result.exit_code
    if code in NEVER_RETRY:
        return False
    if job.no_retry_on and code in job.no_retry_on:
        return False
    if job.retry_on is not None:
        return code in job.retry_on
    return True


def uniform(low: float, high: float) -> float:
    """random.uniform from os.urandom: the random module costs start-up time on every run
    for the jitter and backoff draws, which need no reproducible sequence."""
    return low + (high - low) * (int.from_bytes(os.urandom(7), "big") >> 3) / (1 << 53)


def backoff_delay(retry: int, job: Job, rand: Callable[[float, float], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(retry-1))]."""
    ceiling = min(job.retry_max_delay, job.retry_delay * 2 ** (retry - 1))
    return rand(0.0, ceiling)


def accept_ok_codes(job: Job, result: AttemptResult) -> AttemptResult:
    """--ok-exit-codes: a listed code is a success (cronwrap still exits with it), and 0 is
    a failure when it is not listed. Applied per attempt, so retries see it too."""
    codes = job.ok_exit_codes
    if (
        result.status == "failed"
        and result.started
        and result.signal is None
        and result.exit_code in codes
    ):
        return AttemptResult(
            "success",
            result.exit_code,
            None,
            result.duration_s,
            f"exit code {result.exit_code} is OK by --ok-exit-codes",
        )
    if result.status == "success" and 0 not in codes:
        return AttemptResult(
            "failed", 0, None, result.duration_s, "exit code 0 is not in --ok-exit-codes"
        )
    return result


def judge_runtime(job: Job, result: AttemptResult, duration: float) -> AttemptResult:
    """--min-runtime: a success that finished too fast probably did nothing."""
    if result.status == "success" and job.min_runtime is not None and duration < job.min_runtime:
        return AttemptResult(
            "failed",
            result.exit_code,
            result.signal,
            result.duration_s,
            f"finished in {duration:.2f}s, faster than --min-runtime {job.min_runtime:g}s "
            "(it probably did nothing)",
        )
    return result


def slow_message(job: Job, duration: float, recent: Sequence[float]) -> str | None:
    """Why a successful run counts as slow (--slow-factor × the median of recent successful
    runs, and at least SLOW_MIN_EXTRA_S more), or None."""
    if len(recent) < SLOW_MIN_HISTORY:
        return None
    ordered = sorted(recent)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    if median <= 0 or duration <= job.slow_factor * median:
        return None
    if duration - median < SLOW_MIN_EXTRA_S:
        return None
    return (
        f"took {duration:.2f}s, more than {job.slow_factor:g}x the median "
        f"{median:.2f}s of its last {len(recent)} successful runs"
    )
