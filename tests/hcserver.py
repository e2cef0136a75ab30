"""A small Healthchecks ping server for the tests, following
shared/reference/healthchecks-protocol.md: UUID and slug URLs, kinds, rid validation,
200 OK / 201 Created, 404 for unknown checks, Ping-Body-Limit, and failure modes."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}$"
)


@dataclass
class Ping:
    path: str
    check: str
    kind: str
    rid: str | None
    body: bytes
    status: int
    at: float
    headers: dict[str, str]


@dataclass
class HCServer:
    body_limit: int | None = 10_000
    port: int = 0
    checks: set[str] = field(default_factory=set)  # uuids
    slugs: dict[str, set[str]] = field(default_factory=dict)  # ping key -> slugs
    mode: str = "ok"  # ok | error503 | slow | notfound-ok
    fail_first: int = 0  # answer 503 to this many requests first
    delay: float = 0.0
    pings: list[Ping] = field(default_factory=list)
    tls: ssl.SSLContext | None = None  # serve https with this server-side context

    def new_check(self) -> str:
        u = str(uuidlib.uuid4())
        self.checks.add(u)
        return u

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ping/"

    def url(self, check: str) -> str:
        return self.base + check

    def kinds(self) -> list[str]:
        return [p.kind for p in self.pings]

    def start(self) -> HCServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, text = server.answer(self.path, body, dict(self.headers))
                if server.delay:
                    time.sleep(server.delay)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                if status in (200, 201) and server.body_limit:
                    self.send_header("Ping-Body-Limit", str(server.body_limit))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        segs = [s for s in parts.path.split("/") if s]
        status, text, check, kind = self._route(segs, query)
        rid = query.get("rid", [None])[0]
        if status < 400 and rid is not None and not UUID_RE.match(rid):
            status, text = 400, "invalid uuid format"
        if status < 400 and self.fail_first > 0:
            self.fail_first -= 1
            status, text = 503, "Service Unavailable"
        elif status < 400 and self.mode == "error503":
            status, text = 503, "Service Unavailable"
        elif status == 200 and self.mode == "notfound-ok":
            text = "OK (not found)"
        stored = body[: self.body_limit] if self.body_limit else body
        self.pings.append(
            Ping(
                path,
                check,
                kind,
                rid,
                stored if status < 400 else body,
                status,
                time.monotonic(),
                headers,
            )
        )
        return status, text

    def _route(self, segs: list[str], query: dict) -> tuple[int, str, str, str]:  # type: ignore[type-arg]
        if not segs or segs[0] != "ping" or len(segs) < 2:
            return 404, "not found", "", ""
        segs = segs[1:]
        if UUID_RE.match(segs[0]):
            check, rest = segs[0], segs[1:]
            if check not in self.checks:
                return 404, "not found", check, ""
            created = False
        else:
            if len(segs) < 2:
                return 404, "not found", "", ""
            key, slug, rest = segs[0], segs[1], segs[2:]
            if not re.match(r"^[a-z0-9_-]+$", slug):
                return 400, "invalid url format", slug, ""
            check = f"{key}/{slug}"
            created = False
            if slug not in self.slugs.get(key, set()):
                if query.get("create") == ["1"] and key in self.slugs:
                    self.slugs[key].add(slug)
                    created = True
                else:
                    return 404, "not found", check, ""
        kind = rest[0] if rest else ""
        if kind not in ("", "start", "fail", "log") and not kind.isdigit():
            # as the real server's URL patterns: "<uuid>/-1" or "<uuid>/foo" is read as a
            # slug URL with the UUID as ping key, which matches nothing
            return 404, "not found", check, kind
        if kind.isdigit() and int(kind) > 255:
            return 400, "invalid url format", check, kind
        return (201, "Created", check, kind) if created else (200, "OK", check, kind)


class BlackHole:
    """A listening socket that never accepts: connects succeed (backlog), nothing answers."""

    def __enter__(self) -> BlackHole:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def url(self, check: str) -> str:
        return f"http://127.0.0.1:{self.port}/ping/{check}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """A small forward proxy on 127.0.0.1, as a site's egress proxy: absolute-form requests
    for http, CONNECT tunnels for https. Every name resolves to 127.0.0.1 (the test's
    servers), so a ping that reaches its server went through here. Records what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []  # (method, target, proxy auth)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        self.seen.append((method, target, headers.get("proxy-authorization")))
        if method == "CONNECT":
            port = int(target.rpartition(":")[2])
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
        else:
            parts = urlsplit(target)
            upstream = socket.create_connection(("127.0.0.1", parts.port or 80), timeout=10)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            kept = [ln for ln in lines if not ln.lower().startswith("proxy-authorization")]
            upstream.sendall(
                "\r\n".join([f"{method} {path} HTTP/1.1", *kept]).encode("latin-1")
                + b"\r\n\r\n"
                + rest
            )
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


def pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until either side closes, then close both (a relay's one direction)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class SilentResolver:
    """A UDP socket on 127.0.0.1 that takes DNS queries and never answers (a dead resolver)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = int(self.sock.getsockname()[1])
        self.queries = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries += 1

    def close(self) -> None:
        self.sock.close()

    def resolve(self, host: str, port: int, *args: object) -> list[object]:
        """getaddrinfo's shape, asking this resolver over real UDP: never returns."""
        query = _dns_query(host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(60)
            s.sendto(query, ("127.0.0.1", self.port))
            s.recvfrom(4096)  # blocks: nobody answers
        raise OSError("no answer")


def _dns_query(host: str) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in host.split(".")) + b"\0"
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x01\x00\x01"
