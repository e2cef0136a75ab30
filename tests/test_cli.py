"""The CLI as a whole: help everywhere, version, the exit-code table, and the import budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cronwrap import __version__
from cronwrap.cli.app import cli
from cronwrap.errors import ExitCode
from tests.conftest import cronwrap, cw_env

HEAVY = ("rich", "requests", "yaml", "apprise", "redis", "urllib3", "click")


def test_python_dash_m_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cronwrap", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "Usage: cronwrap" in out.stdout and "run" in out.stdout


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_run_help_through_the_fast_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cronwrap", "run", "--timeout", "5m", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and "--on-overlap" in out.stdout


def test_exit_code_table() -> None:
    """The documented table (README "Exit codes"); changing one is a breaking change."""
    assert {c.name: c.value for c in ExitCode} == {
        "OK": 0,
        "ERROR": 1,
        "USAGE": 2,
        "UNKNOWN": 3,
        "CONFIG": 78,
        "TIMED_OUT": 124,
        "WRAPPER": 125,
        "NOT_EXECUTABLE": 126,
        "NOT_FOUND": 127,
    }


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout)  # noqa: S307 - our own printed list


def test_cli_import_is_light() -> None:
    """Importing the CLI loads none of the heavy libraries but click."""
    loaded = set(_loaded_after("import cronwrap.cli.app"))
    assert loaded & set(HEAVY) == {"click"}


def _modules_after_a_run(home, *options: str) -> set[str]:  # type: ignore[no-untyped-def]
    """Top-level modules loaded by one plain `cronwrap run` in a fresh interpreter."""
    code = (
        "import os, sys; os.environ['CRONWRAP_HOME'] = sys.argv[1]; "
        "from cronwrap.run import entry as runcmd; "
        "rc = runcmd.main(['--name', 'x', *sys.argv[2:], '--', 'true'], os.environ); "
        "assert rc == 0, rc"
    )
    probe = f"import sys; exec({code!r}); print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    out = subprocess.run(
        [sys.executable, "-c", probe, str(home), *options],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(eval(out.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own printed list


def test_run_path_loads_no_heavy_library(tmp_path) -> None:
    """A plain `cronwrap run` (no config file, no ping) imports neither click nor the rest."""
    loaded = _modules_after_a_run(tmp_path)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


# what a plain successful run does without (issue 21): each of these cost start-up time on
# every run for one small use, now done with the standard library's smaller pieces
NOT_ON_THE_RUN_PATH = (
    "subprocess",
    "ctypes",
    "statistics",
    "random",
    "shlex",
    "json",
    "uuid",
    "typing",  # ~2 ms, and its first ForwardRef pays for the compiler's start
    "pathlib",  # ~3 ms with urllib.parse and ipaddress: paths are strings on the run path
    "urllib",
    "ipaddress",
    # the run store and its times use the C modules _sqlite3 and _datetime: the sqlite3 package
    # adds date adapters the store never uses, and `import datetime` runs a pure-Python twin
    # first (3.10 and 3.11); the two cost ~4 % of a run's instructions
    "sqlite3",
    "datetime",
)


def test_run_path_loads_none_of_the_costly_stdlib_modules(tmp_path) -> None:
    loaded = _modules_after_a_run(tmp_path)
    assert not loaded & set(NOT_ON_THE_RUN_PATH), loaded & set(NOT_ON_THE_RUN_PATH)


def test_a_scheduled_run_loads_neither_calendar_nor_locale(tmp_path) -> None:
    loaded = _modules_after_a_run(tmp_path, "--schedule", "*/5 * * * *")
    # the schedule's reader (cron/schedule.py, shared with status) imports datetime itself
    assert not loaded & {"calendar", "locale", *NOT_ON_THE_RUN_PATH} - {"datetime"}, loaded


def test_run_with_a_config_file_loads_yaml_but_not_the_rest(tmp_path) -> None:
    (tmp_path / "config.yaml").write_text("defaults:\n  retries: 0\n")
    assert _modules_after_a_run(tmp_path) & set(HEAVY) == {"yaml"}


def test_run_starts_without_the_cycle_collector_and_collects_while_the_job_runs(
    tmp_path,
) -> None:
    """Start-up makes no cyclic garbage, and each automatic collection rescanned all it made
    (~4 % of a run's instructions): no collection runs before the job starts, whose lifetime
    has the collector on again, sparing (freezing) what start-up made."""
    code = (
        "import gc, os, sys; os.environ['CRONWRAP_HOME'] = sys.argv[1]\n"
        "from cronwrap.__main__ import main\n"
        "early = []\n"
        "gc.callbacks.append(lambda phase, info: early.append(gc.get_freeze_count() == 0))\n"
        "try:\n"
        "    main(['run', '--name', 'x', '--', 'true'])\n"
        "except SystemExit as done:\n"
        "    print(done.code, gc.isenabled(), gc.get_freeze_count() > 0, early.count(True))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0", "True", "True", "0"], out.stdout + out.stderr


def test_debug_shows_traceback_for_user_errors(tmp_path) -> None:
    (tmp_path / "config.yaml").write_text("jobs: [1]\n")
    env = {"CRONWRAP_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    plain = subprocess.run(
        [sys.executable, "-m", "cronwrap", "config"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert plain.returncode == ExitCode.CONFIG and "Traceback" not in plain.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "cronwrap", "--debug", "config"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_run_without_datetimes_c_half_still_runs_the_job(home: Path) -> None:
    """The run path takes datetime's C half (`_datetime`) for speed; an interpreter without
    it (another implementation, a build without the accelerator) must still run the job and
    record it, with the package's types, not end with an ImportError before the job."""
    code = (
        "import sys; sys.modules['_datetime'] = None  # as if it were not built\n"
        "from cronwrap.__main__ import main; sys.argv[0] = 'cronwrap'; main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "run", "--name", "nodt", "--", "sh", "-c", "echo ran; exit 4"],
        env=cw_env(home), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (4, "ran\n")
    assert (
        result.stderr.startswith("cronwrap: nodt: failed, exit 4 (")
        and "Error" not in result.stderr
    )
    assert cronwrap(home, "history", "nodt").stdout.count("exit 4") == 1


def _raw(home: Path, *args: str | bytes, stdout: object = subprocess.PIPE, **env: str) -> tuple:
    result = subprocess.run(
        [sys.executable, "-m", "cronwrap", *args],
        env=cw_env(home, **env),
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stderr.decode(errors="replace")


READ_COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["history", "j"],
    ["logs", "j"],
    ["explain", "0 0 15 * 5"],
    ["failed"],
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_output_with_nowhere_to_go_is_one_line(home: Path, args: list[str]) -> None:
    """stdout on a full disk, or closed: a traceback (OSError, AttributeError) before."""
    assert cronwrap(home, "run", "--name", "j", "--", "echo", "hi").returncode == 0
    with open("/dev/full", "wb") as full:
        code, err = _raw(home, *args, stdout=full)
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "cronwrap: cannot write the output: No space left on device"
    assert code == 1
    closed = subprocess.run(
        [sys.executable, "-m", "cronwrap", *args],
        env=cw_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
        preexec_fn=lambda: __import__("os").close(1),
    )
    assert b"Traceback" not in closed.stderr
    expected = cronwrap(home, *args).returncode
    assert closed.returncode == expected  # the exit code is still the answer


@pytest.mark.parametrize(
    "args",
    [
        [b"history", b"\xff"],
        [b"logs", b"\xff"],
        [b"status", b"--job", b"\xff"],
        [b"history", b"j", b"--host", b"\xff"],
    ],
    ids=["history", "logs", "status-job", "history-host"],
)
def test_a_name_that_is_not_utf8_is_one_line(home: Path, args: list[bytes]) -> None:
    assert cronwrap(home, "run", "--name", "j", "--", "true").returncode == 0
    code, err = _raw(home, *args)
    assert "Traceback" not in err and code == ExitCode.USAGE
    assert err.splitlines() == [
        "cronwrap: an argument or variable holds bytes that are not UTF-8: b'\\xff'"
    ]


@pytest.mark.parametrize(
    "args", [["status", "--grace", "99999999999d"], ["status", "--watch", "99999999999d"]]
)
def test_a_duration_too_long_for_a_date_is_one_line(home: Path, args: list[str]) -> None:
    code, err = _raw(home, *args)
    assert "Traceback" not in err and code == ExitCode.USAGE
    assert err.splitlines()[-1].startswith("cronwrap: a value is out of range: ")


def test_a_stdout_that_cannot_encode_the_table_still_gets_it(home: Path) -> None:
    assert cronwrap(home, "run", "--name", "j", "--", "true").returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "cronwrap", "status"],
        env=cw_env(home, PYTHONIOENCODING="ascii"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and b"Traceback" not in result.stderr
    assert b"\\u2713 ok" in result.stdout and b"1 job listed." in result.stdout
