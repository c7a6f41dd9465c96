"""The CLI's shape: no import cycle between its modules, no module-level mutable state, each
option declared once, and one invocation's secrets never reaching the next one's messages.

The first three read the source with ``ast`` (every import, at module level or inside a
function, counts); the last runs ``main`` twice in one process on real SQLite files.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.support.cli import run

CLI = Path(__file__).resolve().parents[2] / "baselinr" / "cli"


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(CLI.rglob("*.py")):
        parts = path.relative_to(CLI.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def _imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """The ``baselinr.cli`` modules ``tree`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} & modules
            out |= {f"{node.module}.{a.name}" for a in node.names} & modules
    return out


def test_no_import_cycle_between_cli_modules() -> None:
    modules = _modules()
    graph = {name: _imports(tree, set(modules)) - {name} for name, tree in modules.items()}
    # The package's own __init__ (``main``) may import anything; no command module imports it back.
    assert not {m for m, deps in graph.items() if "baselinr.cli" in deps}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for dep in graph.get(node, ()):
                if dep == start:
                    return [*path, dep]
                if dep not in path:
                    stack.append((dep, [*path, dep]))
        return None

    cycles = [c for c in (cycle_from(m) for m in graph) if c]
    assert cycles == []
    assert "baselinr.cli.app" not in graph["baselinr.cli.job"] | graph["baselinr.cli.backup"] | graph["baselinr.cli.backup_clone"]


def test_no_module_level_mutable_state() -> None:
    mutable = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
    found = []
    for name, tree in _modules().items():
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, mutable):
                found.append(f"{name}:{node.lineno}")
            if isinstance(node, ast.Global) or any(isinstance(n, ast.Global) for n in ast.walk(node)):
                found.append(f"{name}:{node.lineno} global")
    assert found == []


def test_each_option_is_declared_once() -> None:
    declared: dict[str, list[str]] = {}
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "option"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                declared.setdefault(str(node.args[0].value), []).append(name)
    shared = ["--config", "--output", "--lock-timeout", "--migrations", "--dest", "--result-file", "--ddl-lock-timeout", "--keep"]
    assert {flag: declared[flag] for flag in shared} == {flag: ["baselinr.cli.options"] for flag in shared}


def _config(path: Path, password: str) -> Path:
    conn = {"type": "postgres", "host": "127.0.0.1", "port": 1, "database": "x", "username": "u", "password": password}
    path.write_text(yaml.safe_dump({"storage": {"connection": conn}}))
    return path


def test_state_is_per_invocation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "migrate", "status", "-c", str(_config(tmp_path / "a.yml", "pw-one-secret")), "-o", "json")
    assert first.code == 3 and "pw-one-secret" not in first.out + first.err
    assert first.out.lstrip().startswith("{")
    # The next run in the same process starts afresh: text errors, and a message holding the first
    # run's password is not redacted by accident (nothing of the first run is remembered).
    bad = tmp_path / "pw-one-secret.yml"
    second = run(capsys, "migrate", "status", "-c", str(bad))
    assert second.code == 2 and second.out == ""
    assert second.err.startswith("❌ ") and "pw-one-secret.yml" in second.err
