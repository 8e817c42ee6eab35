"""The BM25 analyzer: tokens that keep the structure of formulas.

Documents and queries go through the same analyzer, applied to their *linear* text
(:mod:`mathcore.linear`), which writes a formula's layout unambiguously (``x^2``,
``(x + 1)/(2x)``, ``sqrt(3)``, ``x_1``).  So a question typed in plain ASCII math and an answer
in MathML meet in one token space.  A text gives:

* its words and numbers, lower-cased, English stop words dropped, and the operators of its
  formulas (``+``, ``^``, ``=``; brackets and punctuation are dropped);
* one *structure token* per relation between two operands, named by the first leaf of each
  side, in the manner of symbol-pair retrieval (Tangent): ``x^2`` (superscript), ``1/100``
  (fraction), ``x_1`` (subscript), ``50+20`` and ``20=70`` (operands of an operator), and
  ``sqrt:3`` / ``sin:x`` (a function of its first argument).

So ``x^2`` and ``2x`` share their leaves but not their structure tokens, and ``48/2 = 24`` is
not the bag ``{2, 24, 48}`` alone.  Single-letter stop words (``a``, ``i``) are dropped as leaves
but kept inside structure tokens (``a^2``).

Characters that producers (or people) write differently for one symbol are folded first:
``⋅``/``·``, ``∼``/``~``, ``∥``/``‖``, long and short arrows, ``′``/``'``, ``…``/``...``.

Example:
    >>> analyze("(x^2 + 1)/(2x)")
    ['x', '^', '2', '+', '1', '/', '2', 'x', 'x^2', '2+1', 'x/2']
"""

from __future__ import annotations

import re
import unicodedata

# A small English stop-word list (the Lucene/NLTK core), enough for question text.  Single
# letters that are common variables (a, i, s, t) are kept in formulas, dropped in text.
STOPWORDS = frozenset("""
a an and are as at be but by for if in into is it no not of on or such that the their then
there these they this to was will with what which who whom how many much does do did has have
had i you he she we his her its our your my me him them than so can could would should been
being from up down out over under again further once here when where why all any both each few
more most other some own same too very s t just don now am were
""".split())

# Saved with a BM25 index: an index built by another analyzer version is rebuilt.
ANALYZER_VERSION = "mathcore-2"
# Two characters for one symbol, from two producers (LaTeXML and latex2mathml) or typed by hand,
# become one (mostly the one latex2mathml writes): the tokens of a formula do not depend on who
# wrote its MathML.  Ellipses are punctuation, dropped like "...".
_FOLD = str.maketrans({
    "\u2212": "-", "\u2013": "-",  # minus sign, en dash
    "\u22c5": "\u00b7", "\u2219": "\u2022", "\u2217": "*",  # cdot, bullet, asterisk
    "\u223c": "~", "\u2225": "\u2016", "\u2223": "|",  # sim, norm, divides
    "\u29f5": "\u2216", "\u2a7d": "\u2264", "\u2a7e": "\u2265",  # setminus, leqslant
    "\u27f5": "\u2190", "\u27f6": "\u2192", "\u27f7": "\u2194",  # long arrows: short
    "\u27f8": "\u21d0", "\u27f9": "\u21d2", "\u27fa": "\u21d4", "\u27fc": "\u21a6",
    "\u2026": "...", "\u22ef": "...",  # ldots, cdots
    "\u2032": "'", "\u2033": "''", "\u2034": "'''",  # primes
})
_LEX_RE = re.compile(r"\d+(?:\.\d+)?|\.\d+|[^\W\d_]+|[^\w\s]|_")
_RELATIONS = frozenset("^_/*=+-\u00d7\u00b7\u00f7<>\u2264\u2265\u2260")
_BRACKETS = frozenset("()[]{}")
_PUNCTUATION = frozenset(".,;:?!'\"")
_OPEN = "([{"
_CLOSE = ")]}"


def _is_operand(lexeme: str) -> bool:
    return lexeme[0].isalnum() or lexeme[0] == "." and len(lexeme) > 1


def _structure(lexemes: list[str]) -> list[str]:
    """Relation tokens of a lexeme sequence (see the module docstring)."""
    out: list[str] = []
    # heads[i]: the first leaf of the operand that ends at lexeme i (a group's first leaf for
    # a closing bracket); starts[i]: the first leaf of the operand that starts at lexeme i.
    n = len(lexemes)
    ends: list[str | None] = [None] * n
    starts: list[str | None] = [None] * n
    stack: list[int] = []
    for i, lx in enumerate(lexemes):
        if _is_operand(lx):
            ends[i] = lx
            starts[i] = lx
        elif lx in _OPEN:
            stack.append(i)
        elif lx in _CLOSE and stack:
            j = stack.pop()
            first = next((lexemes[k] for k in range(j + 1, i) if _is_operand(lexemes[k])), None)
            ends[i] = first
            starts[j] = first
            if j > 0 and lexemes[j - 1][0].isalpha() and first:  # a call: sqrt(3), sin(x)
                out.append(f"{lexemes[j - 1]}:{first}")
    for i in range(1, n - 1):
        op = lexemes[i]
        if op in _RELATIONS:
            left, right = ends[i - 1], starts[i + 1]
            if left and right:
                out.append(f"{left}{op}{right}")
    return out


def analyze(text: str) -> list[str]:
    """BM25 tokens of a text with formulas in linear form (documents and queries alike).

    Words and numbers, lower-cased, English stop words dropped; the operators of formulas;
    and the structure tokens described in the module docstring.
    """
    if not text.isascii():
        # NFC joins a symbol and its negation slash (LaTeXML's \not=) into one: "≠".
        text = unicodedata.normalize("NFC", text).translate(_FOLD)
    lexemes = _LEX_RE.findall(text.lower().replace("**", "^"))
    tokens = [lx for lx in lexemes if lx not in STOPWORDS and lx not in _BRACKETS
              and lx not in _PUNCTUATION]
    return tokens + _structure(lexemes)
