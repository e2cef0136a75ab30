"""The `run` options as data: one table that the click command, the fast argv parser,
the config file, the environment and the docs are all built from. Imports nothing heavy."""

from __future__ import annotations

# The longest duration cronwrap takes: poll() and the kernel's timers count in 32-bit
# milliseconds (2**31 ms is 24.8 days), and a cron job needing longer is a mistake.
MAX_DURATION = 24 * 86400.0


class Option:
    """One `run` option. (A plain class: dataclasses costs ~14 ms of start-up via inspect.)"""

    __slots__ = (
        "check",
        "choices",
        "config",
        "default",
        "help",
        "high",
        "kind",
        "low",
        "metavar",
        "name",
        "secret",
    )

    def __init__(
        self,
        name: str,
        kind: str,
        default: object,
        help: str,
        metavar: str = "",
        *,
        choices: tuple[str, ...] = (),
        secret: bool = False,
        config: bool = True,
        low: float | None = None,
        high: float | None = None,
        check: str = "",
    ) -> None:
        self.name = name  # python/config name, snake_case; flag --kebab-case, env CRONWRAP_UPPER
        self.kind = kind  # str|int|float|duration|size|codes|choice|flag|list
        self.default = default
        self.help = help
        self.metavar = metavar
        self.choices = choices
        self.secret = secret  # shown redacted; may be given as file:PATH
        self.config = config  # may appear in a config job section / defaults
        # the range a number, duration or size must lie in (inclusive); durations default to
        # 0..MAX_DURATION, what the OS timers accept
        self.low = low
        self.high = high
        self.check = check  # "zone" | "schedule" | "printable": checked by config.convert

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "CRONWRAP_" + self.name.upper()


RUN_OPTIONS: tuple[Option, ...] = (
    Option(
        "name",
        "str",
        None,
        "Job name: the key for lock, history, logs and pings "
        "(default: command basename plus a short hash of argv).",
        "NAME",
        config=False,
    ),
    Option("shell", "flag", False, "Run COMMAND through /bin/sh -c (joined with spaces)."),
    Option("cwd", "str", None, "Run the command in this directory.", "DIR"),
    Option(
        "env", "list", (), "Set KEY=VALUE in the command's environment (repeatable).", "KEY=VALUE"
    ),
    Option(
        "on_overlap",
        "choice",
        "skip",
        "What to do when the previous run still holds the "
        "lock: skip this run, wait for the lock, or allow overlapping runs.",
        "POLICY",
        choices=("skip", "wait", "allow"),
    ),
    Option(
        "lock_wait",
        "duration",
        600.0,
        "With --on-overlap wait: how long to wait for the lock before skipping.",
        "DURATION",
    ),
    Option(
        "overlap_exit_code",
        "int",
        0,
        "Exit code of a run skipped because of overlap (75 = EX_TEMPFAIL is a common choice).",
        "CODE",
        low=0,
        high=255,
    ),
    Option(
        "timeout",
        "duration",
        None,
        "Kill the command's process tree after this long (per attempt); exit 124.",
        "DURATION",
        low=0.001,
    ),
    Option(
        "kill_after",
        "duration",
        10.0,
        "After SIGTERM (timeout or cancel), send SIGKILL after this long: the window a job "
        "has to checkpoint and exit (see CRONWRAP_DEADLINE).",
        "DURATION",
    ),
    Option(
        "timeout_total",
        "duration",
        None,
        "Bound on the whole run, retries and backoff included.",
        "DURATION",
        low=0.001,
    ),
    Option("retries", "int", 0, "Retry a retryable failure up to N times.", "N", low=0, high=100),
    Option(
        "retry_delay",
        "duration",
        5.0,
        "First backoff delay; doubles each retry, full jitter.",
        "DURATION",
    ),
    Option("retry_max_delay", "duration", 300.0, "Cap on the backoff delay.", "DURATION"),
    Option("retry_on", "codes", None, "Retry only these exit codes (e.g. 75,100-110).", "CODES"),
    Option(
        "no_retry_on",
        "codes",
        None,
        "Never retry these exit codes (126 and 127 never are).",
        "CODES",
    ),
    Option("retry_on_timeout", "flag", False, "Also retry attempts that timed out."),
    Option(
        "quiet",
        "flag",
        False,
        "Chronic mode: print the command's output only if the run "
        "failed, so cron mails only failures.",
    ),
    Option(
        "max_log_size",
        "size",
        10 * 1024 * 1024,
        "Cap on the per-run output log (head and tail are kept), e.g. 10M.",
        "SIZE",
    ),
    Option(
        "log_file",
        "str",
        None,
        "Structured event log: a path, or - for stderr (default: cronwrap.log in the state dir).",
        "PATH",
    ),
    Option(
        "log_format",
        "choice",
        "json",
        "Encoding of the event log.",
        "FORMAT",
        choices=("json", "logfmt"),
    ),
    Option(
        "jitter",
        "duration",
        0.0,
        "Sleep a random time up to this long before starting.",
        "DURATION",
    ),
    Option(
        "schedule",
        "str",
        None,
        "The job's cron schedule (for status and monitoring).",
        "EXPR",
        check="schedule",
    ),
    Option(
        "tz",
        "str",
        None,
        "Zone cron fires --schedule in (IANA name; default: the system zone); not a shift.",
        "ZONE",
        check="zone",
    ),
    Option(
        "ping",
        "str",
        None,
        "Healthchecks ping URL (BASE/<uuid> or BASE/<ping-key>/<slug>); "
        "file:PATH reads it from a file.",
        "URL",
        secret=True,
    ),
    Option(
        "ping_uuid",
        "str",
        None,
        "Healthchecks check UUID (joined to --ping-base).",
        "UUID",
        secret=True,
    ),
    Option(
        "ping_key",
        "str",
        None,
        "Healthchecks project ping key, used with --ping-slug.",
        "KEY",
        secret=True,
    ),
    Option("ping_slug", "str", None, "Check slug for --ping-key (default: the job name).", "SLUG"),
    Option(
        "ping_create", "flag", False, "Create the check on first ping (?create=1, slug URLs only)."
    ),
    Option(
        "ping_base",
        "str",
        "https://hc-ping.com/",
        "Ping endpoint of a self-hosted Healthchecks (e.g. https://hc.example.com/ping/).",
        "URL",
    ),
    Option(
        "ping_body_limit",
        "size",
        None,
        "Bytes of body per ping (default: the server's Ping-Body-Limit, else 10000).",
        "SIZE",
        low=1,
    ),
    Option("no_output_in_ping", "flag", False, "Send only the summary, not the output, in pings."),
    Option(
        "ping_start_budget",
        "duration",
        3.0,
        "Most time the start ping (and replaying the outbox) may delay the job.",
        "DURATION",
    ),
    Option(
        "ping_finish_budget",
        "duration",
        10.0,
        "Most time the finish ping may add to the run.",
        "DURATION",
    ),
    Option(
        "ping_keepalive",
        "duration",
        None,
        "While the job runs, send a /log ping this often (e.g. 10m) so the check's log shows "
        "it is alive. It does not extend the check's grace.",
        "DURATION",
        low=1,
    ),
    Option(
        "redact",
        "list",
        (),
        "Regex whose matches are masked in pings, alerts, logs and history (repeatable).",
        "REGEX",
    ),
    Option(
        "redact_env",
        "list",
        ("*TOKEN*", "*SECRET*", "*PASSWORD*", "*PASSWD*", "*KEY*", "*CREDENTIAL*"),
        "Glob of environment variable names whose values are masked (repeatable; replaces "
        "the default list).",
        "GLOB",
    ),
    Option(
        "alert",
        "list",
        (),
        "Alert when a run ends badly and when the job recovers: an "
        "http(s) URL gets a JSON webhook; slack://, mailto://, ntfys://, ... go through "
        "Apprise (extra 'alerts'). Repeatable; file:PATH allowed.",
        "URL",
        secret=True,
    ),
    Option(
        "alert_cmd",
        "str",
        None,
        "Also run this shell command on alerts, with the run's facts in CRONWRAP_* variables.",
        "CMD",
    ),
    Option(
        "alert_after",
        "int",
        1,
        "Alert only after N consecutive failed runs.",
        "N",
        low=1,
        high=100_000,
    ),
    Option(
        "realert_every",
        "duration",
        None,
        "Alert again while the failure streak lasts, at "
        "most this often (default: once per streak).",
        "DURATION",
        low=1,
    ),
    Option(
        "alert_timeout",
        "duration",
        10.0,
        "Most time alert delivery may take (all alerts of a run, one retry included).",
        "DURATION",
        low=0.001,
    ),
    Option(
        "ok_exit_codes",
        "codes",
        frozenset({0}),
        "Exit codes that count as success (e.g. "
        "0,24 for rsync's vanished files); cronwrap still exits with the command's code.",
        "CODES",
    ),
    Option(
        "min_runtime",
        "duration",
        None,
        "A run that finishes faster than this is a failure (it probably did nothing).",
        "DURATION",
    ),
    Option(
        "max_runtime",
        "duration",
        None,
        "Warn and alert when a run takes longer than this, without killing it (unlike --timeout).",
        "DURATION",
        low=0.001,
    ),
    Option(
        "slow_factor",
        "float",
        3.0,
        "Warn and alert when a run takes more than this times "
        "the median of the job's last 20 successful runs (with at least 5).",
        "X",
        low=1,
        high=1_000_000,
    ),
    Option(
        "metrics_dir",
        "str",
        None,
        "Write Prometheus metrics for node_exporter's textfile "
        "collector into this directory (one file per job).",
        "DIR",
    ),
    Option(
        "lock_url",
        "str",
        None,
        "Fleet mode: hold the overlap lock as a lease on this "
        "Redis (redis://[:password@]host:port/db or rediss://) or PostgreSQL "
        "(postgresql://user[:password]@host/db), so the job runs once per "
        "scheduled slot across hosts.",
        "URL",
        secret=True,
    ),
    Option(
        "lock_ttl",
        "duration",
        60.0,
        "Fleet mode: lease time, renewed every third of it while the job runs.",
        "DURATION",
        low=1,
    ),
    Option(
        "on_lock_lost",
        "choice",
        "continue",
        "Fleet mode: when the lease is lost mid-run, "
        "let the job continue (logged, alerted) or kill it.",
        "POLICY",
        choices=("continue", "kill"),
    ),
    Option(
        "lock_unavailable",
        "choice",
        "skip",
        "Fleet mode: when the lock server cannot be reached, "
        "skip the run (with an error and an alert), run it unlocked, or fail (exit 125).",
        "POLICY",
        choices=("skip", "run", "fail"),
    ),
    Option(
        "slot_tolerance",
        "duration",
        60.0,
        "Fleet mode: how far from a fire time of "
        "--schedule a run may start and still claim that slot (clock skew).",
        "DURATION",
    ),
    Option(
        "host_id",
        "str",
        None,
        "This host's name in history and fleet claims (default: the host name).",
        "NAME",
        check="printable",
    ),
    Option(
        "fleet_store",
        "str",
        None,
        "Also write every run, attempt and redacted output tail to this shared PostgreSQL "
        "database (postgresql://user[:password]@host/db; file:PATH reads the URL from a file), "
        "for `status --fleet-store` across hosts. Needs the 'postgres' extra.",
        "URL",
        secret=True,
    ),
    Option(
        "fleet_budget",
        "duration",
        2.0,
        "How long the fleet store's shipper waits for PostgreSQL to connect and to answer each "
        "statement. The run never waits for it; what is not shipped is kept and shipped by the "
        "next run or `cronwrap flush`.",
        "DURATION",
        low=0.1,
        high=300,
    ),
    Option(
        "dashboard_url",
        "str",
        None,
        "URL where `status --html` is served: alerts link to the job's entry in it.",
        "URL",
    ),
    Option(
        "catch_up",
        "flag",
        False,
        "Let `cronwrap catch-up` run this job once when its most recent scheduled slot "
        "was missed (host down, cron stopped); needs --schedule.",
    ),
    Option(
        "catch_up_max_age",
        "duration",
        None,
        "With --catch-up: do not catch up a slot older than this (default: any age).",
        "DURATION",
    ),
    Option(
        "resolve_on_success",
        "flag",
        False,
        "A successful run resolves the job's dead letters (failed runs listed by "
        "`cronwrap failed`); by default only a successful rerun resolves its own.",
    ),
    Option(
        "keep_runs",
        "int",
        500,
        "History retention: runs kept per job.",
        "N",
        low=1,
        high=10_000_000,
    ),
    Option(
        "keep_days", "int", 90, "History retention: days kept per job.", "DAYS", low=1, high=36_500
    ),
)

OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in RUN_OPTIONS}
OPTIONS_BY_FLAG: dict[str, Option] = {o.flag: o for o in RUN_OPTIONS}


class Job:
    """One job's effective options, resolved once from every source (config.resolve_job).
    One typed attribute per option of RUN_OPTIONS (a test holds the two together), so a
    misspelt `job.retyr_delay` fails the type check instead of reading None."""

    name: str
    command: tuple[str, ...]
    sources: dict[str, str]  # option -> "flag" | "env" | "job" | "defaults" | "built-in"
    shell: bool
    cwd: str | None
    env: tuple[str, ...]
    on_overlap: str
    lock_wait: float
    overlap_exit_code: int
    timeout: float | None
    kill_after: float
    timeout_total: float | None
    retries: int
    retry_delay: float
    retry_max_delay: float
    retry_on: frozenset[int] | None
    no_retry_on: frozenset[int] | None
    retry_on_timeout: bool
    quiet: bool
    max_log_size: int
    log_file: str | None
    log_format: str
    jitter: float
    schedule: str | None
    tz: str | None
    ping: str | None
    ping_uuid: str | None
    ping_key: str | None
    ping_slug: str | None
    ping_create: bool
    ping_base: str
    ping_body_limit: int | None
    no_output_in_ping: bool
    ping_start_budget: float
    ping_finish_budget: float
    ping_keepalive: float | None
    redact: tuple[str, ...]
    redact_env: tuple[str, ...]
    alert: tuple[str, ...]
    alert_cmd: str | None
    alert_after: int
    realert_every: float | None
    alert_timeout: float
    ok_exit_codes: frozenset[int]
    min_runtime: float | None
    max_runtime: float | None
    slow_factor: float
    metrics_dir: str | None
    lock_url: str | None
    lock_ttl: float
    on_lock_lost: str
    lock_unavailable: str
    slot_tolerance: float
    host_id: str | None
    fleet_store: str | None
    fleet_budget: float
    dashboard_url: str | None
    catch_up: bool
    catch_up_max_age: float | None
    resolve_on_success: bool
    keep_runs: int
    keep_days: int

    __slots__ = tuple(__annotations__)

    def __init__(
        self,
        name: str,
        command: tuple[str, ...],
        options: dict[str, object],
        sources: dict[str, str],
    ) -> None:
        self.name = name
        self.command = command
        self.sources = sources
        for key, value in options.items():
            setattr(self, key, value)

    @property
    def options(self) -> dict[str, object]:
        """The option values by name (for `cronwrap config`)."""
        return {o.name: getattr(self, o.name) for o in RUN_OPTIONS if o.name != "name"}
