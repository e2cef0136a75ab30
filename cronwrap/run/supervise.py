"""One run from start to finish: lock, record, attempts with retries, record, report.
Reporting (store, event log, pings) never changes the outcome: its failures become warnings.
Never imports click, rich or the CLI."""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from cronwrap.config import Paths, ensure_dir
from cronwrap.errors import CronwrapError
from cronwrap.options import Job
from cronwrap.redact import Redactor
from cronwrap.run import process as runner
from cronwrap.run.lock import JobLock, safe_lock_dir
from cronwrap.state.events import EventLog

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from cronwrap.notify.healthchecks import PingBody, PingSession
    from cronwrap.run.context import RunContext
    from cronwrap.run.lease import Fleet
    from cronwrap.state.store import Store


NEVER_RETRY = frozenset({126, 127})
START_BUSY_S = 1.0  # most a busy store may delay the job's start (the row is written late)
END_BUSY_S = 10.0  # most a busy store may add at the end of the run (then it is skipped)
TAIL_IN_STORE = 4096


class Outcome:
    """What a run came to; exit_code is what `cronwrap run` exits with."""

    __slots__ = (
        "attempts",
        "duration_s",
        "exit_code",
        "output",
        "output_err",
        "reason",
        "run_id",
        "signal",
        "status",
        "warnings",
    )

    def __init__(
        self,
        run_id: str,
        status: str,
        exit_code: int,
        signal: int | None = None,
        attempts: int = 0,
        duration_s: float = 0.0,
        reason: str | None = None,
        warnings: list[str] | None = None,
        output: bytes = b"",
        output_err: bytes = b"",
    ) -> None:
        self.run_id = run_id
        self.status = status  # success|failed|timeout|cancelled|skipped
        self.exit_code = exit_code
        self.signal = signal
        self.attempts = attempts
        self.duration_s = duration_s
        self.reason = reason
        self.warnings = warnings if warnings is not None else []
        self.output = output  # for chronic mode: what to print on failure, stdout
        self.output_err = output_err  # and stderr


def new_run_id() -> str:
    """A random (version 4) UUID; the uuid module costs start-up time for this one call."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def is_retryable(result: runner.AttemptResult, job: Job) -> bool:
    """Only failures worth another try: not 126/127, not --no-retry-on, only --retry-on."""
    if result.status == "timeout":
        return bool(job.retry_on_timeout)
    if result.status != "failed":
        return False
    code = result.exit_code
    if code in NEVER_RETRY or (result.reason and result.reason.startswith("cannot enter")):
        return False
    if job.no_retry_on and code in job.no_retry_on:
        return False
    if job.retry_on is not None:
        return code in job.retry_on
    return True


def backoff_delay(retry: int, job: Job, rand: Callable[[float, float], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(retry-1))]."""
    ceiling = min(float(job.retry_max_delay), float(job.retry_delay) * 2 ** (retry - 1))
    return rand(0.0, ceiling)


def command_text(job: Job) -> str:
    return job.command[0] if job.shell else shlex.join(job.command)


class _Run:
    """The reporting side of one run: store, event log and warnings, all failure-tolerant."""

    def __init__(self, job: Job, paths: Paths, run_id: str, host: str) -> None:
        self.job = job
        self.paths = paths
        self.run_id = run_id
        self.host = host
        self.warnings: list[str] = []
        log_path = job.log_file if job.log_file is not None else str(paths.event_log)
        self.events = EventLog(log_path, fmt=job.log_format, job=job.name, run_id=run_id, host=host)
        self.store: Store | None = None
        self.redact: Redactor = Redactor()
        self.pings: PingSession | None = None
        self.child_env: Mapping[str, str] = {}
        self.lock_lost_kill = False
        self.start_pending: Callable[[Store], object] | None = None  # the store was busy

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            with contextlib.suppress(OSError):
                line = f"cronwrap: {self.job.name}: {message}\n"
                os.write(2, line.encode("utf-8", "replace"))

    def emit(self, event: str, message: str = "", **fields: object) -> None:
        fields = {k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        self.events.emit(event, self.redact.text(message), **fields)
        while self.events.errors:
            self.warn(self.events.errors.pop(0))

    def open_store(self) -> None:
        from cronwrap.state.store import Store

        try:
            ensure_dir(self.paths.state_dir, private=True)
            # short: another process holding the write lock must not delay the job's start
            self.store = Store.open(self.paths.db_file, busy_timeout_s=START_BUSY_S)
        except CronwrapError as err:
            self.warn(f"run history is not recorded: {err}")
            return
        if self.store.recovered is not None:
            self.warn(
                f"run store {self.paths.db_file} was damaged: moved aside to "
                f"{self.store.recovered.name}, a fresh store is used from now on"
            )

    def store_call(self, what: str, fn: Callable[[Store], object]) -> object:
        from cronwrap.state.store import StoreBusyError

        if self.store is None:
            return None
        try:
            return fn(self.store)
        except StoreBusyError as err:
            # one line for the whole run; from now on writes do not wait at all
            self.store.set_busy_timeout(0)
            self.warn(f"{err}: parts of this run are not recorded")
            return None
        except CronwrapError as err:
            self.warn(f"cannot record {what}: {err}")
            return None

    def record_start(self, fn: Callable[[Store], object]) -> None:
        """The run's start row, written late (with the end) if the store is busy now."""
        from cronwrap.state.store import StoreBusyError

        if self.store is None:
            return
        try:
            fn(self.store)
        except StoreBusyError:
            self.start_pending = fn
        except CronwrapError as err:
            self.warn(f"cannot record the run start: {err}")
        with contextlib.suppress(CronwrapError):
            self.store.set_busy_timeout(END_BUSY_S)

    def record_start_late(self) -> None:
        if self.start_pending is not None:
            self.store_call("the run start", self.start_pending)
            self.start_pending = None

    def close(self) -> None:
        if self.pings is not None:
            self.pings.report_once()
        if self.store is not None:
            self.store.close()
            self.store = None


def _setup_reporting(
    run: _Run, job: Job, child_env: Mapping[str, str], env: Mapping[str, str]
) -> None:
    """Redaction and pings from the job's options; bad options raise before anything runs."""
    from cronwrap.errors import ConfigError
    from cronwrap.redact import compile_patterns

    try:
        patterns = compile_patterns(job.redact)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    secrets = [v for v in (job.ping, job.ping_uuid, job.ping_key, job.lock_url, *job.alert) if v]
    if job.alert:
        from cronwrap.notify.alerts import check_urls

        check_urls(list(job.alert))
    if not (job.ping or job.ping_uuid or job.ping_key or job.ping_slug):
        run.redact = Redactor(
            env=child_env, env_globs=job.redact_env, patterns=patterns, secrets=secrets
        )
        return
    from cronwrap import __version__
    from cronwrap.notify.healthchecks import Pinger, PingSession, target_from

    target = target_from(
        ping=job.ping,
        uuid=job.ping_uuid,
        key=job.ping_key,
        slug=job.ping_slug,
        create=job.ping_create,
        base=job.ping_base,
        job_name=job.name,
    )
    if target is not None:
        secrets += target.secrets()  # the bare check UUID or ping key too
    run.redact = Redactor(
        env=child_env, env_globs=job.redact_env, patterns=patterns, secrets=secrets
    )
    if target is None:
        return
    run.pings = PingSession(
        Pinger(target, user_agent=f"cronwrap/{__version__}", env=env),
        run_id=run.run_id,
        job=job.name,
        state_dir=run.paths.state_dir,
        start_budget=job.ping_start_budget,
        finish_budget=job.ping_finish_budget,
        body_limit=job.ping_body_limit,
        emit=run.emit,
        warn=run.warn,
    )


def _ping_body(
    run: _Run,
    job: Job,
    sink: runner.OutputSink | None,
    *,
    status: str,
    exit_code: int | None,
    signal: int | None,
    duration_s: float,
    attempt: int,
    reason: str | None,
) -> PingBody:
    from cronwrap import __version__
    from cronwrap.notify.healthchecks import PingBody, summary

    assert run.pings is not None
    header = summary(
        status=status,
        exit_code=exit_code,
        signal=signal,
        duration_s=duration_s,
        attempt=attempt,
        attempts_max=job.retries + 1,
        host=run.host,
        version=__version__,
        reason=run.redact(reason),
        job=job.name,
    )
    output = None if sink is None or job.no_output_in_ping else sink.head_and_tail
    return PingBody.redacted(header, output, run.redact.bytes, run.pings.body_limit())


def _open_output_log(run: _Run) -> tuple[Path | None, object]:
    try:
        directory = ensure_dir(run.paths.output_dir / run.job.name)
        path = directory / f"{run.run_id}.log"
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640
        )
        return path, os.fdopen(fd, "wb", buffering=0)  # written as it comes
    except (CronwrapError, OSError) as err:
        run.warn(f"output is not kept in a log file: {err}")
        return None, None


def _child_env(job: Job, env: Mapping[str, str], run_id: str) -> dict[str, str]:
    out = dict(env)
    for item in job.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CronwrapError(f"--env {item!r}: expected KEY=VALUE")
        out[key] = value
    out["CRONWRAP_JOB"] = job.name
    out["CRONWRAP_RUN_ID"] = run_id
    return out


def _mark_crashed_runs(run: _Run) -> None:
    """Runs of this job left 'running' by a cronwrap that died are shown as crashed."""

    def mark(store: Store) -> None:
        for rec in store.runs(run.job.name, limit=5):
            if rec.status == "running" and rec.host == run.host and not _pid_alive(rec.pid):
                why = f"cronwrap (pid {rec.pid}) died during the run"
                store.mark_crashed(rec.run_id, reason=why)
                if run.pings is not None:
                    from cronwrap.notify.healthchecks import PingBody

                    at = rec.started_at.isoformat(timespec="seconds")
                    run.pings.queue("fail", rec.run_id, PingBody(f"cronwrap: {why}\n"), at=at)

    run.store_call("crashed runs", mark)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def supervise(
    job: Job,
    paths: Paths,
    *,
    env: Mapping[str, str],
    rand: Callable[[float, float], float] = random.uniform,
    now: Callable[[], datetime] = utcnow,
    warnings: Sequence[str] = (),
    context: RunContext | None = None,
) -> Outcome:
    """Run `job` once under supervision and return what happened. `warnings` are problems
    found before (options left out), said once each and recorded on the run."""
    run_id = new_run_id()
    host = job.host_id or os.uname().nodename
    run = _Run(job, paths, run_id, host)
    for message in warnings:
        run.warn(message)
    canceller = runner.Canceller()
    canceller.install()
    child_env = _child_env(job, env, run_id)
    run.child_env = child_env
    _setup_reporting(run, job, child_env, env)

    if job.jitter and not canceller.sleep(rand(0.0, float(job.jitter))):
        return _not_started(job, run, now, canceller, "during the --jitter sleep")

    lock: JobLock | Fleet | None = None
    if job.on_overlap != "allow" and job.lock_url:
        lock, skip_reason = _take_fleet_lock(job, run, now)
        if skip_reason is not None:
            return _skip(job, run, now, reason=skip_reason)
    elif job.on_overlap != "allow":
        lock_dir, problem = safe_lock_dir(paths.lock_dir, _private_lock_dir(paths))
        if problem:
            run.warn(problem)
        lock = JobLock(lock_dir / f"{job.name}.lock") if lock_dir is not None else None
        held = True
        try:
            wait = float(job.lock_wait) if job.on_overlap == "wait" else 0.0
            if lock is not None:
                held = lock.acquire(wait_s=wait, sleep=canceller.sleep)
        except CronwrapError as err:
            # a bare crontab line has no lock either: run unlocked rather than not at all
            run.warn(f"running without overlap lock: {err}")
            lock, held = None, True
        if canceller.signum is not None:
            return _not_started(job, run, now, canceller, "while waiting for the lock")
        if not held:
            return _skip(job, run, now)

    try:
        if lock is not None and hasattr(lock, "keep_alive"):  # a fleet lease, not a flock
            lock.keep_alive(lambda reason: _lease_lost(run, job, canceller, reason))
        return _run_locked(job, run, canceller, child_env, lock, rand, now)
    finally:
        if lock is not None:
            lock.release()
        run.close()


def _private_lock_dir(paths: Paths) -> Path:
    """Where locks go when the lock dir is not ours alone: under the (private) state dir."""
    fallback = paths.state_dir / "locks"
    return fallback if fallback != paths.lock_dir else paths.state_dir / "private-locks"


def _take_fleet_lock(
    job: Job, run: _Run, now: Callable[[], datetime]
) -> tuple[Fleet | None, str | None]:
    """Claim the scheduled slot and take the Redis lease: (lease, None) to run,
    (None, reason) to skip, (None, None) to run unlocked (--lock-unavailable run)."""
    from cronwrap.redact import redact_url
    from cronwrap.run import lease as fleet

    url = job.lock_url
    assert url is not None  # only called in fleet mode
    try:
        client = fleet.connect(url)
        lease = fleet.Fleet(
            client,
            job.name,
            host=run.host,
            run_id=run.run_id,
            ttl_s=float(job.lock_ttl),
            url=url,
        )
        if job.schedule:
            slot = fleet.slot_for(job.schedule, job.tz, now(), float(job.slot_tolerance))
            if slot is not None:
                ttl = max(
                    2 * float(job.slot_tolerance), min(86400.0, _expected_interval(job) or 86400.0)
                )
                winner = lease.claim_slot(slot, ttl_s=ttl)
                if winner is not None:
                    return None, f"ran on {winner} (slot {slot.isoformat()})"
        wait = float(job.lock_wait) if job.on_overlap == "wait" else 0.0
        if not lease.acquire(wait_s=wait):
            holder = lease.holder()
            where = f" on {holder}" if holder else ""
            return None, f"previous run still holds the lease{where}"
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
        _send_alert(
            run,
            job,
            "failure",
            {**_base_facts(run, job), "status": "skipped", "reason": f"not run: {err}"},
        )
        return None, f"not run: {err}"


def _lease_lost(run: _Run, job: Job, canceller: runner.Canceller, reason: str) -> None:
    """The Redis lease is gone mid-run: say so loudly, alert, and kill if asked to."""
    import signal

    run.emit("lock.lost", f"fleet lease lost: {reason}", level="error", policy=job.on_lock_lost)
    run.warn(
        f"fleet lease of {job.name} lost: {reason}"
        + (
            "; killing the job (--on-lock-lost kill)"
            if job.on_lock_lost == "kill"
            else "; another host may start it now"
        )
    )
    _send_alert(
        run, job, "failure", {**_base_facts(run, job), "status": "lock lost", "reason": reason}
    )
    if job.on_lock_lost == "kill":
        run.lock_lost_kill = True
        canceller.cancel(signal.SIGTERM)


def _skip(
    job: Job,
    run: _Run,
    now: Callable[[], datetime],
    *,
    reason: str = "previous run still holds the lock",
    status: str = "skipped",
    exit_code: int | None = None,
) -> Outcome:
    """Record a run that did not start: skipped (overlap) or cancelled before its start."""
    code = job.overlap_exit_code if exit_code is None else exit_code
    run.open_store()
    at = now()
    run.store_call(
        f"the {status} run",
        lambda s: s.record_start(
            run_id=run.run_id,
            job=job.name,
            host=run.host,
            pid=os.getpid(),
            command=command_text(job),
            started_at=at,
            schedule=job.schedule,
            tz=job.tz,
            log_path=None,
            status=status,
        ),
    )
    run.store_call(
        f"the {status} run",
        lambda s: s.record_end(
            run_id=run.run_id,
            ended_at=at,
            status=status,
            exit_code=code,
            signal=None,
            attempts=0,
            duration_s=0.0,
            output_tail=None,
            reason=reason,
            count_as=_result_of(status),
        ),
    )
    run.emit(
        "run.skip" if status == "skipped" else "run.end",
        reason,
        status=status,
        exit_code=code,
        signal=None,
        duration_s=0.0,
        attempts=0,
    )
    if run.pings is not None:
        from cronwrap.notify.healthchecks import PingBody

        text = f"cronwrap: run of {job.name} on {run.host} {status}: {reason}\n"
        run.pings.log(PingBody(run.redact.text(text)))
    run.close()
    return Outcome(run.run_id, status, code, reason=reason, warnings=run.warnings)


def _not_started(
    job: Job, run: _Run, now: Callable[[], datetime], canceller: runner.Canceller, when: str
) -> Outcome:
    """A signal (cron or systemd stopping) arrived before the job started: it is not
    started at all, and the run is recorded as cancelled with 128 + the signal."""
    assert canceller.signum is not None
    code = 128 + canceller.signum
    reason = f"cancelled by signal {canceller.signum} {when}; the job was not started"
    run.warn(reason)
    return _skip(job, run, now, reason=reason, status="cancelled", exit_code=code)


def _run_locked(
    job: Job,
    run: _Run,
    canceller: runner.Canceller,
    child_env: dict[str, str],
    lock: JobLock | Fleet | None,
    rand: Callable[[float, float], float],
    now: Callable[[], datetime],
) -> Outcome:
    started_at = now()
    run.open_store()
    _mark_crashed_runs(run)
    log_path, log_file = _open_output_log(run)
    run.record_start(
        lambda s: s.record_start(
            run_id=run.run_id,
            job=job.name,
            host=run.host,
            pid=os.getpid(),
            command=run.redact.text(command_text(job)),
            started_at=started_at,
            schedule=job.schedule,
            tz=job.tz,
            log_path=str(log_path) if log_path else None,
            state_dir=str(run.paths.state_dir),
        ),
    )
    run.emit("run.start", command=command_text(job), attempts_max=job.retries + 1)
    if run.pings is not None:
        run.pings.start()
    _write_metrics(run, job, None, 0, None, started_at, None)
    t0 = time.monotonic()  # the job's duration: not the start ping's, not the replay's
    watch = None
    threads: list[object] = []
    if job.max_runtime is not None:
        watch = (t0 + float(job.max_runtime), lambda: threads.append(_over_max_runtime(run, job)))

    runner.become_subreaper()
    argv = ["/bin/sh", "-c", " ".join(job.command)] if job.shell else list(job.command)
    sink = runner.OutputSink(
        passthrough=not job.quiet,
        log_file=log_file,  # type: ignore[arg-type]
        max_log_size=job.max_log_size,
    )
    total_deadline = t0 + job.timeout_total if job.timeout_total is not None else None
    max_attempts = job.retries + 1
    result: runner.AttemptResult | None = None
    attempt = 0
    while attempt < max_attempts:
        if canceller.signum is not None and attempt == 0:  # during the start ping: not started
            result = runner.AttemptResult(
                "cancelled",
                128 + canceller.signum,
                None,
                0.0,
                f"cancelled by signal {canceller.signum} during the start; the job was not started",
            )
            run.warn(result.reason or "")
            break
        attempt += 1
        timeout = job.timeout
        if total_deadline is not None:
            left = total_deadline - time.monotonic()
            timeout = left if timeout is None else min(timeout, left)
        if attempt > 1:
            sink.mark(f"\n[cronwrap: attempt {attempt} of {max_attempts}]\n")
        attempt_at = now()
        run.emit("attempt.start", attempt=attempt, attempts_max=max_attempts)
        result = runner.run_attempt(
            argv,
            env=child_env,
            cwd=job.cwd,
            timeout_s=timeout,
            kill_after_s=job.kill_after,
            sink=sink,
            canceller=canceller,
            pass_fds=(lock.fd,) if lock and lock.fd else (),
            watch=watch,
        )
        result = _accept_ok_codes(job, result)
        if (
            result.status == "timeout"
            and total_deadline is not None
            and time.monotonic() >= total_deadline - 0.01
        ):
            result = runner.AttemptResult(
                "timeout",
                124,
                result.signal,
                result.duration_s,
                f"--timeout-total {job.timeout_total:g}s reached",
            )
        end_at = now()

        def record(
            store: Store,
            a: int = attempt,
            r: runner.AttemptResult = result,
            st: datetime = attempt_at,
            e: datetime = end_at,
        ) -> None:
            store.record_attempt(
                run_id=run.run_id,
                attempt=a,
                started_at=st,
                ended_at=e,
                status=r.status,
                exit_code=r.exit_code,
                signal=r.signal,
            )

        run.store_call("the attempt", record)
        run.emit(
            "attempt.end",
            result.reason or "",
            attempt=attempt,
            status=result.status,
            exit_code=result.exit_code,
            signal=result.signal,
            duration_s=round(result.duration_s, 6),
        )
        if result.exit_code in (125, 126, 127) and result.reason:  # cron mails the why
            run.warn(result.reason)
        if result.status in ("success", "cancelled") or attempt >= max_attempts:
            break
        if not is_retryable(result, job):
            break
        if run.pings is not None:
            run.pings.log(
                _ping_body(
                    run,
                    job,
                    sink,
                    status="attempt failed, retrying",
                    exit_code=result.exit_code,
                    signal=result.signal,
                    duration_s=result.duration_s,
                    attempt=attempt,
                    reason=result.reason,
                )
            )
        delay = backoff_delay(attempt, job, rand)
        if total_deadline is not None and time.monotonic() + delay >= total_deadline:
            break
        if not canceller.sleep(delay):
            assert canceller.signum is not None
            result = runner.AttemptResult(
                "cancelled",
                128 + canceller.signum,
                None,
                result.duration_s,
                "cancelled during retry backoff",
            )
            break

    assert result is not None
    sink.close_log()
    for message in sink.errors:
        run.warn(message)
    duration = time.monotonic() - t0
    for thread in threads:  # a max-runtime alert still on its way
        thread.join(float(job.alert_timeout))  # type: ignore[attr-defined]
    result = _judge(job, result, duration)
    if run.lock_lost_kill:
        result = runner.AttemptResult(
            "failed",
            result.exit_code,
            result.signal,
            result.duration_s,
            "killed: the fleet lease was lost (--on-lock-lost kill)",
        )
    flags = _runtime_flags(run, job, result, duration)
    if getattr(lock, "lost", None):
        flags.append("lock-lost")
    tail = run.redact.text(sink.tail_bytes(TAIL_IN_STORE).decode("utf-8", "replace"))
    ended_at = now()
    run.record_start_late()
    run.store_call(
        "the run end",
        lambda s: s.record_end(
            run_id=run.run_id,
            ended_at=ended_at,
            status=result.status,
            exit_code=result.exit_code,
            signal=result.signal,
            attempts=attempt,
            duration_s=duration,
            output_tail=tail,
            reason=run.redact(result.reason),
            flags=" ".join(flags) or None,
            count_as=_result_of(result.status),
        ),
    )
    # one policy for pings and alerts: a cancelled run did not do its work, so it is a
    # failure (Healthchecks gets its exit status, 128+N; alerts count it in the streak)
    bad = result.status in ("failed", "timeout", "cancelled")
    streak = 1 if bad else 0
    if job.alert or job.alert_cmd or (run.pings is not None and bad and job.alert_after > 1):
        streak_value = run.store_call("the failure streak", lambda s: s.streak(job.name))
        streak = int(streak_value) if isinstance(streak_value, int) else streak
    if run.pings is not None:
        from cronwrap.notify.healthchecks import finish_kind

        tolerated = bad and streak < job.alert_after
        status_text = (
            f"{result.status} (tolerated: failure {streak} of --alert-after {job.alert_after})"
            if tolerated
            else result.status
        )
        body = _ping_body(
            run,
            job,
            sink,
            status=status_text,
            exit_code=result.exit_code,
            signal=result.signal,
            duration_s=duration,
            attempt=attempt,
            reason=result.reason,
        )
        kind = finish_kind(result.status, result.exit_code, tolerated=tolerated)
        run.pings.finish(kind, body, at=ended_at.isoformat(timespec="seconds"))
    if job.alert or job.alert_cmd:
        facts = _facts(
            run, job, result, attempt, duration, started_at, ended_at, tail, streak, log_path
        )
        _alert_on_end(
            run,
            job,
            facts,
            bad=bad,
            success=result.status == "success",
            streak=streak,
            now=ended_at,
        )
    _write_metrics(run, job, result, attempt, duration, started_at, ended_at)
    pruned = run.store_call(
        "pruning",
        lambda s: s.prune(job.name, keep_runs=job.keep_runs, keep_days=job.keep_days, now=now()),
    )
    for path in pruned if isinstance(pruned, list) else []:
        with contextlib.suppress(OSError):
            os.unlink(path)
    fields: dict[str, object] = {
        "status": result.status,
        "exit_code": result.exit_code,
        "signal": result.signal,
        "duration_s": round(duration, 6),
        "attempts": attempt,
    }
    if flags:
        fields["flags"] = flags
    if run.warnings:
        fields["warnings"] = list(run.warnings)
    run.emit("run.end", result.reason or "", **fields)
    output = output_err = b""
    if job.quiet and result.status != "success":
        output, output_err = sink.held(1), sink.held(2)
    return Outcome(
        run.run_id,
        result.status,
        result.exit_code,
        result.signal,
        attempt,
        duration,
        result.reason,
        run.warnings,
        output,
        output_err,
    )


# ------------------------------------------------------------------ judging, alerts, metrics


def _result_of(status: str) -> str:
    from cronwrap.state.metrics import result_of

    return result_of(status)


def _judge(job: Job, result: runner.AttemptResult, duration: float) -> runner.AttemptResult:
    """A run is judged by more than its exit code: --min-runtime. (--ok-exit-codes is
    applied per attempt, so retries see it too.)"""
    if (
        result.status == "success"
        and job.min_runtime is not None
        and duration < float(job.min_runtime)
    ):
        return runner.AttemptResult(
            "failed",
            result.exit_code,
            result.signal,
            result.duration_s,
            f"finished in {duration:.2f}s, faster than --min-runtime {job.min_runtime:g}s "
            "(it probably did nothing)",
        )
    return result


def _accept_ok_codes(job: Job, result: runner.AttemptResult) -> runner.AttemptResult:
    codes = job.ok_exit_codes
    if (
        result.status == "failed"
        and result.signal is None
        and result.exit_code in codes
        and result.exit_code not in (125, 126, 127)
    ):
        return runner.AttemptResult(
            "success",
            result.exit_code,
            None,
            result.duration_s,
            f"exit code {result.exit_code} is OK by --ok-exit-codes",
        )
    if result.status == "success" and 0 not in codes:
        return runner.AttemptResult(
            "failed", 0, None, result.duration_s, "exit code 0 is not in --ok-exit-codes"
        )
    return result


def _runtime_flags(run: _Run, job: Job, result: runner.AttemptResult, duration: float) -> list[str]:
    """Marks for status and alerts: slower than usual (--slow-factor), over --max-runtime."""
    flags: list[str] = []
    if job.max_runtime is not None and duration > float(job.max_runtime):
        flags.append("max-runtime")
    if result.status != "success":
        return flags
    recent = run.store_call(
        "recent durations", lambda s: s.recent_durations(job.name, exclude=run.run_id)
    )
    if isinstance(recent, list) and len(recent) >= 5:
        import statistics

        median = statistics.median(recent)
        if median > 0 and duration > float(job.slow_factor) * median:
            flags.append("slow")
            message = (
                f"took {duration:.2f}s, more than {job.slow_factor:g}x the median "
                f"{median:.2f}s of its last {len(recent)} successful runs"
            )
            run.emit("run.slow", message, duration_s=round(duration, 6), median_s=round(median, 6))
            run.warn(f"{job.name} {message}")
            _send_alert(
                run,
                job,
                "slow",
                {
                    **_base_facts(run, job),
                    "reason": message,
                    "duration_s": duration,
                    "status": "slow",
                },
            )
    return flags


def _over_max_runtime(run: _Run, job: Job) -> object:
    """Called once while the job runs past --max-runtime: log it and alert, without
    stopping the job or the output pump (the alert goes out from a thread)."""
    from cronwrap.notify.alerts import in_background

    message = f"still running after --max-runtime {job.max_runtime:g}s"
    run.emit("run.max_runtime", message)
    run.warn(f"{job.name} is {message}")
    facts = {**_base_facts(run, job), "status": "running", "reason": message}
    return in_background(lambda: _send_alert(run, job, "slow", facts))


def _base_facts(run: _Run, job: Job) -> dict[str, object]:
    return {"job": job.name, "host": run.host, "run_id": run.run_id}


def _facts(
    run: _Run,
    job: Job,
    result: runner.AttemptResult,
    attempts: int,
    duration: float,
    started_at: datetime,
    ended_at: datetime,
    tail: str,
    streak: int,
    log_path: Path | None,
) -> dict[str, object]:
    return {
        **_base_facts(run, job),
        "status": result.status,
        "exit_code": result.exit_code,
        "signal": result.signal,
        "reason": run.redact(result.reason),
        "started_at": started_at.isoformat(),
        "ended_at": ended_at.isoformat(),
        "duration_s": round(duration, 3),
        "attempts": attempts,
        "streak": streak,
        "output_tail": tail[-2000:],
        "log_path": str(log_path) if log_path else None,
    }


def _alert_on_end(
    run: _Run,
    job: Job,
    facts: dict[str, object],
    *,
    bad: bool,
    success: bool,
    streak: int,
    now: datetime,
) -> None:
    """Failure alerts after --alert-after failed runs in a row, once per streak (or every
    --realert-every), and one recovery alert when the job succeeds again."""
    state = run.store_call("alert state", lambda s: s.alert_state(job.name))
    is_open, last_at = state if isinstance(state, tuple) else (False, None)
    if bad and streak >= job.alert_after:
        due = not is_open or (
            job.realert_every is not None
            and last_at is not None
            and (now - last_at).total_seconds() >= float(job.realert_every)
        )
        if due:
            _send_alert(run, job, "failure", facts)
            run.store_call("alert state", lambda s: s.set_alert_state(job.name, open_=True, at=now))
    elif success and is_open:
        _send_alert(run, job, "recovery", facts)
        run.store_call("alert state", lambda s: s.set_alert_state(job.name, open_=False, at=now))


def _send_alert(run: _Run, job: Job, event: str, facts: dict[str, object]) -> None:
    if not job.alert and not job.alert_cmd:
        return
    from cronwrap.notify.alerts import Alert, send_all

    errors = send_all(
        Alert(event, facts),
        list(job.alert),
        job.alert_cmd,
        timeout_s=float(job.alert_timeout),
        env=run.child_env,
    )
    for err in errors:
        run.emit("alert.error", f"{event} alert not delivered: {err}", kind=event, error=err)
        run.warn(f"alert not delivered: {err}")


def _write_metrics(
    run: _Run,
    job: Job,
    result: runner.AttemptResult | None,
    attempts: int,
    duration: float | None,
    started_at: datetime,
    ended_at: datetime | None,
) -> None:
    if not job.metrics_dir:
        return
    from cronwrap.state import metrics

    values: dict[str, float | None] = {
        "cronwrap_last_start_timestamp_seconds": started_at.timestamp(),
        "cronwrap_running": 0 if result is not None else 1,
    }
    totals: dict[str, int] = {}
    if run.store is not None:
        got = run.store_call("counters", lambda s: s.counters(job.name))
        totals = got if isinstance(got, dict) else {}
        ok_at = run.store_call("last success", lambda s: s.last_success_at(job.name))
        bad_at = run.store_call("last failure", lambda s: s.last_failure_at(job.name))
        values["cronwrap_last_success_timestamp_seconds"] = (
            ok_at.timestamp() if isinstance(ok_at, datetime) else 0
        )
        values["cronwrap_last_failure_timestamp_seconds"] = (
            bad_at.timestamp() if isinstance(bad_at, datetime) else 0
        )
    if result is not None and ended_at is not None:
        values["cronwrap_last_end_timestamp_seconds"] = ended_at.timestamp()
        values["cronwrap_last_duration_seconds"] = round(duration or 0.0, 6)
        values["cronwrap_last_exit_code"] = result.exit_code
        values["cronwrap_last_attempts"] = attempts
    if job.timeout is not None:
        values["cronwrap_timeout_seconds"] = float(job.timeout)
    wait_s = job.lock_wait if job.on_overlap == "wait" else None
    grace_s = metrics.grace(job.jitter, wait_s)
    values.update(metrics.schedule_gauges(job.schedule, job.tz, after=started_at, grace_s=grace_s))
    if run.store is not None:
        recent = run.store_call("durations", lambda s: s.recent_durations(job.name))
        values.update(metrics.duration_gauges(recent if isinstance(recent, list) else []))
    text = metrics.render(
        job.name, values, result=metrics.result_of(result.status) if result else None, totals=totals
    )
    try:
        ensure_dir(Path(job.metrics_dir))
        metrics.write_atomic(job.metrics_dir, job.name, text)
    except (CronwrapError, OSError) as err:
        run.warn(f"cannot write metrics to {job.metrics_dir}: {err}")


def _expected_interval(job: Job) -> float | None:
    if not job.schedule:
        return None
    from cronwrap.cron.schedule import parse, zone
    from cronwrap.errors import ScheduleError

    try:
        schedule = parse(job.schedule)
        runs = schedule.next_runs(utcnow(), zone(job.tz), 2)
    except (ScheduleError, CronwrapError):
        return None
    return (runs[1] - runs[0]).total_seconds() if len(runs) == 2 else None


def exit_with(outcome: Outcome) -> int:
    """Print chronic output (if any) and give the exit status for the process."""
    for fd, data in ((1, outcome.output), (2, outcome.output_err)):
        view = memoryview(data)
        with contextlib.suppress(OSError):
            while view:
                view = view[os.write(fd, view) :]
    return outcome.exit_code
