"""cronwrap's performance benchmark (issue 8). Standard library only.

Each case runs alternately with `python3 -c pass` (A B A B ..., after warm-ups) and reports
the median ratio of wall times with its min-max, and the case's peak RSS (os.wait4). Absolute
times drift on shared machines; ratios taken side by side do not.

    python benchmarks/bench.py                 # every case
    python benchmarks/bench.py --check         # exit 1 if a target is missed
    python benchmarks/bench.py --only run-ping,explain --pairs 30
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
BIN = Path(PY).parent / "cronwrap"

# name: (ratio target, RSS target in MiB or None)
TARGETS = {
    "run-noping": (5.5, 25),
    "run-ping": (6.0, 25),
    "explain": (6.0, None),
    "status-500x1M": (30.0, None),
    "status-table": (30.0, None),
}


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


def make_big_store(path: Path, jobs: int = 500, runs: int = 1_000_000) -> None:
    """A run store with `jobs` jobs and `runs` runs, written through cronwrap's own schema."""
    sys.path.insert(0, str(HERE.parent))
    from cronwrap.state.store import Store, iso

    Store.open(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    per = runs // jobs
    insert = (
        "INSERT INTO runs (run_id, job, host, pid, command, started_at, ended_at, status,"
        " exit_code, signal, attempts, duration_s, output_tail, reason, schedule, tz,"
        " log_path, exit_origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    rows = []
    for j in range(jobs):
        for i in range(per):
            at = t0 + timedelta(minutes=15 * i)
            rows.append(
                (
                    f"{j:04d}-{i}-{uuid.uuid4().hex[:8]}",
                    f"job{j:03d}",
                    "bench",
                    1,
                    "true",
                    iso(at),
                    iso(at + timedelta(seconds=2)),
                    "success",
                    0,
                    None,
                    1,
                    2.0,
                    "",
                    None,
                    "*/15 * * * *",
                    "UTC",
                    None,
                    "child",
                )
            )
        if len(rows) > 100_000:
            db.executemany(insert, rows)
            rows = []
    db.executemany(insert, rows)
    db.execute(
        "INSERT OR REPLACE INTO jobs (name, schedule, tz, last_started_at) "
        "SELECT job, '*/15 * * * *', 'UTC', max(started_at) FROM runs GROUP BY job"
    )
    db.commit()
    db.close()


def burst(n: int, argv_for, env: dict[str, str]) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Start n commands at once; (wall s, children CPU s, failures)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    return wall, cpu, failures


def throughput(size: int, tmp: Path, env: dict[str, str]) -> dict[str, float]:
    """`cat big | cat >/dev/null` against `cronwrap run -- cat big | cat >/dev/null`."""
    big = tmp / "bigfile"
    with open(big, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    plain = f"cat {big} | cat > /dev/null"
    rss_file = tmp / "rss"
    # GNU time measures cronwrap alone (rusage of a shell forked from this big process
    # would report this process's memory)
    time_bin = shutil.which("time", path="/usr/bin:/bin")
    wrapped = f"{BIN} run --name tp -- cat {big} | cat > /dev/null"
    if time_bin:
        wrapped = f"{time_bin} -o {rss_file} -f %M {wrapped}"
    rates: dict[str, list[float]] = {"cat": [], "cronwrap": []}
    rss = 0
    for _ in range(3):
        for key, cmd in (("cat", plain), ("cronwrap", wrapped)):
            t = time.perf_counter()
            subprocess.run(["sh", "-c", cmd], env=env, check=True)
            rates[key].append(size / (time.perf_counter() - t))
            if key == "cronwrap" and rss_file.exists():
                rss = max(rss, int(rss_file.read_text().split()[-1]))
    big.unlink()
    cat = statistics.median(rates["cat"])
    cw = statistics.median(rates["cronwrap"])
    # ru_maxrss of the shell's children: the largest of cat, cat and cronwrap
    return {
        "cat_mb_s": cat / 1e6,
        "cronwrap_mb_s": cw / 1e6,
        "ratio": cw / cat,
        "rss_mib": rss / 1024,
    }


def schedule_speed() -> dict[str, float]:
    """In-process: ms for 1000 next run times of each expression in Europe/Berlin (best of 5,
    caches cleared each time), and for deciding that an expression never fires."""
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
            t = time.perf_counter()
            runs = parse(expr).next_runs(after, tz, 1000)
            best = min(best, time.perf_counter() - t)
        assert len(runs) == 1000, expr
        out[expr] = best * 1000
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        assert parse("0 0 31 2,4,6,9,11 *").never
        best = min(best, time.perf_counter() - t)
    out["never: 0 0 31 2,4,6,9,11 *"] = best * 1000
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--check", action="store_true", help="exit 1 if any target is missed")
    ap.add_argument("--burst", type=int, default=300)
    ap.add_argument("--throughput-mib", type=int, default=2048)
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))

    def want(name: str) -> bool:
        return not only or name in only

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
        "prototype-ping": [PY, str(HERE / "prototype.py"), str(tmp), url, "--", "true"],
        "run-noping": [str(BIN), "run", "--name", "bench", "--", "true"],
        "run-ping": [str(BIN), "run", "--name", "bench-ping", "--ping", url, "--", "true"],
        # what an HTTPS ping adds on top of a plain one: importing ssl and making the
        # verifying context (CA certificates loaded)
        "tls-context": [PY, "-c", "from cronwrap.notify.http import tls_context; tls_context()"],
        "explain": [str(BIN), "explain", "0 0 15 * 5", "--tz", "Europe/Berlin"],
    }
    for name, argv in cases.items():
        if want(name):
            results[name] = compare(argv, env, args.pairs)
    if want("status-500x1M"):
        big_home = tmp / "big"
        big_home.mkdir()
        t = time.perf_counter()
        make_big_store(big_home / "runs.db")
        print(f"# built a store with 500 jobs and 1,000,000 runs in {time.perf_counter() - t:.0f}s")
        status_env = dict(env, CRONWRAP_HOME=str(big_home))
        results["status-500x1M"] = compare(
            [str(BIN), "status", "--crontab", "/dev/null", "--json"],
            status_env,
            max(5, args.pairs // 2),
            ok=(0, 1),
        )  # 1: some jobs missed runs, as built
        results["status-table"] = compare(
            [str(BIN), "status", "--crontab", "/dev/null"],
            dict(status_env, COLUMNS="160"),
            max(5, args.pairs // 2),
            ok=(0, 1),
        )
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
        print(
            f"{name:<16} {r['median']:>7.2f}× {r['min']:>5.2f}-{r['max']:<6.2f} "
            f"{r['rss_mib']:>6.1f} MiB  {note}"
        )
    print(f"(python -c pass took {results.get('python-c-pass', {}).get('base_ms', 0):.1f} ms)")
    if want("schedule"):
        speeds = schedule_speed()
        worst = max(v for k, v in speeds.items() if not k.startswith("never"))
        ok = worst < 50
        if not ok:
            failed.append("schedule")
        print(
            "schedule, 1000 next runs (ms): "
            + ", ".join(f"{k} {v:.1f}" for k, v in speeds.items())
            + f" (target < 50) {'ok' if ok else 'MISSED'}"
        )
    if want("burst") and args.burst:
        shutil.rmtree(tmp / "home", ignore_errors=True)
        n = args.burst
        cw = burst(n, lambda i: [str(BIN), "run", "--name", f"b{i}", "--", "true"], env)
        proto_dir = tmp / "proto"
        proto_dir.mkdir()
        pr = burst(
            n, lambda i: [PY, str(HERE / "prototype.py"), str(proto_dir), "-", "--", "true"], env
        )
        recorded = (
            sqlite3.connect(tmp / "home" / "runs.db")
            .execute("SELECT count(*) FROM runs")
            .fetchone()[0]
        )
        ratio = cw[1] / pr[1]
        ok = recorded == n and cw[2] == 0 and ratio <= 1.5
        if not ok:
            failed.append("burst")
        print(
            f"burst of {n}: cronwrap {cw[0]:.1f}s wall, {cw[1]:.1f}s CPU, {cw[2]} failed, "
            f"{recorded} recorded; prototype {pr[0]:.1f}s wall, {pr[1]:.1f}s CPU; "
            f"CPU ratio {ratio:.2f} (target ≤1.5) {'ok' if ok else 'MISSED'}"
        )
    if want("throughput") and args.throughput_mib:
        tp = throughput(args.throughput_mib << 20, tmp, env)
        ok = tp["ratio"] >= 0.7 and tp["rss_mib"] <= 60
        if not ok:
            failed.append("throughput")
        print(
            f"throughput {args.throughput_mib} MiB: cat {tp['cat_mb_s']:.0f} MB/s, cronwrap "
            f"{tp['cronwrap_mb_s']:.0f} MB/s, ratio {tp['ratio']:.2f} (target ≥0.70), peak "
            f"RSS {tp['rss_mib']:.1f} MiB (target ≤60) {'ok' if ok else 'MISSED'}"
        )
    shutil.rmtree(tmp, ignore_errors=True)
    if args.check and failed:
        print("missed:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
