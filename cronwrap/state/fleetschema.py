"""The fleet store's schema: its versioned migrations, as the SQLite store's are in schema.py.
A store records its version in cronwrap_schema; state/fleetstore.py applies what is missing."""

from __future__ import annotations

# Each entry upgrades the schema from version i to i+1, as in the SQLite store. Never edit one
# that has shipped; append a new one instead.
MIGRATIONS: tuple[str, ...] = (
    # 1: runs, attempts, one row per (host, job), and the slot claims and lease holders of the
    # PostgreSQL lease (--lock-url postgresql://)
    """
    CREATE TABLE cronwrap_runs (
        run_id text PRIMARY KEY,
        host text NOT NULL,
        job text NOT NULL,
        pid integer,
        command text,
        started_at timestamptz NOT NULL,
        ended_at timestamptz,
        status text NOT NULL,
        exit_code integer,
        signal integer,
        attempts integer NOT NULL DEFAULT 0,
        duration_s double precision,
        output_tail text,
        reason text,
        schedule text,
        tz text,
        log_path text,
        exit_origin text NOT NULL DEFAULT 'child',
        flags text,
        slot timestamptz,
        rerun_of text,
        dead boolean NOT NULL DEFAULT false,
        resolved_at timestamptz,
        resolved_by text,
        shipped_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX cronwrap_runs_host_job ON cronwrap_runs (host, job, started_at DESC);
    CREATE INDEX cronwrap_runs_problems ON cronwrap_runs (started_at DESC)
        WHERE status IN ('failed', 'timeout', 'crashed', 'error');
    CREATE TABLE cronwrap_attempts (
        run_id text NOT NULL,
        attempt integer NOT NULL,
        started_at timestamptz NOT NULL,
        ended_at timestamptz,
        status text,
        exit_code integer,
        signal integer,
        duration_s double precision,
        PRIMARY KEY (run_id, attempt)
    );
    CREATE TABLE cronwrap_jobs (
        host text NOT NULL,
        job text NOT NULL,
        schedule text,
        tz text,
        last_started_at timestamptz,
        PRIMARY KEY (host, job)
    );
    CREATE TABLE cronwrap_slots (
        job text NOT NULL,
        slot timestamptz NOT NULL,
        host text NOT NULL,
        run_id text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (job, slot)
    );
    CREATE TABLE cronwrap_leases (
        job text PRIMARY KEY,
        host text NOT NULL,
        run_id text NOT NULL,
        taken_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # 2: a run's warnings (cronwrap's own problems during it): shown as degraded
    """
    ALTER TABLE cronwrap_runs ADD COLUMN warnings text;
    """,
    # 3: what status reads of each (host, job), kept beside its runs by every upsert: the
    # newest run, the newest that was not a skip, and the newest finished runs' durations
    # (oldest first), so that status reads one row per host-job instead of walking its runs.
    # Filled here for the runs already stored (the same statement upsert runs per key). And
    # the failures the dashboard lists get an index that holds every one of them: cancelled
    # runs count since schema 2's cronwrap, and the old index left them out (a full scan).
    """
    DROP INDEX IF EXISTS cronwrap_runs_problems;
    CREATE INDEX cronwrap_runs_dead ON cronwrap_runs (started_at DESC)
        WHERE status IN ('failed', 'timeout', 'crashed', 'cancelled', 'error');
    ALTER TABLE cronwrap_jobs
        ADD COLUMN last_run_id text,
        ADD COLUMN ran_run_id text,
        ADD COLUMN durations double precision[] NOT NULL DEFAULT '{}';
    UPDATE cronwrap_jobs j SET
        (last_run_id, last_started_at) = (
            SELECT r.run_id, r.started_at FROM cronwrap_runs r
            WHERE r.host = j.host AND r.job = j.job
            ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1),
        ran_run_id = (
            SELECT r.run_id FROM cronwrap_runs r
            WHERE r.host = j.host AND r.job = j.job AND r.status <> 'skipped'
            ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1),
        durations = coalesce((
            SELECT array_agg(y.duration_s ORDER BY y.started_at, y.run_id) FROM (
                SELECT r.duration_s, r.started_at, r.run_id FROM cronwrap_runs r
                WHERE r.host = j.host AND r.job = j.job AND r.duration_s IS NOT NULL
                AND r.status NOT IN ('skipped', 'running')
                ORDER BY r.started_at DESC, r.run_id DESC LIMIT 12) y), '{}');
    """,
    # 4: the summary also holds what status shows of the newest run (its columns but the
    # command, output tail and dead-letter ones), so status reads no run for most jobs: 5,000
    # lookups by run id were most of its query. Filled here from each job's newest run.
    """
    ALTER TABLE cronwrap_jobs
        ADD COLUMN last_pid integer, ADD COLUMN last_ended_at timestamptz,
        ADD COLUMN last_status text, ADD COLUMN last_exit_code integer,
        ADD COLUMN last_signal integer, ADD COLUMN last_attempts integer,
        ADD COLUMN last_duration_s double precision, ADD COLUMN last_reason text,
        ADD COLUMN last_schedule text, ADD COLUMN last_tz text, ADD COLUMN last_log_path text,
        ADD COLUMN last_exit_origin text, ADD COLUMN last_flags text,
        ADD COLUMN last_warnings text;
    UPDATE cronwrap_jobs j SET
        (last_pid, last_ended_at, last_status, last_exit_code, last_signal, last_attempts,
        last_duration_s, last_reason, last_schedule, last_tz, last_log_path,
        last_exit_origin, last_flags, last_warnings) = (
            SELECT r.pid, r.ended_at, r.status, r.exit_code, r.signal, r.attempts,
            r.duration_s, r.reason, r.schedule, r.tz, r.log_path, r.exit_origin, r.flags,
            r.warnings
            FROM cronwrap_runs r WHERE r.run_id = j.last_run_id);
    """,
    # 5: the order in which each run first arrived (seq): a host ships its runs in the order
    # it recorded them, so within a (host, job) the newest run is the one that arrived last,
    # whatever its clock said (a clock stepped back gives started_at of the past, and the
    # host's own status goes by its record order too). Runs stored before have none (NULL:
    # older than any that has one, among themselves by started_at). And a job row that no run
    # is stored under (left by an upsert whose run id was another host's or job's) goes.
    """
    CREATE SEQUENCE cronwrap_runs_seq AS bigint;
    ALTER TABLE cronwrap_runs ADD COLUMN seq bigint;
    ALTER TABLE cronwrap_runs ALTER COLUMN seq SET DEFAULT nextval('cronwrap_runs_seq');
    ALTER SEQUENCE cronwrap_runs_seq OWNED BY cronwrap_runs.seq;
    CREATE INDEX cronwrap_runs_host_job_seq
        ON cronwrap_runs (host, job, seq DESC NULLS LAST, started_at DESC, run_id DESC);
    DELETE FROM cronwrap_jobs j WHERE NOT EXISTS (
        SELECT 1 FROM cronwrap_runs r WHERE r.host = j.host AND r.job = j.job);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# A (host, job)'s runs newest first: in the order they first arrived (schema 5), which is
# the order the host recorded them in (it ships its queue in that order), so a clock stepped
# back cannot put an older run on top; runs stored before schema 5 come after, by started_at.
NEWEST_FIRST = "r.seq DESC NULLS LAST, r.started_at DESC, r.run_id DESC"
OLDEST_FIRST = "r.seq NULLS FIRST, r.started_at, r.run_id"

# one advisory lock key for schema changes, so hosts upgrading at once take turns
MIGRATE_LOCK = 0x63726F6E  # "cron"
MIGRATE_TIMEOUT_MS = 300_000
# the lease (--lock-url postgresql://) uses only cronwrap_slots and cronwrap_leases, there
# since schema 1: it never waits for an upgrade of the tables status reads
LEASE_SCHEMA = 1
