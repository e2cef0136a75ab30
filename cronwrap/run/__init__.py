"""The hot path of `cronwrap run`: argv, the supervisor, the child process, locks, reporters.
Never imports click."""
