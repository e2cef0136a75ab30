"""rich output for `history`. Imported only by the CLI."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from cronwrap.views.humanize import relative
from cronwrap.views.table import short_duration

UTC = timezone.utc


def console(*, stderr: bool = False, color: str = "auto") -> Console:
    """NO_COLOR/FORCE_COLOR are honoured by rich; --color beats them; no TTY means plain."""
    kwargs: dict[str, Any] = {"stderr": stderr, "highlight": False}
    if color == "never":
        kwargs["no_color"] = True
    elif color == "always":
        kwargs["force_terminal"] = True
    return Console(**kwargs)


def render_history(con: Console, runs: list[Any], now: datetime) -> None:
    plain = not con.is_terminal
    table = Table(
        box=None if plain else box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold"
    )
    for col in ("STARTED", "DURATION", "RESULT", "ATTEMPTS", "EXIT", "HOST", "RUN ID"):
        table.add_column(col, no_wrap=True)
    for r in runs:
        table.add_row(
            f"{r.started_at.astimezone():%Y-%m-%d %H:%M:%S} ({relative(r.started_at, now)})",
            short_duration(r.duration_s),
            r.status
            if r.status != "failed"
            else f"failed{f' (signal {r.signal})' if r.signal else ''}",
            str(r.attempts),
            "-" if r.exit_code is None else str(r.exit_code),
            r.host,
            r.run_id[:8],
        )
    con.print(table)
