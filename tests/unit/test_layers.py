"""The package's layers read top-down: no import runs back up, none goes in a circle, and no module
takes an underscore name from another. Read from the source with `ast`, so nothing is imported."""

from __future__ import annotations

import ast
import pathlib

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "src" / "sluice"

# From the top down: a module may import from its own layer and from the layers below it.
LAYERS = [
    ("api", ["__init__", "__main__", "api", "sql"]),
    ("driver", ["driver"]),
    ("backends", ["backends"]),
    ("engine", ["engine"]),
    ("reliability", ["reliability"]),
    ("physical planning", ["physical"]),
    ("logical plan", ["plan"]),
    ("kernels", ["kernels"]),
    ("io", ["io"]),
    ("expressions", ["expr"]),
    ("observe", ["observe"]),
    ("foundation", ["errors", "config", "crash_points", "private_files"]),
]


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in SOURCE.rglob("*.py")}


MODULES = _modules()


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name.removeprefix("sluice.") if name and name.startswith("sluice") else ""
    if module == "__init__":  # the package itself
        base = []
    else:
        base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


def _imports(module: str, path: pathlib.Path) -> list[tuple[str, str | None, int]]:
    """(imported sluice module, the name taken from it or None, line) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sluice"):
                    found.append((alias.name.removeprefix("sluice").lstrip("."), None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module)
            if node.level == 0 and not (node.module or "").startswith("sluice"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                if sub in MODULES:  # `from . import user_code`: the module itself
                    found.append((sub, None, node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
    return found


def _layer(module: str) -> int:
    top = module.split(".")[0] if module else "__init__"
    for index, (_, tops) in enumerate(LAYERS):
        if top in tops:
            return index
    raise AssertionError(f"sluice.{module} is in no layer: add its folder to LAYERS in {__file__}")


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph[module] = {target for target, _, _ in _imports(module, path) if target in MODULES and target != module}
    return graph


def test_every_module_is_in_a_layer():
    for module in MODULES:
        _layer(module)


def test_no_import_runs_back_up_a_layer():
    upward = []
    for module, path in MODULES.items():
        for target, _, line in _imports(module, path):
            if target in MODULES and _layer(target) < _layer(module):
                upward.append(f"sluice/{path.relative_to(SOURCE)}:{line} ({LAYERS[_layer(module)][0]}) imports "
                              f"sluice.{target} ({LAYERS[_layer(target)][0]})")
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_no_module_imports_an_underscore_name_from_another():
    taken = []
    for module, path in MODULES.items():
        for target, name, line in _imports(module, path):
            if name and name.startswith("_") and not name.startswith("__") and target != module:
                taken.append(f"sluice/{path.relative_to(SOURCE)}:{line} takes {name} from sluice.{target}")
    assert not taken, "underscore names imported across modules:\n" + "\n".join(taken)
