"""Whether a process cronwrap recorded by its pid still lives: a run's own cronwrap (crashed
or running?), or the process that claimed an outbox record."""

from __future__ import annotations

import os


def pid_alive(pid: int | None) -> bool:
    """True while `pid` names a live process, another user's included."""
    if not pid or pid < 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
