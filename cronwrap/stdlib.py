"""The C halves of two standard-library packages, for the run path: the `sqlite3` package
adds date adapters and converters the store never uses (it writes times as ISO text) and
imports `datetime` for them, and on 3.10 and 3.11 `import datetime` first runs its
pure-Python twin; together about 4 % of a run's instructions. The names and types are the
packages' own. An interpreter without `_datetime` gets the package (the job must run)."""

from __future__ import annotations

import _sqlite3 as sqlite3  # the package itself cannot go without it

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime, timedelta, timezone
else:
    try:
        from _datetime import datetime, timedelta, timezone
    except ImportError:  # not CPython, or built without it
        from datetime import datetime, timedelta, timezone

__all__ = ["datetime", "sqlite3", "timedelta", "timezone"]
