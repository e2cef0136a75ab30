"""A real PostgreSQL server for the tests: initdb + pg_ctl on a temp dir, a free port on
127.0.0.1, its unix socket in the same dir. As root (CI), the server runs as the `postgres`
user through runuser, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PASSWORD = "pg-s3cret-pw"


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return versions[0].parent if versions else None


def require_postgres() -> Path:
    """The PostgreSQL bin dir, or skip (fail when CRONWRAP_REQUIRE_POSTGRES is set)."""
    bindir = _bindir()
    missing = None
    if bindir is None:
        missing = "PostgreSQL is not installed (apt-get install postgresql)"
    elif os.geteuid() == 0 and not shutil.which("runuser"):
        missing = "runuser is missing (needed to start PostgreSQL as root)"
    if missing:
        if os.environ.get("CRONWRAP_REQUIRE_POSTGRES"):
            raise RuntimeError(f"{missing}, and CRONWRAP_REQUIRE_POSTGRES is set")
        pytest.skip(missing)
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    assert bindir is not None
    return bindir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="cronwrap-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")

    def _tool(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / name), *args]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> PgServer:
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        self._tool(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        return self

    def start(self) -> PgServer:
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=400 "
            "-c shared_buffers=64MB"
        )
        result = self._tool(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            opts,
            "start",
            check=False,
        )
        if result.returncode != 0:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}\n{log[-2000:]}")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._tool("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_up(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{db}"

    def socket_url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@/{db}?host={self.dir}&port={self.port}"

    def sql(self, query: str, db: str = "postgres") -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.socket_url(db), autocommit=True) as conn:
            cur = conn.execute(query)  # type: ignore[call-overload]
            return list(cur.fetchall()) if cur.description else []

    def create_db(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class BlackHole:
    """A listening socket on 127.0.0.1 that accepts nothing and answers nothing: connects
    complete in the kernel's backlog, then every read waits forever."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1000)
        self.port = int(self.sock.getsockname()[1])

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{db}"

    def close(self) -> None:
        self.sock.close()


def wait_until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")
