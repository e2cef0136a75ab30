"""The run's Healthchecks conversation as a reporter, over notify.healthchecks.PingSession:
/start (after what is queued) within the start budget, /log for a retried attempt, and the
finish ping that makes the server record cronwrap's own result. Every failure is a warning."""

from __future__ import annotations

from cronwrap.run.reporting import Attempt, Outcome, Run

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Mapping

    from cronwrap.notify.healthchecks import PingBody, PingSession, PingTarget


class PingReporter:
    """Pings one Healthchecks check for one run."""

    name = "cannot ping Healthchecks"

    def __init__(self, target: PingTarget, env: Mapping[str, str]) -> None:
        self.target = target
        self.env = env  # where the proxy variables are read
        self.session: PingSession | None = None

    def _session(self, run: Run) -> PingSession:
        if self.session is None:
            from cronwrap import __version__
            from cronwrap.notify.healthchecks import Pinger, PingSession

            job = run.job
            self.session = PingSession(
                Pinger(self.target, user_agent=f"cronwrap/{__version__}", env=self.env),
                run_id=run.run_id,
                job=job.name,
                state_dir=run.paths.state_path,
                start_budget=job.ping_start_budget,
                finish_budget=job.ping_finish_budget,
                body_limit=job.ping_body_limit,
                emit=run.emit,
                warn=run.warn,
            )
        return self.session

    def start(self, run: Run) -> None:
        from cronwrap.notify.healthchecks import PingBody

        session = self._session(run)
        for rec in run.crashed:  # their cronwrap died: the check hears of it first
            why = f"cronwrap (pid {rec.pid}) died during the run"
            at = rec.started_at.isoformat(timespec="seconds")
            session.queue("fail", rec.run_id, PingBody(f"cronwrap: {why}\n"), at=at)
        session.start()
        if run.job.ping_keepalive:
            session.start_keepalive(run.job.ping_keepalive, job=run.job.name, host=run.host)

    def attempt(self, run: Run, attempt: Attempt) -> None:
        if not attempt.retrying:
            return
        r = attempt.result
        body = self._body(
            run,
            status="attempt failed, retrying",
            exit_code=r.exit_code,
            signal=r.signal,
            duration_s=r.duration_s,
            attempt=attempt.number,
            reason=r.reason,
        )
        self._session(run).log(body)

    def end(self, run: Run, outcome: Outcome) -> None:
        session = self._session(run)
        session.stop_keepalive()
        try:
            if outcome.status == "skipped":
                from cronwrap.notify.healthchecks import PingBody

                text = f"cronwrap: run of {run.job.name} on {run.host} skipped: {outcome.reason}\n"
                session.log(PingBody(run.redact.text(text)))
            else:
                self._finish(run, session, outcome)
                if session.created and run.job.schedule:
                    self._provision(run, session)
        finally:
            session.report_once()

    def _provision(self, run: Run, session: PingSession) -> None:
        """--ping-create just made the check: give it --schedule, the zone and a grace that
        outlasts --timeout, through the Management API (the ping API cannot)."""
        from cronwrap.errors import CronwrapError
        from cronwrap.notify.hcapi import provision

        job = run.job
        assert job.schedule is not None
        slug = self.target.url.rstrip("/").rpartition("/")[2]
        try:
            done = provision(
                slug,
                job=job.name,
                schedule=job.schedule,
                tz=job.tz,
                timeout_s=job.timeout,
                env=self.env,
                budget_s=job.ping_finish_budget,
            )
        except CronwrapError as err:
            run.warn(str(err))
            return
        run.emit("ping.provision", done)

    def _finish(self, run: Run, session: PingSession, outcome: Outcome) -> None:
        from cronwrap.notify.healthchecks import finish_kind

        job = run.job
        streak = run.failure_streak(outcome)
        tolerated = outcome.bad and streak < job.alert_after
        status = outcome.status
        if tolerated:
            status += f" (tolerated: failure {streak} of --alert-after {job.alert_after})"
        body = self._body(
            run,
            status=status,
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            duration_s=outcome.duration_s,
            attempt=outcome.attempts,
            reason=outcome.reason,
        )
        kind = finish_kind(outcome.status, outcome.exit_code, tolerated=tolerated)
        assert outcome.ended_at is not None
        session.finish(kind, body, at=outcome.ended_at.isoformat(timespec="seconds"))

    def _body(
        self,
        run: Run,
        *,
        status: str,
        exit_code: int | None,
        signal: int | None,
        duration_s: float,
        attempt: int,
        reason: str | None,
    ) -> PingBody:
        """The summary and the output's head and tail, redacted before any cut."""
        from cronwrap import __version__
        from cronwrap.notify.healthchecks import PingBody, summary

        job = run.job
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
        sink = run.sink
        withheld = job.no_output_in_ping or run.withhold_output
        output = None if sink is None or withheld else sink.head_and_tail
        return PingBody.redacted(header, output, run.redact.bytes, self._session(run).body_limit())


def ping_reporter(run: Run, env: Mapping[str, str]) -> PingReporter | None:
    """The run's PingReporter, if the job pings a check; raises ConfigError for a target
    that cannot be built (the caller leaves pings out with a warning)."""
    from cronwrap.notify.healthchecks import target_from

    job = run.job
    target = target_from(
        ping=job.ping,
        uuid=job.ping_uuid,
        key=job.ping_key,
        slug=job.ping_slug,
        create=job.ping_create,
        base=job.ping_base,
        job_name=job.name,
    )
    return PingReporter(target, env) if target is not None else None
