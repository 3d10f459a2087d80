"""msakit's own imports form no circle and nothing in the core imports a workflow or the CLI.

Every ``import`` and ``from ... import`` in every module counts, function-level ones included,
and a package's ``__init__.py`` is a module of its own: ``from msakit.models import x`` is an
edge to ``msakit.models`` (the package), ``from msakit.models import tfn`` one to
``msakit.models.tfn``. The graph is read from the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "msakit"
# The layers, lowest first: a module may import its own layer and those below, never above.
# ``msakit`` (the package facade), ``api`` and ``cli`` sit on top.
LAYERS = [
    {"errors", "_version", "settings", "metrics", "outputs"},
    {"data"},
    {"encoders", "objectives", "extract"},
    {"config", "models"},
    {"training"},
    {"workflows"},
    {"api", "__init__"},
    {"cli", "commands"},
]


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def import_graph(package: Path) -> dict[str, set[str]]:
    """``module -> modules of the package it imports`` (anywhere in the file)."""
    names = module_names(package)
    root = package.name
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    targets.append(child if child in names else base)
            for target in targets:
                while target and target not in names:  # `import msakit.data.mmsa` names that module
                    target = target.rpartition(".")[0]
                if target and target.split(".")[0] == root and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
    return cycles


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module}: not in any layer of tests/test_import_graph.py; add it to LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))


def test_msakit_has_no_import_circle():
    cycles = find_cycles(import_graph(PACKAGE))
    assert not cycles, "import circles in msakit: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_import_runs_up_the_layers():
    assert upward_imports(import_graph(PACKAGE)) == []


def test_the_check_sees_a_circle_through_a_function_level_import_and_a_package_init(tmp_path):
    # models/__init__ imports models.a (module level); models.a imports register from the package
    # inside a function: a circle through the package's __init__, which the test must catch.
    pkg = tmp_path / "toy"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("from toy.models import a\n\ndef register(cls):\n    return cls\n")
    (pkg / "models" / "a.py").write_text("def build():\n    from toy.models import register\n    return register\n")
    (pkg / "models" / "b.py").write_text("from . import a\n")  # relative, no circle
    graph = import_graph(pkg)
    assert graph["toy.models.b"] == {"toy.models.a"}
    assert find_cycles(graph) == [["toy.models", "toy.models.a"]]
    # the same files with the registry in its own module: no circle
    (pkg / "models" / "_registry.py").write_text("def register(cls):\n    return cls\n")
    (pkg / "models" / "__init__.py").write_text("from toy.models._registry import register\nfrom toy.models import a\n")
    (pkg / "models" / "a.py").write_text("def build():\n    from toy.models._registry import register\n    return register\n")
    assert find_cycles(import_graph(pkg)) == []


def test_the_check_sees_an_upward_import():
    graph = {"msakit.data.mmsa": {"msakit.workflows.compare"}, "msakit.workflows.compare": {"msakit.data.mmsa"}}
    assert upward_imports(graph) == ["msakit.data.mmsa -> msakit.workflows.compare"]
