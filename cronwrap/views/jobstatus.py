"""The values `status` returns: one JobStatus per job (local or of a fleet host) and the
StatusReport around them. Plain slotted classes, not dataclasses: importing dataclasses costs
~14 ms of start-up (through inspect), and `status --fleet-store` makes thousands."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from datetime import datetime

    from cronwrap.state.records import RunRecord
    from cronwrap.views.runstate import RunState


class JobStatus:
    """One job as status shows it: its schedule, runs, state and what is wrong with it."""

    __slots__ = (
        "command", "current", "dead_letters", "description", "durations", "expected", "host",
        "last", "last_state", "location", "missed", "missed_count", "missed_first", "name",
        "next_run", "reason", "result", "run_state", "schedule", "schedule_error", "source",
        "state", "tz", "tz_warning", "unmonitored", "zone_note",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        schedule: str | None = None,
        tz: str | None = None,
        description: str | None = None,
        source: str = "store",
        location: str | None = None,
        command: str | None = None,
        last: RunRecord | None = None,
        current: RunRecord | None = None,
        run_state: RunState | None = None,
        last_state: RunState | None = None,
        result: str = "never run",
        state: str = "never",
        reason: str | None = None,
        durations: list[float] | None = None,
        next_run: datetime | None = None,
        expected: datetime | None = None,
        missed: bool = False,
        missed_first: datetime | None = None,
        missed_count: int = 0,
        unmonitored: bool = False,
        schedule_error: str | None = None,
        zone_note: str | None = None,
        tz_warning: str | None = None,
        dead_letters: int = 0,
        host: str | None = None,
    ) -> None:
        self.name = name
        self.schedule = schedule
        self.tz = tz  # the zone next runs and missed runs are computed in
        self.description = description
        self.source = source  # store | crontab | both | none (asked for, found nowhere) | fleet
        self.location = location  # file:line of the crontab entry
        self.command = command
        self.last = last  # the newest row, whatever it is (a skip included)
        self.current = current  # the run the result is about: the newest that ran
        self.run_state = run_state  # the state of `current` (or of `last` for a skip)
        self.last_state = last_state  # the state of `last`
        self.result = result
        self.state = state  # ok | failing | running | skipped | never | unmonitored | unknown
        self.reason = reason  # why the state is unknown
        self.durations = durations if durations is not None else []
        self.next_run = next_run
        self.expected = expected  # the latest fire time due by now (minus the grace)
        self.missed = missed
        self.missed_first = missed_first  # the first scheduled run that never started
        self.missed_count = missed_count
        self.unmonitored = unmonitored
        self.schedule_error = schedule_error
        self.zone_note = zone_note  # the Healthchecks check expects another zone
        self.tz_warning = tz_warning  # the declared zone is not the one cron fires the job in
        self.dead_letters = dead_letters  # failed runs not yet resolved (`cronwrap failed`)
        self.host = host  # in a fleet view: the host whose records these are

    def __repr__(self) -> str:
        return f"JobStatus({self.name!r}, state={self.state!r}, result={self.result!r})"

    @property
    def warnings(self) -> list[str]:
        """What went wrong with cronwrap's own reporting in the newest run (a ping not
        delivered, a full disk, a bad option left out): the job ran, but not every signal."""
        text = getattr(self.last, "warnings", None) if self.last is not None else None
        return text.splitlines() if text else []

    @property
    def degraded(self) -> bool:
        return bool(self.warnings)

    @property
    def healthy(self) -> bool:
        return self.state not in ("failing", "unknown") and not self.missed and not self.degraded

    @property
    def known(self) -> bool:
        return self.state != "unknown"


class StatusReport:
    """The jobs, and the reason status cannot know their state, if any (exit 3).
    `unreadable`: the store itself could not be read (corrupt, refused, a server nobody
    answers for), so `jobs` holds only what the crontabs say, each marked unknown."""

    __slots__ = ("jobs", "problem", "unreadable")

    def __init__(
        self, jobs: list[JobStatus], problem: str | None = None, *, unreadable: bool = False
    ) -> None:
        self.jobs = jobs
        self.problem = problem
        self.unreadable = unreadable
