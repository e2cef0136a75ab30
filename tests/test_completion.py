"""Shell completion of paths, through click's own protocol: the environment variables the
generated scripts set. A `file`/`dir` answer makes the script hand over to the shell's own
file-name completion (bash `compopt -o default` / `-o dirnames`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def complete(words: str, tmp_path: Path) -> list[str]:
    """The `type,value` lines cronwrap answers a bash completion request with."""
    env = {
        **os.environ,
        "CRONWRAP_HOME": str(tmp_path / "home"),
        "_CRONWRAP_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    out = subprocess.run(
        [sys.executable, "-m", "cronwrap"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("cronwrap lint /home/u/ba", "file,/home/u/ba"),
        ("cronwrap lint --system /etc/cron.d/b", "file,/etc/cron.d/b"),
        ("cronwrap wrap ./cron", "file,./cron"),
        ("cronwrap run --cwd /ho", "dir,/ho"),
        ("cronwrap run --name x --metrics-dir /var/li", "dir,/var/li"),
        ("cronwrap run --name x -- /usr/loc", "file,/usr/loc"),
        ("cronwrap run --name x --timeout 5m -- ./bin/jo", "file,./bin/jo"),
        ("cronwrap --config /etc/cronwrap/c", "file,/etc/cronwrap/c"),
    ],
    ids=["lint", "lint-system", "wrap", "cwd", "metrics-dir", "command", "command-2", "config"],
)
def test_paths_complete_as_files_or_directories(tmp_path: Path, words: str, expected: str) -> None:
    assert complete(words, tmp_path) == [expected]


def test_choices_still_complete(tmp_path: Path) -> None:
    assert complete("cronwrap run --on-overlap w", tmp_path) == ["plain,wait"]
