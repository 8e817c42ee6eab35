"""Symbolic core: MathML to SymPy, equivalence under a hard time limit, answer checking.

The modules bottom to top, in four layers: a module imports only modules listed before it
(in its own layer or a lower one), and none imports another inside a function
(``tests/test_symbolic_layers.py`` checks both):

* worker runtime
    - ``runtime`` -- the task registry (``@task``) and the pool of worker processes with a
      hard time limit (:class:`WorkerPool`, :func:`default_pool`).
    - ``worker`` -- the worker process's entry point (``python -m mathcore.symbolic.worker``);
      it imports the modules that registered tasks by name, never statically.
* parsing (MathML or ASCII to SymPy)
    - ``builders`` -- SymPy expressions built safely (size limits) and ``Unsupported``.
    - ``number_literals`` -- number literals as exact SymPy numbers.
    - ``rowparser`` -- operator precedence for a row of Presentation MathML tokens.
    - ``presentation`` -- Presentation MathML to SymPy.
    - ``content`` -- Content MathML to SymPy.
    - ``convert`` -- the MathML entry point :func:`to_sympy` and :class:`Conversion`.
    - ``ascii`` -- plain ASCII math to SymPy (:func:`parse_ascii`).
    - ``units`` -- quantities with units as mathematics_dataset words them.
* comparison
    - ``numeric_compare`` -- numeric comparison at seeded random points.
    - ``comparison_tasks`` -- the worker tasks ``equal`` and ``same_set`` (symbolic proofs).
    - ``equivalence`` -- :func:`equivalent`: a three-way :class:`Verdict` under a time limit.
* verification (checking a candidate answer against a question)
    - ``exact_arithmetic`` -- exact rounding, roots, sequences, bases, probability, clock times.
    - ``word_problems`` -- a question's context sentences into an environment, its final
      sentence.
    - ``candidates`` -- candidate answers read and compared with an expected value.
    - ``mathematics_dataset_numbers`` -- handlers for mathematics_dataset's number, comparison
      and measurement templates.
    - ``mathematics_dataset`` -- the template table, the other handlers and the worker task
      ``verify``.
    - ``verification`` -- :func:`verify` and :class:`Check`, the calling process's side.

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
from mathcore.symbolic.runtime import TaskResult, WorkerPool, close_default_pool, default_pool
from mathcore.symbolic.verification import Check, verify

__all__ = [
    "Check", "Conversion", "TaskResult", "Verdict", "WorkerPool", "answer_text", "cache_clear",
    "cache_info",
    "close_default_pool", "default_pool", "equivalent", "parse_ascii", "to_expr", "to_sympy",
    "verify",
]
