"""Records, rejects, and the forms derived from a record's MathML.

A :class:`Record` is one problem: its question, its answer (the side that is searched), an
optional final answer, where it came from.  Its text fields hold text with inline ``<math>``
elements, or MathML alone, exactly as read.  :func:`derive` turns a record into the forms the
later stages use (linear text for the embedder, tokens for BM25) or raises
:class:`RecordError` naming the field and the formula that failed.

Example:
    >>> rec = Record(id="r1", question="What is 1+1?", answer="It is <math><mn>2</mn></math>.")
    >>> derive(rec).answer_text
    'It is 2.'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from mathcore.linear import to_linear
from mathcore.mathml import DEFAULT_LIMITS, Limits, MathMLError, parse_math, split_math

TEXT_FIELDS = ("question", "answer", "final")
# Whitespace (ASCII or Unicode) and control characters: an id holding one breaks the TREC run
# and qrels formats, whose columns are separated by whitespace, one row a line.
_BAD_ID_CHAR_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def id_problem(value: str) -> str | None:
    """Why *value* cannot be a record or query id, or None when it can.

    Ids end up as columns of TREC run and qrels files: whitespace or a control character
    (space, tab, newline, ``\\x00``-``\\x1f``, ``\\x7f``) in one would split or break a line.

    Example:
        >>> id_problem("a b")
        "id 'a b' contains whitespace or control characters"
    """
    if _BAD_ID_CHAR_RE.search(value):
        return f"id {value!r} contains whitespace or control characters"
    return None


@dataclass(frozen=True)
class Record:
    """One problem of a corpus.

    Args:
        id: unique identifier within an index.
        question: the problem, text with inline MathML (may be empty for answer-only corpora).
        answer: the solution or answer that matching retrieves; never empty.
        final: the final answer alone (one ``<math>`` element or text), if known.
        source: a corpus name (``gsm8k``, ``math``, ...), used to report figures per source.
        meta: other fields of the input, kept as they were.
        origin: ``file:line`` (or ``file``) the record was read from.
    """

    id: str
    question: str
    answer: str
    final: str | None = None
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""


@dataclass(frozen=True)
class Reject:
    """Input that could not become a record, and why."""

    origin: str
    reason: str
    id: str | None = None

    def to_json(self) -> str:
        return json.dumps({"origin": self.origin, "id": self.id, "reason": self.reason},
                          ensure_ascii=False)


class RecordError(ValueError):
    """A record whose content cannot be accepted; the message names the field and formula."""


@dataclass(frozen=True)
class Derived:
    """What the retrieval stages use of a record (the record itself is kept unchanged)."""

    question_text: str
    answer_text: str
    final_text: str
    formulas: int


@lru_cache(maxsize=65536)
def _formula(source: str, limits: Limits) -> str:
    # Many formulas repeat verbatim across a corpus (``<mn>72</mn>``): parse each one once.
    return to_linear(parse_math(source, limits))


def field_forms(text: str, limits: Limits = DEFAULT_LIMITS, name: str = "text") -> tuple[str, int]:
    """Linear text and formula count of one text field.

    Raises:
        RecordError: naming *name* and the formula (its number and character offset).
    """
    parts: list[str] = []
    count = 0
    try:
        segments = list(split_math(text))
    except MathMLError as exc:
        raise RecordError(f"{name}: {exc}") from None
    for seg in segments:
        if not seg.is_math:
            # A formula written right before a word needs a space: "2x apples", not "2xapples".
            if parts and parts[-1][-1:].isalnum() and seg.text[:1].isalnum():
                parts.append(" ")
            parts.append(seg.text)
            continue
        count += 1
        try:
            linear = _formula(seg.text, limits)
        except MathMLError as exc:
            raise RecordError(f"{name}: formula {count} at character {seg.start}: {exc}") from None
        if parts and parts[-1][-1:].isalnum() and linear[:1].isalnum():
            parts.append(" ")
        parts.append(linear)
    return " ".join("".join(parts).split()), count


def derive(record: Record, limits: Limits = DEFAULT_LIMITS) -> Derived:
    """Check a record and build its derived forms.

    Raises:
        RecordError: when the record is empty where it must not be, too large, or holds
            MathML that is refused.
    """
    if not record.id or not record.id.strip():
        raise RecordError("missing id")
    if not record.answer or not record.answer.strip():
        raise RecordError("missing answer")
    size = sum(len(getattr(record, f) or "") for f in TEXT_FIELDS)
    if size > limits.max_bytes:
        raise RecordError(f"record of {size} characters is over the limit of {limits.max_bytes}")
    q_text, nq = field_forms(record.question or "", limits, "question")
    a_text, na = field_forms(record.answer, limits, "answer")
    f_text, nf = field_forms(record.final or "", limits, "final")
    title = record.meta.get("title") if record.meta else None
    if title:
        a_text = f"{title}. {a_text}"
    return Derived(q_text, a_text, f_text, nq + na + nf)


# The last queries' linear texts, kept: one question is linearised by several stages (a
# server's encoder thread, the search, the score parts, the givens of its response).
_QUERIES_KEPT = 256


@lru_cache(maxsize=_QUERIES_KEPT)
def query_text(text: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Linear text of a query (a question with inline MathML, or plain text)."""
    return field_forms(text, limits, "query")[0]
