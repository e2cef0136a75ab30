"""A minimal HTTP/1.1 client for pings and webhooks. http.client imports the email package and
ssl at start-up (~20 ms, more than the rest of `cronwrap run`), so this speaks just what a
ping needs over a plain socket, and loads ssl only for https URLs.

Every request has one total time budget that covers everything: name resolution (run in a
thread, since getaddrinfo has no timeout), connecting, the proxy's CONNECT, TLS and the answer.
HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY are honoured as curl does (lower case first);
`user:pass@` in a URL becomes Basic authentication and is never shown.

Start-up: a plain http ping speaks through `_socket` (the socket module adds selectors, enum
classes and array, ~2 ms), and common URLs are split without urllib.parse (which imports
ipaddress, ~3 ms together); https loads ssl, and ssl socket."""

from __future__ import annotations

import _socket
import time
from collections.abc import Mapping

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable
    from socket import socket as Socket
    from typing import Any
    from urllib.parse import SplitResult

    Resolver = Callable[..., list[Any]]  # socket.getaddrinfo's shape

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024

_contexts: dict[str, object] = {}
_resolved: dict[tuple[str, int], list[Any]] = {}


class HTTPError(OSError):
    """A malformed or truncated answer, or a proxy that refused the tunnel."""


# ------------------------------------------------------------------ URLs

# what the fast split accepts: printable ASCII that urlsplit neither strips nor rejects
_URL_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#@!$&'()*+,;=%"
)


class URLParts:
    """What urllib.parse.urlsplit says of a URL (the same attributes), split here."""

    __slots__ = (
        "fragment",
        "hostname",
        "netloc",
        "password",
        "path",
        "port",
        "query",
        "scheme",
        "username",
    )

    def __init__(self, scheme: str, netloc: str, path: str, query: str, fragment: str) -> None:
        self.scheme, self.netloc, self.path = scheme, netloc, path
        self.query, self.fragment = query, fragment
        userinfo, at, hostport = netloc.rpartition("@")
        user, has_password, password = userinfo.partition(":")
        self.username = user if at else None
        self.password = password if has_password else None
        host, _, port = hostport.partition(":")
        self.hostname = host.lower() or None
        self.port = int(port) if port else None


def split_url(url: str) -> URLParts | SplitResult:
    """urlsplit(url), exactly: common http(s) URLs (lower-case scheme, plain ASCII, a host
    name or IPv4 address, a decimal port in range) are split here, anything else by
    urllib.parse itself, whose errors (ValueError) are then its own."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("http", "https") and sep and _URL_CHARS.issuperset(rest):
        rest, _, fragment = rest.partition("#")
        rest, _, query = rest.partition("?")
        netloc, slash, path = rest.partition("/")
        hostport = netloc.rpartition("@")[2]
        port = hostport.partition(":")[2]
        plain_port = not port or (port.isdigit() and int(port) <= 65535)
        ipv6 = "[" in netloc or "]" in netloc
        if plain_port and not ipv6 and "%" not in hostport:  # (an IPv6 zone, an odd host)
            return URLParts(scheme, netloc, slash + path, query, fragment)
    from urllib.parse import urlsplit

    return urlsplit(url)


def _http_parts(url: str) -> tuple[URLParts | SplitResult, str]:
    """split_url of a URL a request can go to, and its host; ValueError saying why not
    (`ftp://`, a port of 99999 or 9:9, an open IPv6 bracket)."""
    try:
        parts = split_url(url)
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError as err:
        raise ValueError(f"not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s):// URL")
    return parts, parts.hostname


def check_url(url: str, what: str) -> None:
    """ConfigError for a URL no request can go to, so that it is one line at once, not
    budgets spent and a queue that fails again at every run."""
    from cronwrap.errors import ConfigError
    from cronwrap.redact import redact_url

    try:
        _http_parts(url)
    except ValueError as err:
        raise ConfigError(f"{what} {redact_url(url)}: {err}") from None


def tls_context() -> object:
    """The stdlib's verifying default context, made once per process. (Loading certificates
    lazily from the hashed directory saved nothing measurable per process: importing ssl and
    initialising OpenSSL dominate; see benchmarks/.)"""
    if "default" not in _contexts:
        import ssl

        _contexts["default"] = ssl.create_default_context()
    return _contexts["default"]


def post(
    url: str,
    body: bytes,
    *,
    headers: dict[str, str],
    timeout: float,
    context: object | None = None,
    env: Mapping[str, str] | None = None,
    resolve: Resolver | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """POST `body` to `url`; returns (status, lower-cased headers, body). Raises OSError
    (including TimeoutError) on network errors, within `timeout` seconds in all."""
    return request(
        "POST",
        url,
        body,
        headers=headers,
        timeout=timeout,
        context=context,
        env=env,
        resolve=resolve,
    )


def request(
    method: str,
    url: str,
    body: bytes = b"",
    *,
    headers: dict[str, str],
    timeout: float,
    context: object | None = None,
    env: Mapping[str, str] | None = None,
    resolve: Resolver | None = None,
    max_body: int = MAX_BODY,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with a total time budget (see post). `env` is where the proxy
    variables are read (default: the process environment); `resolve` is getaddrinfo."""
    import os

    deadline = time.monotonic() + timeout
    for key, value in headers.items():  # a key file of two lines must not add a header
        if any(c in key or c in value for c in "\r\n\0"):
            raise HTTPError(f"the {key} header holds a line break or NUL; nothing was sent")
    try:
        parts, host = _http_parts(url)
    except ValueError as err:
        raise HTTPError(str(err)) from None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host_header = _host_port(host, parts.port)
    extra: dict[str, str] = {}
    if parts.username is not None and not any(k.lower() == "authorization" for k in headers):
        extra["Authorization"] = _basic(parts.username, parts.password or "")
    proxy = proxy_for(parts.scheme, host, port, os.environ if env is None else env)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    resolver: Resolver = resolve or _socket.getaddrinfo
    tls = parts.scheme == "https"
    if proxy is None:
        sock = connect(host, port, deadline, resolver, tls=tls)
    else:
        pparts = split_url(proxy)
        if pparts.scheme != "http" or not pparts.hostname:
            raise HTTPError(f"unsupported proxy {pparts.scheme}://{pparts.hostname or ''}")
        sock = connect(pparts.hostname, pparts.port or 80, deadline, resolver, tls=tls)
        proxy_auth = (
            {"Proxy-Authorization": _basic(pparts.username, pparts.password or "")}
            if pparts.username is not None
            else {}
        )
        if parts.scheme == "https":
            _tunnel(sock, host_header, proxy_auth, deadline)
        else:
            path = f"http://{host_header}{path}"  # absolute-form for a forward proxy
            extra.update(proxy_auth)
    try:
        if parts.scheme == "https":
            ctx = context or tls_context()
            sock.settimeout(_left(deadline))
            sock = ctx.wrap_socket(sock, server_hostname=host)  # type: ignore[attr-defined]
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {host_header}",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        lines += [f"{k}: {v}" for k, v in {**headers, **extra}.items()]
        sock.settimeout(_left(deadline))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return _read_response(sock, deadline, max_body)
    finally:
        sock.close()


def _host_port(host: str, port: int | None) -> str:
    name = f"[{host}]" if ":" in host else host
    return f"{name}:{port}" if port else name


def _basic(user: str, password: str) -> str:
    import base64
    from urllib.parse import unquote  # only with credentials in the URL

    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return f"Basic {token}"


# ------------------------------------------------------------------ proxies


def proxy_for(scheme: str, host: str, port: int, env: Mapping[str, str]) -> str | None:
    """The proxy URL for a request, from the environment as curl reads it, or None.
    Loopback hosts never go through a proxy (a proxy cannot reach this host's loopback)."""

    def var(name: str) -> str:
        return env.get(name.lower()) or env.get(name.upper()) or ""

    proxy = var(f"{scheme}_proxy") or var("all_proxy")
    if not proxy or _is_loopback(host) or _bypassed(host, port, var("no_proxy")):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in ("localhost", "::1") or host.endswith(".localhost") or host.startswith("127.")


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    host = host.lower().rstrip(".")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.strip("[]").lstrip("*").lstrip(".").rstrip(".")
        if "/" in name:
            if _in_network(host, name):
                return True
        elif host == name or host.endswith("." + name):
            return True
    return False


def _in_network(host: str, cidr: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _tunnel(sock: Socket, authority: str, auth: dict[str, str], deadline: float) -> None:
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    lines += [f"{k}: {v}" for k, v in auth.items()]
    try:
        sock.settimeout(_left(deadline))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:  # read the head only: TLS bytes follow it
            chunk = _recv(sock, deadline, 1)
            if not chunk:
                raise HTTPError("the proxy closed the connection during CONNECT")
            data += chunk
            if len(data) > MAX_HEAD:
                raise HTTPError("proxy response headers too large")
        status_line = data.split(b"\r\n", 1)[0].decode("latin-1")
        fields = status_line.split()
        if len(fields) < 2 or fields[1] != "200":
            raise HTTPError(f"the proxy refused CONNECT: {status_line[:60]}")
    except BaseException:
        sock.close()
        raise


# ------------------------------------------------------------------ connecting


def connect(
    host: str, port: int, deadline: float, resolve: Resolver, *, tls: bool = False
) -> Socket:
    """A TCP connection to host:port, name resolution included, before `deadline`. With
    `tls` a socket.socket (what ssl wraps), else the bare `_socket.socket` (same methods)."""
    last: OSError = OSError("no address")
    if tls:
        import socket

        new: Any = socket.socket
    else:
        new = _socket.socket
    for family, socktype, proto, _, address in _addresses(host, port, deadline, resolve):
        sock: Socket = new(family, socktype, proto)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(address)
            return sock
        except OSError as err:
            sock.close()
            last = err
            if isinstance(err, TimeoutError):
                break
    raise last


def _addresses(host: str, port: int, deadline: float, resolve: Resolver) -> list[Any]:
    if _is_ip(host):
        family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        return [(family, _socket.SOCK_STREAM, 0, "", (host, port))]
    key = (host, port)
    if key in _resolved:  # the start ping resolved it: the finish ping need not wait again
        return _resolved[key]
    import threading

    box: list[object] = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append(resolve(host, port, 0, _socket.SOCK_STREAM))
        except OSError as err:
            box.append(err)
        finally:
            done.set()

    # getaddrinfo cannot be cancelled: a resolver that never answers keeps this daemon
    # thread, not the job, waiting
    threading.Thread(target=work, daemon=True, name="cronwrap-resolve").start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise TimeoutError(f"name resolution of {host} timed out")
    result = box[0]
    if isinstance(result, OSError):
        reason = getattr(result, "strerror", None) or str(result)
        raise OSError(f"cannot resolve {host}: {reason}")
    infos: list[Any] = list(result)  # type: ignore[call-overload]
    _resolved[key] = infos
    return infos


def _is_ip(host: str) -> bool:
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _recv(sock: Socket, deadline: float, size: int = 65536) -> bytes:
    sock.settimeout(_left(deadline))
    return sock.recv(size)


def _read_response(
    sock: Socket, deadline: float, max_body: int
) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock, deadline)
        if not chunk:
            raise HTTPError("connection closed before the response headers")
        data += chunk
        if len(data) > MAX_HEAD and b"\r\n\r\n" not in data[: MAX_HEAD + 4]:
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
        return status, headers, _dechunk(sock, rest, deadline, max_body)
    length = headers.get("content-length")
    want = min(int(length), max_body) if length and length.isdigit() else max_body
    while len(rest) < want:
        chunk = _recv(sock, deadline)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:want]


def _dechunk(sock: Socket, data: bytes, deadline: float, max_body: int) -> bytes:
    out = b""
    while len(out) < max_body:
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
