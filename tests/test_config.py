"""Paths, value parsing, config precedence and every config error message."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cronwrap.config import (
    ConfigFile,
    derive_name,
    ensure_dir,
    load_config,
    parse_codes,
    parse_duration,
    parse_size,
    resolve_job,
    resolve_paths,
    validate_name,
)
from cronwrap.errors import ConfigError, ExitCode, UsageError
from tests.conftest import cronwrap, cw_env

# ---------------------------------------------------------------- paths


def test_cronwrap_home_puts_everything_under_it(tmp_path: Path) -> None:
    p = resolve_paths({"CRONWRAP_HOME": str(tmp_path)}, uid=1000)
    assert p.config_file == tmp_path / "config.yaml"
    assert p.state_dir == tmp_path
    assert p.lock_dir == tmp_path / "locks"
    assert p.db_file == tmp_path / "runs.db"
    assert p.origin == "CRONWRAP_HOME"


def test_root_uses_system_paths() -> None:
    p = resolve_paths({}, uid=0)
    assert p.config_file == Path("/etc/cronwrap/config.yaml")
    assert p.state_dir == Path("/var/lib/cronwrap")
    expected = (
        Path("/run/lock/cronwrap")
        if Path("/run/lock").is_dir()
        else Path("/var/lib/cronwrap/locks")
    )
    assert p.lock_dir == expected


def test_user_uses_xdg_dirs(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    p = resolve_paths(env, uid=1000)
    assert p.config_file == tmp_path / "cfg" / "cronwrap" / "config.yaml"
    assert p.state_dir == tmp_path / ".local" / "state" / "cronwrap"
    assert p.lock_dir == p.state_dir / "locks"


def test_cronwrap_config_overrides_the_config_file_only(tmp_path: Path) -> None:
    p = resolve_paths(
        {"HOME": str(tmp_path), "CRONWRAP_CONFIG": str(tmp_path / "x.yaml")}, uid=1000
    )
    assert p.config_file == tmp_path / "x.yaml"
    assert p.state_dir == tmp_path / ".local" / "state" / "cronwrap"


def test_ensure_dir_creates_private_dirs_with_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    ensure_dir(target)
    for d in (tmp_path / "a", tmp_path / "a" / "b", target):
        mode = stat.S_IMODE(os.stat(d).st_mode)
        assert mode & 0o002 == 0, oct(mode)
        assert mode & 0o007 == 0, oct(mode)


def test_ensure_dir_refuses_world_writable(tmp_path: Path) -> None:
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(ConfigError, match="world-writable"):
        ensure_dir(d)


def test_ensure_dir_refuses_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ConfigError, match="symlink"):
        ensure_dir(tmp_path / "link")


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("500ms", 0.5),
        ("1w", 604800),
        ("1.5h", 5400),
        (45, 45),
    ],
    ids=str,
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "m5", "1h 30q", "-5s"], ids=repr)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_parse_size_and_codes() -> None:
    assert parse_size("10M") == 10 * 1024 * 1024
    assert parse_size("512k") == 512 * 1024
    assert parse_size(1000) == 1000
    assert parse_codes("75,100-102") == {75, 100, 101, 102}
    assert parse_codes([1, 2]) == {1, 2}
    with pytest.raises(ValueError, match="0-255"):
        parse_codes("300")
    with pytest.raises(ValueError, match="exit code"):
        parse_codes("x")


def test_names_are_validated() -> None:
    assert validate_name("backup.daily") == "backup.daily"
    for bad in ("a/b", "", "x" * 101, "has space", "-lead"):
        with pytest.raises(UsageError, match="bad job name"):
            validate_name(bad)


def test_derived_name_is_stable_and_readable() -> None:
    a = derive_name(["/usr/local/bin/sync.sh", "--all"])
    assert a == derive_name(["/usr/local/bin/sync.sh", "--all"])
    assert a.startswith("sync.sh-")
    assert a != derive_name(["/usr/local/bin/sync.sh", "--some"])
    validate_name(a)


# ---------------------------------------------------------------- config file


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_flag_env_job_defaults_builtin(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path / "c.yaml",
            """
defaults:
  timeout: 1h
  retries: 1
  kill-after: 20s
  quiet: true
jobs:
  backup:
    timeout: 2h
    retries: 2
""",
        )
    )
    env = {"CRONWRAP_RETRIES": "3"}
    job = resolve_job({"name": "backup"}, ["true"], env, cfg)
    assert job.timeout == 7200 and job.sources["timeout"] == "job"
    assert job.retries == 3 and job.sources["retries"] == "env"
    assert job.kill_after == 20 and job.sources["kill_after"] == "defaults"
    assert job.quiet is True
    assert job.retry_delay == 5 and job.sources["retry_delay"] == "built-in"
    job = resolve_job({"name": "backup", "retries": "4", "timeout": "5m"}, ["true"], env, cfg)
    assert job.retries == 4 and job.sources["retries"] == "flag"
    assert job.timeout == 300
    other = resolve_job({"name": "other"}, ["true"], {}, cfg)
    assert other.timeout == 3600 and other.retries == 1


def test_missing_config_is_empty(tmp_path: Path) -> None:
    assert load_config(tmp_path / "nope.yaml") == ConfigFile(None)


def test_empty_config_is_fine(tmp_path: Path) -> None:
    assert load_config(write(tmp_path / "c.yaml", "")).jobs == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobs:\n  a: {timeout: 5m\n", r"c\.yaml:\d+:\d+: "),
        ("defaults:\n  timeout: [1\n  x: 2\n", r"c\.yaml:\d+:\d+: "),
        ("[1, 2]\n", "top level must be a mapping"),
        ("other: 1\n", "unknown top-level key 'other'"),
        ("defaults:\n  timout: 5m\n", "defaults: unknown key 'timout'"),
        ("jobs:\n  backup:\n    retires: 2\n", "jobs.backup: unknown key 'retires'"),
        ("jobs:\n  backup:\n    timeout: soon\n", "jobs.backup.timeout: 'soon' is not a duration"),
        ("jobs:\n  backup:\n    retries: two\n", "jobs.backup.retries: expected a whole number"),
        ("jobs:\n  backup:\n    quiet: maybe\n", "jobs.backup.quiet: expected true or false"),
        ("jobs:\n  backup:\n    on_overlap: queue\n", "expected one of skip, wait, allow"),
        ("jobs:\n  backup:\n    retry_on: abc\n", "jobs.backup.retry_on: 'abc' is not an exit"),
        ("jobs:\n  backup:\n    name: x\n", "jobs.backup: unknown key 'name'"),
        ("jobs:\n  backup: 5\n", "jobs.backup: expected a mapping"),
        ("jobs: [a, b]\n", "jobs: expected a mapping"),
        ("defaults: 3\n", "defaults: expected a mapping"),
        ("jobs:\n  a/b:\n    retries: 1\n", "bad job name 'a/b'"),
        ("jobs:\n  backup:\n    cwd: [1]\n", "jobs.backup.cwd: expected a string"),
    ],
    ids=lambda v: v if len(v) < 30 else v[:30],
)
def test_config_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_yaml_syntax_error_is_file_line_col(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "jobs:\n  a:\n    timeout: 5m\n   retries: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:4:")


def test_bad_env_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CRONWRAP_TIMEOUT: 'x' is not a duration"):
        resolve_job({"name": "a"}, ["true"], {"CRONWRAP_TIMEOUT": "x"}, ConfigFile(None))


def test_bad_flag_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--timeout: 'x' is not a duration"):
        resolve_job({"name": "a", "timeout": "x"}, ["true"], {}, ConfigFile(None))


# ---------------------------------------------------------------- CLI


def test_config_command_shows_paths_and_effective_options(home: Path) -> None:
    home.mkdir()
    write(home / "config.yaml", "defaults:\n  timeout: 1h\njobs:\n  backup:\n    retries: 2\n")
    result = cronwrap(home, "config", "--json")
    assert result.returncode == 0, result.stderr
    import json

    doc = json.loads(result.stdout)
    assert doc["paths"]["state_dir"] == str(home)
    assert doc["paths"]["config_exists"] is True
    assert doc["jobs"]["backup"]["retries"] == 2
    assert doc["jobs"]["backup"]["timeout"] == 3600
    plain = cronwrap(home, "config")
    assert plain.returncode == 0 and "backup:" in plain.stdout and "state_dir:" in plain.stdout


def test_invalid_config_exits_78_for_config_and_run_fails_open(home: Path, tmp_path: Path) -> None:
    home.mkdir()
    write(home / "config.yaml", "jobs:\n  backup:\n    timeout: soon\n    retires: 2\n")
    result = cronwrap(home, "config")
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert result.stderr.startswith("cronwrap: ") and "jobs.backup.timeout" in result.stderr
    assert "did you mean 'retries'?" in result.stderr, "every problem, not just the first"
    assert "Traceback" not in result.stderr
    marker = tmp_path / "ran"
    result = cronwrap(home, "run", "--name", "backup", "--", "sh", "-c", f"touch {marker}; exit 3")
    assert result.returncode == 3, result.stderr
    assert marker.exists(), "the command is known: the job runs without the bad keys"
    lines = result.stderr.splitlines()  # one line per problem, then how the run went
    assert len(lines) == 3 and all(line.startswith("cronwrap: backup: ") for line in lines)
    assert "jobs.backup.timeout" in lines[0] and "ignored" in lines[0]
    assert "retires" in lines[1] and lines[2].startswith("cronwrap: backup: failed, exit 3")


# ---------------------------------------------------------------- the typed Job


def test_job_has_one_typed_attribute_per_option() -> None:
    """Job's annotations and the option table are one list: a new option needs both."""
    import typing

    from cronwrap.options import RUN_OPTIONS, Job

    kinds = {
        "str": str,
        "int": int,
        "float": float,
        "duration": float,
        "size": int,
        "codes": frozenset[int],
        "choice": str,
        "flag": bool,
        "list": tuple[str, ...],
    }
    hints = typing.get_type_hints(Job)
    options = {o.name: o for o in RUN_OPTIONS if o.name != "name"}
    assert set(hints) - {"name", "command", "sources"} == set(options)
    for name, opt in options.items():
        expected = kinds[opt.kind] | None if opt.default is None else kinds[opt.kind]
        assert hints[name] == expected, name


def test_a_misspelt_option_is_an_attribute_error() -> None:
    job = resolve_job({}, ["true"], {}, ConfigFile(None))
    with pytest.raises(AttributeError):
        job.retyr_delay  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("timeout", "25d", "above the highest allowed value, 24d"),
        ("retries", "-1", "below the lowest allowed value, 0"),
        ("keep_days", "1000000", "above the highest allowed value, 36500"),
        ("keep_days", "0", "below the lowest allowed value, 1"),
        ("overlap_exit_code", "999", "above the highest allowed value, 255"),
        ("alert_after", "-3", "below the lowest allowed value, 1"),
        ("slow_factor", "nan", "expected a finite number"),
        ("tz", "Nope/Zone", "unknown time zone 'Nope/Zone'"),
        ("schedule", "garbage", "'garbage' is not a cron schedule"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_values_the_os_or_cron_cannot_take_are_refused_by_name(
    flag: str, value: str, message: str
) -> None:
    with pytest.raises(UsageError) as err:
        resolve_job({flag: value}, ["true"], {}, ConfigFile(None))
    assert message in str(err.value)
    assert str(err.value).startswith("--" + flag.replace("_", "-"))


@pytest.mark.parametrize("source", ["flag", "env"])
def test_a_host_id_with_control_characters_is_left_out_and_the_job_runs(
    home: Path, source: str
) -> None:
    """status and history print the host id: a newline or an escape in it is refused, with
    one line, and the run is recorded under the default host id."""
    bad = "a\n\x1b[31mb"
    flag = ["--host-id", bad] if source == "flag" else []
    env = cw_env(home, CRONWRAP_HOST_ID=bad) if source == "env" else None
    result = cronwrap(home, "run", "--name", "h", *flag, "--", "echo", "ran", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n"
    [line] = result.stderr.splitlines()
    assert "holds control characters; ignored" in line, line
    history = cronwrap(home, "history", "h", "--json")
    [run] = json.loads(history.stdout)
    assert run["host"] == os.uname().nodename
