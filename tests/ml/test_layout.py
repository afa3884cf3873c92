"""The package's floors, read from its source: every ``import`` of ``ml`` inside ``ml/``,
at module level or inside a function, is an edge; the graph must have no circle, the
ground floor must import nothing from ``ml``, storage must not import rendering (its
modules, its libraries or its templates), and no module of ``ml`` may import Airflow (the
DAGs call ``ml``, never the reverse)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "ml"
# What every other floor stands on: importing nothing from ml but the error classes
# (``errors`` itself imports nothing), so a bad date or path is reported as ours.
GROUND_FLOOR = {"charts", "contract", "dates", "errors", "metrics", "paths", "slices"}
# Rendering: HTML, Markdown and charts, and the libraries that draw them.
RENDERING = {"html", "charts", "reports", "model_card", "backtest_report"}
RENDERING_LIBRARIES = {"ext:jinja2", "ext:markupsafe", "ext:vl_convert", "ext:altair"}
# Storage and validation know nothing of how pages are drawn.
NOT_RENDERING = {"registry", "io", "config", "warehouse"}


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join(parts) or "__init__"


def _imports(path: Path) -> set[str]:
    """The modules of ``ml`` that ``path`` imports (top-level name under ``ml``), and
    every other top-level package it imports, prefixed ``ext:``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "ml":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("ml."):
                found.add(node.module.split(".")[1])
            else:
                found.add("ext:" + node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ml."):
                    found.add(alias.name.split(".")[1])
                else:
                    found.add("ext:" + alias.name.split(".")[0])
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path).split(".")[0]
        graph.setdefault(module, set()).update(_imports(path) - {module})
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_circle_finder_finds_a_circle_and_only_that():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_circle():
    graph = {m: {d for d in deps if not d.startswith("ext:")} for m, deps in import_graph().items()}
    assert circles(graph) == []


@pytest.mark.parametrize("module", sorted(GROUND_FLOOR))
def test_the_ground_floor_imports_nothing_from_the_package_but_its_errors(module):
    allowed = set() if module == "errors" else {"errors"}
    assert {d for d in import_graph()[module] if not d.startswith("ext:")} - allowed == set()


def test_storage_does_not_import_rendering():
    graph = import_graph()
    forbidden = RENDERING | RENDERING_LIBRARIES
    assert {m: graph[m] & forbidden for m in NOT_RENDERING if graph[m] & forbidden} == {}


@pytest.mark.parametrize("module", sorted(NOT_RENDERING))
def test_storage_reaches_no_rendering_through_other_modules_nor_names_a_template(module):
    graph = import_graph()
    reached, todo = set(), [module]
    while todo:
        for nxt in graph.get(todo.pop(), set()) - reached:
            reached.add(nxt)
            todo.append(nxt)
    assert reached & (RENDERING | RENDERING_LIBRARIES) == set()
    source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
    assert "templates" not in source and "get_template" not in source


def test_the_rendering_checks_catch_a_storage_module_that_renders(monkeypatch):
    graph = {**import_graph(), "io": {"errors", "warehouse"}, "warehouse": {"html"}}
    monkeypatch.setattr(f"{__name__}.import_graph", lambda: graph)
    with pytest.raises(AssertionError):
        test_storage_reaches_no_rendering_through_other_modules_nor_names_a_template("io")


def test_validate_and_transform_do_not_import_each_other_both_ways():
    graph = import_graph()
    assert not ("transform" in graph["validate"] and "validate" in graph["transform"])


def test_nothing_in_the_package_imports_airflow():
    assert {m: "airflow" for m, deps in import_graph().items() if "ext:airflow" in deps} == {}
