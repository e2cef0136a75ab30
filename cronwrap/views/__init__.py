"""What `status`, `history` and `explain` show: models and plain-text tables."""
