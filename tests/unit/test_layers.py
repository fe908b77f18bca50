"""Imports go one way: down the layers of collab/layers.py, and never in a circle."""

from __future__ import annotations

import ast
from collections import defaultdict
from fnmatch import fnmatchcase
from pathlib import Path

from collab.layers import LAYERS, SEALED

ROOT = Path(__file__).resolve().parents[2]
APPS = ("collab", "events", "tasks", "frontend")
SKIP = {"migrations", "node_modules", "static", "templates", "__pycache__"}


def _modules() -> dict[str, Path]:
    """Every module of the project's apps (migrations left out), by dotted name."""
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if SKIP & set(path.relative_to(ROOT).parts):
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module → the project modules it imports, at module level or inside functions."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                # `from package import module` imports the module; otherwise the base itself.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                found = resolve(target)
                if found is not None and found != module:
                    edges[module].add(found)
    return edges


def _layer(module: str) -> int:
    """The index of a module's layer (the first match from the top)."""
    for index in range(len(LAYERS) - 1, -1, -1):
        if any(fnmatchcase(module, pattern) for pattern in LAYERS[index][1]):
            return index
    raise AssertionError(f"{module} is in no layer of collab/layers.py")


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_no_module_imports_a_higher_layer() -> None:
    modules = _modules()
    upward = sorted(
        f"{module} ({LAYERS[_layer(module)][0]}) -> {target} ({LAYERS[_layer(target)][0]})"
        for module, targets in _imports(modules).items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert upward == [], "\n".join(upward)


def test_no_module_imports_a_module_of_a_sealed_layer_beside_it() -> None:
    modules = _modules()
    sideways = sorted(
        f"{module} -> {target} ({LAYERS[_layer(module)][0]})"
        for module, targets in _imports(modules).items()
        for target in targets
        if target != module
        and _layer(target) == _layer(module)
        and LAYERS[_layer(module)][0] in SEALED
    )
    assert sideways == [], "\n".join(sideways)


def test_no_import_cycles() -> None:
    edges = _imports(_modules())
    cycles: list[list[str]] = []
    # Tarjan's strongly connected components: each one larger than a module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in edges.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in list(edges):
        if module not in index:
            visit(module)
    assert cycles == [], cycles


def test_the_checks_see_imports_inside_functions(tmp_path: Path) -> None:
    """The walker is not blind to the imports most likely to hide a cycle."""
    modules = {"collab.a": tmp_path / "a.py", "collab.b": tmp_path / "b.py"}
    modules["collab.a"].write_text("from collab.b import x\n")
    modules["collab.b"].write_text("def f():\n    from collab.a import y\n")
    edges = _imports(modules)
    assert edges == {"collab.a": {"collab.b"}, "collab.b": {"collab.a"}}
