"""The layers point one way: runtime < features < lab < jobs, and no import circles.

Every import statement of every module (at module level or inside a function) is read
with ``ast``, so a lazy import counts like any other; imports under ``if TYPE_CHECKING:``
are for the type checker only and never run, so they are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNTIME = "cohortlake"
FEATURES = ("segmentation", "insights", "expansion", "suggestions")
LAB = "lab"
PACKAGES = (RUNTIME, *FEATURES, LAB)
MAX_LINES = 500  # "about 450": a module past it gets split along a real seam


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))
    }


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (a package import counts as its __init__)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_scan_sees_the_packages() -> None:
    assert {_top(m) for m in MODULES} == set(PACKAGES)
    assert "cohortlake.catalog" in GRAPH["segmentation.validate"]  # the scan can find an edge


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down(package: str) -> None:
    allowed = {
        RUNTIME: {RUNTIME},
        **{f: {RUNTIME, *FEATURES} for f in FEATURES},
        LAB: set(PACKAGES),
    }[package]
    wrong = sorted(
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if _top(m) == package
        for t in targets
        if _top(t) not in allowed
    )
    assert wrong == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
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
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_cycle_finder_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(GRAPH, "cohortlake.errors", {*GRAPH["cohortlake.errors"], "cohortlake.cli"})
    assert any("cohortlake.errors" in c for c in _cycles())


def test_modules_stay_small() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
