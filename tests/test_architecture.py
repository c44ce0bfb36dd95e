"""The layout's rules, checked on the source: wings import downward only, and no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "maskforge"
# Lower layers first; a module may import its own wing and any wing before it.
WINGS = ("core", "synth", "dataset", "learn", "evaluate", "deploy")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 120
# Modules or functions allowed over the limits, with the reason (empty: none is).
NOT_YET_SPLIT: set[str] = set()


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every maskforge module that path imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("maskforge"))
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("maskforge")
        ):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                names.add(sub if sub in MODULES else node.module)
    return {n for n in names if n in MODULES}


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else None


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _wing(m)))
def test_wings_import_downward_only(module):
    rank = WINGS.index(_wing(module))
    upward = [
        dep
        for dep in GRAPH[module]
        if dep.startswith("maskforge.commands")
        or dep == "maskforge.cli"
        or (_wing(dep) and WINGS.index(_wing(dep)) > rank)
    ]
    assert not upward, f"{module} imports a higher layer: {upward}"


def test_nothing_outside_commands_imports_commands():
    offenders = [
        m
        for m, deps in GRAPH.items()
        if not (m.startswith("maskforge.commands") or m in ("maskforge.cli", "maskforge.__main__"))
        and any(d.startswith("maskforge.commands") or d == "maskforge.cli" for d in deps)
    ]
    assert not offenders


def test_choices_imports_nothing_heavy():
    tree = ast.parse((PACKAGE / "choices.py").read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else a.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for a in (node.names if isinstance(node, ast.Import) else [node])
        if not isinstance(node, ast.ImportFrom) or node.module
    }
    assert imported <= {"__future__", "typing", "dataclasses", "collections"}, imported


def test_no_import_cycles():
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep) :] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_modules_and_functions_stay_small():
    too_long = []
    for name, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}")
    assert set(too_long) <= NOT_YET_SPLIT, sorted(set(too_long) - NOT_YET_SPLIT)
