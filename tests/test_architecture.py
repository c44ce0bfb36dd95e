"""The layout's rules, checked on the source: wings and synth's rooms import downward only, no
import cycles, small modules and functions (the template drawing and scripts too), every random
draw in the sampler, and docs/architecture.md naming every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "maskforge"
# Lower layers first; a module may import its own wing and any wing before it.
WINGS = ("core", "faces", "synth", "dataset", "learn", "evaluate", "deploy")
# synth's rooms, lower first: a module may import its own room and any room before it.
SYNTH_ROOMS = ("sampling", "render", "run", "preview")
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


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "synth" and parts[2] in SYNTH_ROOMS else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("maskforge.synth.")))
def test_synth_rooms_import_downward_only(module):
    """sampling <- render <- run <- preview; synth.api (the public entry point) may use any."""
    if module == "maskforge.synth.api":
        return
    rank = SYNTH_ROOMS.index(_room(module))
    upward = [
        dep
        for dep in GRAPH[module]
        if dep == "maskforge.synth.api" or (_room(dep) and SYNTH_ROOMS.index(_room(dep)) > rank)
    ]
    assert not upward, f"{module} imports a later room: {upward}"


def test_every_synth_module_is_in_a_room():
    loose = [m for m in MODULES if m.startswith("maskforge.synth.") and not _room(m)]
    assert loose == ["maskforge.synth.api"], loose


# Methods of numpy's Generator (and the legacy RandomState) that draw.
DRAWS = {
    "random", "integers", "uniform", "normal", "standard_normal", "choice", "permutation",
    "shuffle", "permuted", "beta", "binomial", "exponential", "gamma", "poisson", "bytes",
    "multivariate_normal", "lognormal", "triangular", "randint", "rand", "randn",
}  # fmt: skip


def _draws(path: Path) -> list[str]:
    """Every `np.random...` reference and every call of a drawing method on a name or
    attribute (rng.normal, self._rng.integers, choice.draw(rng) excepted: it takes the rng)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "random"
            and isinstance(node.value, ast.Name)
            and node.value.id in ("np", "numpy")
        ):
            found.append(f"line {node.lineno}: np.random")
        elif isinstance(node, ast.ImportFrom) and node.module in ("numpy.random", "random"):
            found.append(f"line {node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Import) and any(a.name == "random" for a in node.names):
            found.append(f"line {node.lineno}: import random")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in DRAWS
            and "rng" in ast.unparse(node.func.value).lower()
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}")
    return sorted(found, key=lambda f: int(f.split(":")[0].split()[1]))


@pytest.mark.parametrize(
    "module",
    sorted(
        m
        for m in MODULES
        if (m.startswith("maskforge.synth.") or m.startswith("maskforge.faces"))
        and _room(m) != "sampling"
    ),
)
def test_every_random_draw_is_in_the_sampler(module):
    """Albumentations' split: the sampler draws parameters; everything else is a pure function
    of them (the grain too: render gets sampling.params.Grain, which draws when asked)."""
    assert not _draws(MODULES[module]), _draws(MODULES[module])


def test_the_draw_check_sees_draws(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import numpy as np\n"
        "def f(rng):\n"
        "    a = rng.normal(0, 1)\n"
        "    b = np.random.default_rng(0)\n"
        "    return self._rng.integers(3), choice.draw(rng)\n"
    )
    assert [d.split(":")[0] for d in _draws(sample)] == ["line 3", "line 4", "line 5"]


# Outside the package, under the same size rules: the template drawing and the scripts.
TOOLS = sorted([*(REPO / "mask_templates").rglob("*.py"), *(REPO / "scripts").glob("*.py")])


def _too_long(name: str, text: str) -> list[str]:
    found = [name] if text.count("\n") > MAX_MODULE_LINES else []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                found.append(f"{name}.{node.name}")
    return found


def test_template_drawing_and_scripts_stay_small():
    too_long = [f for p in TOOLS for f in _too_long(str(p.relative_to(REPO)), p.read_text())]
    assert not too_long, too_long


def test_the_package_never_imports_the_tools():
    """mask_templates/draw and scripts/ are developer tools: nothing installed may need them."""
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                if any(m and m.split(".")[0] in ("scripts", "mask_templates") for m in mods):
                    offenders.append(name)
    assert not offenders, offenders


def test_every_package_is_installed():
    """pyproject.toml lists packages by hand: a new folder left out would be missing from a
    wheel (an editable install would not notice)."""
    listed = set(re.findall(r'"(maskforge[\w.]*)"', (REPO / "pyproject.toml").read_text()))
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert packages <= listed, sorted(packages - listed)


def _map_sections() -> dict[str, str]:
    """docs/architecture.md's module list: package folder (e.g. "synth/render/") -> its text."""
    text = (REPO / "docs" / "architecture.md").read_text()
    parts = re.split(r"^\*\*([\w/]+/|Top level)\*\*", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_the_map_names_every_module():
    sections = _map_sections()
    missing = []
    for name, path in MODULES.items():
        if path.name == "__init__.py" and name != "maskforge":
            continue
        folder = path.parent.relative_to(PACKAGE).as_posix()
        section = sections.get("Top level" if folder == "." else f"{folder}/", "")
        if f"`{path.name}`" not in section:
            missing.append(f"{folder}/{path.name}")
    assert not missing, f"docs/architecture.md does not describe: {missing}"


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
