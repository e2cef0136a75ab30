"""`cronwrap state` and the job state dir: atomic keys in real files, real processes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cronwrap.errors import ExitCode, StateError, StateKeyError
from cronwrap.state import kv
from tests.conftest import cronwrap, cw_env


def test_put_get_delete_roundtrip(tmp_path: Path) -> None:
    d = kv.ensure_state_dir(tmp_path / "jobs" / "j")
    assert kv.get(d, "cursor") is None
    kv.put(d, "cursor", b"41")
    kv.put(d, "cursor", b"42")
    assert kv.get(d, "cursor") == b"42"
    assert kv.keys(d) == ["cursor"]
    assert kv.delete(d, "cursor") is True
    assert kv.delete(d, "cursor") is False
    assert kv.get(d, "cursor") is None


def test_state_dir_is_0700_and_tightened(tmp_path: Path) -> None:
    d = tmp_path / "jobs" / "j"
    d.mkdir(parents=True, mode=0o755)
    os.chmod(d, 0o755)  # noqa: S103 - the loose mode the state dir must tighten
    kv.ensure_state_dir(d)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert os.stat(d).st_uid == os.geteuid()


def test_state_dir_refuses_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "j").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StateError, match="not a directory"):
        kv.ensure_state_dir(tmp_path / "jobs" / "j")


@pytest.mark.parametrize("key", ["", ".hidden", "a/b", "../x", "a b", "x" * 101, "é"], ids=repr)
def test_bad_key_names_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(StateKeyError):
        kv.put(tmp_path, key, b"v")


def test_a_key_cannot_be_read_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("x")
    (tmp_path / "k").symlink_to(tmp_path / "secret")
    with pytest.raises(StateError):
        kv.get(tmp_path, "k")


def test_sigkill_during_writes_never_leaves_a_torn_value(tmp_path: Path) -> None:
    """A writer killed at a random moment leaves one of the complete values it wrote."""
    d = kv.ensure_state_dir(tmp_path / "s")
    values = {bytes([65 + i]) * 200_000 for i in range(4)}
    code = (
        "import sys; from pathlib import Path; from cronwrap.state import kv\n"
        f"d = Path({str(d)!r}); i = 0\n"
        "while True:\n"
        "    kv.put(d, 'big', bytes([65 + i % 4]) * 200_000); i += 1\n"
        "    if i == 3: print('go', flush=True)\n"
    )
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == b"go\n"
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert kv.get(d, "big") in values
    assert kv.keys(d) == ["big"]  # leftover temporary files are not keys


def test_state_cli_exit_codes(home: Path) -> None:
    missing = cronwrap(home, "state", "get", "cursor", "--name", "j")
    assert missing.returncode == ExitCode.ERROR, missing.stderr
    assert missing.stdout == "" and "not set" in missing.stderr
    default = cronwrap(home, "state", "get", "cursor", "--name", "j", "--default", "7")
    assert default.returncode == 0 and default.stdout == "7\n"
    bad = cronwrap(home, "state", "set", "../etc", "x", "--name", "j")
    assert bad.returncode == ExitCode.USAGE and "bad state key" in bad.stderr
    nojob = cronwrap(home, "state", "get", "cursor")
    assert nojob.returncode == ExitCode.USAGE and "--name" in nojob.stderr
    piped = subprocess.run(
        [sys.executable, "-m", "cronwrap", "state", "set", "doc", "--name", "j"],
        input=b'{"page": 3}\n',
        env=cw_env(home),
        capture_output=True,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert cronwrap(home, "state", "get", "doc", "--name", "j").stdout == '{"page": 3}\n\n'
    assert cronwrap(home, "state", "list", "--name", "j").stdout == "doc\n"
    assert cronwrap(home, "state", "del", "doc", "--name", "j").returncode == 0
    assert cronwrap(home, "state", "del", "doc", "--name", "j").returncode == 0
    assert cronwrap(home, "state", "get", "doc", "--name", "j").returncode == 1


def test_state_set_from_an_endless_stdin_stops_at_the_limit(home: Path) -> None:
    """`state set k < /dev/zero` read all of stdin before it checked the 1 MiB limit: it
    took 4.6 GB of memory in 8 s before it was killed."""
    with open("/dev/zero", "rb") as zero:
        r = subprocess.run(
            [sys.executable, "-m", "cronwrap", "state", "set", "k", "--name", "j"],
            stdin=zero,
            env=cw_env(home),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert r.returncode == ExitCode.ERROR and len(r.stderr.splitlines()) == 1
    assert "on stdin is over the limit, 1048576 bytes" in r.stderr


def test_state_cli_inside_a_job_uses_its_state_dir(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/sh\nset -e\n"
        'n=$("$CW" state get n --default 0)\n'
        '"$CW" state set n $((n + 1))\n'
        'echo "dir=$CRONWRAP_STATE_DIR n=$n"\n'
    )
    script.chmod(0o755)
    env = cw_env(home, CW=f"{sys.executable} -m cronwrap")
    script.write_text(script.read_text().replace('"$CW"', "$CW"))
    for expected in ("n=0", "n=1", "n=2"):
        result = cronwrap(home, "run", "--name", "counter", "--", str(script), env=env)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    state_dir = home / "jobs" / "counter"
    assert f"dir={state_dir} " in result.stdout
    assert (state_dir / "n").read_bytes() == b"3"
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
    got = cronwrap(home, "state", "get", "n", "--name", "counter")
    assert got.returncode == 0, got.stderr
    assert got.stdout == "3\n"
