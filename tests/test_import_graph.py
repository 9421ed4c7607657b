"""No import circles: the project's modules import each other in one direction only.

A circle hides which module is the lower floor, and breaks as soon as one of its imports moves
to module level. The graph is read from the source with `ast` (nothing is imported): every
`import` and `from ... import`, at module level or inside a function, relative ones resolved,
with folders mapped to import names as pyproject.toml's `package-dir` maps them. Imports under
`if TYPE_CHECKING:` are left out: they never run, and they are how a type annotation names a
class of a floor above without depending on it.

Run `python -m pytest tests/test_import_graph.py` (or `python tests/test_import_graph.py` to
print every circle).
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = {"build", "__pycache__", "node_modules"}


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Import name -> folder of each top-level part, as pyproject.toml maps them."""
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: root / folder for name, folder in setup["package-dir"].items()}


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the project by import name (a package by its `__init__.py`)."""
    dirs = package_dirs(root)
    modules: dict[str, Path] = {}
    for name, folder in dirs.items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder)
            if SKIPPED & set(relative.parts):
                continue
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            module = ".".join([name, *parts])
            # A folder mapped to its own name elsewhere (envoy/ -> meshserve.envoy) is that name's.
            if not any(module == other or module.startswith(other + ".") for other in dirs if other.startswith(name + ".")):
                modules[module] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth, skipping `if TYPE_CHECKING:` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules MODULE imports (`from pkg import mod` counts as importing pkg.mod)."""
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = _base(module, path.name == "__init__.py", node)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        found.update(name for name in names if name in known)
    found.discard(module)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = project_modules(root)
    known = set(modules)
    return {module: imported_modules(module, path, known) for module, path in modules.items()}


def knots(graph: dict[str, set[str]]) -> list[set[str]]:
    """Every group of modules that reach each other by imports (strongly connected components of
    more than one module; Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
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
                    components.append(set(component))
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each knot, to name in a failure."""
    return [_circle(graph, knot) for knot in knots(graph)]


def _circle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path around COMPONENT from its first module back to itself, to name in a failure."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def describe(graph: dict[str, set[str]]) -> str:
    """Each knot as one circle through it, and every module caught in it."""
    return "\n".join(f"{' -> '.join(_circle(graph, knot))}  (the knot: {', '.join(sorted(knot))})"
                     for knot in knots(graph))


def test_the_graph_sees_the_whole_project():
    graph = import_graph()
    # Each part's folder is found under its import name, and imports between parts are edges.
    for module in ("meshserve.core.model_package", "meshserve.adapters.server", "meshserve.router.server",
                   "meshserve.envoy", "meshserve.sidecars.records.audit"):
        assert module in graph, module
    assert "meshserve.core.model_package" in graph["meshserve.adapters.runtime"]


def test_a_circle_is_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_relative_and_function_level_imports_are_edges(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools.package-dir]\n"top" = "src"\n')
    package = tmp_path / "src" / "inner"
    package.mkdir(parents=True)
    (tmp_path / "src" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("def later():\n    from .two import thing\n")
    (package / "two.py").write_text("from typing import TYPE_CHECKING\nfrom top.inner import one\n"
                                    "if TYPE_CHECKING:\n    from top import inner\n")
    graph = import_graph(tmp_path)
    assert graph["top.inner.one"] == {"top.inner.two"}
    assert graph["top.inner.two"] == {"top.inner.one"}
    assert cycles(graph) == [["top.inner.one", "top.inner.two", "top.inner.one"]]


def test_no_import_circles():
    graph = import_graph()
    assert not knots(graph), "modules that import each other in a circle (move what both need to a lower " \
        "module):\n" + describe(graph)


if __name__ == "__main__":
    found = import_graph()
    print(describe(found) or "no import circles")
    sys.exit(1 if knots(found) else 0)
