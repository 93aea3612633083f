"""The house rules of the package, checked over the source rather than trusted.

* no import cycle between ocrlab's modules, function-level imports included
  (a cycle hidden inside a function still means two modules that cannot be
  read, tested or moved apart);
* no module over 400 lines;
* nothing on the OCR path imports the lab (it needs the notebooks extra);
* the notebooks exist once, in ``notebooks/`` (a build copies them into the wheel).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ocrlab"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every ocrlab module ``name`` imports, anywhere in its body, resolved to a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            # a package's __init__ is imported by its own modules' import machinery anyway
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    """The checker itself: a planted cycle through a function-level import is found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = _graph()
    assert "ocrlab.pipeline" in graph and "ocrlab.engines.tesseract" in graph
    assert _cycles(graph) == []


def test_engine_facts_live_in_a_leaf() -> None:
    """The Tesseract binary's facts: one module that imports only errors and records."""
    assert _graph()["ocrlab.engines.tesseract"] <= {"ocrlab.errors", "ocrlab.records"}


#: The command line dispatches to the lab's commands; the notebook display shows the lab's
#: live view, importing it only inside a Jupyter kernel (where the notebooks extra is).
LAB_USERS = {
    "ocrlab.cli": None,
    "ocrlab.progress": {"ocrlab.lab.widgets"},
    "ocrlab.background": {"ocrlab.lab.widgets"},
}


def test_ocr_path_does_not_import_the_lab() -> None:
    graph = _graph()
    for name, deps in graph.items():
        if name.startswith("ocrlab.lab") or (name in LAB_USERS and LAB_USERS[name] is None):
            continue
        allowed = LAB_USERS.get(name) or set()
        assert {d for d in deps if d.startswith("ocrlab.lab")} <= allowed, name


def test_no_module_over_400_lines() -> None:
    sizes = {
        p.relative_to(ROOT).as_posix(): len(p.read_text("utf-8").splitlines())
        for p in _modules().values()
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_the_notebooks_exist_once() -> None:
    """``notebooks/`` is the only copy; setup.py copies it into a built wheel
    (tests/test_wheel.py), so no second copy inside the package can drift from it."""
    from ocrlab.lab.report import NOTEBOOKS_DIR

    assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) != []
    assert sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.ipynb")) == []
    assert NOTEBOOKS_DIR == ROOT / "notebooks"  # what `ocrlab report` runs from a checkout


#: The run's machinery: the pool, the scheduler, the workers, the pipeline that wires them.
RUN_MACHINERY = {
    "ocrlab.pipeline",
    "ocrlab.plan",
    "ocrlab.pool",
    "ocrlab.warmup",
    "ocrlab.executor",
    "ocrlab.scheduler",
    "ocrlab.worker",
    "ocrlab.collector",
    "ocrlab.supervise",
}


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_output_package_needs_no_pool_and_no_pipeline() -> None:
    """The output folder's files can be read, audited and tested without the run's machinery:
    nothing in ``ocrlab.output`` imports it, directly or through another module."""
    graph = _graph()
    output = [name for name in graph if name.startswith("ocrlab.output")]
    assert "ocrlab.output.trace" in output and "ocrlab.output.manifest" in output
    reached = {name: _reach(graph, name) & RUN_MACHINERY for name in output}
    assert {name: deps for name, deps in reached.items() if deps} == {}
