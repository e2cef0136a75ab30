"""cronwrap's performance benchmark (issues 8 and 21). Standard library only.

Each case runs alternately with `python3 -c pass` (A B A B ..., after warm-ups) and reports
the median ratio of wall times with its min-max, and the case's peak RSS (GNU time). Absolute
times drift on shared machines; ratios taken side by side do not. The burst and throughput
cases alternate cronwrap with their yardstick (the minimal wrapper, `cat | cat`) round by
round and report the median of the per-round ratios, with the yardstick's own figures beside.

    python benchmarks/bench.py                 # every case
    python benchmarks/bench.py --check         # exit 1 if a target is missed
    python benchmarks/bench.py --only run-ping,explain --pairs 30
    python benchmarks/bench.py --only run --baseline /old/venv/bin/cronwrap   # before/after
"""

from __future__ import annotations

import argparse
import http.server
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
BIN = Path(PY).parent / "cronwrap"

# name: (ratio target, RSS target in MiB or None)
TARGETS = {
    "run-noping": (3.5, 15),
    "run-ping": (4.0, 15),
    "explain": (6.0, None),
    "status-5000x5M": (20.0, None),
    "status-table": (20.0, None),
    "status-job": (6.0, None),
    "history": (6.0, None),
}
BURST_CPU, BURST_LAST_START = 1.3, 2.0  # × the minimal wrapper, same rounds
THROUGHPUT, THROUGHPUT_RSS = 0.9, 30  # × `cat | cat`; MiB


class _Ping(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Ping-Body-Limit", "10000")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


def ping_server() -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ping)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/ping/{uuid.uuid4()}"


def timed(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    """Wall seconds of one run."""
    t = time.perf_counter()
    code = subprocess.call(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    if code not in ok:
        raise SystemExit(f"benchmark command failed ({code}): {' '.join(argv)}")
    return wall


def peak_rss_mib(argv: list[str], env: dict[str, str], runs: int = 5) -> float:
    """Peak RSS through GNU time: a child forked from this (large) Python process would
    report this process's RSS from before its exec."""
    time_bin = shutil.which("time", path="/usr/bin:/bin")
    if time_bin is None:
        return float("nan")
    peak = 0
    for _ in range(runs):
        out = subprocess.run(
            [time_bin, "-f", "%M", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        peak = max(peak, int(out.stderr.strip().splitlines()[-1]))
    return peak / 1024


def compare(
    argv: list[str], env: dict[str, str], pairs: int, ok: tuple[int, ...] = (0,)
) -> dict[str, float]:
    base = [PY, "-c", "pass"]
    for _ in range(3):  # warm-ups: page cache
        timed(base, env)
        timed(argv, env, ok)
    ratios, bases = [], []
    for _ in range(pairs):
        a = timed(base, env)
        b = timed(argv, env, ok)
        ratios.append(b / a)
        bases.append(a)
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "rss_mib": peak_rss_mib(argv, env),
        "base_ms": statistics.median(bases) * 1000,
    }


def make_big_store(path: Path, jobs: int, runs_per_job: int) -> None:
    """A run store with `jobs` jobs and `runs_per_job` runs each, 15 minutes apart, in time
    order (as cron writes them), through cronwrap's own schema. Generated inside SQLite:
    5M rows in about a minute. Adding runs to an existing store continues its history."""
    sys.path.insert(0, str(HERE.parent))
    from cronwrap.state.store import Store

    Store.open(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    # built in rollback-journal mode without a journal: through the WAL, 5M rows would
    # first be written to a gigabyte-sized log; the store goes back to WAL when built
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    first = db.execute("SELECT count(*) FROM runs").fetchone()[0] // max(jobs, 1)
    db.execute(
        """
        WITH RECURSIVE
          r(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM r WHERE i < :last),
          j(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM j WHERE n < :jobs)
        INSERT INTO runs (run_id, job, host, pid, command, started_at, ended_at, status,
                          exit_code, attempts, duration_s, output_tail, schedule, tz, exit_origin)
        SELECT printf('%05d-%07d', n, i), printf('job%04d', n), 'bench', 1, 'true',
               strftime(:iso, '2020-01-01', (i * 900) || ' seconds'),
               strftime(:iso, '2020-01-01', (i * 900 + 2) || ' seconds'),
               'success', 0, 1, 2.0, '', '*/15 * * * *', 'UTC', 'child'
        FROM r, j
        """,
        {
            "first": first,
            "last": first + runs_per_job - 1,
            "jobs": jobs - 1,
            "iso": "%Y-%m-%dT%H:%M:%S.000000+00:00",
        },
    )
    db.execute(
        "INSERT OR REPLACE INTO jobs (name, schedule, tz, last_started_at) "
        "SELECT job, '*/15 * * * *', 'UTC', max(started_at) FROM runs GROUP BY job"
    )
    # rows written behind the store's back clear the jobs' summaries: write them, as the
    # store's own writers do
    from cronwrap.state import heads

    heads.refresh_all(db)
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def status_store(
    args: argparse.Namespace, tmp: Path, env: dict[str, str], status_argv: list[str]
) -> tuple[dict[str, str], float, str]:
    """The big store status and history read (its env), the peak RSS of `status_argv` on the
    same jobs with one run each, and a note on how the store was made. With --store-dir, a
    store built there before for the same --status-jobs/--status-runs is reused."""
    reuse = Path(args.store_dir) if args.store_dir else None
    base = reuse / f"{args.status_jobs}x{args.status_runs}" if reuse else tmp
    big_home = base / "big"
    done = base / "complete"
    status_env = dict(env, CRONWRAP_HOME=str(big_home))
    if reuse is not None and done.exists():
        small_rss = peak_rss_mib(status_argv, dict(env, CRONWRAP_HOME=str(base / "small")), 3)
        return status_env, small_rss, f"# reused the store in {base} ({done.read_text()})"
    shutil.rmtree(base / "small", ignore_errors=True)
    shutil.rmtree(big_home, ignore_errors=True)
    big_home.mkdir(parents=True)
    # memory flat in runs: the same jobs with one run each, then with all their runs
    make_big_store(big_home / "runs.db", args.status_jobs, 1)
    small_rss = peak_rss_mib(status_argv, status_env, runs=3)
    if reuse is not None:
        shutil.copytree(big_home, base / "small")
    t = time.perf_counter()
    make_big_store(big_home / "runs.db", args.status_jobs, args.status_runs - 1)
    made = (
        f"{args.status_jobs} jobs and {args.status_jobs * args.status_runs:,} runs"
        f" in {time.perf_counter() - t:.0f}s"
    )
    if reuse is not None:
        done.write_text(made)
    return status_env, small_rss, f"# built a store with {made}"


def burst_round(n: int, argv_for, env: dict[str, str], marks: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Start n commands at once; each job touches marks/<i> as it starts. Wall seconds,
    children's CPU seconds, failures, and when the last job started (s after the release)."""
    shutil.rmtree(marks, ignore_errors=True)
    marks.mkdir()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    t = time.perf_counter()
    procs = [
        subprocess.Popen(argv_for(i), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for i in range(n)
    ]
    failures = 0
    for p in procs:
        _, err = p.communicate()
        failures += p.returncode != 0 or bool(err)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    starts = [m.stat().st_mtime for m in marks.iterdir()]
    last = max(starts) - t0 if len(starts) == n else float("inf")
    return {"wall": wall, "cpu": cpu, "failures": failures, "last_start": last}


def burst(n: int, rounds: int, tmp: Path, env: dict[str, str]) -> dict[str, object]:
    """cronwrap and the minimal wrapper, n at once, alternating for `rounds` rounds."""
    marks = tmp / "marks"
    wrapper_dir = tmp / "wrapper"
    wrapper_dir.mkdir(exist_ok=True)
    home = tmp / "burst-home"
    benv = dict(env, CRONWRAP_HOME=str(home))
    cw: list[dict[str, float]] = []
    mw: list[dict[str, float]] = []
    for _ in range(rounds):
        cw.append(
            burst_round(
                n,
                lambda i: [str(BIN), "run", "--name", f"b{i}", "--", "touch", str(marks / str(i))],
                benv,
                marks,
            )
        )
        mw.append(
            burst_round(
                n,
                lambda i: [
                    PY,
                    str(HERE / "minimal_wrapper.py"),
                    str(wrapper_dir),
                    "-",
                    "--",
                    "touch",
                    str(marks / str(i)),
                ],
                env,
                marks,
            )
        )
    db = sqlite3.connect(home / "runs.db")
    recorded = db.execute("SELECT count(*) FROM runs WHERE status='success'").fetchone()[0]
    db.close()
    return {
        "cpu_ratio": statistics.median(c["cpu"] / m["cpu"] for c, m in zip(cw, mw, strict=True)),
        "start_ratio": statistics.median(
            c["last_start"] / m["last_start"] for c, m in zip(cw, mw, strict=True)
        ),
        "cw": {k: statistics.median(r[k] for r in cw) for k in cw[0]},
        "mw": {k: statistics.median(r[k] for r in mw) for k in mw[0]},
        "recorded": recorded,
        "expected": n * rounds,
        "failures": sum(r["failures"] for r in cw),
    }


def throughput(size: int, pairs: int, tmp: Path, env: dict[str, str]) -> dict[str, float]:
    """`cat big | cat >/dev/null` against `cronwrap run -- cat big | cat >/dev/null` and the
    minimal relay, round by round, median of the per-round ratios of rates.

    Each pipeline runs on one CPU, the same for all (the target): so the ratio is what a
    pipeline costs per byte, which is what cronwrap decides. Spread over the CPUs (reported
    beside, no target) it is mostly where the scheduler puts the processes: idle, the two
    cats on two CPUs wake each other for every 64 KiB and cronwrap's 1 MiB pipes win 2-3.6x;
    busy, a third process in the pipeline waits for a CPU at each hand-off, and a relay in
    C doing nothing but splice(2) lands at 0.6-0.8x as cronwrap does."""
    big = tmp / "bigfile"
    with open(big, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    rss_file = tmp / "rss"
    # GNU time measures cronwrap alone (rusage of a shell forked from this big process
    # would report this process's memory)
    time_bin = shutil.which("time", path="/usr/bin:/bin")
    commands = {
        "cat": f"cat {big} | cat > /dev/null",
        "cronwrap": f"{BIN} run --name tp -- cat {big} | cat > /dev/null",
        "relay": f"{PY} {HERE / 'minimal_relay.py'} cat {big} | cat > /dev/null",
    }
    if time_bin:
        commands["cronwrap"] = f"{time_bin} -o {rss_file} -f %M {commands['cronwrap']}"
    cpu = max(os.sched_getaffinity(0))
    rss = 0

    def timed(cmd: str, pinned: bool) -> float:
        t = time.perf_counter()
        subprocess.run(
            ["sh", "-c", cmd],
            env=env,
            check=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if pinned else None,
        )
        return size / (time.perf_counter() - t)

    timed(commands["cat"], False)  # warm-up: page cache
    rates: dict[str, list[float]] = {"cat": [], "cronwrap": [], "relay": []}
    ratios, relay_ratios, spread = [], [], []
    for _ in range(pairs):
        rate = {key: timed(cmd, True) for key, cmd in commands.items()}
        if rss_file.exists():
            rss = max(rss, int(rss_file.read_text().split()[-1]))
        for key, value in rate.items():
            rates[key].append(value)
        ratios.append(rate["cronwrap"] / rate["cat"])
        relay_ratios.append(rate["relay"] / rate["cat"])
    for _ in range(pairs):
        spread.append(timed(commands["cronwrap"], False) / timed(commands["cat"], False))
    big.unlink()
    return {
        "cpu": cpu,
        "cat_mb_s": statistics.median(rates["cat"]) / 1e6,
        "cronwrap_mb_s": statistics.median(rates["cronwrap"]) / 1e6,
        "relay_mb_s": statistics.median(rates["relay"]) / 1e6,
        "ratio": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "relay_ratio": statistics.median(relay_ratios),
        "spread_ratio": statistics.median(spread),
        "spread_min": min(spread),
        "spread_max": max(spread),
        "rss_mib": rss / 1024,
    }


def schedule_speed() -> dict[str, float]:
    """In-process: ms for 1000 next run times of each expression in Europe/Berlin (best of 5,
    caches cleared each time), and for deciding that an expression never fires. CPU time of
    this process, not wall time: on a busy machine a 30 ms computation spends most of its
    wall time waiting for a CPU, which says nothing about the matcher (this is the one target
    that is not a ratio to a yardstick, so what it counts must not move with the load)."""
    sys.path.insert(0, str(HERE.parent))
    from zoneinfo import ZoneInfo

    from cronwrap.cron import schedule as sched
    from cronwrap.cron.schedule import parse

    tz = ZoneInfo("Europe/Berlin")
    after = datetime(2025, 1, 1, tzinfo=timezone.utc)
    out = {}
    for expr in (
        "*/5 * * * *",
        "0 0 * * *",
        "30 2 * * 1-5",
        "0 0 13 * 5",
        "* * * * *",
        "0 0 29 2 1",
        "0 0 */2 * 1",
    ):
        best = float("inf")
        for _ in range(5):
            sched._instants_on.cache_clear()  # cold: no help from an earlier round
            sched._is_fixed_offset_day.cache_clear()
            sched._utc_instants_on.cache_clear()
            t = time.process_time()
            runs = parse(expr).next_runs(after, tz, 1000)
            best = min(best, time.process_time() - t)
        assert len(runs) == 1000, expr
        out[expr] = best * 1000
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        assert parse("0 0 31 2,4,6,9,11 *").never
        best = min(best, time.process_time() - t)
    out["never: 0 0 31 2,4,6,9,11 *"] = best * 1000
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--check", action="store_true", help="exit 1 if any target is missed")
    ap.add_argument("--burst", type=int, default=300)
    ap.add_argument("--burst-rounds", type=int, default=3)
    ap.add_argument("--throughput-mib", type=int, default=2048)
    ap.add_argument("--throughput-pairs", type=int, default=5)
    ap.add_argument(
        "--baseline",
        metavar="CRONWRAP",
        help="another install's cronwrap executable (an older revision): its `run` cases are"
        " measured beside ours, in their own CRONWRAP_HOME",
    )
    ap.add_argument("--status-jobs", type=int, default=5000)
    ap.add_argument("--status-runs", type=int, default=1000, help="runs per job")
    ap.add_argument(
        "--store-dir",
        help="build the status store here once and reuse it on later runs (default: a fresh"
        " one in a temp dir each time)",
    )
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))

    def want(name: str) -> bool:
        return not only or name in only or name.split("-", 1)[0] in only

    # bytecode as a real install has it (pip compiles at install time; PYTHONDONTWRITEBYTECODE
    # or an editable install would otherwise make every run compile the package from source)
    import compileall

    compileall.compile_dir(str(HERE.parent / "cronwrap"), quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="cwbench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONWRAP_")}
    env["CRONWRAP_HOME"] = str(tmp / "home")
    url = ping_server()
    results: dict[str, dict[str, float]] = {}
    print(
        f"# cronwrap benchmark, {datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {PY}"
    )
    cases = {
        "python-c-pass": [PY, "-c", "pass"],
        "import-click": [PY, "-c", "import click"],
        "wrapper-ping": [PY, str(HERE / "minimal_wrapper.py"), str(tmp), url, "--", "true"],
        "run-noping": [str(BIN), "run", "--name", "bench", "--", "true"],
        "run-ping": [str(BIN), "run", "--name", "bench-ping", "--ping", url, "--", "true"],
        # what an HTTPS ping adds on top of a plain one: importing ssl and making the
        # verifying context (CA certificates loaded)
        "tls-context": [PY, "-c", "from cronwrap.notify.http import tls_context; tls_context()"],
        "explain": [str(BIN), "explain", "0 0 15 * 5", "--tz", "Europe/Berlin"],
    }
    case_env = {}
    if args.baseline:
        # right after ours, so both are measured as close together as the run allows
        base_env = dict(env, CRONWRAP_HOME=str(tmp / "baseline-home"))
        for ours in ("run-noping", "run-ping"):
            argv = [args.baseline, *cases[ours][1:]]
            cases = {**cases, f"base-{ours[4:]}": argv} if want(ours) else cases
            case_env[f"base-{ours[4:]}"] = base_env
        order = ["python-c-pass", "import-click", "wrapper-ping", "run-noping", "base-noping"]
        cases = {k: cases[k] for k in order if k in cases} | cases
    for name, argv in cases.items():
        if want(name) or name.startswith("base-"):
            results[name] = compare(argv, case_env.get(name, env), args.pairs)
    notes: list[str] = []
    size = f"{args.status_jobs}x{args.status_jobs * args.status_runs // 1000}k"
    if want("status") or want("status-job") or want("history"):
        status_argv = [str(BIN), "status", "--crontab", "/dev/null", "--json"]
        status_env, small_rss, note = status_store(args, tmp, env, status_argv)
        notes.append(note)
        status_pairs = max(5, args.pairs // 2)
        if want("status"):
            results["status-5000x5M"] = compare(status_argv, status_env, status_pairs, ok=(0, 1))
            results["status-table"] = compare(
                [str(BIN), "status", "--crontab", "/dev/null"],
                dict(status_env, COLUMNS="160"),
                status_pairs,
                ok=(0, 1),
            )
            notes.append(
                f"status --json peak RSS: {small_rss:.1f} MiB with 1 run per job, "
                f"{results['status-5000x5M']['rss_mib']:.1f} MiB with {args.status_runs}"
            )
        if want("status-job"):
            results["status-job"] = compare(
                [str(BIN), "status", "--crontab", "/dev/null", "--job", "job0042"],
                status_env,
                args.pairs,
                ok=(0, 1),
            )
        if want("history"):
            results["history"] = compare(
                [str(BIN), "history", "job0042"], status_env, args.pairs, ok=(0, 1)
            )
    for line in notes:
        print(line)
    print(f"{'case':<16} {'median':>8} {'min-max':>13} {'peak RSS':>9}  target")
    failed = []
    for name, r in results.items():
        target = TARGETS.get(name)
        note = ""
        if target:
            ok = r["median"] <= target[0] and (target[1] is None or r["rss_mib"] <= target[1])
            note = f"≤{target[0]}×" + (f", ≤{target[1]} MiB" if target[1] else "")
            note += "  ok" if ok else "  MISSED"
            if not ok:
                failed.append(name)
        label = name.replace("5000x5M", size) if name.startswith("status-5") else name
        print(
            f"{label:<16} {r['median']:>7.2f}× {r['min']:>5.2f}-{r['max']:<6.2f} "
            f"{r['rss_mib']:>6.1f} MiB  {note}"
        )
    # every case's yardstick is `python -c pass`, measured beside it
    base_ms = statistics.median(r["base_ms"] for r in results.values()) if results else 0.0
    print(f"(python -c pass took {base_ms:.1f} ms)")
    if want("schedule"):
        speeds = schedule_speed()
        worst = max(v for k, v in speeds.items() if not k.startswith("never"))
        ok = worst < 50
        if not ok:
            failed.append("schedule")
        print(
            "schedule, 1000 next runs (ms of CPU): "
            + ", ".join(f"{k} {v:.1f}" for k, v in speeds.items())
            + f" (target < 50) {'ok' if ok else 'MISSED'}"
        )
    if want("burst") and args.burst:
        n = args.burst
        b = burst(n, args.burst_rounds, tmp, env)
        cw, mw = b["cw"], b["mw"]
        assert isinstance(cw, dict) and isinstance(mw, dict)
        cpu_ratio, start_ratio = float(b["cpu_ratio"]), float(b["start_ratio"])  # type: ignore[arg-type]
        ok = (
            b["recorded"] == b["expected"]
            and b["failures"] == 0
            and cpu_ratio <= BURST_CPU
            and start_ratio <= BURST_LAST_START
        )
        if not ok:
            failed.append("burst")
        print(
            f"burst of {n} x {args.burst_rounds} rounds (medians): cronwrap {cw['wall']:.1f}s "
            f"wall, {cw['cpu']:.1f}s CPU, last job started after {cw['last_start']:.2f}s; "
            f"minimal wrapper {mw['wall']:.1f}s wall, {mw['cpu']:.1f}s CPU, last start "
            f"{mw['last_start']:.2f}s; {b['recorded']}/{b['expected']} recorded, "
            f"{b['failures']} failed; CPU ratio {cpu_ratio:.2f} (target ≤{BURST_CPU}), "
            f"last-start ratio {start_ratio:.2f} (target ≤{BURST_LAST_START}) "
            f"{'ok' if ok else 'MISSED'}"
        )
    if want("throughput") and args.throughput_mib:
        tp = throughput(args.throughput_mib << 20, args.throughput_pairs, tmp, env)
        ok = tp["ratio"] >= THROUGHPUT and tp["rss_mib"] <= THROUGHPUT_RSS
        if not ok:
            failed.append("throughput")
        print(
            f"throughput {args.throughput_mib} MiB x {args.throughput_pairs} rounds on CPU "
            f"{tp['cpu']:.0f}: cat | cat {tp['cat_mb_s']:.0f} MB/s, cronwrap "
            f"{tp['cronwrap_mb_s']:.0f} MB/s, ratio {tp['ratio']:.2f} ({tp['min']:.2f}-"
            f"{tp['max']:.2f}, target ≥{THROUGHPUT}), peak RSS {tp['rss_mib']:.1f} MiB (target "
            f"≤{THROUGHPUT_RSS}) {'ok' if ok else 'MISSED'}; minimal relay "
            f"{tp['relay_mb_s']:.0f} MB/s, ratio {tp['relay_ratio']:.2f}; on all CPUs, no "
            f"target: ratio {tp['spread_ratio']:.2f} ({tp['spread_min']:.2f}-"
            f"{tp['spread_max']:.2f})"
        )
    shutil.rmtree(tmp, ignore_errors=True)
    if args.check and failed:
        print("missed:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
