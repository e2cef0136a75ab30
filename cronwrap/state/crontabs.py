"""The user's installed crontab as `wrap --apply` and `--undo` change it: a backup of the old
one in the state dir, then `crontab -` with the new text; undo reinstalls the newest backup."""

from __future__ import annotations

import os
from pathlib import Path

from cronwrap.errors import CronwrapError


def backup_dir(state_dir: Path | str) -> Path:
    return Path(state_dir) / "crontab-backups"


def diff(old: str, new: str) -> str:
    """A unified diff from the installed crontab to the new one ("" when they are equal)."""
    import difflib

    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            "crontab (now)",
            "crontab (wrapped)",
        )
    )


def apply(old: str, new: str, backups: Path) -> Path:
    """Save old in backups, install new; returns the backup's path."""
    import time

    from cronwrap.config import ensure_dir

    ensure_dir(backups)
    backup = backups / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.crontab"
    backup.write_text(old)
    os.chmod(backup, 0o600)
    install(new)
    return backup


def undo(backups: Path) -> Path:
    """Reinstall the newest backup; returns its path."""
    saved = sorted(backups.glob("*.crontab")) if backups.is_dir() else []
    if not saved:
        raise CronwrapError(f"nothing to undo: no backup in {backups}")
    install(saved[-1].read_text())
    return saved[-1]


def install(text: str) -> None:
    """`crontab -` with text; CronwrapError when it cannot run or refuses."""
    import subprocess

    try:
        out = subprocess.run(
            ["crontab", "-"], input=text, text=True, capture_output=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CronwrapError(f"cannot run crontab -: {err}") from err
    if out.returncode != 0:
        raise CronwrapError(f"crontab - refused the new crontab: {out.stderr.strip()}")
