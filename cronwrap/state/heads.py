"""Each job's newest runs in brief (`jobs.heads`): the newest row, the newest that ran, the
running ones and the durations `status` draws, so a status of thousands of jobs reads one row
per job instead of walking 12 rows of each. Written by the store's writers in their own
transactions; SQLite triggers (schema 8) clear it on any other change to a job's runs, and a
cleared or missing summary is read from the runs themselves, so it can be missing but never
wrong."""

from __future__ import annotations

from cronwrap.state.records import in_chunks
from cronwrap.stdlib import sqlite3

DEPTH = 12  # the newest rows a summary covers: status's duration sparkline and current run

Rows = list[tuple[int, object, object]]  # (id, status, duration_s), newest first
_NEWEST = "SELECT id, status, duration_s FROM runs WHERE job=? ORDER BY id DESC LIMIT ?"


class Heads:
    """What status needs of a job's newest rows: the newest row's id, the newest that was
    not a skip (None: all skips), the ids still marked running (their state is checked
    against their host, pid and lock) and the durations of the rows that ran, oldest first."""

    __slots__ = ("durations", "newest", "ran", "running")

    def __init__(
        self, newest: int, ran: int | None, running: list[int], durations: list[float]
    ) -> None:
        self.newest, self.ran, self.running, self.durations = newest, ran, running, durations


def from_rows(rows: Rows, *, still_running: frozenset[int] = frozenset()) -> Heads | None:
    """The summary of a job's newest (id, status, duration_s) rows, newest first; None for
    none. `durations` leaves out skips, rows without a number and the runs in
    `still_running` (a row marked running has no duration unless written by hand, and then
    it counts once its cronwrap is known to be gone: only a reader can tell)."""
    if not rows:
        return None
    ran = next((int(r[0]) for r in rows if str(r[1]) != "skipped"), None)
    running = [int(r[0]) for r in rows if str(r[1]) == "running"]
    durations = [
        took
        for row_id, status, took in reversed(rows)
        # a duration of another type (a row edited by hand) reads as missing, as in
        # records.as_number
        if (type(took) is float or type(took) is int)
        and str(status) != "skipped"
        and row_id not in still_running
    ]
    return Heads(int(rows[0][0]), ran, running, durations)


def summary(rows: Rows) -> str | None:
    """The text kept in `jobs.heads` for these rows: "NEWEST RAN RUNNING DURATION...", ids
    in decimal, `-` for none, running ids joined by commas, durations as Python writes
    floats (read back exact). None when a summary cannot say it all: no rows, a duration
    that is not a float, or a running row with a duration (whether it counts depends on
    whether its cronwrap still lives, which only the reader can tell)."""
    heads = from_rows(rows)
    if heads is None or any(type(d) is not float for d in heads.durations):
        return None
    if any(str(r[1]) == "running" and type(r[2]) in (float, int) for r in rows):
        return None
    running = ",".join(map(str, heads.running)) or "-"
    ran = "-" if heads.ran is None else str(heads.ran)
    return " ".join([str(heads.newest), ran, running, *map(float.__repr__, heads.durations)])


def parse(text: object, seen: dict[str, list[float]]) -> Heads | None:
    """A kept summary; None for one that is missing or not in the form `summary` writes
    (then the runs are read). `seen`: durations already read, by their text (thousands of
    jobs share a few), each job getting its own list."""
    if type(text) is not str:
        return None
    parts = text.split(" ", 3)
    try:
        newest = int(parts[0])
        ran = None if parts[1] == "-" else int(parts[1])
        running = [] if parts[2] == "-" else [int(i) for i in parts[2].split(",")]
        tail = parts[3] if len(parts) > 3 else ""
        durations = seen.get(tail)
        if durations is None:
            durations = seen[tail] = [float(d) for d in tail.split(" ")] if tail else []
    except (IndexError, ValueError):
        return None
    return Heads(newest, ran, running, list(durations))


def refresh(conn: sqlite3.Connection, job: str) -> None:
    """Write the job's summary from its runs, in the caller's write transaction (after its
    changes to them: the triggers have cleared the summary by then)."""
    rows = conn.execute(_NEWEST, (job, DEPTH)).fetchall()
    conn.execute("UPDATE jobs SET heads=? WHERE name=?", (summary(rows), job))


def refresh_all(conn: sqlite3.Connection) -> None:
    """Every job's summary (the migration to schema 8, and stores built by other means)."""
    for (name,) in conn.execute("SELECT name FROM jobs").fetchall():
        refresh(conn, name)


def read(
    conn: sqlite3.Connection, names: list[str], *, kept: bool
) -> dict[str, tuple[Heads, Rows | None]]:
    """Each named job's Heads, with the rows they were read from (None: from its kept
    summary); jobs without runs are left out. `kept`: the store has summaries (schema 8);
    a job whose summary is missing or unreadable has its runs read instead."""
    out: dict[str, tuple[Heads, Rows | None]] = {}
    todo = names
    if kept:
        seen: dict[str, list[float]] = {}
        texts: dict[str, object] = {}
        if len(names) > 500:  # most of the jobs: one scan of their rows
            texts.update(conn.execute("SELECT name, heads FROM jobs").fetchall())
        for marks, chunk in in_chunks(names if len(names) <= 500 else []):
            rows = conn.execute(f"SELECT name, heads FROM jobs WHERE name IN ({marks})", chunk)
            texts.update(rows.fetchall())
        todo = []
        for name in names:
            heads = parse(texts.get(name), seen)
            if heads is None:
                todo.append(name)
            else:
                out[name] = (heads, None)
    for name in todo:
        newest: Rows = conn.execute(_NEWEST, (name, DEPTH)).fetchall()
        brief = from_rows(newest)
        if brief is not None:
            out[name] = (brief, newest)
    for name, (brief, _) in out.items():
        if brief.ran is None:
            _ran_before(conn, name, brief)
    return out


def _ran_before(conn: sqlite3.Connection, job: str, brief: Heads) -> None:
    """A job whose newest rows are all skips: the run that held the lock meanwhile (or last
    ran) is older than they are, and it says how the job is doing (a run longer than 12 of
    its slots is still running, or failed); found by walking back past the skips."""
    row = conn.execute(
        "SELECT id, status FROM runs WHERE job=? AND status<>'skipped' ORDER BY id DESC LIMIT 1",
        (job,),
    ).fetchone()
    if row is not None:
        brief.ran = int(row[0])
        if str(row[1]) == "running":
            brief.running.append(brief.ran)
