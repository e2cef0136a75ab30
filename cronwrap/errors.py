"""Exit codes and the one exception hierarchy; imports nothing from the package."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2  # click's own code for bad flags/arguments
    UNKNOWN = 3  # `status` only: it cannot know a job's state (as Nagios UNKNOWN)
    CONFIG = 78  # sysexits EX_CONFIG
    TIMED_OUT = 124  # as GNU timeout
    WRAPPER = 125  # `run` only: cronwrap itself failed before the job started
    NOT_EXECUTABLE = 126  # as the shell
    NOT_FOUND = 127  # as the shell; a child killed by signal N gives 128 + N


class CronwrapError(Exception):
    """An error the user can act on. The message must say what to do."""

    exit_code: ExitCode = ExitCode.ERROR


class UsageError(CronwrapError):
    exit_code = ExitCode.USAGE


class ConfigError(CronwrapError):
    exit_code = ExitCode.CONFIG


class ScheduleError(CronwrapError):
    """A cron expression cron would reject (or that we reject with a hint)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        column: int | None = None,
        width: int = 1,
        expr: str | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.column = column  # 0-based offset of the bad token in `expr`
        self.width = width
        self.expr = expr

    def caret(self) -> str | None:
        """The expression with a caret line under the offending token, or None."""
        if self.expr is None or self.column is None:
            return None
        return f"{self.expr}\n{' ' * self.column}{'^' * max(1, self.width)}"


class StoreError(CronwrapError):
    """The run store could not be read or written."""


class JobNotFoundError(CronwrapError):
    pass


class StateError(CronwrapError):
    """A job's state directory or one of its `cronwrap state` keys cannot be used."""


class StateKeyError(StateError):
    """A state key name that is not allowed (a usage error)."""

    exit_code = ExitCode.USAGE
