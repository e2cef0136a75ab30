"""The run store's schema: forward migrations, one per version, never edited once shipped."""

from __future__ import annotations

# Each entry upgrades the schema from version i to i+1. Never edit one that has shipped;
# append a new one instead.
MIGRATIONS: tuple[str, ...] = (
    # 1: runs and attempts
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        job TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL,
        exit_code INTEGER,
        signal INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        duration_s REAL,
        output_tail TEXT,
        reason TEXT
    );
    CREATE INDEX runs_job_id ON runs (job, id);
    CREATE TABLE attempts (
        run_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT,
        exit_code INTEGER,
        signal INTEGER,
        duration_s REAL,
        PRIMARY KEY (run_id, attempt)
    );
    """,
    # 2: what status and history need: the schedule a run was started with, where its
    # output went, and whether the exit code came from the child or from cronwrap
    """
    ALTER TABLE runs ADD COLUMN schedule TEXT;
    ALTER TABLE runs ADD COLUMN tz TEXT;
    ALTER TABLE runs ADD COLUMN log_path TEXT;
    ALTER TABLE runs ADD COLUMN exit_origin TEXT NOT NULL DEFAULT 'child';
    ALTER TABLE runs ADD COLUMN state_dir TEXT;
    CREATE INDEX runs_started ON runs (started_at);
    """,
    # 3: one row per job, so `status` lists jobs without scanning a million runs
    """
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        schedule TEXT,
        tz TEXT,
        last_started_at TEXT
    );
    INSERT OR IGNORE INTO jobs (name, last_started_at)
        SELECT job, max(started_at) FROM runs GROUP BY job;
    """,
    # 4: alert state per job, result counters that outlive pruning (for Prometheus), and
    # marks on runs such as "slow"
    """
    ALTER TABLE jobs ADD COLUMN alert_open INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN last_alert_at TEXT;
    ALTER TABLE runs ADD COLUMN flags TEXT;
    CREATE TABLE counters (
        job TEXT NOT NULL,
        result TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (job, result)
    );
    """,
    # 5: job context and dead letters: the scheduled slot a run belongs to, what is needed
    # to run it again (spec: argv, flags, config path; never a secret in clear), dead
    # letters until resolved, reruns linked to their original, and per job the last
    # success (kept here so pruning cannot lose it) and the catch-up settings
    """
    ALTER TABLE runs ADD COLUMN slot TEXT;
    ALTER TABLE runs ADD COLUMN rerun_of TEXT;
    ALTER TABLE runs ADD COLUMN spec TEXT;
    ALTER TABLE runs ADD COLUMN dead INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN resolved_at TEXT;
    ALTER TABLE runs ADD COLUMN resolved_by TEXT;
    CREATE INDEX runs_dead ON runs (job) WHERE dead = 1;
    CREATE INDEX runs_job_slot ON runs (job, slot);
    ALTER TABLE jobs ADD COLUMN spec TEXT;
    ALTER TABLE jobs ADD COLUMN catch_up INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN catch_up_max_age REAL;
    ALTER TABLE jobs ADD COLUMN last_success_at TEXT;
    ALTER TABLE jobs ADD COLUMN last_success_slot TEXT;
    UPDATE jobs SET last_success_at = (
        SELECT max(started_at) FROM runs WHERE runs.job = jobs.name AND status = 'success');
    """,
    # 6: runs not yet shipped to the fleet store (PostgreSQL), oldest first; a run is queued
    # again each time it changes, and its newest state is what gets shipped
    """
    CREATE TABLE fleet_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        queued_at REAL NOT NULL DEFAULT (julianday('now'))
    );
    """,
    # 7: what went wrong with cronwrap's own reporting during a run (one line each): a run
    # with warnings is shown as degraded
    """
    ALTER TABLE runs ADD COLUMN warnings TEXT;
    """,
    # 8: each job's newest runs in brief (state/heads.py), so status reads one row per job;
    # the store's writers keep it in their transactions, and any other change to a job's
    # runs (a hand edit, another tool) clears it, so it is missing rather than wrong: the
    # migration fills it in afterwards (state/heads.py: refresh_all)
    """
    ALTER TABLE jobs ADD COLUMN heads TEXT;
    CREATE TRIGGER runs_heads_insert AFTER INSERT ON runs BEGIN
        UPDATE jobs SET heads = NULL WHERE name = NEW.job AND heads IS NOT NULL;
    END;
    CREATE TRIGGER runs_heads_update AFTER UPDATE OF id, job, status, duration_s ON runs BEGIN
        UPDATE jobs SET heads = NULL WHERE name IN (OLD.job, NEW.job) AND heads IS NOT NULL;
    END;
    CREATE TRIGGER runs_heads_delete AFTER DELETE ON runs BEGIN
        UPDATE jobs SET heads = NULL WHERE name = OLD.job AND heads IS NOT NULL;
    END;
    """,
)
# A store of this version or later is read as it is, without migrating it first: what came
# after it (the summaries of schema 8) a reader can do without, only more slowly.
READABLE_SINCE = 7
# Runs that end like this did not do their work: each stays a dead letter (listed by
# `cronwrap failed`, never pruned) until a rerun succeeds or someone resolves it.
DEAD_STATUSES = ("failed", "timeout", "crashed", "cancelled", "error")
SCHEMA_VERSION = len(MIGRATIONS)
