"""`status` and `history` without click (views.report, taken by `python -m cronwrap`) print
what the click commands print: the same stdout, stderr and exit code for every form, on a real
store with jobs in every state; what the fast path does not understand goes to click."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import cw_env, popen_cronwrap, wait_for, wait_supervised

PY = sys.executable
CLICK = "import sys; from cronwrap.cli.app import cli; cli.main(sys.argv[1:], prog_name='cronwrap')"
PROBE = (
    "import atexit, os, sys\n"
    "out = os.environ['PROBE_OUT']\n"
    "atexit.register(lambda: open(out, 'w').write(str('click' in sys.modules)))\n"
    "from cronwrap.__main__ import main\n"
    "main()\n"
)
DEAD_PING = "http://127.0.0.1:9/ping/5e7c1a4e-0000-4000-8000-000000000000"
TAB = """\
*/5 * * * * cronwrap run --name ok -- true
0 3 * * * cronwrap run --name failed -- false
0 * * * * cronwrap run --name busy -- sleep 300
@hourly cronwrap run --name never -- true
0 4 * * * /usr/local/bin/unwrapped.sh
"""


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "cronwrap", *args],
        env=cw_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home whose store has an ok, failed, skipped, running, crashed and degraded job."""
    base = tmp_path_factory.mktemp("report")
    home = base / "home"
    (base / "crontab").write_text(TAB)
    assert _run(home, "run", "--name", "ok", "--", "true").returncode == 0
    assert _run(home, "run", "--name", "failed", "--", "sh", "-c", "exit 2").returncode == 2
    budgets = ["--ping-start-budget", "1s", "--ping-finish-budget", "1s"]
    assert (
        _run(home, "run", "--name", "deg", "--ping", DEAD_PING, *budgets, "--", "true").returncode
        == 0
    )
    marker = base / "crash-started"
    crash = popen_cronwrap(
        home,
        "run",
        "--name",
        "crash",
        "--",
        "sh",
        "-c",
        f"touch {marker}; echo started; exec sleep 60",
    )
    wait_for(marker.exists)
    wait_supervised(home, "crash")
    crash.kill()  # cronwrap itself dies: its run stays open, without a live owner
    crash.wait()
    marker = base / "busy-started"
    busy = popen_cronwrap(
        home, "run", "--name", "busy", "--", "sh", "-c", f"touch {marker}; exec sleep 300"
    )
    wait_for(marker.exists)
    assert _run(home, "run", "--name", "busy", "--", "true").returncode == 0  # skipped
    _move_back(home / "runs.db", timedelta(hours=2))
    try:
        yield home
    finally:
        busy.send_signal(signal.SIGTERM)
        busy.wait(30)


def _move_back(db: Path, by: timedelta) -> None:
    """Every recorded time `by` earlier, so that what status and history show as "2h ago"
    does not tick between the two runs of a comparison, as seconds would."""

    def shift(text: str | None) -> str | None:
        return None if text is None else (datetime.fromisoformat(text) - by).isoformat()

    with sqlite3.connect(db) as con:
        con.create_function("shift", 1, shift)
        for (table,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        ).fetchall():
            columns = [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
            for column in (c for c in columns if c.endswith("_at")):
                # names from the store's own schema, not from input
                con.execute(f"UPDATE {table} SET {column} = shift({column})")  # noqa: S608
    con.close()


def _both(
    home: Path, args: list[str], env_extra: dict[str, str]
) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
    env = cw_env(home, COLUMNS="120", **env_extra)
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    env.update(_frozen_clock())
    fast = subprocess.run(
        [PY, "-m", "cronwrap", *args], env=env, capture_output=True, timeout=60, check=False
    )
    slow = subprocess.run(
        [PY, "-c", CLICK, *args], env=env, capture_output=True, timeout=60, check=False
    )
    return fast, slow


def _frozen_clock() -> dict[str, str]:
    """Both processes at one instant, where libfaketime is there (CI installs it): relative
    times ("12s ago") of runs seconds old tick between two processes on a busy machine.
    The monotonic clock stays real (bounded waits must still end)."""
    for lib in (
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ):
        if os.path.exists(lib):
            return {
                "LD_PRELOAD": lib,
                "FAKETIME": time.strftime("%Y-%m-%d %H:%M:%S"),
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            }
    return {}


def _same(home: Path, args: list[str], **env_extra: str) -> subprocess.CompletedProcess[bytes]:
    """Both ways give the same bytes. Relative times ("12s ago") may tick between the two
    runs, so a difference is tried again a few times before it counts."""
    for _ in range(4):
        fast, slow = _both(home, args, env_extra)
        if (fast.returncode, fast.stdout, fast.stderr) == (
            slow.returncode,
            slow.stdout,
            slow.stderr,
        ):
            return fast
    assert fast.returncode == slow.returncode, (fast.stderr, slow.stderr)
    assert fast.stderr == slow.stderr
    assert fast.stdout == slow.stdout
    return fast


def _status_forms(tab: str) -> list[list[str]]:
    c = ["--crontab", tab]
    return [
        c,
        [*c, "--json"],
        [*c, "--job", "ok"],
        [*c, "--job", "ok", "--job", "failed", "--json"],
        [f"--crontab={tab}", "--job=crash"],
        [*c, "--job", "busy", "--json"],
        [*c, "--job", "deg"],
        [*c, "--job", "nosuch"],
        [*c, "--failed"],
        [*c, "--failed", "--json", "--json"],
        [*c, "--all"],
        [*c, "--all", "--json"],
        [*c, "--grace", "1h", "--now", "2030-01-01T00:00:00"],
        [*c, "--grace", "1m", "--grace", "2h", "--now", "2030-01-01T12:00:00+02:00", "--json"],
        [*c, "--host-id", "other", "--color", "always"],
        [*c, "--color", "never"],
        [*c, "--host", "nohost"],
        ["--crontab", "/dev/null", "--job", "ok"],
        ["--crontab", "/nonexistent/crontab"],
        ["--crontab", "/nonexistent/\x1b[31mred\x1b[0m"],  # click strips it off a pipe
        [*c, "--fleet-store", "file:/nonexistent/url"],
        [*c, "--now", "2030-01-01T00:00:00", "--html", "/dev/stdout"],
        [*c, "--html", "/nonexistent/dir/page.html"],
    ]


BAD_STATUS = [
    ["--job"],
    ["--crontab", "/dev/null", "--grace", "nonsense"],
    ["--crontab", "/dev/null", "--grace", ""],
    ["--crontab", "/dev/null", "--color", "purple"],
    ["--crontab", "/dev/null", "--now", "yesterday"],
    ["--crontab", "/dev/null", "--job", "--json"],
    ["--crontab", "/dev/null", "--json=1"],
    ["--crontab", "/dev/null", "--watch", "0"],
    ["--bogus"],
    ["extra"],
    ["--crontab", "/dev/null", "--", "x"],
    ["--help"],
]

HISTORY_FORMS = [
    [],
    ["ok"],
    ["failed", "--json"],
    ["crash", "--limit", "1"],
    ["busy"],
    ["busy", "--json"],
    ["deg", "--color", "always"],
    ["--limit=3", "--json"],
    ["--limit", "007"],
    ["nosuch"],
    ["ok", "--host", "nohost"],
    ["--fleet-store", "file:/nonexistent/url"],
]

BAD_HISTORY = [
    ["--limit", "0"],
    ["--limit", "x"],
    ["--limit", " 5"],
    ["--limit"],
    ["a", "b"],
    ["-"],
    ["ok", "--help"],
    ["--color", "rainbow"],
]


def _ids(forms: list[list[str]]) -> list[str]:
    return [" ".join(f) or "(none)" for f in forms]


@pytest.mark.parametrize("args", _status_forms("TAB"), ids=_ids(_status_forms("TAB")))
def test_status_prints_what_the_click_command_prints(store: Path, args: list[str]) -> None:
    tab = str(store.parent / "crontab")
    args = [a.replace("TAB", tab) for a in args]
    _same(store, ["status", *args])


@pytest.mark.parametrize("args", BAD_STATUS, ids=_ids(BAD_STATUS))
def test_status_forms_it_does_not_take_get_clicks_answer(store: Path, args: list[str]) -> None:
    _same(store, ["status", *args])
    assert _loads_click(store, "status", *args)


@pytest.mark.parametrize("args", HISTORY_FORMS, ids=_ids(HISTORY_FORMS))
def test_history_prints_what_the_click_command_prints(store: Path, args: list[str]) -> None:
    _same(store, ["history", *args])


@pytest.mark.parametrize("args", BAD_HISTORY, ids=_ids(BAD_HISTORY))
def test_history_forms_it_does_not_take_get_clicks_answer(store: Path, args: list[str]) -> None:
    _same(store, ["history", *args])
    assert _loads_click(store, "history", *args)


def test_without_a_store_both_say_so(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    assert _same(home, ["history"]).returncode == 1
    assert _same(home, ["history", "ok", "--json"]).returncode == 1
    _same(home, ["status", "--crontab", "/dev/null"])
    _same(home, ["status", "--crontab", "/dev/null", "--job", "ok", "--json"])


def _loads_click(home: Path, *args: str, **env_extra: str) -> bool:
    out = home.parent / "probe"
    env = cw_env(home, PROBE_OUT=str(out), **env_extra)
    subprocess.run([PY, "-c", PROBE, *args], env=env, capture_output=True, timeout=60, check=False)
    return out.read_text() == "True"


def test_the_common_forms_never_import_click(store: Path) -> None:
    assert not _loads_click(store, "status", "--crontab", "/dev/null", "--job", "ok")
    assert not _loads_click(store, "status", "--crontab", "/dev/null", "--json")
    assert not _loads_click(store, "history", "ok")
    assert not _loads_click(store, "history", "nosuch")  # an error of ours, said without click
    assert not _loads_click(store, "status", "--crontab", "/dev/null", "--html", "/dev/null")


STARTUP = ("dataclasses", "inspect", "json", "pathlib", "signal", "urllib.parse")
STARTUP_PROBE = (
    "import atexit, os, sys\n"
    "out = os.environ['PROBE_OUT']\n"
    f"found = lambda: repr(sorted(set({STARTUP!r}) & set(sys.modules)))\n"
    "atexit.register(lambda: open(out, 'w').write(found()))\n"
    "from cronwrap.__main__ import main\n"
    "main()\n"
)


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--crontab", "TAB"],
        ["status", "--crontab", "TAB", "--json"],
        ["status", "--crontab", "TAB", "--job", "crash"],
        ["history", "ok"],
    ],
    ids=["table", "json", "job", "history"],
)
def test_status_and_history_import_only_what_they_use(store: Path, args: list[str]) -> None:
    """What a `status` of thousands of jobs paid before its first row: dataclasses (through
    inspect and ast) was about 1.5 times a bare `python -c pass` in instructions, pathlib and
    urllib.parse half of one, json's decoder to get its string encoder, signal for the name
    of a signal no run died from."""
    out = store.parent / "startup-probe"
    argv = [str(store.parent / "crontab") if a == "TAB" else a for a in args]
    env = cw_env(store, PROBE_OUT=str(out))
    done = subprocess.run(
        [PY, "-c", STARTUP_PROBE, *argv], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    assert out.read_text() == "[]"


@pytest.mark.parametrize(
    ("args", "env_extra"),
    [
        (["status", "--help"], {}),
        (["history", "ok"], {"CRONWRAP_DEBUG": "1"}),
        (
            ["history", "ok"],
            {"_CRONWRAP_COMPLETE": "bash_complete", "COMP_WORDS": "cronwrap", "COMP_CWORD": "1"},
        ),
        (["--config", "/dev/null", "history", "ok"], {}),
    ],
    ids=["help", "debug", "completion", "global-option"],
)
def test_what_it_does_not_take_goes_to_click(
    store: Path, args: list[str], env_extra: dict[str, str]
) -> None:
    assert _loads_click(store, *args, **env_extra)


def test_a_closed_pipe_exits_1_quietly_as_with_click(store: Path) -> None:
    """`status | head -c1`: as click does, exit 1 and no traceback once the reader is gone."""
    results = []
    for argv in ([PY, "-m", "cronwrap"], [PY, "-c", CLICK]):
        r, w = os.pipe()
        os.close(r)
        proc = subprocess.run(
            [*argv, "history", "--limit", "100", "--json"],
            env=cw_env(store),
            stdout=w,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
        os.close(w)
        results.append((proc.returncode, proc.stderr))
    assert results[0] == results[1]
