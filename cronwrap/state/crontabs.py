"""The user's installed crontab as `wrap --apply` and `--undo` change it. Every install first
saves the crontab it replaces as `<state dir>/crontab-backups/<UTC time>.crontab`; an apply
also records what it installed (`.wrapped`), so undo can put back only the lines wrap changed
and keep every edit made since."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cronwrap.errors import CronwrapError


def backup_dir(state_dir: Path | str) -> Path:
    return Path(state_dir) / "crontab-backups"


def diff(old: str, new: str, *, new_label: str = "crontab (wrapped)") -> str:
    """A unified diff from the installed crontab to the new one ("" when they are equal)."""
    import difflib

    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), "crontab (now)", new_label
        )
    )


def _save(backups: Path, old: str) -> Path:
    """Keep `old` as a new timestamped backup (mode 0600); its path."""
    from datetime import datetime, timezone

    from cronwrap.config import ensure_dir

    ensure_dir(backups)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    backup = backups / f"{stamp}.crontab"
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(old)
    return backup


def apply(old: str, new: str, backups: Path) -> Path:
    """Save old, install new and record it for undo; returns the backup's path."""
    backup = _save(backups, old)
    backup.with_suffix(".wrapped").write_text(new, encoding="utf-8", errors="surrogateescape")
    os.chmod(backup.with_suffix(".wrapped"), 0o600)
    install(new)
    return backup


@dataclass(frozen=True, slots=True)
class Undo:
    """What undoing the last apply would install, and the lines it leaves as they are."""

    text: str
    edited: list[int]  # lines of the current crontab wrap wrote and someone changed since
    record: Path  # the apply's .wrapped record


def last_apply(backups: Path) -> Path:
    """The record of the last apply not undone yet."""
    records = sorted(backups.glob("*.wrapped")) if backups.is_dir() else []
    if not records:
        raise CronwrapError(f"nothing to undo: no wrap --apply recorded in {backups}")
    return records[-1]


def plan_undo(current: str, record: Path) -> Undo:
    """The current crontab with that apply's changes taken back (see cron.wrap)."""
    from cronwrap.cron.wrap import unwrap_crontab

    before = record.with_suffix(".crontab").read_text(encoding="utf-8", errors="surrogateescape")
    after = record.read_text(encoding="utf-8", errors="surrogateescape")
    text, edited = unwrap_crontab(current, before=before, after=after)
    return Undo(text, edited, record)


def undo(current: str, plan: Undo, backups: Path) -> Path:
    """Save current, install the plan's text and mark its apply as undone; the backup."""
    backup = _save(backups, current)
    install(plan.text)
    plan.record.rename(plan.record.with_suffix(".wrapped-undone"))
    return backup


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
