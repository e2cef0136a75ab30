"""Keeping secrets out of logs, history and terminals: ping and alert URLs are shown with
their secret parts cut. Standard library only."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """`https://hc-ping.com/<uuid>` -> `https://hc-ping.com/…a1b2`; credentials and query
    strings go too. Keeps just enough (scheme, host, last 4 characters) to tell URLs apart."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    if not parts.scheme or not parts.netloc:
        return "…" + url[-4:] if len(url) > 8 else "…"
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    path = parts.path.rstrip("/")
    last = re.sub(r"[^A-Za-z0-9]", "", path)[-4:]
    return f"{parts.scheme}://{host}/…{last}" if path else f"{parts.scheme}://{host}/"
