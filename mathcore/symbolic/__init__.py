"""Symbolic core: MathML to SymPy, equivalence under a hard time limit, answer checking.

Example:
    >>> from mathcore.symbolic import equivalent, Verdict
    >>> equivalent("<math><mn>0.5</mn></math>", "1/2") is Verdict.EQUIVALENT
    True
"""

from mathcore.symbolic.ascii import parse_ascii
from mathcore.symbolic.convert import Conversion, to_sympy
from mathcore.symbolic.equivalence import (
    Verdict,
    answer_text,
    cache_clear,
    cache_info,
    equivalent,
    to_expr,
)
from mathcore.symbolic.limits import TaskResult, WorkerPool, close_default_pool, default_pool
from mathcore.symbolic.solver import Check, verify

__all__ = [
    "Check", "Conversion", "TaskResult", "Verdict", "WorkerPool", "answer_text", "cache_clear",
    "cache_info",
    "close_default_pool", "default_pool", "equivalent", "parse_ascii", "to_expr", "to_sympy",
    "verify",
]
