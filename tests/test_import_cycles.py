"""No import cycles in `vita_eval` or `vita15`, counting imports inside functions and TYPE_CHECKING blocks.

A cycle hidden in a function body still means the two modules cannot be understood (or
tested) apart, so every `import` statement counts. The graph is read with `ast` only: no
module is imported, so the test is fast and cannot be fooled by import-time side effects.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"vita_eval": REPO / "vita_eval", "vita15": REPO / "model" / "vita15"}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the two packages."""
    found: dict[str, Path] = {}
    for package, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Our modules that one import statement loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    out = {source} if source in known else set()
    for alias in node.names:  # `from pkg import submodule`
        if f"{source}.{alias.name}" in known:
            out.add(f"{source}.{alias.name}")
    if len(out) > 1 and source in out and all(f"{source}.{a.name}" in known for a in node.names):
        out.discard(source)  # only submodules were named: the package body is not what is used
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _targets(node, name, path.name == "__init__.py", known)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_harness_never_imports_training_code() -> None:
    graph = import_graph()
    bad = sorted(m for m, edges in graph.items() if m.startswith("vita_eval") and any(
        e.startswith("vita15.train") for e in edges))
    assert not bad, f"vita_eval modules importing vita15.train: {bad}"


def test_model_never_imports_the_harness() -> None:
    graph = import_graph()
    bad = sorted(m for m, edges in graph.items() if m.startswith("vita15") and any(
        e.startswith("vita_eval") for e in edges))
    assert not bad, f"vita15 modules importing vita_eval: {bad}"
