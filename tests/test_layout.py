"""The architecture as a test: imports flow one way and no two modules import each other.

Layers, bottom to top: the core (``solarmap`` outside ``solarmap.app``) ← ``data_prep`` ←
``train`` ← ``attribute`` ← the front door ``solarmap.app``. A module may import its own layer
and the layers below, never one above; every import counts, also those inside functions.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("solarmap", "data_prep", "train", "attribute")
FRONT_DOOR = "solarmap.app"
LAYERS = ("core", "data_prep", "train", "attribute", "app")


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "solarmap":
        front = module in (FRONT_DOOR, "solarmap.__main__") or module.startswith(FRONT_DOOR + ".")
        return "app" if front else "core"
    return top


def _imports(path: Path, module: str, known: dict[str, Path]) -> set[str]:
    """Project modules imported by the file at ``path`` (the module itself excluded)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        for name in names:
            while name and name not in known:  # `import a.b.c` of a module: nearest known
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {m: _imports(p, m, known) for m, p in known.items()}


def test_no_module_imports_a_later_layer() -> None:
    wrong = []
    for module, imported in _graph().items():
        here = LAYERS.index(_layer(module))
        for other in imported:
            if LAYERS.index(_layer(other)) > here:
                wrong.append(f"{module} ({_layer(module)}) imports {other} ({_layer(other)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circle() -> None:
    graph = _graph()
    # Package __init__ modules re-export their submodules: an edge from a package to its own
    # submodule is how Python loads it, not a circle of logic.
    for module, imported in graph.items():
        graph[module] = {m for m in imported if not m.startswith(module + ".")}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        raise AssertionError("import circle: " + " -> ".join(err.args[1])) from None


def test_the_layout_test_sees_imports() -> None:
    graph = _graph()
    assert "attribute.base" in graph["attribute.registry"]
    assert "solarmap.windows" in graph["solarmap.predict"]
