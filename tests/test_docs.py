"""Man pages, README, examples and completion stay true to the code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cronwrap.cli.app import cli
from cronwrap.cli.manpage import pages
from cronwrap.config import load_config
from cronwrap.cron.crontab import parse_crontab
from cronwrap.cron.explain import explain
from cronwrap.cron.lint import lint_crontab
from cronwrap.options import RUN_OPTIONS
from tests.conftest import ROOT, cronwrap

MAN = ROOT / "man"


def test_committed_man_pages_are_current() -> None:
    """Regenerate with `python -m cronwrap.cli.manpage man` after changing the CLI."""
    expected = pages(cli)
    committed = {p.name: p.read_text() for p in MAN.iterdir()}
    assert set(committed) == set(expected)
    for name, text in expected.items():
        assert committed[name] == text, (
            f"man/{name} is stale: run python -m cronwrap.cli.manpage man"
        )


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_option_is_in_its_page(name: str) -> None:
    page = (MAN / f"cronwrap-{name}.1").read_text()
    cmd = cli.commands[name]
    commands = [cmd, *getattr(cmd, "commands", {}).values()]  # a group's subcommands too
    for each in commands:
        for param in each.params:
            if isinstance(param, click.Option) and not param.hidden:
                for opt in param.opts:
                    assert opt.replace("-", "\\-") in page, f"{opt} missing from {name} page"
    escaped = name.replace("-", "\\-")  # a command name with a hyphen (catch-up)
    assert f"cronwrap\\-{escaped}" in (MAN / "cronwrap.1").read_text()


def test_every_config_key_is_in_the_config_page() -> None:
    page = (MAN / "cronwrap.yaml.5").read_text()
    for opt in RUN_OPTIONS:
        if opt.config:
            assert f"\\fB{opt.name}\\fR" in page


def test_man_pages_are_installed_with_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    for page in MAN.iterdir():
        assert f'"man/{page.name}"' in pyproject, f"{page.name} not in shared-data"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")
@pytest.mark.parametrize("page", sorted(p.name for p in MAN.iterdir()))
def test_man_pages_render_without_warnings(page: str) -> None:
    out = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(MAN / page)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_man_command_shows_a_page() -> None:
    result = CliRunner().invoke(cli, ["man", "run"])
    assert result.exit_code == 0 and "cronwrap" in result.output and "timeout" in result.output
    assert CliRunner().invoke(cli, ["man", "nope"]).exit_code == 1


# ---------------------------------------------------------------- README


def test_readme_documents_every_run_option_and_command() -> None:
    readme = (ROOT / "README.md").read_text()
    for opt in RUN_OPTIONS:
        assert f"`{opt.flag}" in readme, f"{opt.flag} is not documented in README.md"
    for name in cli.commands:
        assert f"cronwrap {name}" in readme or f"`{name}" in readme, name


def test_readme_commands_are_the_ones_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    )
    assert test_cmd in readme
    assert ".venv/bin/python -m pytest" in ci
    assert "pip install . && .venv/bin/cronwrap run" in readme


# ---------------------------------------------------------------- examples


def test_example_crontab_lints_clean_and_every_line_explains() -> None:
    text = (ROOT / "examples" / "crontab").read_text()
    tab = parse_crontab(text, source="examples/crontab", system=False)
    findings = [f for f in lint_crontab(tab) if f.severity != "info"]
    assert findings == [], [str(f) for f in findings]
    from zoneinfo import ZoneInfo

    assert len(tab.jobs) >= 4
    for line in tab.jobs:
        x = explain(f"{line.schedule} {line.command}", tz=ZoneInfo("UTC"))
        assert x.next_runs, line.text


def test_example_crontab_through_the_cli() -> None:
    home = ROOT / "examples"
    # the programs it names are on the target machine, not here
    result = cronwrap(home, "lint", "--no-check-programs", str(ROOT / "examples" / "crontab"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["config.yaml", "healthchecks-selfhosted.yaml"])
def test_example_configs_load(name: str) -> None:
    config = load_config(ROOT / "examples" / name)
    assert config.jobs


def test_example_config_through_cronwrap_config(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CRONWRAP_HOME": str(tmp_path),
        "CRONWRAP_CONFIG": str(ROOT / "examples" / "config.yaml"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "cronwrap", "config", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert '"backup"' in out.stdout


# ---------------------------------------------------------------- completion


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0 and "_CRONWRAP_COMPLETE" in result.output


def _complete(words: str, home: Path) -> list[str]:
    env = {
        **os.environ,
        "CRONWRAP_HOME": str(home),
        "_CRONWRAP_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    out = subprocess.run(
        [sys.executable, "-m", "cronwrap"], capture_output=True, text=True, env=env, check=False
    )
    return [line.split(",", 1)[1] for line in out.stdout.splitlines() if "," in line]


def test_bash_completion_of_commands_and_job_names(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for name in ("backup", "beta-sync"):
        assert cronwrap(home, "run", "--name", name, "--", "true").returncode == 0
    assert "history" in _complete("cronwrap hist", home)
    assert _complete("cronwrap history b", home) == ["backup", "beta-sync"]
    assert _complete("cronwrap status --job bac", home) == ["backup"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_script_sources_and_registers(tmp_path: Path) -> None:
    script = CliRunner().invoke(cli, ["completion", "bash"]).output
    path = tmp_path / "c.bash"
    path.write_text(script)
    out = subprocess.run(
        ["bash", "-c", f"source {path} && complete -p cronwrap"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and re.search(r"complete .*cronwrap", out.stdout), out.stderr
