"""The tree's structure, read from source: no import cycle among the packages' modules, and no
function over 80 lines in servers/ and shared/ (issue 20).

Only module-level imports count (those under `if TYPE_CHECKING:` are not run); an import inside a
function runs later, when every module is loaded, so it cannot form a cycle at import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "shared/src", ROOT / "host/src", ROOT / "agent/src", *sorted((ROOT / "servers").glob("*/src"))]
MAX_FUNCTION_LINES = 80

Graph = dict[str, set[str]]


def modules(sources: list[Path]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, whether it is a package's __init__)."""
    found: dict[str, tuple[Path, bool]] = {}
    for src in sources:
        for path in sorted(src.rglob("*.py")):
            parts = list(path.relative_to(src).with_suffix("").parts)
            package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and not _type_checking(node):
            yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from _module_level_imports(block)


def import_graph(sources: list[Path]) -> Graph:
    """Each module's module-level imports of the tree's own modules (and the packages they run)."""
    known = modules(sources)

    def owner(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {}
    for name, (path, package) in known.items():
        here = name if package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                targets |= {t for a in node.names if (t := owner(a.name))}
                continue
            base = here.split(".")[: len(here.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{module}.{alias.name}"
                target = full if full in known else owner(module)
                if target:
                    targets.add(target)
        # Importing a.b.c runs a/__init__ and a/b/__init__ first; this module's own packages are
        # already running when it is imported.
        own = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
        for target in list(targets):
            parts = target.split(".")
            targets |= {p for k in range(1, len(parts)) if (p := ".".join(parts[:k])) in known and p not in own}
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next((e for e in edges if e not in index or e in on_stack), None)
            if nxt is not None:
                if nxt in index:
                    low[node] = min(low[node], index[nxt])
                else:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
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


def long_functions(folders: list[Path], limit: int) -> list[str]:
    """`file:line name (n lines)` for every function (decorators included) over `limit` lines."""
    over: list[str] = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    lines = (node.end_lineno or node.lineno) - start + 1
                    if lines > limit:
                        over.append(f"{path.relative_to(ROOT)}:{start} {node.name} ({lines} lines)")
    return over


def test_the_tree_has_no_import_cycle() -> None:
    graph = import_graph(SOURCES)
    assert {"sophia_shared", "sophia_host", "sophia_agent", "sophia_gong"} <= graph.keys()
    assert cycles(graph) == []


def test_a_cycle_through_a_package_init_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import A\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nfrom pkg.b import B\nA = 1\n")
    (pkg / "b.py").write_text("from . import A\nif TYPE_CHECKING:\n    from .c import C\n")
    (pkg / "c.py").write_text("from .b import B\n")
    assert cycles(import_graph([tmp_path])) == [["pkg", "pkg.a", "pkg.b"]]


def test_no_function_in_servers_and_shared_is_over_80_lines() -> None:
    folders = [ROOT / "shared/src", *sorted((ROOT / "servers").glob("*/src"))]
    assert long_functions(folders, MAX_FUNCTION_LINES) == []
