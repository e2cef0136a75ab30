"""The job's environment is the one cron gave cronwrap, plus only CRONWRAP_JOB,
CRONWRAP_RUN_ID and the job context (CRONWRAP_ATTEMPT, _ATTEMPTS_MAX, _SLOT, _STATE_DIR):
nothing of Python's own (its C-locale coercion sets LC_CTYPE) leaks in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CONSOLE_SCRIPT = Path(sys.executable).parent / "cronwrap"


def env_of(argv: list[str], env: dict[str, str]) -> dict[str, str]:
    """`env` printed by a command started with exactly `env` (as `env -i` would)."""
    out = subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


@pytest.mark.parametrize(
    "locale",
    [{}, {"LC_CTYPE": "C"}, {"LANG": "C.UTF-8"}, {"LC_ALL": "C"}, {"LC_CTYPE": "POSIX"}],
    ids=["no-locale", "lc-ctype-c", "lang-c-utf8", "lc-all-c", "lc-ctype-posix"],
)
@pytest.mark.parametrize("how", ["console-script", "python-m"])
def test_job_gets_crons_environment_plus_only_cronwrap_variables(
    tmp_path: Path, locale: dict[str, str], how: str
) -> None:
    cron_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SHELL": "/bin/sh",
        "LOGNAME": "nobody",
        "CRONWRAP_HOME": str(tmp_path / "cw"),
        **locale,
    }
    bare = env_of(["/usr/bin/env"], cron_env)
    cronwrap = [str(CONSOLE_SCRIPT)] if how == "console-script" else [sys.executable, "-m"]
    if how == "python-m":
        cronwrap.append("cronwrap")
        cron_env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        bare["PYTHONPATH"] = cron_env["PYTHONPATH"]
    wrapped = env_of([*cronwrap, "run", "--name", "envtest", "--", "/usr/bin/env"], cron_env)
    assert wrapped.pop("CRONWRAP_JOB") == "envtest"
    assert len(wrapped.pop("CRONWRAP_RUN_ID")) == 36
    assert (wrapped.pop("CRONWRAP_ATTEMPT"), wrapped.pop("CRONWRAP_ATTEMPTS_MAX")) == ("1", "1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00Z", wrapped.pop("CRONWRAP_SLOT"))
    assert wrapped.pop("CRONWRAP_STATE_DIR") == str(tmp_path / "cw" / "jobs" / "envtest")
    assert wrapped == bare
