"""Notifications that leave the host: Healthchecks pings, alerts. Imported only when configured."""
