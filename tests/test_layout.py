"""The house rules of the layout (README "How the code is laid out"): which subpackage may
import what, no import cycles between subpackages, and size limits that keep code readable."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cronwrap"
CLI = "cronwrap.cli"
CORE = ("cron", "run", "state", "notify", "views")  # everything but the click shell


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("cronwrap", *parts)).removesuffix(".__init__")


def _modules(sub: str) -> list[str]:
    return sorted(
        "cronwrap."
        + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for p in (PACKAGE / sub).rglob("*.py")
    )


def _loaded_by(modules: list[str]) -> dict[str, list[str]]:
    """For each module, the modules a fresh interpreter holds after importing it alone."""
    probe = (
        "import importlib, json, sys\n"
        "name = sys.argv[1]\n"
        "importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = {}
    for name in modules:
        run = subprocess.run(
            [sys.executable, "-c", probe, name], capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, f"import {name} failed:\n{run.stderr}"
        out[name] = json.loads(run.stdout)
    return out


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    return _loaded_by([m for sub in CORE for m in _modules(sub)])


def test_every_core_module_was_probed(loaded: dict[str, list[str]]) -> None:
    assert "cronwrap.run.supervise" in loaded and "cronwrap.cron.schedule" in loaded
    assert len(loaded) >= 25


def test_core_modules_never_load_click_rich_or_the_cli(loaded: dict[str, list[str]]) -> None:
    bad = {
        name: [
            m for m in mods if m.split(".")[0] in ("click", "rich") or m.startswith("cronwrap.cli")
        ]
        for name, mods in loaded.items()
    }
    assert not {k: v for k, v in bad.items() if v}


def test_cron_imports_the_standard_library_only(loaded: dict[str, list[str]]) -> None:
    stdlib = set(sys.stdlib_module_names) | {"__main__", "_distutils_hack"}
    # and the option table with its parser: pure data and functions of it, no I/O
    allowed_ours = ("cronwrap.cron", "cronwrap.errors", "cronwrap.options", "cronwrap.argv")
    for name, mods in loaded.items():
        if not name.startswith("cronwrap.cron"):
            continue
        ours = [m for m in mods if m.startswith("cronwrap.") and not m.startswith(allowed_ours)]
        foreign = [
            m for m in mods if m.split(".")[0] not in stdlib and m.split(".")[0] != "cronwrap"
        ]
        assert not ours and not foreign, (name, ours, foreign)


def _imports(tree: ast.AST) -> list[tuple[str, ast.stmt]]:
    found: list[tuple[str, ast.stmt]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, node))
    return found


def _sources(root: Path = PACKAGE) -> list[Path]:
    return sorted(root.rglob("*.py"))


def test_only_cli_imports_click_even_lazily() -> None:
    """Static: an `import click` inside a function of the run path would pass the probe above
    and still load click at run time. __main__ hands everything but the fast paths to cli."""
    offenders = []
    for path in _sources():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("cli/"):
            continue
        for name, node in _imports(ast.parse(path.read_text())):
            top = name.split(".")[0]
            if top in ("click", "rich") or (name.startswith(CLI) and rel != "__main__.py"):
                offenders.append(f"{rel}:{node.lineno}: import {name}")
    assert not offenders, offenders


def test_cli_init_stays_empty() -> None:
    """`import cronwrap.cli.x` runs cli/__init__.py first: the fast paths must not pay for it."""
    assert (PACKAGE / "cli" / "__init__.py").read_text().strip() == ""


def _unit(module: str) -> str:
    """The layer a module belongs to: cronwrap.run.lock -> run, cronwrap.config -> config."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _module_level_imports(path: Path) -> set[str]:
    """cronwrap imports executed when the module is imported: top-level statements only,
    TYPE_CHECKING blocks and function bodies excluded."""
    tree = ast.parse(path.read_text())
    out = set()

    def visit(stmts: list[ast.stmt]) -> None:
        for node in stmts:
            if isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for name, _ in _imports(node):
                    if name.startswith("cronwrap."):
                        out.add(name)
                if isinstance(node, ast.ImportFrom) and node.module == "cronwrap":
                    out.update(f"cronwrap.{a.name}" for a in node.names)

    visit(tree.body)
    return out


def test_no_import_cycle_between_subpackages() -> None:
    graph: dict[str, set[str]] = {}
    for path in _sources():
        mod = "cronwrap." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        src = _unit(mod)
        for target in _module_level_imports(path):
            dst = _unit(target)
            if dst != src:
                graph.setdefault(src, set()).add(dst)
    cycles = []

    def walk(node: str, stack: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            else:
                walk(nxt, [*stack, nxt])

    for start in sorted(graph):
        walk(start, [start])
    assert not cycles, sorted(set(cycles))


# ---------------------------------------------------------------- sizes

MAX_FUNCTION_LINES = 80


def _long_functions(root: Path = PACKAGE) -> list[str]:
    out = []
    for path in _sources(root):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    out.append(f"{rel}:{node.lineno} {node.name}() is {lines} lines")
    return out


def test_no_function_is_longer_than_80_lines() -> None:
    offenders = _long_functions()
    assert not offenders, "\n".join(offenders)


MAX_MODULE_LINES = 600


def _long_modules(root: Path = PACKAGE) -> list[str]:
    out = []
    for path in _sources(root):
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            out.append(f"{path.relative_to(root).as_posix()} is {lines} lines")
    return out


def test_no_module_is_longer_than_600_lines() -> None:
    offenders = _long_modules()
    assert not offenders, "\n".join(offenders)


def test_the_size_check_finds_a_long_module(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (tmp_path / "small.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    assert _long_modules(tmp_path) == [f"sub/big.py is {MAX_MODULE_LINES + 1} lines"]


def test_the_supervisor_reads_on_one_screen() -> None:
    """supervise() is the run's phases, top-down: lock, start, attempts, judge, end."""
    tree = ast.parse((PACKAGE / "run" / "supervise.py").read_text())
    [fn] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "supervise"]
    assert fn.end_lineno is not None and fn.end_lineno - fn.lineno + 1 <= 50


def test_the_size_check_finds_a_long_method(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.py").write_text(f"class C:\n    def long(self) -> None:\n{body}\n")
    (tmp_path / "ok.py").write_text("def short() -> None:\n    pass\n")
    assert _long_functions(tmp_path) == [f"sub/m.py:2 long() is {MAX_FUNCTION_LINES + 1} lines"]


def test_readme_layout_names_every_subpackage_and_module() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## How the code is laid out") :]
    section = section[: section.find("\n## ", 5)] if "\n## " in section[5:] else section
    missing = []
    for sub in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        line = next((ln for ln in section.split("\n- ") if f"`cronwrap/{sub.name}/`" in ln), None)
        if line is None:
            missing.append(f"{sub.name}/")
            continue
        missing += [
            f"{sub.name}/{m.stem}"
            for m in sorted(sub.glob("*.py"))
            if m.stem != "__init__" and f"`{m.stem}`" not in line
        ]
    assert not missing, f"README 'How the code is laid out' does not mention: {missing}"
