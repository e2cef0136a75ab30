"""cronwrap: a supervisor for cron jobs. Imports nothing, so `cronwrap run` stays fast."""

__version__ = "0.1.0"
