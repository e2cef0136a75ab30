"""Fleet store benchmark (issue 19), on a PostgreSQL cluster of its own (initdb + pg_ctl in a
temp dir, as tests/pgserver.py does; as root it runs as the `postgres` user).

1. `cronwrap status --fleet-store URL` over 50 hosts x 100 jobs and 5M runs (generated server
   side with generate_series), as a ratio to `python3 -c pass`, measured pair by pair.
2. The extra wall time shipping adds to a run: `cronwrap run -- sleep 0.2` (and `-- true`)
   with a fleet store (up; down: a closed port; black-holed: a socket that never answers)
   minus the same run without one, pair by pair; each timed run starts once the previous
   run's detached shipper is done. Then how long after a run exits its end is in the store.

    python benchmarks/fleet.py                  # both
    python benchmarks/fleet.py --pairs 15 --runs 5000000
    python benchmarks/fleet.py --only status --cluster-dir /tmp/fleet-pg   # generate once
    python benchmarks/fleet.py --only shipping --baseline-src /tmp/old-cronwrap  # before/after
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pgserver import BlackHole, PgServer, free_port, require_postgres  # noqa: E402

PY = sys.executable
GOAL_STATUS = 25.0


def wall(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONWRAP_")}
    env["CRONWRAP_HOME"] = str(home)
    env["COLUMNS"] = "160"
    return env


def generate(server: PgServer, db: str, *, hosts: int, jobs: int, runs: int) -> float:
    """The schema by cronwrap itself, then the rows server side (the runs' indexes rebuilt
    after them, as they were defined), then each job's summary as upsert writes it; returns
    seconds taken."""
    from cronwrap.state import fleetstore

    with fleetstore.FleetStore.open(server.socket_url(db)):
        pass
    t = time.perf_counter()
    pairs = hosts * jobs
    indexes = server.sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'cronwrap_runs' "
        "AND indexname <> 'cronwrap_runs_pkey'",
        db,
    )
    drop = "".join(f"DROP INDEX {name};\n" for name, _ in indexes)
    create = "".join(f"{definition};\n" for _, definition in indexes)
    server.sql(
        f"""
        {drop}
        ALTER TABLE cronwrap_runs SET (autovacuum_enabled = false);
        INSERT INTO cronwrap_runs (run_id, host, job, pid, command, started_at, ended_at,
            status, exit_code, attempts, duration_s, output_tail, schedule, tz)
        SELECT 'r' || g, 'host' || (g % {hosts}), 'job' || ((g / {hosts}) % {jobs}),
            1000 + g % 30000,
            'backup.sh',
            now() - make_interval(mins => 5 * (g / {pairs})) - make_interval(secs => g % 60),
            now() - make_interval(mins => 5 * (g / {pairs})) - make_interval(secs => g % 60)
                + make_interval(secs => 1 + g % 7),
            CASE WHEN g % 97 = 0 THEN 'failed' ELSE 'success' END,
            CASE WHEN g % 97 = 0 THEN 3 ELSE 0 END, 1, 1 + g % 7,
            CASE WHEN g % 97 = 0 THEN 'error: disk full' ELSE NULL END, '*/5 * * * *', 'UTC'
        FROM generate_series(1, {runs}) g;
        INSERT INTO cronwrap_jobs (host, job, schedule, tz, last_started_at)
        SELECT host, job, '*/5 * * * *', 'UTC', max(started_at) FROM cronwrap_runs GROUP BY 1, 2;
        {create}
        ALTER TABLE cronwrap_runs SET (autovacuum_enabled = true);
        """,
        db,
    )
    import psycopg

    with psycopg.connect(server.socket_url(db), autocommit=True) as conn:
        keys = conn.execute("SELECT host, job FROM cronwrap_jobs").fetchall()
        with conn.cursor() as cur:
            cur.executemany(fleetstore.SUMMARY_SQL, [(h, j, h, j) for h, j in keys])
        conn.execute("ANALYZE")
    return time.perf_counter() - t


def upgrade(server: PgServer, db: str) -> None:
    """A reused store written by an older cronwrap is upgraded first, and the upgrade timed."""
    from cronwrap.state import fleetstore

    before = server.sql("SELECT max(version) FROM cronwrap_schema", db)[0][0]
    if before == fleetstore.SCHEMA_VERSION:
        return
    t = time.perf_counter()
    with fleetstore.FleetStore.open(server.socket_url(db)):
        pass
    took = time.perf_counter() - t
    print(f"upgraded the store from schema {before} to {fleetstore.SCHEMA_VERSION} in {took:.1f}s")
    server.sql("ANALYZE", db)


def paired(
    a: list[str], b: list[str], env: dict[str, str], pairs: int
) -> list[tuple[float, float]]:
    for _ in range(2):  # warm-ups
        wall(a, env)
        wall(b, env)
    return [(wall(a, env), wall(b, env)) for _ in range(pairs)]


def bench_status(server: PgServer, args: argparse.Namespace, tmp: Path, *, reuse: bool) -> None:
    db = "fleet"
    if reuse:
        count = server.sql("SELECT count(*) FROM cronwrap_runs", db)[0][0]
        print(f"reused {count:,} runs for {args.hosts} hosts x {args.jobs} jobs in {server.dir}")
        upgrade(server, db)
    else:
        server.create_db(db)
        took = generate(server, db, hosts=args.hosts, jobs=args.jobs, runs=args.runs)
        count = server.sql("SELECT count(*) FROM cronwrap_runs", db)[0][0]
        print(f"generated {count:,} runs for {args.hosts} hosts x {args.jobs} jobs in {took:.1f}s")
    env = env_for(tmp / "reader")
    url = server.url(db)
    cases = {
        "status --fleet-store (table)": ["status", "--fleet-store", url],
        "status --fleet-store --json": ["status", "--fleet-store", url, "--json"],
        "status --fleet-store --host": ["status", "--fleet-store", url, "--host", "host7"],
        "status --fleet-store --html": [
            "status",
            "--fleet-store",
            url,
            "--html",
            str(tmp / "p.html"),
        ],
    }
    base = [PY, "-c", "pass"]
    for name, argv in cases.items():
        rows = paired([PY, "-m", "cronwrap", *argv], base, env, args.pairs)
        ratios = [a / b for a, b in rows]
        med = statistics.median(ratios)
        verdict = "ok" if med <= GOAL_STATUS else "MISSED"
        print(
            f"{name:32s} {statistics.median(a for a, _ in rows) * 1000:7.0f} ms  "
            f"python -c pass {statistics.median(b for _, b in rows) * 1000:5.0f} ms  "
            f"ratio {med:5.1f}x (min {min(ratios):.1f}, max {max(ratios):.1f}; "
            f"goal <= {GOAL_STATUS:g}x: {verdict})"
        )


def settle(home: Path, timeout: float = 120.0) -> None:
    """Wait until no fleet shipper holds this home's lock (so the next timed run does not
    share the CPU with the last one's shipper)."""
    import fcntl

    path = home / "fleet-ship.lock"
    if not path.exists():
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
    finally:
        os.close(fd)


def timed_run(argv: list[str], env: dict[str, str], home: Path, cwd: Path) -> float:
    settle(home)
    t = time.perf_counter()
    out = subprocess.DEVNULL
    subprocess.run(argv, env=env, cwd=cwd, stdout=out, stderr=out, check=False)
    return time.perf_counter() - t


def bench_shipping(server: PgServer, args: argparse.Namespace, tmp: Path) -> None:
    """Each case's run with a fleet store against the same run without one, pair by pair,
    each timed run started once the previous one's shipper is done (--baseline-src: the
    same pairs for an older cronwrap source tree, interleaved with ours)."""
    import compileall

    # bytecode as a real install has it (pip compiles at install time); under
    # PYTHONDONTWRITEBYTECODE every run would otherwise compile the package from source
    for src in (str(ROOT), args.baseline_src):
        if src:
            compileall.compile_dir(os.path.join(src, "cronwrap"), quiet=1)
    db = "ship"
    server.sql(f"DROP DATABASE IF EXISTS {db}")  # a reused cluster's from a run before
    server.create_db(db)
    hole = BlackHole()
    dead = f"postgresql://postgres:x@127.0.0.1:{free_port()}/ship"
    sources = {"this": None, "baseline": args.baseline_src} if args.baseline_src else {"this": None}
    try:
        stores = (
            ("none", None),  # the control: the same run twice, the noise of the measurement
            ("up", server.url(db)),
            ("down", dead),
            ("black-holed", hole.url()),
        )
        for label, url in stores:
            for job in args.ship_jobs.split(","):
                rows: dict[str, list[tuple[float, float]]] = {name: [] for name in sources}
                homes = {}
                for name, src in sources.items():
                    home = tmp / f"ship-{label}-{job.replace(' ', '_')}-{name}"
                    env = env_for(home)
                    env["PYTHONPATH"] = src or str(ROOT)  # the cwd is tmp: name the source
                    base = [PY, "-m", "cronwrap", "run"]
                    store = ["--fleet-store", url, "--fleet-budget", args.budget] if url else []
                    shipped = [*base, "--name", "shipped", *store, "--", *job.split()]
                    plain = [*base, "--name", "plain", "--", *job.split()]
                    homes[name] = (env, home, shipped, plain)
                for n in range(args.ship_pairs + 2):  # 2 warm-ups
                    for name, (env, home, shipped, plain) in homes.items():
                        pair = (
                            timed_run(shipped, env, home, tmp),
                            timed_run(plain, env, home, tmp),
                        )
                        if n >= 2:
                            rows[name].append(pair)
                for name, pairs in rows.items():
                    extra = [a - b for a, b in pairs]
                    med = statistics.median(extra) * 1000
                    shown = f"`{job}`"
                    print(
                        f"shipping ({name:8s}) store {label:11s} {shown:11s} extra per run: median "
                        f"{med:5.0f} ms (min {min(extra) * 1000:.0f}, max {max(extra) * 1000:.0f}; "
                        f"{len(extra)} pairs); the same run without a store "
                        f"{statistics.median(b for _, b in pairs) * 1000:.0f} ms; "
                        f"--fleet-budget {args.budget}"
                    )
    finally:
        hole.close()
    for home in tmp.glob("ship-up-*"):
        settle(home)
    arrived = server.sql("SELECT count(*) FROM cronwrap_runs", db)
    expected = len(sources) * len(args.ship_jobs.split(",")) * (args.ship_pairs + 2)
    print(f"runs in the store that was up: {arrived[0][0]} (of {expected})")
    bench_arrival(server, args, tmp)


def bench_arrival(server: PgServer, args: argparse.Namespace, tmp: Path) -> None:
    """How long after `cronwrap run` exits its finished run is in the fleet store."""
    db = "arrive"
    server.sql(f"DROP DATABASE IF EXISTS {db}")  # a reused cluster's from a run before
    server.create_db(db)
    home = tmp / "arrive"
    env = dict(env_for(home), PYTHONPATH=str(ROOT))
    import psycopg

    lags = []
    with psycopg.connect(server.socket_url(db), autocommit=True) as conn:
        for n in range(args.ship_pairs):
            name = f"a{n}"
            argv = [PY, "-m", "cronwrap", "run", "--name", name, "--fleet-store",
                    server.url(db), "--", "true"]  # fmt: skip
            settle(home)
            subprocess.run(argv, env=env, cwd=tmp, stdout=subprocess.DEVNULL, check=False)
            done = time.perf_counter()
            while time.perf_counter() - done < 60:
                row = conn.execute(
                    "SELECT count(*) FROM pg_tables WHERE tablename = 'cronwrap_runs'"
                ).fetchone()
                if row and row[0]:
                    got = conn.execute(
                        "SELECT status FROM cronwrap_runs WHERE job = %s", (name,)
                    ).fetchone()
                    if got and got[0] != "running":
                        break
                time.sleep(0.002)
            lags.append(time.perf_counter() - done)
    ms = [lag * 1000 for lag in lags]
    print(
        f"arrival: a run's end is in the fleet store median {statistics.median(ms):.0f} ms "
        f"(min {min(ms):.0f}, max {max(ms):.0f}) after `cronwrap run -- true` exited"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5_000_000)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--ship-pairs", type=int, default=10)
    parser.add_argument("--only", choices=("status", "shipping"))
    parser.add_argument(
        "--ship-jobs", default="sleep 0.2,true", help="the shipped jobs, comma-separated"
    )
    parser.add_argument(
        "--baseline-src",
        help="an older cronwrap source tree (e.g. a git worktree) measured beside this one",
    )
    parser.add_argument("--budget", default="2s", help="--fleet-budget of the shipped runs")
    parser.add_argument(
        "--cluster-dir",
        help="keep the PostgreSQL cluster here and reuse its generated fleet store on later"
        " runs with the same sizes (default: a fresh cluster in a temp dir each time)",
    )
    args = parser.parse_args()
    # bytecode as a real install has it (as bench.py does): otherwise, with
    # PYTHONDONTWRITEBYTECODE set, every measured run would compile the package from source
    import compileall

    compileall.compile_dir(str(ROOT / "cronwrap"), quiet=1)
    server, reuse = cluster(args)
    print(
        f"PostgreSQL {server.sql('SHOW server_version')[0][0]}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    try:
        with tempfile.TemporaryDirectory() as d:
            if args.only in (None, "status"):
                bench_status(server, args, Path(d), reuse=reuse)
                if args.cluster_dir:
                    (server.dir / "generated").write_text(generated_mark(args))
            if args.only in (None, "shipping"):
                bench_shipping(server, args, Path(d))
    finally:
        if args.cluster_dir:
            server.stop()
        else:
            server.cleanup()
    return 0


def generated_mark(args: argparse.Namespace) -> str:
    return f"{args.hosts} hosts x {args.jobs} jobs, {args.runs} runs\n"


def cluster(args: argparse.Namespace) -> tuple[PgServer, bool]:
    """A fresh cluster in a temp dir (removed at the end), or with --cluster-dir one kept
    there: reused when it holds the fleet store generated for the same sizes."""
    server = PgServer(require_postgres())
    if not args.cluster_dir:
        return server.init().start(), False
    shutil.rmtree(server.dir, ignore_errors=True)
    server.dir = Path(args.cluster_dir).resolve()
    server.data = server.dir / "data"
    mark = server.dir / "generated"
    reuse = mark.exists() and mark.read_text() == generated_mark(args)
    if not reuse:
        shutil.rmtree(server.dir, ignore_errors=True)
        server.dir.mkdir(parents=True)
        if server.as_root:
            shutil.chown(server.dir, "postgres", "postgres")
        server.init()
    return server.start(), reuse


if __name__ == "__main__":
    sys.exit(main())
