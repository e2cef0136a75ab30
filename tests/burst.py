"""Start many `cronwrap run`s at the same moment, cheaply: this process imports cronwrap (and
psycopg) once, then forks one child per run; each child is a real, separate run (its own
SQLite and PostgreSQL connections, threads and job process) that exits with the run's code.
Usage: python -m tests.burst N_PER_HOME HOME... -- RUN-ARGS... (prints the exit codes as JSON)."""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    split = argv.index("--")
    per_home, homes, run_args = int(argv[0]), argv[1:split], argv[split + 1 :]
    import psycopg  # noqa: F401 - imported before forking, so the children share it

    from cronwrap.run import entry

    pids: list[tuple[int, int]] = []
    for n in range(per_home):
        for home in homes:
            env = {**os.environ, "CRONWRAP_HOME": home}
            args = [
                a.replace("{n}", str(n)).replace("{host}", os.path.basename(home)) for a in run_args
            ]
            pid = os.fork()
            if pid == 0:
                code = 125
                try:
                    code = entry.main(args, env)
                finally:
                    os._exit(code)
            pids.append((n, pid))
    codes = []
    for n, pid in pids:
        _, status = os.waitpid(pid, 0)
        codes.append([n, os.waitstatus_to_exitcode(status)])
    print(json.dumps(codes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
