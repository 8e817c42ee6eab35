"""The layering contract: each package imports only the packages below it.

Bottom to top: mathcore -> index -> retriever -> reranker, dedup (side by side, neither imports
the other) -> tuning -> mathmatch -> benchmarks (which nothing imports). Every import is
checked, those inside functions included, so a lazy import cannot hide an upward one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"mathcore": 0, "index": 1, "retriever": 2, "reranker": 3, "dedup": 3, "tuning": 4,
          "mathmatch": 5, "benchmarks": 6}


def imported_packages(path: Path, package: str) -> set[tuple[str, int]]:
    """(top-level package, line) of every import in a module, relative ones resolved."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {(a.name.split(".")[0], node.lineno) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add((package if node.level else (node.module or "").split(".")[0],
                     node.lineno))
    return out


def violations(root: Path) -> list[str]:
    """``file:line: a imports b`` for every import against the contract under *root*."""
    found = []
    for package, rank in LAYERS.items():
        for path in sorted((root / package).rglob("*.py")):
            for target, line in imported_packages(path, package):
                if target not in LAYERS or target == package:
                    continue
                if LAYERS[target] >= rank:
                    found.append(f"{path.relative_to(root)}:{line}: {package} imports {target}")
    return found


def test_every_package_imports_only_downward():
    assert violations(ROOT) == []


@pytest.mark.parametrize("lower, upper", [("index", "retriever"), ("reranker", "dedup"),
                                          ("tuning", "mathmatch"), ("mathmatch", "benchmarks")])
def test_an_upward_import_is_caught_even_inside_a_function(tmp_path, lower, upper):
    for package in LAYERS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / lower / "mod.py").write_text(
        f"import os\n\n\ndef f():\n    from {upper}.x import y\n    return y\n")
    assert violations(tmp_path) == [f"{lower}/mod.py:5: {lower} imports {upper}"]


def test_relative_imports_stay_in_their_package(tmp_path):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "a.py").write_text("from . import b\nfrom .c import d\n")
    assert imported_packages(tmp_path / "index" / "a.py", "index") == {("index", 1),
                                                                       ("index", 2)}
