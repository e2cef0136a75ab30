"""Alerts as a reporter: a failure alert after --alert-after failed runs in a row (once per
streak, or every --realert-every), one recovery alert, and `slow` alerts; plus the alerts
sent while a run is under way (max runtime, a lost or unavailable fleet lease)."""

from __future__ import annotations

import os

from cronwrap.run.reporting import Attempt, Outcome, Run, guard

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from threading import Thread

    from cronwrap.notify.alerts import AlertQueue


def base_facts(run: Run) -> dict[str, object]:
    facts: dict[str, object] = {"job": run.job.name, "host": run.host, "run_id": run.run_id}
    if run.job.dashboard_url:  # a link to the job's entry in the `status --html` page
        from cronwrap.notify.alerts import dashboard_link

        facts["dashboard_url"] = dashboard_link(run.job.dashboard_url, run.host, run.job.name)
    return facts


def send_alert(run: Run, event: str, facts: dict[str, object]) -> None:
    """Deliver one alert to every configured destination; failures are warnings."""
    job = run.job
    if not job.alert and not job.alert_cmd:
        return
    from cronwrap.notify.alerts import Alert, send_all

    errors = send_all(
        Alert(event, facts),
        list(job.alert),
        job.alert_cmd,
        timeout_s=job.alert_timeout,
        env=run.child_env,
        queue=alert_queue(run),
        job=job.name,
    )
    for err in errors:
        run.emit("alert.error", f"{event} alert not delivered: {err}", kind=event, error=err)
        run.warn(f"alert not delivered: {err}")


def alert_queue(run: Run) -> AlertQueue:
    """Where failure and recovery alerts a channel did not take wait for the next run."""
    from cronwrap.notify.alerts import AlertQueue

    return AlertQueue(os.path.join(run.paths.state_path, "alert-outbox"))  # no pathlib


def send_kept_alerts(run: Run) -> None:
    """Alerts kept by earlier runs go out first, whether or not this run alerts."""
    job = run.job
    from cronwrap.notify.alerts import send_kept

    queue = alert_queue(run)
    if not queue.spool.entries():
        return
    errors = send_kept(
        queue,
        job.name,
        list(job.alert),
        job.alert_cmd,
        timeout_s=job.alert_timeout,
        env=run.child_env,
    )
    for err in errors:
        run.emit("alert.error", f"kept alert not delivered: {err}", kind="kept", error=err)
        run.warn(f"alert not delivered: {err}")


def alert_in_background(run: Run, event: str, facts: dict[str, object]) -> Thread:
    """Send from a thread (while the job runs, the output pump must not wait); the
    returned thread is joined before the run ends."""
    from cronwrap.notify.alerts import in_background

    return in_background(lambda: guard(run, "alert", send_alert, run, event, facts))


class AlertReporter:
    """Failure, recovery and slow alerts at the end of a run."""

    name = "cannot send alerts"

    def start(self, run: Run) -> None:
        pass

    def attempt(self, run: Run, attempt: Attempt) -> None:
        pass

    def end(self, run: Run, outcome: Outcome) -> None:
        if outcome.status == "skipped":
            return
        job = run.job
        if job.alert or job.alert_cmd:
            send_kept_alerts(run)
        if outcome.slow is not None:
            facts = {**base_facts(run), "reason": outcome.slow, "status": "slow"}
            facts["duration_s"] = outcome.duration_s
            send_alert(run, "slow", facts)
        streak = run.failure_streak(outcome)
        state = run.query("alert state", lambda s: s.alert_state(job.name))
        is_open, last_at = state if state is not None else (False, None)
        assert outcome.ended_at is not None
        now = outcome.ended_at
        if outcome.bad and streak >= job.alert_after:
            due = not is_open or (
                job.realert_every is not None
                and last_at is not None
                and (now - last_at).total_seconds() >= job.realert_every
            )
            if due:
                send_alert(run, "failure", end_facts(run, outcome, streak))
                run.query("alert state", lambda s: s.set_alert_state(job.name, open_=True, at=now))
        elif outcome.status == "success" and is_open:
            send_alert(run, "recovery", end_facts(run, outcome, streak))
            run.query("alert state", lambda s: s.set_alert_state(job.name, open_=False, at=now))


def end_facts(run: Run, outcome: Outcome, streak: int) -> dict[str, object]:
    assert outcome.started_at is not None and outcome.ended_at is not None
    return {
        **base_facts(run),
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "signal": outcome.signal,
        "reason": run.redact(outcome.reason),
        "started_at": outcome.started_at.isoformat(),
        "ended_at": outcome.ended_at.isoformat(),
        "duration_s": round(outcome.duration_s, 3),
        "attempts": outcome.attempts,
        "streak": streak,
        "output_tail": outcome.tail[-2000:],
        "log_path": str(run.log_path) if run.log_path else None,
    }
