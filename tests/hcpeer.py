"""The real Healthchecks server for the tests: `hc-peer up DIR` (../shared/peers/hc-peer, or
$CRONWRAP_HC_PEER) and a small client for its Management API and its database, so tests
read what the server itself recorded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.hcserver import pipe

ROOT = Path(__file__).resolve().parent.parent
# read at import, before a test's `home` fixture clears the CRONWRAP_* variables
_ENV = {k: v for k, v in os.environ.items() if k in ("CRONWRAP_HC_PEER", "CRONWRAP_HC_PEER_DIR")}


def peer_script() -> Path | None:
    """hc-peer next to the repository (as in CI), else $CRONWRAP_HC_PEER."""
    beside = ROOT.parent / "shared" / "peers" / "hc-peer"
    if beside.is_file():
        return beside
    env = _ENV.get("CRONWRAP_HC_PEER")
    return Path(env) if env and Path(env).is_file() else None


def peer_dir() -> Path:
    """Where the server is built: reused across runs (the first build takes a minute)."""
    env = _ENV.get("CRONWRAP_HC_PEER_DIR")
    return Path(env) if env else Path(f"/tmp/cronwrap-hc-peer-{os.getuid()}")


class Peer:
    """A running server: its URLs, keys and API, as peer.json describes it."""

    def __init__(self, script: Path, directory: Path, info: dict[str, object]) -> None:
        self.script = script
        self.dir = directory
        self.url = str(info["url"])
        self.ping_url = str(info["ping_url"])
        self.port = int(info["port"])  # type: ignore[call-overload]
        projects = info["projects"]
        assert isinstance(projects, dict)
        self.main = projects["main"]
        self.other = projects["other"]
        self.api_key = str(self.main["api_key"])
        self.ping_key = str(self.main["ping_key"])

    # ------------------------------------------------------------ Management API

    def api(self, method: str, path: str, doc: object = None, *, key: str | None = None) -> object:
        data = json.dumps(doc).encode() if doc is not None else None
        req = urllib.request.Request(
            f"{self.url}/api/v3/{path}",
            data=data,
            method=method,
            headers={"X-Api-Key": key or self.api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def new_check(self, **fields: object) -> dict[str, object]:
        """A fresh check (unique name) in the main project."""
        doc = {"name": f"t-{uuid.uuid4().hex[:10]}", "grace": 60, "timeout": 3600, **fields}
        check = self.api("POST", "checks/", doc)
        assert isinstance(check, dict)
        return check

    def check(self, code: str) -> dict[str, object]:
        doc = self.api("GET", f"checks/{code}")
        assert isinstance(doc, dict)
        return doc

    def status(self, code: str) -> str:
        return str(self.check(code)["status"])

    def pings(self, code: str) -> list[dict[str, object]]:
        """The check's pings, oldest first."""
        doc = self.api("GET", f"checks/{code}/pings/")
        assert isinstance(doc, dict)
        return sorted(doc["pings"], key=lambda p: int(p["n"]))

    def body(self, code: str, n: int) -> bytes:
        req = urllib.request.Request(
            f"{self.url}/api/v3/checks/{code}/pings/{n}/body",
            headers={"X-Api-Key": self.api_key},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return b""
            raise

    def checks(self, **query: str) -> list[dict[str, object]]:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        doc = self.api("GET", f"checks/?{qs}")
        assert isinstance(doc, dict)
        return list(doc["checks"])

    # ------------------------------------------------------------ the server's own database

    def shell(self, code: str) -> str:
        """Run Python in the server's Django shell (its models, its database)."""
        out = subprocess.run(
            [str(self.script), "manage", str(self.dir), "shell", "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return out.stdout

    def set_grace(self, codes: list[str], seconds: float) -> None:
        """A grace shorter than the API's 60 s minimum, so "down" comes within a test."""
        self.shell(
            "from datetime import timedelta\n"
            "from hc.api.models import Check\n"
            f"Check.objects.filter(code__in={codes!r}).update("
            f"grace=timedelta(seconds={seconds!r}))\n"
        )

    def exit_statuses(self, codes: list[str]) -> dict[str, list[tuple[str, int | None]]]:
        """code -> [(kind, exit status)] of its pings, oldest first, read from the server's
        own database (the API shows exit statuses only as "fail")."""
        import sqlite3

        result: dict[str, list[tuple[str, int | None]]] = {c: [] for c in codes}
        db = sqlite3.connect(f"file:{self.dir / 'hc.sqlite'}?mode=ro", uri=True, timeout=30)
        try:
            for code in codes:
                rows = db.execute(
                    "SELECT p.kind, p.exitstatus FROM api_ping p JOIN api_check c "
                    "ON p.owner_id = c.id WHERE c.code = ? ORDER BY p.n",
                    (code.replace("-", ""),),
                ).fetchall()
                result[code] = [(kind or "success", status) for kind, status in rows]
        finally:
            db.close()
        return result


def start_peer(script: Path, directory: Path) -> tuple[Peer, bool]:
    """(peer, started here). Waits for a build that .ci/run started in the background."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / ".starting").exists():  # .ci/run is building it: wait for that
        deadline = time.monotonic() + 600
        while not (directory / ".up-rc").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    running = (directory / "server.pid").exists() and _alive(directory / "server.pid")
    out = subprocess.run(
        [str(script), "up", str(directory)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"hc-peer up failed: {out.stderr[-2000:]}")
    info = json.loads((directory / "peer.json").read_text())
    return Peer(script, directory, info), not running


def stop_peer(peer: Peer) -> None:
    subprocess.run([str(peer.script), "down", str(peer.dir)], timeout=60, check=False)


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


class Relay:
    """A TCP relay on a port of its own to the real server: stopped, the server is "down"
    for cronwrap (connection refused) while the real server keeps its data; started, the
    same URLs reach it again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._server: socket.socket | None = None

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(50)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()
