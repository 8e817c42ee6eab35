"""mathmatch: match math questions to MathML answers (retrieval, reranking, symbolic checks).

The Python API (:mod:`mathmatch.api`)::

    from mathmatch import Index, MatchConfig, as_run

    index = Index.open("build/demo-index")
    matches = index.match(["How many clips did Natalia sell?"], k=3)

Names are imported on first use, so ``mathmatch --help`` stays fast.
"""

from importlib import import_module
from typing import Any

from mathcore import __version__

_LAZY = {
    "Index": "mathmatch.api", "Match": "mathmatch.api", "Hit": "mathmatch.api",
    "Duplicates": "mathmatch.api", "DuplicateCandidate": "mathmatch.api",
    "as_run": "mathmatch.api", "MatchConfig": "mathmatch.pipeline",
    "Pipeline": "mathmatch.pipeline",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mathmatch' has no attribute {name!r}")
