"""Verify a candidate answer to a question SymPy can compute, under a hard time limit.

:func:`verify` reads the question (plain ASCII as in mathematics_dataset, or text with inline
MathML), computes what it asks -- solve, differentiate, expand, factor, simplify, evaluate,
gcd/lcm, remainders, rounding, sorting, comparisons, primality, prime factors, place values,
sequences, bases, probabilities -- and compares the candidate with it. All of this runs in a
worker process (:mod:`mathcore.symbolic.runtime`) that is killed when *timeout* runs out: the
task :data:`~mathcore.symbolic.mathematics_dataset.VERIFY_TASK` of
:mod:`mathcore.symbolic.mathematics_dataset`. This module is the calling process's side.

Imports: :mod:`~mathcore.symbolic.mathematics_dataset` (the task it sends),
:mod:`~mathcore.symbolic.equivalence` (to read an answer) and :mod:`~mathcore.symbolic.runtime`;
the top of the package.

Example:
    >>> verify("Solve 12*w = -9*w + 21 for w.", "<math><cn>1</cn></math>")
    <Check.VERIFIED: 'verified'>
"""

from __future__ import annotations

import enum
import logging

import sympy as sp
from lxml import etree

from mathcore.symbolic.equivalence import Answer, to_expr
from mathcore.symbolic.mathematics_dataset import VERIFY_TASK
from mathcore.symbolic.runtime import TIMEOUT, WorkerPool, default_pool

logger = logging.getLogger(__name__)


class Check(enum.Enum):
    """The answer of :func:`verify`."""

    VERIFIED = "verified"
    REFUTED = "refuted"
    UNKNOWN = "unknown"


def _payload(candidate: Answer) -> dict | None:
    if isinstance(candidate, str):
        key = "mathml" if candidate.lstrip().startswith("<") else "ascii"
        return {key: candidate}
    if isinstance(candidate, etree._Element):
        return {"mathml": etree.tostring(candidate, encoding="unicode")}
    conv = to_expr(candidate)
    if not conv.ok:
        return None
    try:
        return {"srepr": sp.srepr(conv.expr)}
    except (ValueError, RecursionError):
        return None


def verify(question_text: str, candidate_final: Answer, timeout: float = 5.0, *,
           pool: WorkerPool | None = None) -> Check:
    """Check *candidate_final* against the answer SymPy computes for *question_text*.

    Args:
        question_text: the question (ASCII math, or text with inline ``<math>`` elements).
        candidate_final: the answer: MathML (string or element), a SymPy object, a Python
            number, or ASCII math.
        timeout: wall-clock seconds; the worker doing the computation is killed after it.
        pool: worker pool (default: the shared one).

    Returns:
        ``VERIFIED``, ``REFUTED``, or ``UNKNOWN`` (question not understood, candidate
        unreadable, no decision in time).
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    payload = _payload(candidate_final)
    if payload is None:
        return Check.UNKNOWN
    result = (pool or default_pool()).run(VERIFY_TASK, [question_text, payload], timeout=timeout)
    if result.status == TIMEOUT:
        logger.debug("verify timed out after %.1f s: %.60s", timeout, question_text)
        return Check.UNKNOWN
    if not result.ok:
        logger.debug("verify failed: %s", result.error)
        return Check.UNKNOWN
    return Check(result.value)
