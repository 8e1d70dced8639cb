"""The package's shape: imports run one way, no circles (docs/architecture.md).

Read from the source with ``ast`` (every ``import``, module level or inside a
function), so a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hybridml

ROOT = Path(hybridml.__file__).parent

# Layers, bottom first. A module may import from its own layer or a lower one,
# never from a higher one; docs/architecture.md explains each.
LAYERS = [
    {
        "_validation",
        "_keras_io",
        "_atomic",
        "_paths",
        "_imports",
        "_columns",
        "_defaults",
        "_pixels",
    },
    {"cache", "datasets"},
    {"embed"},
    {"wrappers"},
    {"_heads", "compose", "distributed", "finetune_models", "finetune_dtype"},
    {"baseline"},
    {"cli", "serve", "__main__"},
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """The hybridml modules ``name`` imports (as dotted names inside hybridml)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("hybridml"):
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:  # `from . import x` may name a module
                found.add(".".join([*target, alias.name]))
            found.add(".".join(target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hybridml."):
                    found.add(alias.name.split(".", 1)[1])
    modules = _modules()
    return {m for m in found if m in modules and m and m != name}


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and the doc")


def test_every_module_is_in_a_layer():
    for name in _modules():
        if name:
            _layer(name)


def test_no_module_imports_a_higher_layer():
    upward = []
    for name, path in _modules().items():
        if not name:
            continue
        for target in _imports(name, path):
            if target.split(".")[0] != name.split(".")[0] and _layer(target) > _layer(
                name
            ):
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_no_import_circle():
    modules = _modules()
    graph = {n: _imports(n, p) for n, p in modules.items() if n}
    # a package's __init__ re-exports its modules lazily; leave it out of cycles
    packages = {n for n, p in modules.items() if p.name == "__init__.py"}
    graph = {n: {t for t in ts if t not in packages} for n, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert cycles == []
