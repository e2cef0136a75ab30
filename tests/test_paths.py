"""Paths are strings on the run path (no pathlib there); spelled exactly as pathlib would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cronwrap.paths import Paths, absolute_path, clean_path, ensure_dir, resolve_paths

SPELLINGS = [
    "/a/b",
    "/a/b/",
    "/a//b",
    "/a/./b",
    "/a/../b",
    "//a/b",
    "///a/b",
    "a/b",
    "./a",
    ".",
    "/",
]


@pytest.mark.parametrize("path", SPELLINGS, ids=SPELLINGS)
def test_clean_path_spells_a_path_as_pathlib_does(path: str) -> None:
    assert clean_path(path) == str(Path(path))


@pytest.mark.parametrize("path", ["rel/x", "~/x", "/abs/../x/"], ids=["relative", "home", "abs"])
def test_absolute_path_is_pathlibs_expanduser_absolute(path: str) -> None:
    assert absolute_path(path) == str(Path(path).expanduser().absolute())


@pytest.mark.parametrize(
    "env",
    [
        {"CRONWRAP_HOME": "/srv/cw/"},
        {"HOME": "/home/u/"},
        {"HOME": "/home/u", "XDG_CONFIG_HOME": "/cfg//", "XDG_STATE_HOME": "/st/./x"},
    ],
    ids=["cronwrap-home", "home", "xdg"],
)
def test_path_objects_name_the_same_files_as_the_strings(env: dict[str, str]) -> None:
    paths = resolve_paths(env, uid=1000)
    assert str(paths.config_file) == paths.config_path
    assert str(paths.state_dir) == paths.state_path == str(Path(paths.state_path))
    assert str(paths.lock_dir) == paths.lock_path
    assert paths.db_file == Path(paths.db_path) == paths.state_dir / "runs.db"
    assert paths.output_dir == paths.state_dir / "output"
    assert paths.event_log == paths.state_dir / "cronwrap.log"


def test_paths_compare_equal_whether_given_as_str_or_path(tmp_path: Path) -> None:
    assert Paths(tmp_path / "c.yaml", tmp_path, tmp_path / "l", "user") == Paths(
        str(tmp_path / "c.yaml"), str(tmp_path), str(tmp_path / "l"), "user"
    )


def test_ensure_dir_returns_what_it_was_given(tmp_path: Path) -> None:
    as_str = ensure_dir(str(tmp_path / "a" / "b"))
    assert as_str == str(tmp_path / "a" / "b") and os.path.isdir(as_str)
    assert ensure_dir(tmp_path / "c") == tmp_path / "c"
    assert oct(os.stat(tmp_path / "a").st_mode & 0o7777) == oct(0o750 & ~_umask())


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
