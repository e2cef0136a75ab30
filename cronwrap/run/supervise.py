"""One run from start to finish, in phases: lock → start → attempts → judge → end → exit.
The reporters (run history, event log, pings, alerts, metrics, cron mail) are called through
one guard (run/reporting.py): nothing of theirs can stop the job or change its exit code.
Never imports click."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Mapping, Sequence

from cronwrap.errors import CronwrapError
from cronwrap.options import Job
from cronwrap.paths import Paths, ensure_dir
from cronwrap.redact import REDACT_MARGIN
from cronwrap.run import context as job_context
from cronwrap.run import judge
from cronwrap.run import process as runner
from cronwrap.run.reporting import Attempt, Outcome, Reporters, Run, guard
from cronwrap.stdlib import datetime, timezone

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from threading import Thread

    from cronwrap.run.context import RunOrigin
    from cronwrap.run.lease_pg import PgLease
    from cronwrap.run.lock import Lock
    from cronwrap.run.reporting import Reporter

__all__ = ["Outcome", "exit_with", "supervise"]

TAIL_IN_STORE = 4096
# fleet mode with --catch-up and no --catch-up-max-age: how long a slot claim is kept, so a
# host that was down that long still sees which host ran the slot (and never runs it twice)
CATCH_UP_CLAIM_TTL = 7 * 86400.0


def new_run_id() -> str:
    """A random (version 4) UUID; the uuid module costs start-up time for this one call."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def supervise(
    job: Job,
    paths: Paths,
    *,
    env: Mapping[str, str],
    rand: Callable[[float, float], float] = judge.uniform,
    now: Callable[[], datetime] = utcnow,
    warnings: Sequence[str] = (),
    origin: RunOrigin | None = None,
) -> Outcome:
    """Run `job` once under supervision and return what happened. `warnings` are problems
    found before (options left out): said once each and recorded on the run. `origin` says
    how the run came about (default: cron started it; else a rerun or a catch-up)."""
    run = Run(job, paths, new_run_id(), job.host_id or os.uname().nodename)
    for message in warnings:
        run.warn(message)
    canceller = runner.Canceller()
    canceller.install()
    run.canceller = canceller
    run.child_env = _child_env(run, env)
    reporters = Reporters(run, _reporters(run, env))
    job_context.begin(run, origin, env, now())
    try:
        if job.jitter and not canceller.sleep(rand(0.0, job.jitter)):
            return _not_started(run, reporters, now, cancelled="during the --jitter sleep")
        lock, skip_reason = _take_lock(run, canceller, now)
        if canceller.signum is not None:
            if lock is not None:
                lock.release()
            return _not_started(run, reporters, now, cancelled="while waiting for the lock")
        if skip_reason is not None:
            return _not_started(run, reporters, now, reason=skip_reason)
        try:
            if lock is not None:
                lock.keep_alive(lambda reason: _lease_lost(run, canceller, reason))
            _open_output(run)
            run.started_at = now()
            reporters.start()
            _collect_from_now_on()
            result, attempts, duration = _attempts(run, reporters, canceller, lock, rand, now)
            outcome = guard(
                run, "cannot judge the run", _judge, run, result, attempts, duration, lock, now
            ) or _plain_outcome(run, result, attempts, duration, now)
            reporters.end(outcome)
            return outcome
        finally:
            if lock is not None:  # after the job: a failed release must not change its code
                guard(run, "cannot release the lock", lock.release)
    finally:
        run.close()


# ------------------------------------------------------------------ before the job


def _reporters(run: Run, env: Mapping[str, str]) -> list[Reporter]:
    """Redaction and the reporters the job's options ask for. A reporter that cannot be set
    up (a bad pattern, a missing extra) is left out with a warning; the job runs."""
    from cronwrap.run.reporters import CronMailReporter, EventReporter, StoreReporter

    job = run.job
    chosen: list[Reporter] = [job_context.ContextReporter(), StoreReporter(), EventReporter()]
    secrets: list[str] = []
    if job.ping or job.ping_uuid or job.ping_key or job.ping_slug:
        from cronwrap.run.pings import ping_reporter

        pinger = guard(run, "no Healthchecks pings", ping_reporter, run, env)
        if pinger is not None:
            chosen.append(pinger)
            secrets = pinger.target.secrets()  # the bare check UUID or ping key too
    guard(run, "redaction", _setup_redaction, run, secrets)
    if job.alert or job.alert_cmd:
        from cronwrap.run.alerting import AlertReporter

        chosen.append(AlertReporter())  # entry left out the URLs that cannot be delivered
    if job.metrics_dir:
        from cronwrap.run.reporters import MetricsReporter

        chosen.append(MetricsReporter())
    if job.fleet_store:
        from cronwrap.run.ship import FleetReporter

        shipper = guard(run, "fleet store left out", FleetReporter, run)
        if shipper is not None:
            chosen.append(shipper)
    chosen.append(CronMailReporter())
    return chosen


def _setup_redaction(run: Run, extra_secrets: list[str]) -> None:
    from cronwrap.redact import Redactor, compile_patterns

    job = run.job
    patterns = []
    for pattern in job.redact:
        try:
            patterns.extend(compile_patterns([pattern]))
        except ValueError as err:
            # what the pattern was meant to hide could leak: no output of this run goes
            # to pings, alerts or the history (the job still runs, as the bare line would)
            run.withhold_output = True
            run.warn(
                f"--redact {pattern!r} left out: {err}; the job's output is kept out of pings, "
                "alerts and the history"
            )
    secrets = [
        v
        for v in (job.ping, job.ping_uuid, job.ping_key, job.lock_url, job.fleet_store, *job.alert)
        if v
    ]
    secrets += extra_secrets
    run.redact = Redactor(
        env=run.child_env,
        env_globs=job.redact_env,
        patterns=patterns,
        secrets=secrets,
        on_slow=lambda: _redact_too_slow(run),
    )


def _redact_too_slow(run: Run) -> None:
    run.withhold_output = True
    run.warn(
        "--redact took more than 1 s on one text and was stopped (a pattern that backtracks, "
        "as '(a+)+$' does): the job's output is kept out of pings, alerts and the history"
    )


def _child_env(run: Run, env: Mapping[str, str]) -> dict[str, str]:
    out = dict(env)
    for item in run.job.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            run.warn(f"--env {item!r} left out: expected KEY=VALUE")
            continue
        out[key] = value
    out["CRONWRAP_JOB"] = run.job.name
    out["CRONWRAP_RUN_ID"] = run.run_id
    return out


def _take_lock(
    run: Run, canceller: runner.Canceller, now: Callable[[], datetime]
) -> tuple[Lock | None, str | None]:
    """The lock, and under it the catch-up check (a slot that ran meanwhile is skipped)."""
    lock, skip_reason = _acquire_lock(run, canceller, now)
    if skip_reason is None:
        skip_reason = job_context.slot_already_ran(run)
        if skip_reason is not None and lock is not None:
            lock.release()
            lock = None
    return lock, skip_reason


def _acquire_lock(
    run: Run, canceller: runner.Canceller, now: Callable[[], datetime]
) -> tuple[Lock | None, str | None]:
    """(lock, None) to run — lock None when overlap is allowed or no lock could be had —
    or (None, reason) to skip."""
    job = run.job
    if job.on_overlap == "allow":
        return None, None
    if job.lock_url:
        return _take_fleet_lock(run, canceller, now)
    from cronwrap.run.lock import JobLock, safe_lock_dir

    lock_dir, problem = safe_lock_dir(run.paths.lock_path, _private_lock_dir(run.paths))
    if problem:
        run.warn(problem)
    if lock_dir is None:
        return None, None
    lock = JobLock(os.path.join(lock_dir, f"{job.name}.lock"))
    try:
        wait = job.lock_wait if job.on_overlap == "wait" else 0.0
        held = lock.acquire(wait_s=wait, sleep=canceller.sleep)
    except CronwrapError as err:
        # a bare crontab line has no lock either: run unlocked rather than not at all
        run.warn(f"running without overlap lock: {err}")
        return None, None
    return (lock, None) if held else (None, "previous run still holds the lock")


def _private_lock_dir(paths: Paths) -> str:
    """Where locks go when the lock dir is not ours alone: under the (private) state dir."""
    fallback = os.path.join(paths.state_path, "locks")
    return (
        fallback if fallback != paths.lock_path else os.path.join(paths.state_path, "private-locks")
    )


def _take_fleet_lock(
    run: Run, canceller: runner.Canceller, now: Callable[[], datetime]
) -> tuple[Lock | None, str | None]:
    """Claim the scheduled slot and take the lease: (lease, None) to run, (None, reason) to
    skip, (None, None) to run unlocked (--lock-unavailable run)."""
    from cronwrap.redact import redact_url
    from cronwrap.run import lease as fleet

    job = run.job
    url = job.lock_url
    assert url is not None  # only called in fleet mode
    try:
        lease: fleet.Fleet | PgLease
        if url.startswith(("postgresql://", "postgres://")):
            from cronwrap.run.lease_pg import PgLease

            lease = PgLease(url, job.name, host=run.host, run_id=run.run_id, ttl_s=job.lock_ttl)
        else:
            lease = fleet.Fleet(
                fleet.connect(url),
                job.name,
                host=run.host,
                run_id=run.run_id,
                ttl_s=job.lock_ttl,
                url=url,
            )
        if job.schedule:
            # the slot of the moment cron started us, not of now: after --jitter or a lock
            # wait, now may be past the tolerance, and each host would then run it
            slot = run.origin.slot or fleet.slot_for(
                job.schedule, job.tz, run.invoked_at or now(), job.slot_tolerance
            )
            if slot is not None:
                from cronwrap.run.reporters import expected_interval

                interval = expected_interval(run) or 86400.0
                ttl = max(2 * job.slot_tolerance, min(86400.0, interval))
                if job.catch_up:  # a host back from downtime must still see who ran it
                    ttl = max(ttl, job.catch_up_max_age or CATCH_UP_CLAIM_TTL)
                winner = lease.claim_slot(slot, ttl_s=ttl)
                if winner is not None:
                    return None, f"ran on {winner} (slot {slot.isoformat()})"
                run.slot = slot  # the claimed slot is the run's CRONWRAP_SLOT
        wait = job.lock_wait if job.on_overlap == "wait" else 0.0
        if not lease.acquire(wait_s=wait, sleep=canceller.sleep):
            holder = lease.holder()
            return None, "previous run still holds the lease" + (f" on {holder}" if holder else "")
        return lease, None
    except fleet.LockUnavailableError as err:
        policy = job.lock_unavailable
        run.emit("lock.error", str(err), url=redact_url(url), policy=policy)
        if policy == "run":
            run.warn(f"{err}; running without the fleet lock (--lock-unavailable run)")
            return None, None
        if policy == "fail":
            raise CronwrapError(f"{err} (--lock-unavailable fail)") from None
        run.warn(f"{err}; skipping this run so no two hosts run it (--lock-unavailable skip)")
        from cronwrap.run.alerting import base_facts, send_alert

        facts = {**base_facts(run), "status": "skipped", "reason": f"not run: {err}"}
        guard(run, "alert", send_alert, run, "failure", facts)
        return None, f"not run: {err}"


def _lease_lost(run: Run, canceller: runner.Canceller, reason: str) -> None:
    """The fleet lease is gone mid-run: say so loudly, alert, and kill if asked to."""
    import signal

    from cronwrap.run.alerting import base_facts, send_alert

    job = run.job
    run.emit("lock.lost", f"fleet lease lost: {reason}", level="error", policy=job.on_lock_lost)
    kill = job.on_lock_lost == "kill"
    then = "; killing the job (--on-lock-lost kill)" if kill else "; another host may start it now"
    run.warn(f"fleet lease of {job.name} lost: {reason}{then}")
    facts = {**base_facts(run), "status": "lock lost", "reason": reason}
    guard(run, "alert", send_alert, run, "failure", facts)
    if kill:
        run.lock_lost_kill = True
        canceller.cancel(signal.SIGTERM)


def _not_started(
    run: Run,
    reporters: Reporters,
    now: Callable[[], datetime],
    *,
    reason: str | None = None,
    cancelled: str | None = None,
) -> Outcome:
    """A run that never started the job: skipped (lock held, slot taken elsewhere), or
    cancelled by a signal (cron or systemd stopping) `cancelled` — while cronwrap waited."""
    job = run.job
    if cancelled is not None:
        signum = run.canceller_signum
        reason = f"cancelled by signal {signum} {cancelled}; the job was not started"
        outcome = Outcome(run.run_id, "cancelled", 128 + signum, reason=reason)
    else:
        outcome = Outcome(run.run_id, "skipped", job.overlap_exit_code, reason=reason)
    run.started_at = outcome.started_at = outcome.ended_at = now()
    outcome.warnings = run.warnings
    reporters.end(outcome)
    return outcome


def _collect_from_now_on() -> None:
    """The fast entry point starts with the cycle collector off (start-up makes no cyclic
    garbage); a job may run for hours, so it collects again while the job runs, sparing what
    start-up made (frozen: never scanned again). A collector someone left on stays as it is."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _open_output(run: Run) -> None:
    """The per-run output log and the sink that feeds it, cron's stdout/stderr and pings."""
    log_file = None
    try:
        directory = ensure_dir(os.path.join(run.paths.output_path, run.job.name))
        path = os.path.join(directory, f"{run.run_id}.log")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        log_file = os.fdopen(os.open(path, flags, 0o640), "wb", buffering=0)  # as it comes
        run.log_path = path
    except (CronwrapError, OSError) as err:
        run.warn(f"output is not kept in a log file: {err}")
    run.sink = runner.OutputSink(
        passthrough=not run.job.quiet,
        log_file=log_file,
        max_log_size=run.job.max_log_size,
    )


# ------------------------------------------------------------------ the attempts


def _attempts(
    run: Run,
    reporters: Reporters,
    canceller: runner.Canceller,
    lock: Lock | None,
    rand: Callable[[float, float], float],
    now: Callable[[], datetime],
) -> tuple[runner.AttemptResult, int, float]:
    """Run the command until it succeeds, fails for good, or the retries run out.
    Returns the last result, the number of attempts and the job's own duration."""
    job = run.job
    sink = run.sink
    assert sink is not None
    t0 = time.monotonic()
    threads: list[Thread] = []
    watch = None
    if job.max_runtime is not None:
        watch = (t0 + job.max_runtime, lambda: threads.append(_over_max_runtime(run)))
    runner.become_subreaper()
    argv = ["/bin/sh", "-c", " ".join(job.command)] if job.shell else list(job.command)
    total_deadline = t0 + job.timeout_total if job.timeout_total is not None else None
    max_attempts = job.retries + 1
    attempt = 0
    if canceller.signum is not None:  # during the start (ping): the job is not started
        reason = f"cancelled by signal {canceller.signum} during the start; the job was not started"
        return runner.AttemptResult("cancelled", 128 + canceller.signum, None, 0.0, reason), 0, 0.0
    while True:
        attempt += 1
        timeout = job.timeout
        if total_deadline is not None:
            left = total_deadline - time.monotonic()
            timeout = left if timeout is None else min(timeout, left)
        if attempt > 1:
            sink.mark(f"\n[cronwrap: attempt {attempt} of {max_attempts}]\n")
        attempt_at = now()
        run.emit("attempt.start", attempt=attempt, attempts_max=max_attempts)
        deadline = time.time() + timeout if timeout is not None else None
        result = runner.run_attempt(
            argv,
            env=job_context.attempt_env(run.child_env, attempt, deadline),
            cwd=job.cwd,
            timeout_s=timeout,
            kill_after_s=job.kill_after,
            sink=sink,
            canceller=canceller,
            pass_fds=(lock.fd,) if lock is not None and lock.fd is not None else (),
            watch=watch,
        )
        result = judge.accept_ok_codes(job, result)
        if (
            result.status == "timeout"
            and total_deadline is not None
            and time.monotonic() >= total_deadline - 0.01
        ):
            result = runner.AttemptResult(
                "timeout", 124, result.signal, result.duration_s,
                f"--timeout-total {job.timeout_total:g}s reached",
            )  # fmt: skip
        retrying = (
            result.status not in ("success", "cancelled")
            and attempt < max_attempts
            and judge.is_retryable(result, job)
        )
        delay = judge.backoff_delay(attempt, job, rand) if retrying else 0.0
        if total_deadline is not None and time.monotonic() + delay >= total_deadline:
            retrying = False
        reporters.attempt(Attempt(attempt, result, attempt_at, now(), retrying=retrying))
        if not retrying:
            break
        if not canceller.sleep(delay):
            assert canceller.signum is not None
            result = runner.AttemptResult(
                "cancelled", 128 + canceller.signum, None, result.duration_s,
                "cancelled during retry backoff",
            )  # fmt: skip
            break
    duration = time.monotonic() - t0
    for thread in threads:  # a max-runtime alert still on its way
        thread.join(job.alert_timeout)
    return result, attempt, duration


def _over_max_runtime(run: Run) -> Thread:
    """Called once while the job runs past --max-runtime: log it and alert, without
    stopping the job or the output pump (the alert goes out from a thread)."""
    from cronwrap.run.alerting import alert_in_background, base_facts

    message = f"still running after --max-runtime {run.job.max_runtime:g}s"
    run.emit("run.max_runtime", message, level="warning")
    run.warn(f"{run.job.name} is {message}")
    return alert_in_background(
        run, "slow", {**base_facts(run), "status": "running", "reason": message}
    )


# ------------------------------------------------------------------ judging


def _judge(
    run: Run,
    result: runner.AttemptResult,
    attempts: int,
    duration: float,
    lock: Lock | None,
    now: Callable[[], datetime],
) -> Outcome:
    """What the run came to: the last attempt judged by --min-runtime, a lost lease, and
    the slow and max-runtime marks."""
    job = run.job
    sink = run.sink
    assert sink is not None
    sink.close_log()
    for message in sink.errors:
        run.warn(message)
    result = judge.judge_runtime(job, result, duration)
    if run.lock_lost_kill:
        result = runner.AttemptResult(
            "failed", result.exit_code, result.signal, result.duration_s,
            "killed: the fleet lease was lost (--on-lock-lost kill)",
        )  # fmt: skip
    outcome = Outcome(
        run.run_id,
        result.status,
        result.exit_code,
        result.signal,
        attempts,
        duration,
        result.reason,
        run.warnings,
    )
    outcome.started_at = run.started_at
    if job.max_runtime is not None and duration > job.max_runtime:
        outcome.flags.append("max-runtime")
    if result.status == "success":
        recent = run.query(
            "recent durations", lambda s: s.recent_durations(job.name, exclude=run.run_id)
        )
        outcome.slow = judge.slow_message(job, duration, recent or [])
        if outcome.slow is not None:
            outcome.flags.append("slow")
            run.emit("run.slow", outcome.slow, level="warning",
                  duration_s=round(duration, 6))  # fmt: skip
            run.warn(f"{job.name} {outcome.slow}")
    if lock is not None and lock.lost:
        outcome.flags.append("lock-lost")
    if not run.withhold_output:
        # masked before it is cut: read a margin more, from the start of its line, so that a
        # secret across the cut (and the option and program before it that tell it is one) is
        # masked whole
        kept = sink.tail_bytes(TAIL_IN_STORE + REDACT_MARGIN, whole_line=True)
        tail = run.redact.bytes(kept)[-TAIL_IN_STORE:]
        outcome.tail = tail.decode("utf-8", "replace")
    outcome.ended_at = now()
    if job.quiet and result.status != "success":
        outcome.output, outcome.output_err = sink.held(1), sink.held(2)
    return outcome


def _plain_outcome(
    run: Run,
    result: runner.AttemptResult,
    attempts: int,
    duration: float,
    now: Callable[[], datetime],
) -> Outcome:
    """The outcome straight from the last attempt, when judging it failed: the job ran,
    so its exit code stands."""
    outcome = Outcome(
        run.run_id, result.status, result.exit_code, result.signal, attempts, duration,
        result.reason, run.warnings,
    )  # fmt: skip
    outcome.started_at = run.started_at
    outcome.ended_at = now()
    return outcome


def exit_with(outcome: Outcome) -> int:
    """The exit status for the process: the job's (what cron mails was said by the
    cron-mail reporter)."""
    return outcome.exit_code
