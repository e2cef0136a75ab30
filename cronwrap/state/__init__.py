"""What lives on disk: the run store, the event log, metrics files."""
