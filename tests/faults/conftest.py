"""Helpers of the fault-injection suite: each test breaks something of cronwrap's own for
real (a file, a disk, a lock, a user, a signal) and then runs a real job through the real
`cronwrap run`, to check the promise: the job ran, it kept its exit code, and stderr has
one clear line saying what cronwrap did instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cw_env

EXIT = 3  # the bare command's exit code in every fault test: not 0, not one of cronwrap's


class Job:
    """One run of `sh -c 'touch MARKER; exit 3'` under cronwrap, and what it left."""

    def __init__(self, result: subprocess.CompletedProcess[str], marker: Path) -> None:
        self.result = result
        self.marker = marker
        lines = result.stderr.splitlines()
        # the job fails (exit 3) or is skipped, and cronwrap's last line says so (as cron
        # mails it); that line is the outcome, not a fault line
        outcome = re.compile(rf"^cronwrap: [^:]+: (failed, exit {EXIT}|skipped)")
        self.outcome = [ln for ln in lines if outcome.match(ln)]
        self.lines = [ln for ln in lines if ln not in self.outcome]

    @property
    def ran(self) -> bool:
        return self.marker.exists()

    def assert_failed_open(self, *said: str) -> str:
        """The promise: the job ran, its code is the bare command's, ONE line says why."""
        r = self.result
        assert "Traceback" not in r.stderr, r.stderr
        assert self.ran, f"the job did not run: exit {r.returncode}, stderr {r.stderr!r}"
        assert r.returncode == EXIT, r.stderr
        assert len(self.outcome) == 1, r.stderr  # how the run went, as cron mails it
        assert len(self.lines) == 1, r.stderr
        [line] = self.lines
        assert line.startswith("cronwrap: "), line
        for text in said:
            assert text in line, line
        return line


def run_job(
    home: Path,
    tmp_path: Path,
    *options: str,
    env: dict[str, str] | None = None,
    name: str | None = "job",
    timeout: float = 60,
    **kwargs: object,
) -> Job:
    """`cronwrap run [--name job] OPTIONS -- sh -c 'touch MARKER; exit 3'`, as cron would."""
    marker = tmp_path / f"ran-{len(list(tmp_path.glob('ran-*')))}"
    args = [*(["--name", name] if name else []), *options]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cronwrap",
            "run",
            *args,
            "--",
            "sh",
            "-c",
            f"touch {marker}; exit {EXIT}",
        ],
        capture_output=True,
        text=True,
        env=env or cw_env(home),
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    return Job(result, marker)


def recorded(home: Path, job: str = "job") -> list[object]:
    from cronwrap.state.store import Store

    with Store.open_readonly(home / "runs.db") as store:
        return list(store.runs(job, limit=100))


def is_root() -> bool:
    return os.geteuid() == 0


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real, tiny filesystem (64 KiB tmpfs) to fill up; skips unless root can mount."""
    if not is_root():
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0750", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of `directory` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):  # unbuffered: the last partial block too
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler
