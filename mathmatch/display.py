"""Questions in, MathML out: what ``mathmatch serve`` reads from people and shows them.

In: a question is words, words with LaTeX (``$...$`` as pandoc reads it, ``\\(...\\)``,
``$$...$$``, ``\\[...\\]``) and MathML; :func:`prepare` writes its LaTeX as MathML
(latex2mathml) and checks the whole with the hardened parser of :mod:`mathcore.mathml`, as a
record would be (no DTD, no entity, depth and size limits), naming what it refuses.

Out: :func:`display` turns stored text with inline MathML into HTML that is safe to insert into
a page: the text escaped, each formula parsed and rebuilt with MathML elements and their
presentation attributes only (no script, event handler, link, style or foreign element), the
question's numbers and formulas that the text restates marked for highlighting.

Example:
    >>> prepare("Solve $x^2 = 4$.").startswith("Solve <math xmlns=")
    True
    >>> display("It is <math><mn>2</mn></math>.", marked=frozenset({"2"}))[0]
    'It is <math><mn class="given">2</mn></math>.'
"""

from __future__ import annotations

import functools
import html
import re

from lxml import etree

from mathcore.mathml import DEFAULT_LIMITS, Limits, MathMLError, parse_math, split_math
from mathcore.records import RecordError, field_forms


class QueryError(ValueError):
    """A question, a final answer or LaTeX that cannot be read; the message says why."""


# --- questions in: LaTeX to MathML, then the hardened parser ----------------------------------

# $$..$$, \[..\], \(..\), and $..$ as pandoc reads it: no space inside either dollar, the
# closing one not before a digit ("costs $5 and $3" is money, not a formula).
_LATEX_RE = re.compile(r"\$\$(?P<b1>.+?)\$\$|\\\[(?P<b2>.+?)\\\]|\\\((?P<i1>.+?)\\\)"
                       r"|(?<![\\$])\$(?=[^\s$])(?P<i2>[^$]*?[^\s$\\])\$(?![\d$])", re.S)


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def latex_to_mathml(latex: str, display: str = "inline") -> str:
    """One LaTeX formula as a ``<math>`` element (latex2mathml), accepted by the parser.

    Raises:
        QueryError: LaTeX that latex2mathml cannot read, or whose MathML is refused.
    """
    from latex2mathml.converter import convert

    try:
        out = convert(latex.strip(), display=display)
    except RecursionError:
        raise QueryError(f"the LaTeX {_short(latex)} is nested too deeply") from None
    except Exception as exc:  # latex2mathml raises its own errors and plain ones alike
        raise QueryError(f"cannot read the LaTeX {_short(latex)}: "
                         f"{exc or type(exc).__name__}") from None
    try:
        parse_math(out)
    except MathMLError as exc:
        raise QueryError(f"the LaTeX {_short(latex)} gives MathML that is refused: {exc}") \
            from None
    return out


def with_mathml(text: str, name: str = "question") -> str:
    """*text* with its LaTeX formulas written as MathML, its MathML left as it is.

    Raises:
        QueryError: a DTD or entity declaration, an unclosed ``<math>``, unreadable LaTeX.
    """
    try:
        segments = list(split_math(text))
    except MathMLError as exc:
        raise QueryError(f"{name}: {exc}") from None

    def one(m: re.Match) -> str:
        block = m.group("b1") or m.group("b2")
        return latex_to_mathml(block or m.group("i1") or m.group("i2"),
                               "block" if block else "inline")

    return "".join(s.text if s.is_math else _LATEX_RE.sub(one, s.text) for s in segments)


def prepare(text: str, name: str = "question") -> str:
    """A question as the pipeline takes it (LaTeX written as MathML), checked to parse.

    Raises:
        QueryError: naming the problem (an empty question, a refused formula and where).
    """
    if not text.strip():
        raise QueryError(f"{name} is empty")
    converted = with_mathml(text, name)
    try:
        linear, _ = field_forms(converted, DEFAULT_LIMITS, name)
    except RecordError as exc:
        raise QueryError(str(exc)) from None
    if not linear:
        raise QueryError(f"{name} has nothing to search for")
    return converted


# --- MathML out: only MathML elements and attributes, the question's givens marked -----------

_MATH_TAGS = frozenset(
    "math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mstyle merror "
    "mpadded mphantom mfenced menclose munder mover munderover mmultiscripts mprescripts none "
    "mtable mtr mtd mlabeledtr semantics annotation".split())
_MATH_ATTRS = frozenset(
    "display mathvariant displaystyle scriptlevel stretchy fence separator lspace rspace "
    "minsize maxsize largeop movablelimits symmetric accent accentunder linethickness "
    "columnalign rowalign columnspan rowspan columnlines rowlines frame framespacing width "
    "height depth voffset notation open close separators form mathsize mathcolor "
    "mathbackground dir bevelled numalign denomalign encoding".split())
_NUM_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")


def _text_html(text: str, marked: frozenset[str]) -> str:
    """Escaped text; the numbers of *marked* (digit strings) in ``<mark class="given">``."""
    out, pos = [], 0
    for m in _NUM_RE.finditer(text) if marked else ():
        if m.group().replace(",", "") in marked:
            out += [html.escape(text[pos:m.start()], quote=False),
                    f'<mark class="given">{m.group()}</mark>']
            pos = m.end()
    return "".join(out) + html.escape(text[pos:], quote=False)


def _drop(el: etree._Element) -> None:
    """Remove *el* with what it holds, keeping the text after it."""
    parent, prev = el.getparent(), el.getprevious()
    if el.tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _safe_math(root: etree._Element) -> None:
    """Keep MathML elements and their presentation attributes only (in place)."""
    for el in list(root.iter()):
        if el is not root and (not isinstance(el.tag, str) or el.tag not in _MATH_TAGS):
            if el.getparent() is not None:
                _drop(el)
            continue
        for name in [a for a in el.attrib if a not in _MATH_ATTRS]:
            del el.attrib[name]


_MN_RE = re.compile(r"<mn(\s[^>]*)?>([^<]*)")
_ROOT_RE = re.compile(r"^<math((?:\s[^>]*?)?)(/?)>")


class _Formula:
    """One formula of a shown text, read once: its safe HTML with nothing marked, the numbers
    of its ``<mn>`` elements, and (when first asked) the keys the formula agreement gives it."""

    __slots__ = ("text", "limits", "html", "numbers", "_keys")

    def __init__(self, text: str, limits: Limits) -> None:
        self.text, self.limits = text, limits
        root = parse_math(text, limits)
        self.numbers = frozenset((el.text or "").strip().replace(",", "")
                                 for el in root.iter("mn"))
        self.html = _shown(root)
        self._keys: tuple[frozenset[str], str] | None | bool = False

    @property
    def keys(self) -> tuple[frozenset[str], str] | None:
        """The keys of the formula's units and its own key (:func:`retriever.formulas
        .formula`), or None for a trivial formula."""
        if self._keys is False:
            from retriever.formulas import formula

            found = formula(parse_math(self.text, self.limits))
            self._keys = None if found is None else \
                (frozenset(u.key for u in found.units), found.key)
        return self._keys

    def shown(self, marked: frozenset[str], restated: bool) -> str:
        """:attr:`html` with the ``<mn>`` of *marked* numbers (its text, stripped, without
        thousands commas) in ``class="given"`` and (*restated*) the formula itself in
        ``class="given-formula"``, set on the serialised formula: an ``<mn>`` there keeps its
        text up to its first child, escaped, and has no class (lxml escapes ``>`` in
        attribute values, so a tag ends at the first ``>``)."""
        out = self.html
        if marked & self.numbers:
            def mark(m: re.Match) -> str:
                attrs, text = m.group(1) or "", m.group(2)
                number = html.unescape(text) if "&" in text else text
                if attrs.endswith("/") or number.strip().replace(",", "") not in marked:
                    return m.group(0)
                return f'<mn{attrs} class="given">{text}'

            out = _MN_RE.sub(mark, out)
        if restated:
            out = _ROOT_RE.sub(r'<math\1 class="given-formula"\2>', out, count=1)
        return out

    def restates(self, asked: tuple) -> str | None:
        """The question formula (of *asked*, :func:`retriever.formulas.formulas`) that this
        formula restates, by the formula agreement's cheap checks (same unit, or inside), or
        None."""
        from retriever.formulas import MIN_INSIDE

        if not asked or self.keys is None:
            return None
        keys, key = self.keys
        for q in asked:
            if any(u.key in keys or (len(u.key) >= MIN_INSIDE and u.key in key)
                   for u in q.units):
                return q.key
        return None


def _shown(root: etree._Element) -> str:
    """A parsed formula as safe MathML (cleaned in place, then serialised)."""
    _safe_math(root)
    etree.cleanup_namespaces(root)
    return etree.tostring(root, encoding="unicode", with_tail=False)


# Texts whose segments were read, and formulas read, kept: a server shows the same records
# again and again, and reading their formulas (parse, clean, serialise) was most of what
# showing them cost. Formulas recur across records too: of the 10,900 formulas shown for 120
# dev queries, 45 % had been shown before.
_PLANS = 4096
_FORMULAS = 16384


@functools.lru_cache(maxsize=_FORMULAS)
def _formula(text: str, limits: Limits) -> _Formula | tuple[str]:
    """A formula read (:class:`_Formula`), or a 1-tuple of its source when it does not
    parse."""
    try:
        return _Formula(text, limits)
    except MathMLError:
        return (text,)


@functools.lru_cache(maxsize=_PLANS)
def _plan(text: str, limits: Limits) -> tuple[str | _Formula | tuple[str], ...] | None:
    """*text* in segments: its text as a str, each formula as a :class:`_Formula`, a formula
    that does not parse as a 1-tuple of its source; None when the text does not split."""
    try:
        segments = list(split_math(text))
    except MathMLError:
        return None
    out: list[str | _Formula | tuple[str]] = []
    for seg in segments:
        if not seg.is_math:
            out.append(seg.text)
            continue
        out.append(_formula(seg.text, limits))
    return tuple(out)


def display(text: str, marked: frozenset[str] = frozenset(), asked: tuple = (),
            limits: Limits = DEFAULT_LIMITS, linear: str | None = None
            ) -> tuple[str, list[str]]:
    """Safe HTML of a stored or asked text: its text escaped, its formulas as MathML without
    any other element or attribute (no script, handler, link or style); the numbers of
    *marked* and the formulas restating one of *asked* carry ``class="given"`` /
    ``"given-formula"``.

    Args:
        linear: *text*'s linear text as this mathmatch writes it (a store's ``answer_text``
            of the current :data:`~mathcore.linear.LINEAR_VERSION`), when known. Every unit of
            a formula of the text is then inside its canonical form (on the 32,501 units of
            the dev answers), so a formula of *asked* none of whose units is there restates
            nothing, and the text's formulas are not read for it.

    Returns:
        The HTML, and the keys of the formulas of *asked* found.
    """
    if asked and linear is not None:
        from retriever.formulas import canonical

        hay = canonical(linear)
        asked = tuple(q for q in asked if any(u.key in hay for u in q.units))
    plan = _plan(text, limits)
    if plan is None:
        return _text_html(text, marked), []
    parts, found = [], []
    for seg in plan:
        if isinstance(seg, tuple):  # a formula that does not parse: shown as text, unmarked
            parts.append(_text_html(seg[0], frozenset()))
            continue
        if isinstance(seg, str):
            parts.append(_text_html(seg, marked))
            continue
        key = seg.restates(asked)
        if key is not None:
            found.append(key)
        parts.append(seg.shown(marked, key is not None))
    return "".join(parts), list(dict.fromkeys(found))
