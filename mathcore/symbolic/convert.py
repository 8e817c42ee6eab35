"""MathML to SymPy: one entry point for Presentation, Content and parallel markup.

:func:`to_sympy` never guesses: a formula it cannot read with certainty comes back as a
:class:`Conversion` whose ``expr`` is None and whose ``reason`` says why (``"element
<munderover>"``, ``"ambiguous division a/bc"``, ...). SymPy is never asked to parse text:
expressions are built node by node from the tree (``parse_expr`` and ``sympify`` use ``eval``).

Example:
    >>> to_sympy('<math><mfrac><mn>1</mn><mn>2</mn></mfrac></math>').expr
    1/2

Imports: :mod:`~mathcore.symbolic.builders`, :mod:`~mathcore.symbolic.content`,
:mod:`~mathcore.symbolic.presentation` (parsing only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sympy as sp
from lxml import etree

from mathcore.mathml import MathMLError, parse_math
from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.content import convert_content
from mathcore.symbolic.presentation import convert_presentation

logger = logging.getLogger(__name__)

CONTENT_TAGS = frozenset({
    "apply", "ci", "cn", "csymbol", "set", "list", "vector", "interval", "matrix", "bind",
    "lambda", "piecewise", "cs", "share", "cerror", "cbytes", "pi", "exponentiale",
    "imaginaryi", "infinity", "true", "false", "emptyset", "eulergamma", "notanumber",
})
_CONTENT_ENCODINGS = ("mathml-content", "application/mathml-content+xml")


@dataclass(frozen=True)
class Conversion:
    """The result of a conversion: a SymPy object, or None and the reason.

    Example:
        >>> Conversion(expr=None, reason="element <munderover>").ok
        False
    """

    expr: sp.Basic | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when ``expr`` holds a value."""
        return self.expr is not None

    def __post_init__(self) -> None:
        if (self.expr is None) == (self.reason is None):
            raise ValueError("a Conversion has exactly one of expr and reason")


def to_sympy(math: etree._Element | str) -> Conversion:
    """Convert one MathML formula (``<math>`` or any MathML element) to SymPy.

    Args:
        math: an element normalised by :func:`mathcore.mathml.parse_math`, or the source of
            one ``<math>`` element.

    Returns:
        A :class:`Conversion`; never raises for formulas it cannot read.
    """
    if isinstance(math, str):
        try:
            math = parse_math(math)
        except MathMLError as exc:
            return Conversion(None, f"invalid MathML: {exc}")
    try:
        expr = _convert(math)
    except Unsupported as exc:
        return Conversion(None, str(exc) or "unsupported")
    except RecursionError:
        return Conversion(None, "formula nested too deeply")
    except (TypeError, ValueError, AttributeError, ArithmeticError, NotImplementedError) as exc:
        # SymPy refused to build something (a relation between sets, a bad interval, ...).
        logger.debug("sympy refused a formula: %r", exc)
        return Conversion(None, f"sympy: {type(exc).__name__}: {str(exc)[:80]}")
    return Conversion(expr)


def _kids(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and c.tag not in ("annotation",
                                                                        "annotation-xml")]


def _is_content(el: etree._Element) -> bool:
    return el.tag in CONTENT_TAGS


def _convert(el: etree._Element) -> sp.Basic:
    kids = _kids(el) if el.tag in ("math", "semantics") else [el]
    if el.tag == "math" and len(kids) == 1 and kids[0].tag == "semantics":
        return _convert(kids[0])
    if el.tag == "semantics":
        return _semantics(el)
    if kids and all(_is_content(k) for k in kids):
        if len(kids) != 1:
            raise Unsupported("several Content MathML elements in one formula")
        return convert_content(kids[0])
    if any(_is_content(k) for k in kids):
        raise Unsupported("Presentation and Content MathML mixed in one row")
    return convert_presentation(el)


def _semantics(el: etree._Element) -> sp.Basic:
    """The first child; its Content annotation when the first child cannot be read."""
    kids = _kids(el)
    try:
        if not kids:
            raise Unsupported("semantics without a first child")
        return _convert(kids[0])
    except Unsupported as first:
        for ann in el:
            if ann.tag == "annotation-xml" and (ann.get("encoding", "").lower()
                                                in _CONTENT_ENCODINGS):
                content = [c for c in ann if isinstance(c.tag, str)]
                if len(content) == 1:
                    return convert_content(content[0])
        raise first
