"""The layers of ``mathcore/symbolic``: one direction of imports, a runtime that knows no handler.

Every module of the package is read with :mod:`ast` -- imports inside functions included -- and
the imports among them form a graph. It must have no cycle; no module may import a module of
the package inside a function (the way a cycle is hidden); and the worker runtime (the pool,
its task registry and the worker process's entry point) must not reach, directly or through
others, any module that does mathematics (imports SymPy): the handlers register themselves and
the workers import them by name. A last test runs a task registered by a module outside the
package in a real worker.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

PACKAGE = "mathcore.symbolic"
ROOT = Path(__file__).resolve().parents[1] / "mathcore" / "symbolic"


def _modules() -> dict[str, Path]:
    """Module names relative to the package (``__init__`` for the package itself) -> files."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        found[".".join(rel.parts)] = path
    return found


MODULES = _modules()


def _target(dotted: str) -> str | None:
    """The package module a dotted name refers to (the longest existing prefix), or None."""
    if dotted == PACKAGE:
        return "__init__"
    if not dotted.startswith(PACKAGE + "."):
        return None
    parts = dotted[len(PACKAGE) + 1:].split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in MODULES:
            return name
        if name + ".__init__" in MODULES:
            return name + ".__init__"
    return "__init__"


def _imports(name: str) -> list[tuple[str, bool, str | None]]:
    """``(module, at function level, other top-level name)`` for every import in a module.

    The third field names what the module imports outside the package (``sympy``...).
    """
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = [PACKAGE] + name.split(".")[:-1]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = _target(alias.name)
                    found.append((target, in_function, None if target else alias.name))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = ".".join(package_parts[: len(package_parts) - child.level + 1])
                    module = f"{base}.{child.module}" if child.module else base
                else:
                    module = child.module or ""
                target = _target(module)
                if target is None:
                    found.append((None, in_function, module))
                    continue
                for alias in child.names:
                    # ``from pkg import submodule`` imports the submodule; any other name
                    # comes from the module itself (the longest prefix that is a module).
                    found.append((_target(f"{module}.{alias.name}"), in_function, None))
            visit(child, nested)

    visit(tree, False)
    return found


def _graph() -> dict[str, set[str]]:
    return {name: {t for t, _, _ in _imports(name) if t is not None and t != name}
            for name in MODULES}


def _closure(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path ``a -> b -> ... -> a``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


# The layers, bottom first: a module may import modules of its own layer or lower ones.
LAYERS = {
    "runtime": {"runtime", "worker"},
    "parsing": {"builders", "number_literals", "rowparser", "presentation", "content", "convert",
                "ascii", "units"},
    "comparison": {"numeric_compare", "comparison_tasks", "equivalence"},
    "verification": {"exact_arithmetic", "word_problems", "candidates",
                     "mathematics_dataset_numbers", "mathematics_dataset", "verification"},
    "package": {"__init__"},
}


def _layer(name: str) -> int:
    for rank, members in enumerate(LAYERS.values()):
        if name in members:
            return rank
    raise AssertionError(f"module {name} is in no layer of LAYERS")


def _runtime_modules() -> list[str]:
    """The worker runtime: the module defining ``WorkerPool`` and the worker's entry point."""
    names = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.ClassDef) and n.name == "WorkerPool" for n in tree.body):
            names.append(name)
    if "worker" in MODULES:
        names.append("worker")
    return names


def _does_mathematics(name: str) -> bool:
    return any(other is not None and other.split(".")[0] in ("sympy", "mpmath", "lxml")
               for _, _, other in _imports(name))


def test_the_modules_are_found():
    assert len(MODULES) > 10 and "__init__" in MODULES


def test_the_import_graph_has_no_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_go_down_the_layers():
    unplaced = sorted(set(MODULES) - set().union(*LAYERS.values()))
    assert not unplaced, f"modules in no layer: {unplaced}"
    upward = sorted(f"{name} imports {target}" for name, targets in _graph().items()
                    for target in targets if _layer(target) > _layer(name))
    assert not upward, upward


def test_no_module_of_the_package_is_imported_inside_a_function():
    hidden = sorted(f"{name} imports {target}" for name in MODULES
                    for target, in_function, _ in _imports(name)
                    if in_function and target is not None)
    assert not hidden, hidden


def test_the_runtime_imports_no_handler():
    graph = _graph()
    runtime = _runtime_modules()
    assert runtime, "no module defines WorkerPool"
    for name in runtime:
        reached = _closure(name, graph)
        handlers = sorted(m for m in reached if _does_mathematics(m))
        assert not handlers, f"{name} reaches {handlers}"
        assert "__init__" not in reached - {name}, f"{name} imports the package's __init__"


def test_a_task_registered_outside_the_package_runs_in_a_worker(tmp_path, monkeypatch):
    """The parent tells each worker which modules registered tasks; the worker imports them."""
    from mathcore.symbolic import WorkerPool, runtime

    (tmp_path / "layers_probe.py").write_text(
        "from mathcore.symbolic.runtime import task\n\n\n"
        "@task('layers_probe')\n"
        "def probe(n):\n"
        "    return n * 2\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    importlib.import_module("layers_probe")
    try:
        assert "layers_probe" in runtime.handler_modules()
        assert "mathcore.symbolic.mathematics_dataset" in runtime.handler_modules()
        with WorkerPool(size=1) as pool:
            assert pool.run("layers_probe", [21], timeout=60).value == 42
            assert pool.run("ping", [], timeout=60).value == "pong"
    finally:
        runtime.TASKS.pop("layers_probe", None)
        sys.modules.pop("layers_probe", None)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
