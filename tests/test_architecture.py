"""The house: imports follow the flow of docs/architecture.md, and no module imports itself back.

Every ``import`` statement under ``ragsc/`` counts, at module level or inside a function (a lazy import is
still an arrow). ``from ragsc.x import y`` with ``y`` a submodule is an arrow to ``ragsc.x.y``. Spec strings
resolved by :mod:`ragsc.registry` are not imports: that is how a low package loads a model a high package
made; their targets are checked to exist instead.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ragsc"

# Lowest first. A package may import its own modules and any package of a lower layer, nothing else.
LAYERS: list[tuple[str, set[str]]] = [
    ("errors", {"errors"}),
    ("shared", {"types", "_deps", "_assets", "registry", "report", "targets", "config_base"}),
    ("configs, data, saved models", {"config", "datasets", "saved"}),
    ("input checks", {"checks"}),
    ("encoders", {"encoders"}),
    ("channel", {"channel"}),
    ("kb", {"kb"}),
    ("decoders", {"decoders"}),
    ("pipelines", {"pipelines"}),
    ("eval", {"eval"}),
    ("distill", {"distill"}),
    ("compress / federated", {"compress", "federated"}),
    ("demo", {"demo"}),
    ("service", {"serve"}),
    ("transmitter client", {"client"}),
    ("commands", {"cli"}),
]
RANK = {pkg: i for i, (_, pkgs) in enumerate(LAYERS) for pkg in pkgs}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    subs = [f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in MODULES]
    return subs if len(subs) == len(node.names) else [name, *subs]


def _graph() -> dict[str, set[tuple[str, int]]]:
    """module -> {(imported ragsc module, line)}, every import statement included."""
    graph: dict[str, set[tuple[str, int]]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(module, node, path.name == "__init__.py"):
                    if target == "ragsc" or target.startswith("ragsc."):
                        while target not in MODULES:  # `import ragsc.x.y.Name`-style: its module
                            target = target.rpartition(".")[0]
                        if target != module:
                            edges.add((target, node.lineno))
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    packages = {_package(m) for m in MODULES} - {""}
    assert packages <= set(RANK), f"packages without a layer in LAYERS: {sorted(packages - set(RANK))}"


def test_no_import_against_the_flow():
    wrong = []
    for module, edges in _graph().items():
        for target, line in edges:
            if target == "ragsc":
                wrong.append(f"{module}:{line} imports the package root (the public API); import the module")
                continue
            a, b = _package(module), _package(target)
            if a and a != b and RANK[b] >= RANK[a]:
                wrong.append(f"{module}:{line} -> {target} ({a} may not import {b})")
    assert not wrong, "imports against the flow:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    graph = {m: {t for t, _ in edges} for m, edges in _graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_check_sees_lazy_imports():
    """The graph holds imports made inside functions (the kind that used to climb back up)."""
    graph = _graph()
    assert any(t == "ragsc.encoders.inputs" for t, _ in graph["ragsc.encoders.towers"])  # inside a function


@pytest.mark.parametrize("registry", ["ENCODERS", "LMS"])
def test_registry_targets_exist(registry):
    """Each spec prefix names a module and a function that exist (the module is imported here)."""
    from ragsc import registry as r

    for entry in getattr(r, registry).entries():
        module, _, name = entry.target.partition(":")
        assert module in MODULES, f"{entry.prefix}: no module {module}"
        assert callable(entry.load()), f"{entry.prefix}: {entry.target} is not callable"


def test_no_name_shadows_a_submodule():
    """``from ragsc.kb.ingestion import ingest`` is fine; a package name bound to something other than its
    submodule of that name (``ragsc.kb.ingest`` the function hiding ``ragsc/kb/ingest.py``) is not."""
    wrong = []
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        subs = {m.rpartition(".")[2] for m in MODULES if m.rpartition(".")[0] == module}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                bound = [(a.asname or a.name, f"{node.module}.{a.name}") for a in node.names]
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                bound = [(node.name, None)]
            elif isinstance(node, ast.Assign):
                bound = [(t.id, None) for t in node.targets if isinstance(t, ast.Name)]
            else:
                continue
            wrong += [f"{module}.{name} ({what or 'defined here'}) hides the submodule {module}.{name}"
                      for name, what in bound if name in subs and what != f"{module}.{name}"]
    assert not wrong, "\n".join(wrong)


def test_one_class_per_name():
    """Two public classes of one name in ragsc (two ``Received``, two ``SplitServer``) read as one."""
    where: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(module)
    twice = {name: mods for name, mods in where.items() if len(mods) > 1}
    assert not twice, twice


def test_no_module_over_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines (split them by concept): {long}"


def test_the_architecture_page_shows_these_layers():
    """docs/architecture.md's table of layers is LAYERS, rank by rank."""
    page = (ROOT.parent / "docs" / "architecture.md").read_text()
    rows = [line.split("|")[1:4] for line in page.splitlines() if re.match(r"\| \d+ \|", line)]
    shown = [(name.strip(), set(re.findall(r"`([\w.]+)`", packages))) for _, name, packages in rows]
    assert shown == LAYERS
