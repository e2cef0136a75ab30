"""A minimal HTTP/1.1 POST for pings and webhooks. http.client imports the email package and
ssl at start-up (~20 ms, more than the rest of `cronwrap run`), so this speaks just what a
ping needs over a plain socket, and loads ssl only for https URLs."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024

_contexts: dict[str, object] = {}


class HTTPError(OSError):
    """A malformed or truncated answer."""


def tls_context() -> object:
    """The stdlib's verifying default context, made once per process. (Loading certificates
    lazily from the hashed directory saved nothing measurable per process: importing ssl and
    initialising OpenSSL dominate; see benchmarks/.)"""
    if "default" not in _contexts:
        import ssl

        _contexts["default"] = ssl.create_default_context()
    return _contexts["default"]


def post(
    url: str, body: bytes, *, headers: dict[str, str], timeout: float, context: object | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST `body` to `url`; returns (status, lower-cased headers, body). Raises OSError
    (including socket.timeout) on network errors, within `timeout` seconds in all."""
    return request("POST", url, body, headers=headers, timeout=timeout, context=context)


def request(
    method: str,
    url: str,
    body: bytes = b"",
    *,
    headers: dict[str, str],
    timeout: float,
    context: object | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with a total time budget (see post)."""
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPError(f"not an http(s) URL: {parts.scheme}://")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = socket.create_connection((parts.hostname, port), timeout=_left(deadline))
    try:
        if parts.scheme == "https":
            ctx = context or tls_context()
            sock = ctx.wrap_socket(sock, server_hostname=parts.hostname)  # type: ignore[attr-defined]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {parts.netloc.rpartition('@')[2]}",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return _read_response(sock, deadline)
    finally:
        sock.close()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(_left(deadline))
    return sock.recv(65536)


def _read_response(sock: socket.socket, deadline: float) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock, deadline)
        if not chunk:
            raise HTTPError("connection closed before the response headers")
        data += chunk
        if len(data) > MAX_HEAD:
            raise HTTPError("response headers too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise HTTPError(f"bad status line {status_line[:40]!r}") from None
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return status, headers, _dechunk(sock, rest, deadline)
    length = headers.get("content-length")
    want = min(int(length), MAX_BODY) if length and length.isdigit() else MAX_BODY
    while len(rest) < want:
        chunk = _recv(sock, deadline)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:want]


def _dechunk(sock: socket.socket, data: bytes, deadline: float) -> bytes:
    out = b""
    while len(out) < MAX_BODY:
        while b"\r\n" not in data:
            more = _recv(sock, deadline)
            if not more:
                return out
            data += more
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            return out
        if size == 0:
            return out
        while len(data) < size + 2:
            more = _recv(sock, deadline)
            if not more:
                return out + data[:size]
            data += more
        out += data[:size]
        data = data[size + 2 :]
    return out
