"""Pure cron semantics, stdlib only, no I/O: schedules, explanations, crontab files, lint, wrap."""
