"""The local reporters of a run: the run store, the event log, Prometheus metrics files and
the one line cron mails. Each implements start/attempt/end and is called through the guard
in run/reporting.py, so none of them can stop the job or change its exit code."""

from __future__ import annotations

import contextlib
import os

from cronwrap.pids import pid_alive
from cronwrap.run.nowait import write_own
from cronwrap.run.reporting import Attempt, Outcome, Run
from cronwrap.state.records import result_of

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from cronwrap.state.store import Store


def command_text(run: Run) -> str:
    job = run.job
    return job.command[0] if job.shell else " ".join(_quote(word) for word in job.command)


_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./-_")


def _quote(word: str) -> str:
    """shlex.quote without the shlex module and its regex, which cost start-up time."""
    if word and all(c in _SAFE for c in word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


class StoreReporter:
    """The run history: the start row, each attempt, the end row, then pruning. A successful
    run writes twice (start, and end with its attempt, durable); an attempt that is retried is
    written at once, so a run whose cronwrap dies mid-way keeps its earlier attempts; pruning
    writes only when there is something to prune."""

    name = "cannot record the run history"

    def __init__(self) -> None:
        self.started = False  # the run reached its start phase
        self.start_written = False  # its start row is in the store (not: the store was busy)
        self.last_attempt: Attempt | None = None  # written with the end

    def start(self, run: Run) -> None:
        from cronwrap.state.database import StoreBusyError

        self.started = True
        store = run.store
        if store is None:
            return
        run.query("crashed runs", lambda s: _mark_crashed(s, run))
        try:
            self._record_start(store, run, status="running")
            self.start_written = True
        except StoreBusyError:
            pass  # written late, with the end, so the job starts on time

    def _record_start(self, store: Store, run: Run, *, status: str) -> None:
        assert run.started_at is not None
        store.record_start(
            run_id=run.run_id,
            job=run.job.name,
            host=run.host,
            pid=os.getpid(),
            command=run.redact.text(command_text(run)),
            started_at=run.started_at,
            schedule=run.job.schedule,
            tz=run.job.tz,
            log_path=str(run.log_path) if run.log_path else None,
            state_dir=run.paths.state_path,
            status=status,
            queue_fleet=bool(run.job.fleet_store),
            slot=run.slot,
            rerun_of=run.origin.rerun_of,
            spec=run.spec,
            catch_up=run.job.catch_up,
            catch_up_max_age=run.job.catch_up_max_age,
        )

    def attempt(self, run: Run, attempt: Attempt) -> None:
        r = attempt.result
        if not attempt.retrying:  # the last one: it goes in with the end, in one write
            self.last_attempt = attempt
            return
        run.query(
            "the attempt",
            lambda s: s.record_attempt(
                run_id=run.run_id,
                attempt=attempt.number,
                started_at=attempt.started_at,
                ended_at=attempt.ended_at,
                status=r.status,
                exit_code=r.exit_code,
                signal=r.signal,
            ),
        )

    def end(self, run: Run, outcome: Outcome) -> None:
        from cronwrap.run.reporting import END_BUSY_S

        assert outcome.ended_at is not None
        ended_at = outcome.ended_at
        # the job is done: the end record may wait longer for a busy store than anything
        # written while the job's attempts go on (START_BUSY_S), so a retry is never held up
        if run.store is not None:
            run.store.set_busy_timeout(END_BUSY_S)
        if not self.start_written:  # never started, or the store was busy then
            status = "running" if self.started else outcome.status
            run.query("the run start", lambda s: self._record_start(s, run, status=status))
            self.start_written = True
        last = self.last_attempt
        run.recorded_warnings = len(run.warnings)  # later ones are added when the run closes
        run.query(
            "the run end",
            lambda s: s.record_end(
                run_id=run.run_id,
                ended_at=ended_at,
                status=outcome.status,
                exit_code=outcome.exit_code,
                signal=outcome.signal,
                attempts=outcome.attempts,
                duration_s=outcome.duration_s,
                output_tail=outcome.tail or None,
                reason=run.redact(outcome.reason),
                flags=" ".join(outcome.flags) or None,
                count_as=result_of(outcome.status),
                warnings=run.redact.text("\n".join(run.warnings)) or None,
                last_attempt=None
                if last is None
                else (
                    last.number,
                    last.started_at,
                    last.ended_at,
                    last.result.status,
                    last.result.exit_code,
                    last.result.signal,
                ),
                queue_fleet=bool(run.job.fleet_store),
                resolve_on_success=run.job.resolve_on_success,
            ),
        )
        job = run.job
        pruned = run.query(
            "pruning",
            lambda s: s.prune(
                job.name, keep_runs=job.keep_runs, keep_days=job.keep_days, now=ended_at
            ),
        )
        for path in pruned or []:
            with contextlib.suppress(OSError):  # already gone is what pruning wanted
                os.unlink(path)


def _mark_crashed(store: Store, run: Run) -> None:
    """Runs of this job left 'running' by a cronwrap that died on this host are crashed."""
    for rec in store.runs(run.job.name, limit=5):
        if rec.status == "running" and rec.host == run.host and not pid_alive(rec.pid):
            store.mark_crashed(
                rec.run_id,
                reason=f"cronwrap (pid {rec.pid}) died during the run",
                queue_fleet=bool(run.job.fleet_store),
            )
            run.crashed.append(rec)


# the event log's level of a run's end, by its status: a failure is an error, a run that
# did not do its work (cancelled) a warning
END_LEVELS = {"success": "info", "skipped": "info", "cancelled": "warning"}


class EventReporter:
    """The JSON-lines (or logfmt) event log: run.start, attempt.end, run.end or run.skip."""

    name = "cannot write the event log"

    def start(self, run: Run) -> None:
        slot = run.slot.isoformat() if run.slot else None
        run.emit(
            "run.start",
            command=command_text(run),
            attempts_max=run.job.retries + 1,
            slot=slot,
            trigger=run.origin.trigger,
            rerun_of=run.origin.rerun_of,
        )

    def attempt(self, run: Run, attempt: Attempt) -> None:
        r = attempt.result
        level = "warning" if attempt.retrying else END_LEVELS.get(r.status, "error")
        run.emit(
            "attempt.end",
            r.reason or "",
            level=level,
            attempt=attempt.number,
            status=r.status,
            exit_code=r.exit_code,
            signal=r.signal,
            duration_s=round(r.duration_s, 6),
        )

    def end(self, run: Run, outcome: Outcome) -> None:
        # written once every reporter has ended: the pings' warnings (a failed start ping is
        # said when the finish is done) and the alerts' are known only then
        run.at_end.append(lambda: self._end(run, outcome))

    def _end(self, run: Run, outcome: Outcome) -> None:
        fields: dict[str, object] = {
            "status": outcome.status,
            "exit_code": outcome.exit_code,
            "signal": outcome.signal,
            "duration_s": round(outcome.duration_s, 6),
            "attempts": outcome.attempts,
        }
        level = END_LEVELS.get(outcome.status, "error")
        if outcome.flags:
            fields["flags"] = outcome.flags
            level = "warning" if level == "info" else level
        if run.warnings:
            fields["warnings"] = list(run.warnings)
            level = "warning" if level == "info" else level
        event = "run.skip" if outcome.status == "skipped" else "run.end"
        run.emit(event, outcome.reason or "", level=level, **fields)


class CronMailReporter:
    """What cron mails: under --quiet the output held back from a failed run, and for every
    run that is not a success one `cronwrap: <job>: …` line on stderr saying what happened,
    so the mail (or its absence) explains itself. Success says nothing."""

    name = "cannot write the cron mail line"

    def start(self, run: Run) -> None:
        pass

    def attempt(self, run: Run, attempt: Attempt) -> None:
        pass

    def end(self, run: Run, outcome: Outcome) -> None:
        # chronic mode (--quiet): what the job printed, each stream back where it was headed
        for fd, data in ((1, outcome.output), (2, outcome.output_err)):
            try:
                write_own(fd, data)
            except OSError as err:  # the job has ended: nothing to pass on to it, just say so
                name = ("stdout", "stderr")[fd - 1]
                run.warn(f"cannot print the output held by --quiet: {name}: {err.strerror}")
        line = what_happened(outcome)
        if line is not None:
            with contextlib.suppress(OSError):  # stderr closed, or nobody reads it
                write_own(2, f"cronwrap: {run.job.name}: {line}\n".encode("utf-8", "replace"))


def what_happened(outcome: Outcome) -> str | None:
    """One sentence for a run that is not a success; None for a success."""
    status = outcome.status
    if status == "success":
        return None
    plain = outcome.reason in (None, "", f"exit code {outcome.exit_code}")
    reason = "" if plain else f": {outcome.reason}"
    tries = f" after {outcome.attempts} attempts" if outcome.attempts > 1 else ""
    took = f" ({outcome.duration_s:.1f}s)" if outcome.attempts else ""
    if status == "skipped":
        return f"skipped{reason}"
    if status == "cancelled":
        return f"cancelled, exit {outcome.exit_code}{tries}{took}{reason}"
    if status == "timeout":
        return f"timed out, exit {outcome.exit_code}{tries}{took}{reason}"
    if outcome.signal is not None:
        from cronwrap.run.process import signal_name

        killed = signal_name(outcome.signal)
        return f"failed: killed by {killed}, exit {outcome.exit_code}{tries}{took}"
    return f"failed, exit {outcome.exit_code}{tries}{took}{reason}"


class MetricsReporter:
    """Prometheus textfile metrics: `running` at the start, the result at the end."""

    name = "cannot write metrics"

    def start(self, run: Run) -> None:
        self._write(run, None)

    def attempt(self, run: Run, attempt: Attempt) -> None:
        pass

    def end(self, run: Run, outcome: Outcome) -> None:
        if outcome.status != "skipped":
            self._write(run, outcome)

    def _write(self, run: Run, outcome: Outcome | None) -> None:
        from cronwrap.paths import ensure_dir
        from cronwrap.state import metrics

        job = run.job
        assert job.metrics_dir is not None and run.started_at is not None
        values: dict[str, float | None] = {
            "cronwrap_last_start_timestamp_seconds": run.started_at.timestamp(),
            "cronwrap_running": 0 if outcome is not None else 1,
        }
        totals = run.query("counters", lambda s: s.counters(job.name)) or {}
        ok_at = run.query("last success", lambda s: s.last_success_at(job.name))
        bad_at = run.query("last failure", lambda s: s.last_failure_at(job.name))
        values["cronwrap_last_success_timestamp_seconds"] = ok_at.timestamp() if ok_at else 0
        values["cronwrap_last_failure_timestamp_seconds"] = bad_at.timestamp() if bad_at else 0
        result = result_of(outcome.status) if outcome else None
        if outcome is None:  # the last finished run's facts stay until this one ends
            carried, result = metrics.previous_run(job.metrics_dir, job.name)
            values = {**carried, **values}
            if run.crashed:  # the last run to end did not finish: this run found it crashed
                result = "crashed"
        if outcome is not None and outcome.ended_at is not None:
            values["cronwrap_last_end_timestamp_seconds"] = outcome.ended_at.timestamp()
            values["cronwrap_last_duration_seconds"] = round(outcome.duration_s, 6)
            values["cronwrap_last_exit_code"] = outcome.exit_code
            values["cronwrap_last_attempts"] = outcome.attempts
        if job.timeout is not None:
            values["cronwrap_timeout_seconds"] = job.timeout
        grace_s = metrics.grace(job.jitter, job.lock_wait if job.on_overlap == "wait" else None)
        values.update(
            metrics.schedule_gauges(job.schedule, job.tz, after=run.started_at, grace_s=grace_s)
        )
        recent = run.query("durations", lambda s: s.recent_durations(job.name))
        values.update(metrics.duration_gauges(recent or []))
        text = metrics.render(job.name, values, result=result, totals=totals)
        ensure_dir(job.metrics_dir)
        metrics.write_atomic(job.metrics_dir, job.name, text)


def expected_interval(run: Run) -> float | None:
    """Seconds between the job's next two scheduled runs, if it has a schedule."""
    job = run.job
    if not job.schedule:
        return None
    from datetime import datetime, timezone

    from cronwrap.cron.schedule import parse, zone
    from cronwrap.errors import CronwrapError

    try:
        runs = parse(job.schedule).next_runs(datetime.now(timezone.utc), zone(job.tz), 2)
    except CronwrapError:
        return None
    return (runs[1] - runs[0]).total_seconds() if len(runs) == 2 else None
