"""notify/http: the whole request — name resolution included — within its budget, proxies as
curl reads them, credentials in URLs as Basic auth and never shown. Real sockets, a real
proxy, a real TLS server, a resolver that never answers."""

from __future__ import annotations

import base64
import os
import random
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cronwrap.notify.http import URLParts, proxy_for, request, split_url
from tests.conftest import cronwrap, cw_env, seconds_between
from tests.hcserver import HCServer, Proxy, SilentResolver

PY = sys.executable
CHECK = "5b5f1a2e-8c3d-4e6f-9a0b-1c2d3e4f5a6b"


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


@pytest.fixture
def hc() -> Iterator[HCServer]:
    server = HCServer()
    server.checks.add(CHECK)
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------- name resolution


def test_a_resolver_that_never_answers_is_cut_off_at_the_budget() -> None:
    silent = SilentResolver()
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"name resolution of hc\.example\.test"):
            request(
                "POST",
                f"http://hc.example.test/ping/{CHECK}",
                headers={},
                timeout=0.5,
                env={},
                resolve=silent.resolve,
            )
        took = time.monotonic() - t0
    finally:
        silent.close()
    assert took < 0.5 + 4.5  # the budget, plus a generous margin for a busy machine
    assert silent.queries >= 1  # the query really went out and was left unanswered


ISOLATED = r"""
set -e
ip link set lo up
mount --bind "$RESOLV" /etc/resolv.conf
exec "$PY" "$HELPER"
"""

HELPER = r"""
import json, os, socket, subprocess, sys, time
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind(("127.0.0.1", 53))  # the only nameserver in this namespace; it never answers
t0 = time.time()
out = subprocess.run(sys.argv[1:] if len(sys.argv) > 1 else json.loads(os.environ["ARGV"]),
                     capture_output=True, text=True)
print(json.dumps({"t0": t0, "end": time.time(), "rc": out.returncode, "stderr": out.stderr}))
"""


def _can_isolate() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_isolate(), reason="needs root, unshare and ip (a private netns)")
def test_dns_that_never_answers_does_not_delay_the_job(home: Path, tmp_path: Path) -> None:
    """The real resolver (glibc getaddrinfo, /etc/resolv.conf) pointed at a nameserver that
    never answers, in a private network and mount namespace: the job starts within the
    start budget and keeps its exit code."""
    import json

    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:10 attempts:3\n")
    helper = tmp_path / "helper.py"
    helper.write_text(HELPER)
    marker = tmp_path / "started"
    argv = [
        PY,
        "-m",
        "cronwrap",
        "run",
        "--name",
        "dns",
        "--ping",
        f"http://hc.example.test/ping/{CHECK}",
        "--ping-start-budget",
        "1s",
        "--ping-finish-budget",
        "1s",
        "--",
        PY,
        "-c",
        f"import pathlib, time, sys; pathlib.Path({str(marker)!r}).write_text(repr(time.time()));"
        " sys.exit(3)",
    ]
    env = cw_env(home, RESOLV=str(resolv), PY=PY, HELPER=str(helper), ARGV=json.dumps(argv))
    out = subprocess.run(
        ["unshare", "--net", "--mount", "sh", "-c", ISOLATED],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["rc"] == 3, report["stderr"]
    assert marker.exists()
    # the start ping within its budget as the run's own clock saw it (a margin for a busy
    # machine, where the start-ups around it took seconds), and the whole run not held up
    held = seconds_between(home, "run.start", "attempt.start")
    assert held < 1 + 2, f"the job started {held:.1f}s after the run"
    assert report["end"] - report["t0"] < 1 + 1 + 15
    assert "name resolution of hc.example.test timed out" in report["stderr"]
    assert report["stderr"].count("ping to") == 1  # one line for the fault


# ---------------------------------------------------------------- proxies


def test_proxy_choice_follows_curl() -> None:
    env = {
        "https_proxy": "http://p:3128",
        "HTTP_PROXY": "proxy:8080",
        "NO_PROXY": ".corp,10.0.0.0/8",
    }
    assert proxy_for("https", "hc-ping.com", 443, env) == "http://p:3128"
    assert proxy_for("http", "hc.example", 80, env) == "http://proxy:8080"
    assert proxy_for("https", "hc.corp", 443, env) is None
    assert proxy_for("https", "a.b.corp", 443, env) is None
    assert proxy_for("https", "10.1.2.3", 443, env) is None
    assert proxy_for("https", "127.0.0.1", 443, env) is None  # loopback never goes out
    assert proxy_for("https", "x", 443, {"ALL_PROXY": "http://all:1"}) == "http://all:1"
    assert proxy_for("https", "x", 443, {"all_proxy": "http://a:1", "NO_PROXY": "*"}) is None
    assert proxy_for("http", "x", 8080, {"http_proxy": "http://a:1", "no_proxy": "x:80"}) == (
        "http://a:1"
    )


def test_http_ping_goes_through_http_proxy_in_absolute_form(
    home: Path, hc: HCServer, proxy: Proxy
) -> None:
    url = f"http://hc.example.test:{hc.port}/ping/{CHECK}"  # resolvable only by the proxy
    env = cw_env(home, HTTP_PROXY=f"http://puser:p%40ss@127.0.0.1:{proxy.port}")
    result = cronwrap(home, "run", "--name", "px", "--ping", url, "--", "true", env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert hc.kinds() == ["start", "0"]
    method, target, auth = proxy.seen[0]
    assert method == "POST" and target.startswith(f"http://hc.example.test:{hc.port}/ping/")
    assert auth == "Basic " + base64.b64encode(b"puser:p@ss").decode()
    assert "Proxy-Authorization" not in hc.pings[0].headers


def test_https_ping_tunnels_through_connect(home: Path, tmp_path: Path, proxy: Proxy) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=hc.example.test",
            "-addext",
            "subjectAltName=DNS:hc.example.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = HCServer(tls=ctx)
    server.checks.add(CHECK)
    server.start()
    try:
        url = f"https://hc.example.test:{server.port}/ping/{CHECK}"
        env = cw_env(home, HTTPS_PROXY=f"127.0.0.1:{proxy.port}", SSL_CERT_FILE=str(cert))
        result = cronwrap(home, "run", "--name", "tls", "--ping", url, "--", "true", env=env)
    finally:
        server.stop()
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert server.kinds() == ["start", "0"]
    assert proxy.seen[0][:2] == ("CONNECT", f"hc.example.test:{server.port}")


def test_no_proxy_sends_directly(home: Path, hc: HCServer, proxy: Proxy) -> None:
    url = f"http://localhost:{hc.port}/ping/{CHECK}"
    env = cw_env(home, HTTP_PROXY=proxy.url, NO_PROXY="example.org")
    result = cronwrap(home, "run", "--name", "np", "--ping", url, "--", "true", env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert hc.kinds() == ["start", "0"] and proxy.seen == []  # localhost: never proxied
    env = cw_env(home, HTTP_PROXY=proxy.url, NO_PROXY=".example.test")
    url = f"http://hc.example.test:{hc.port}/ping/{CHECK}"
    result = cronwrap(
        home,
        "run",
        "--name",
        "np",
        "--ping",
        url,
        "--ping-start-budget",
        "1s",
        "--ping-finish-budget",
        "1s",
        "--",
        "sh",
        "-c",
        "exit 4",
        env=env,
    )
    assert result.returncode == 4
    assert proxy.seen == [] and "cannot resolve hc.example.test" in result.stderr


# ---------------------------------------------------------------- credentials in URLs


def test_user_and_password_in_the_url_are_basic_auth_and_never_shown(
    home: Path, hc: HCServer
) -> None:
    secret = "s3cr3t-pass"
    url = f"http://pinger:{secret}@127.0.0.1:{hc.port}/ping/{CHECK}"
    ok = cronwrap(home, "run", "--name", "auth", "--ping", url, "--", "echo", secret)
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    expected = "Basic " + base64.b64encode(f"pinger:{secret}".encode()).decode()
    assert [p.headers.get("Authorization") for p in hc.pings] == [expected, expected]
    assert secret.encode() not in hc.pings[1].body  # the job's output, masked in the body
    missing = f"http://pinger:{secret}@127.0.0.1:{hc.port}/ping/{CHECK[:-1]}0"
    bad = cronwrap(home, "run", "--name", "auth", "--ping", missing, "--", "true")
    assert "HTTP 404" in bad.stderr and secret not in bad.stderr and "pinger" not in bad.stderr
    assert secret not in (home / "cronwrap.log").read_text()


# ---------------------------------------------------------------- URLs


def _urlsplit_view(split: object) -> list[object]:
    """What callers read of a split URL; a port urlsplit cannot read is its ValueError."""
    out: list[object] = []
    for name in ("scheme", "netloc", "path", "query", "fragment", "username", "password"):
        out.append(getattr(split, name))
    for name in ("hostname", "port"):
        try:
            out.append(getattr(split, name))
        except ValueError as err:
            out.append(("ValueError", str(err)))
    return out


def _both(url: str) -> tuple[object, object]:
    def view(split: Callable[[str], object]) -> object:
        try:
            return _urlsplit_view(split(url))
        except ValueError as err:
            return ("ValueError", str(err))

    return view(urlsplit), view(split_url)


@pytest.mark.parametrize(
    "url",
    [
        "https://hc-ping.com/5b5f1a2e-8c3d-4e6f-9a0b-1c2d3e4f5a6b",
        "http://127.0.0.1:8000/ping/key/slug-1?create=1&rid=abc",
        "https://user:p@ss@Hc.Example.COM:8443/ping/x#frag",
        "http://u@h:/p",
        "http://h:0080",
        "http://h:65535",
        "http://@h",
        "http://h?q=/x#y?z",
        "http://h#f/x?y",
        "https://hc.example.com",
    ],
)
def test_common_urls_are_split_without_urllib_but_exactly_as_it_does(url: str) -> None:
    want, got = _both(url)
    assert got == want
    assert isinstance(split_url(url), URLParts)  # the fast path


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]:8000/p",
        "http://h:99999/p",
        "http://h:8a/p",
        "http://h:1:2/p",
        "http://h%25eth0/p",
        "http://[::1/p",
        "HTTP://H/p",
        " http://h/p",
        "http://h/p q",
        "http://h/p\n",
        "http://hé/p",
        "ftp://h/p",
        "http:/h/p",
        "//h/p",
    ],
)
def test_odd_urls_are_left_to_urllib(url: str) -> None:
    want, got = _both(url)
    assert got == want
    if want[0] != "ValueError":
        assert not isinstance(split_url(url), URLParts)


def test_split_url_agrees_with_urlsplit_on_random_urls() -> None:
    """Strings built from the characters that matter to a split (a fixed seed)."""
    rng = random.Random(20261201)
    alphabet = "aZ09-._~:/?#@!$&'()*+,;=%[] \té"
    for _ in range(20000):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        for prefix in ("http://", "https://", "HTTP://", "http:/"):
            want, got = _both(prefix + body)
            assert got == want, prefix + body


@pytest.mark.parametrize("value", ["KEY\nX-From-File: 1", "KEY\r\nX-From-File: 1", "K\0"])
def test_a_header_with_a_line_break_is_never_sent(value: str) -> None:
    """A key file of two lines (`hc sync --api-key file:k`) or a value with CR LF added a
    header of its own to the request; nothing at all goes out now, and the error does not
    quote the value."""
    server = HCServer().start()
    try:
        check = server.new_check()
        with pytest.raises(OSError) as caught:
            request("POST", server.url(check), b"", headers={"X-Api-Key": value}, timeout=5)
        assert "X-Api-Key header holds a line break" in str(caught.value)
        assert "KEY" not in str(caught.value)
        status, _, _ = request(
            "POST", server.url(check), b"", headers={"X-Api-Key": "K"}, timeout=5
        )
        assert status == 200
        assert len(server.pings) == 1 and "X-From-File" not in server.pings[0].headers
    finally:
        server.stop()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9:99999", "http://[::1", "http://h:99999/x"])
def test_a_url_urllib_cannot_split_is_an_http_error(home: Path, url: str) -> None:
    """A ValueError from urllib (a port out of range, an open IPv6 bracket) was a traceback in
    hc sync; it is an HTTPError like any other URL the client cannot use."""
    with pytest.raises(OSError, match="not a valid URL"):
        request("GET", url, b"", headers={}, timeout=5)
    r = cronwrap(home, "hc", "sync", "--api-url", url, "--api-key", "k")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1 and "not a valid URL" in r.stderr
