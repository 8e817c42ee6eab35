"""MathML as readable linear math, for the embedder.

Presentation MathML is written the way a person would type it: ``(x^2 + 1)/(2x)``,
``sqrt(3)``, ``x_1^2``, ``sum_(i=1)^n i``.  Content MathML (``apply``/``ci``/``cn``/
``csymbol``) is written with operator precedence, so ``<apply><times/><cn>2</cn><apply><plus/>
<ci>x</ci><cn>1</cn></apply></apply>`` becomes ``2*(x + 1)``.  Parallel markup
(``<semantics>``) uses its first child; annotations (LaTeX, Content) are skipped.

Structure a reader needs is written out: a space after a fraction, root or script that is
followed by another operand (``1/N sum_(i = 1)^N x_i``, ``w_1 x_1``), brackets around a script
that carries scripts itself (``P_(C_12)``), accents as accents (``vec(v)``), ``mglyph`` as its
``alt`` text, ``menclose`` notations that mean something by name (``phasorangle(x)``,
``cancel(x)``), and the limits of a large operator the same way whether they are written with
``munder``/``mover``/``munderover`` or ``msub``/``msup``/``msubsup``, whatever the producer.
Content MathML qualifiers are written out: ``sum_(x = a)^b f(x)``, ``lim_(x → 0) sin(x)``,
``∀x: x - x = 0``, ``int_0^1 x^2 dx``, ``{-x if x < 0; x otherwise}``.

LaTeXML's MathML and latex2mathml's of the same LaTeX read alike: invisible times and function
application become a space where letters would otherwise run into one word (``n ln n``), styled
letters (the differential's italic d, bold, script) plain ones, primes ``'``, and a scripted large
operator ``sum_(k = 1)^n`` whether it is written as ``msubsup`` (inline) or ``munderover``.

The functions take trees normalised by :func:`mathcore.mathml.parse_math` (bare MathML tags).

Example:
    >>> from mathcore.mathml import parse_math
    >>> to_linear(parse_math('<math><mfrac><mi>a</mi><mn>2</mn></mfrac></math>'))
    'a/2'
"""

from __future__ import annotations

import re
import unicodedata

from lxml import etree

# Bumped whenever the text written for some MathML changes: the linear text an index stores
# (its answers' text) was written by the version that index records.
LINEAR_VERSION = 3

# Operators are mapped to the ASCII a reader (and the embedder's vocabulary) knows best.
OPERATOR_TEXT = {
    "\u2212": "-",  # minus sign
    "\u2013": "-",
    "\u2217": "*",
    "\u2062": "",  # invisible times: 2x
    "\u2061": "",  # function application: sin x
    "\u2063": ",",  # invisible separator
    "\u2064": "+",  # invisible plus: 2 3/4
    "\u00a0": " ",
    "\u2009": " ",
    "\u200b": "",
}
# Operators written with a space on each side when they join two operands.
_SPACED = set("+-=<>\u00b1\u2213\u00d7\u00b7\u22c5\u2219\u00f7\u2264\u2265\u2260\u2248\u2261"
              "\u2245\u223c\u2192\u21d2\u21d4\u2190\u27f9\u2208\u2209\u2282\u2286\u222a"
              "\u2229\u2227\u2228\u2223\u2218*\u2243\u21a6\u2283\u2287\u2288\u2284\u2295\u2297"
              "\u221d\u27f6\u2270\u2271\u219b\u21ae\u2262\u226e\u226f\u2249\u2226\u2224")
_OPEN = set("([{\u27e8\u2308\u230a")
_CLOSE = set(")]}\u27e9\u2309\u230b")
_ACCENTS = {
    "\u00af": "bar", "\u2015": "bar", "\u203e": "bar", "_": "bar", "\u0332": "bar",
    "^": "hat", "\u02c6": "hat", "\u0302": "hat",
    "\u2192": "vec", "\u20d7": "vec",
    "~": "tilde", "\u02dc": "tilde", "\u0303": "tilde",
    "\u02d9": "dot", ".": "dot", "\u00a8": "ddot", "\u2322": "arc", "\u23dc": "arc",
    "\u21c0": "vec", "\u20d1": "vec", "\u0307": "dot", "\u0308": "ddot", "\u20db": "dddot",
    "\u00b4": "acute", "\u02ca": "acute", "\u0301": "acute", "`": "grave", "\u02cb": "grave",
    "\u0300": "grave", "\u02d8": "breve", "\u0306": "breve", "\u02c7": "check",
    "\u030c": "check", "\u02da": "ring", "\u030a": "ring", "\u2190": "overleftarrow",
    "\u2194": "overleftrightarrow", "\u23de": "overbrace", "\u23b4": "overbrace",
}
# Accents written under their base (an underline is handled apart).
_UNDER_ACCENTS = {"\u23df": "underbrace", "\u23b5": "underbrace", "\u2192": "underrightarrow",
                  "\u2190": "underleftarrow", "~": "utilde"}
_LARGE_OPS = {"\u2211": "sum", "\u220f": "prod", "\u222b": "int", "\u222e": "oint", "lim": "lim",
              "\u22c3": "union", "\u22c2": "intersection", "max": "max", "min": "min",
              "\u222c": "iint", "\u222d": "iiint", "\u2210": "coprod", "\u2a01": "oplus",
              "\u2a02": "otimes", "\u2a00": "odot", "\u22c0": "\u22c0", "\u22c1": "\u22c1",
              "sup": "sup", "inf": "inf", "lim sup": "limsup", "lim inf": "liminf"}
_BARE_LARGE = frozenset("\u2211\u220f\u222b\u222e\u22c3\u22c2\u222c\u222d")
# Written without brackets where an operand is needed: a number, one letter, x_1, 5!.
_ATOM_RE = re.compile(r"^(?:\d+(?:[.,]\d+)*|\.\d+|[^\W\d_]|[^\W\d_]_\w+|\d+!)$")
_WS_RE = re.compile(r"\s+")
_PRIMES = frozenset("\u2032'\u2033\u2034")


def _letter_fold() -> dict[int, str]:
    """Characters written as a reader types them: styled letters and digits, primes.

    Producers disagree on styles: LaTeXML writes the differential of ``\\,dx`` as MATHEMATICAL
    ITALIC SMALL D and ``\\mathcal{O}`` as a script letter, latex2mathml a plain ``d`` and a
    ``mathvariant``.  Bold, italic, sans-serif, script, fraktur and monospace letters and digits
    become plain ones; double-struck ones (ℝ, 𝔽) keep their meaning and stay.
    """
    table = {0x2032: "'", 0x2033: "''", 0x2034: "'''"}
    for cp in range(0x1D400, 0x1D800):
        name = unicodedata.name(chr(cp), "")
        plain = unicodedata.normalize("NFKC", chr(cp))
        if name.startswith("MATHEMATICAL ") and "DOUBLE-STRUCK" not in name and plain.isascii():
            table[cp] = plain
    # Their letterlike-block twins: script B E F H I L M R, fraktur C H I R Z, italic h, e g o.
    for ch in "\u212c\u2130\u2131\u210b\u2110\u2112\u2133\u211b\u212d\u210c\u2111\u211c\u2128" \
              "\u210e\u212f\u210a\u2134":
        table[ord(ch)] = unicodedata.normalize("NFKC", ch)
    return table


_FOLD = _letter_fold()
_DOUBLE_STRUCK = {c: unicodedata.lookup(f"DOUBLE-STRUCK CAPITAL {c}") if c in "CHNPQRZ"
                  else unicodedata.lookup(f"MATHEMATICAL DOUBLE-STRUCK CAPITAL {c}")
                  for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
# Tokens (<mi>, <mn>, <mtext>) lose invisible operators: LaTeXML leaves them in the text it
# writes for a formula it could not parse.
_TOKEN_FOLD = {**_FOLD, 0x2061: None, 0x2062: None, 0x2063: None, 0x2064: None}
# LaTeX macros that LaTeXML does not know (MathJax does) stay as their name in an <merror>.
_TEX_SYMBOLS = {"\\lt": "<", "\\gt": ">", "\\le": "\u2264", "\\ge": "\u2265",
                "\\leqslant": "\u2264", "\\geqslant": "\u2265", "\\ne": "\u2260",
                "\\neq": "\u2260", "\\subsetneq": "\u228a", "\\supsetneq": "\u228b",
                "\\varnothing": "\u2205", "\\therefore": "\u2234"}
# Forum posts whose LaTeX was HTML-escaped once too often: LaTeXML reads "p&lt;q" letter by
# letter, and the linear text spells the entity out.
_ESCAPED_RE = re.compile(r"\s*&(lt|gt);\s*|&(amp|quot|#39);")
# The same posts' alignment "&amp;": LaTeXML starts a new cell at "&" and reads on "amp;".
_AMP_CELL_RE = re.compile(r"^amp;\s*")
_UNESCAPED = {"lt": " < ", "gt": " > ", "amp": "&", "quot": '"', "#39": "'"}

# Elements that only group or style their children.
_ROWLIKE = frozenset({"math", "mrow", "mstyle", "mpadded", "merror", "menclose", "mtd", "maction",
                      "mark", "mlabeledtr"})
_INVISIBLE = frozenset({"mphantom", "annotation", "annotation-xml", "mprescripts", "none",
                        "malignmark", "maligngroup"})
# Elements after which a following operand is set apart by a space (see _structure_gap).
_FRACTIONS = frozenset({"mfrac", "msqrt", "mroot"})
_SCRIPTS = frozenset({"msub", "msup", "msubsup", "mmultiscripts", "munder", "mover", "munderover"})
# menclose notations that mean something, by the name written; the others (box, roundedbox,
# circle, left, right) only decorate, and the enclosed formula is written alone.
_ENCLOSE_NAMES = {"phasorangle": "phasorangle", "radical": "sqrt", "longdiv": "longdiv",
                  "actuarial": "actuarial", "madruwb": "madruwb", "top": "overline",
                  "bottom": "underline", "updiagonalstrike": "cancel",
                  "downdiagonalstrike": "cancel", "verticalstrike": "cancel",
                  "horizontalstrike": "cancel", "updiagonalarrow": "updiagonalarrow"}


def to_linear(el: etree._Element) -> str:
    """Write a normalised MathML tree as one line of readable math."""
    text = _lin(el)
    if "&" in text:
        text = _ESCAPED_RE.sub(lambda m: _UNESCAPED[m.group(1) or m.group(2)], text)
    return _WS_RE.sub(" ", text).strip()


def _text(el: etree._Element) -> str:
    return (el.text or "").strip()


def _is_atom(s: str) -> bool:
    if _ATOM_RE.match(s):
        return True
    return _enclosed(s)


def _enclosed(s: str) -> bool:
    """True when *s* is one bracketed group or a call like ``sqrt(...)``."""
    if not s or s[-1] not in ")]}|":
        return False
    head = 0
    while head < len(s) and (s[head].isalpha()):
        head += 1
    if head >= len(s) or s[head] not in "([{|":
        return False
    depth = 0
    for i, ch in enumerate(s[head:], head):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return False
    return depth == 0


def _wrap(s: str) -> str:
    return s if _is_atom(s) else f"({s})"


def _atomic(el: etree._Element, scripts: bool) -> bool:
    """Whether a presentation element reads as one operand without brackets.

    A token (``sin``, ``theta``, ``12``) does; a root or fence does; with *scripts*, so does a
    superscript or subscript (``1/x^2`` — but not as an exponent: ``2^(x^2)``).
    """
    while el.tag in _ROWLIKE:
        kids = [k for k in el if isinstance(k.tag, str) and k.tag not in _INVISIBLE]
        if len(kids) != 1:
            return False
        el = kids[0]
    tag = el.tag
    if tag in ("mi", "mtext", "ms"):
        return True
    if tag == "mn":
        return not _text(el).startswith(("-", "\u2212"))
    if tag in ("msqrt", "mroot", "mfenced"):
        return True
    return scripts and tag in ("msup", "msub", "msubsup")


def _pres_operand(el: etree._Element, scripts: bool = False) -> str:
    s = _lin(el)
    if _atomic(el, scripts) or _is_atom(s) or scripts and _is_scripted(s):
        return s
    return f"({s})"


def _is_scripted(s: str) -> bool:
    """``(x - 1)^2``, ``|x|^2``, ``x_1^2``: one operand with scripts, written as text.

    latex2mathml puts the exponent of ``(x-1)^2`` on the closing bracket alone, so the row is
    not one ``msup`` element, as it is in LaTeXML's MathML, but reads the same.
    """
    depth = 0
    for i in range(len(s) - 1, 0, -1):
        ch = s[i]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            depth -= 1
        elif depth == 0 and ch in "^_":
            base, script = s[:i], s[i + 1:]
            return _is_atom(script) and (_is_atom(base) or _is_scripted(base))
        elif depth == 0 and ch == " ":
            return False
    return False


def _lin(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    fn = _HANDLERS.get(tag)
    if fn is not None:
        return fn(el)
    if tag in _ROWLIKE:
        return _row(list(el))
    if tag in _INVISIBLE:
        return ""
    if tag.startswith("{"):  # an element of another vocabulary: its text only
        return " ".join("".join(el.itertext()).split())
    if tag in _CONTENT_TAGS:
        return _content(el)[0]
    return _row(list(el)) if len(el) else _text(el)


def _mo(el: etree._Element) -> str:
    t = _text(el)
    if not t and el.text:  # LaTeXML writes \qquad as an <mo> of spaces
        return " "
    if t in _BARE_LARGE:  # a large operator with no limits reads by name, as with them: sum
        return _LARGE_OPS[t]
    return OPERATOR_TEXT[t] if t in OPERATOR_TEXT else t.translate(_FOLD)


def _token(el: etree._Element) -> str:
    if len(el):  # an <mglyph>, or a <math> inside <mtext> (MathML 4): written in place
        parts = [el.text or ""]
        for child in el:
            parts += [_lin(child) if isinstance(child.tag, str) else "", child.tail or ""]
        return _WS_RE.sub(" ", "".join(parts)).strip().translate(_TOKEN_FOLD)
    t = _text(el)
    if not t and el.text and el.tag == "mtext":  # latex2mathml writes "\ " as an <mtext>
        return " "
    if el.get("mathvariant") == "double-struck" and len(t) == 1 and t.isascii() and t.isalpha():
        return _DOUBLE_STRUCK.get(t, t)  # <mi mathvariant="double-struck">R</mi> is ℝ
    return t.translate(_TOKEN_FOLD)


def _operator(el: etree._Element) -> str | None:
    """The operator a row's child stands for: an ``<mo>``'s, or that of an unknown TeX macro."""
    if el.tag == "mo":
        return _mo(el)
    if el.tag == "merror":
        return _TEX_SYMBOLS.get("".join(el.itertext()).strip())
    return None


def _named_op(el: etree._Element) -> str | None:
    """The name of an operator written before its operand (``sum``, ``int``, ``lim``, ``sup``)."""
    while el.tag in _ROWLIKE:
        kids = _children(el)
        if len(kids) != 1:
            return None
        el = kids[0]
    if el.tag not in ("mo", "mi"):
        return None
    t = _text(el)
    if t in _LARGE_OPS:  # an <mi>∫</mi> (the MathML specification's own examples) too
        return _LARGE_OPS[t]
    return t if el.tag == "mo" and len(t) > 1 and t.isalpha() else None


def _row(children: list) -> str:
    """Join a row's children with the spacing a reader expects around operators."""
    out: list[str] = []
    prev_kind = "start"  # start | operand | op | open
    prev_el = None  # the element that wrote the last operand
    integral = False
    children = [c for c in children if isinstance(c.tag, str) and c.tag not in _INVISIBLE]
    for i, child in enumerate(children):
        op = _operator(child)
        if op is not None:
            integral = integral or op in _INTEGRALS
            if op == "":
                continue
            if op in _OPEN:
                out.append(op)
                prev_kind = "open"
            elif op in _CLOSE:
                if out and out[-1].endswith(" ") and not out[-1].isspace():
                    out[-1] = out[-1].rstrip()  # "(sum_1^n)", not "(sum_1^n )"
                out.append(op)
                prev_kind = "operand"
            elif op in (",", ";"):
                out.append(op + " ")
                prev_kind = "op"
            elif op in _SPACED or len(op) > 1 and op.isalpha():
                if prev_kind in ("start", "op", "open"):
                    out.append(op + (" " if op.isalpha() else ""))  # unary: -x, lim x
                else:
                    out.append(f" {op} ")
                prev_kind = "op"
            else:  # !, ', ., %, ... stick to their operand
                out.append(op)
                prev_kind = "operand" if op in ("!", "%") or set(op) <= _PRIMES else "op"
            continue
        s = _lin(child)
        if not s:
            continue
        if prev_kind == "operand" and out and (
                _needs_space(out[-1], s, child.tag)
                or _structure_gap(prev_el, out[-1], s)
                or integral and _differential(s, children[i + 1:i + 2])):
            out.append(" ")
        out.append(s)
        integral = integral or s.startswith(_INTEGRALS)
        prev_kind, prev_el = "operand", child
    text = "".join(out).strip()
    # A row that ends with an operator with limits (LaTeXML wraps "\sum_i" in <mstyle>) or a
    # binary one (LaTeXML's "<mrow>x <</mrow>" before the right operand) keeps the space that
    # separates it from its operand: "sum_i a_i", "x < 0", not "sum_ia_i", "x <0".
    if out and out[-1].endswith(" ") and not out[-1].isspace() \
            and (prev_kind == "operand" or out[-1].startswith(" ")):
        text += " "
    return text


_SCRIPT_TAIL_RE = re.compile(r"[\^_][^\W\d_]+$")
_INTEGRALS = ("\u222b", "\u222c", "\u222d", "\u222e", "int", "oint")


def _differential(s: str, following: list) -> bool:
    """After an integral, ``d`` then one letter is a differential: ``x^2 dx``, ``dx dy``.

    LaTeXML marks it (as an operator); latex2mathml writes three letters, ``x``, ``d``, ``x``.
    """
    return s == "d" and bool(following) and following[0].tag == "mi" \
        and len(_text(following[0])) == 1 and _text(following[0]).isalpha()


def _last_tag(el: etree._Element) -> str:
    """The tag of the element a row's operand ends with: ``x^2`` in ``<mrow>2 x^2</mrow>``."""
    while el.tag in _ROWLIKE and el.tag != "menclose":
        kids = [k for k in _children(el) if k.tag not in _INVISIBLE]
        if not kids:
            break
        el = kids[-1]
    return el.tag


def _structure_gap(prev: etree._Element | None, left: str, right: str) -> bool:
    """A space between an operand that ends a fraction, root or script and the next operand.

    Without it the linear text says another formula: ``1/Nx`` (1/(Nx)?), ``w_1x_1``, ``x^2y``.
    After a fraction or root any operand is set apart (``1/2 (x + 1)``, ``sqrt(2) x``); after a
    script only one that would run into it (``x^2 y``, but ``f'(x)`` and ``e^(-x)dx`` stay).
    """
    if prev is None or not left or left[-1] == " " or not right:
        return False
    tag, first = _last_tag(prev), right[0]
    if first in _CLOSE or first in ",;.!'|\u2032" or first.isspace():
        return False
    if tag in _FRACTIONS:
        return True
    if tag in _SCRIPTS:
        return first not in _OPEN
    # After a function applied without brackets: "sin θ N", not "sin θN" (sin of θN).
    return first.isalnum() and prev.tag in _ROWLIKE and any(
        k.tag == "mo" and (k.text or "").strip() == "\u2061" for k in _children(prev))


def _needs_space(left: str, right: str, tag: str) -> bool:
    """Two operands side by side: keep ``2x`` and ``x(y)``, but write ``sin x``, ``3 4`` and
    ``n ln n`` (``nln n`` would read, and be tokenised, as one word)."""
    if tag == "mtext" or left[-1:].isdigit() and right[:1].isdigit():
        return True
    if right[:1] in "\u2202\u2207" and left[-1:].isalnum():  # ∂x ∂y, not ∂x∂y
        return True
    tail = left.split()[-1] if left.strip() else ""
    if len(tail) > 1 and tail.isalpha() and right[:1].isalnum():
        return True
    if left[-1:].isalpha() and len(right) > 1 and right[:2].isalpha():
        return True
    # After a letter in a script: x^n f(x), a_i b_j (not x^nf(x), whose "nf" is one word).
    return right[:1].isalpha() and _SCRIPT_TAIL_RE.search(left) is not None


def _children(el: etree._Element) -> list:
    return [c for c in el if isinstance(c.tag, str)]


def _mfrac(el: etree._Element) -> str:
    kids = _children(el)
    if len(kids) != 2:
        return _row(kids)
    if el.get("linethickness") in ("0", "0pt", "0px", "0em"):  # binomial coefficient
        return f"({_lin(kids[0])} choose {_lin(kids[1])})"
    return f"{_pres_operand(kids[0], True)}/{_pres_operand(kids[1], True)}"


def _leading_primes(sup: etree._Element) -> tuple[str, list]:
    """Primes that open a superscript row, and the rest: ``h^{\\prime 2}`` is ``h'^2``."""
    if sup.tag not in _ROWLIKE:
        return "", []
    kids = [k for k in _children(sup) if k.tag not in _INVISIBLE]
    primes = ""
    while kids and kids[0].tag in ("mo", "mi") and _text(kids[0]) \
            and set(_text(kids[0])) <= _PRIMES:
        primes += _text(kids.pop(0))
    # LaTeXML puts an invisible separator between the primes and the exponent.
    while primes and kids and kids[0].tag == "mo" and _mo(kids[0]) in ("", ","):
        kids.pop(0)
    return (primes, kids) if primes and kids else ("", [])


def _script(base: etree._Element | str, sub: etree._Element | str | None,
            sup: etree._Element | str | None) -> str:
    op = None
    if isinstance(base, str):
        s = base
    else:
        s = _lin(base)
        op = _named_op(base)
        if op:  # sum_(k = 1)^n, lim_(x → 0): written as munderover writes them
            s = op
        elif s.endswith(" "):  # the base is itself an operator with limits
            s = op = s.rstrip()
        elif base.tag == "mo" and len(s) == 1:  # an operator alone: ∂^2, ∇^2
            pass
        elif not (_atomic(base, False) or _is_atom(s)
                  or s[-1:] in ")]}|'\u2032\u2016\u2225\u27e9"):
            s = f"({s})"
    if sub is not None and not isinstance(sub, str):
        sub = _script_text(sub)
    elif sub:
        sub = _nested(_wrap(sub))
    primes = ""
    if sup is not None and not isinstance(sup, str):
        primes, rest = _leading_primes(sup)
        if primes:
            sup = _wrap(_row(rest))
        else:
            text = _lin(sup)
            only_primes = text and set(text) <= _PRIMES
            sup = text if only_primes else _script_text(sup, text)
    elif sup and not set(sup) <= _PRIMES:
        sup = _nested(_wrap(sup))
    if sub:
        s += "_" + sub
    if primes:
        s += _primes(primes)
    if sup:
        # Primes read as primes: f'(x), not f^(')
        if set(sup) <= _PRIMES:
            s += _primes(sup)
        else:
            s += "^" + sup
    # An operator applies to what follows: "sum_(i = 1)^10 i", not "...^10i".
    return s + " " if op else s


def _nested(text: str) -> str:
    """A script that carries scripts itself is bracketed: ``P_(C_12)``, not ``P_C_12``."""
    if _enclosed(text):
        return text
    depth = 0
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch in "_^":
            return f"({text})"
    return text


def _script_text(el: etree._Element, text: str | None = None) -> str:
    """A subscript or superscript: bare when it is one operand (``x_1``, ``a^+``, ``z^*``)."""
    text = _lin(el) if text is None else text
    if not text:
        return text
    if _atomic(el, False) or _is_atom(text):
        return _nested(text)
    # One operator alone (a^+, z^*, A^†) reads as itself; "-1" or "n + 1" need brackets.
    if el.tag == "mo" and len(text) == 1 and not text.isalnum():
        return text
    return f"({text})"


def _primes(text: str) -> str:
    return text.replace("\u2033", "''").replace("\u2034", "'''").replace("\u2032", "'")


def _msup(el: etree._Element) -> str:
    kids = _children(el)
    if len(kids) != 2:
        return _row(kids)
    return _script(kids[0], None, kids[1])


def _msub(el: etree._Element) -> str:
    kids = _children(el)
    if len(kids) != 2:
        return _row(kids)
    return _script(kids[0], kids[1], None)


def _msubsup(el: etree._Element) -> str:
    kids = _children(el)
    if len(kids) != 3:
        return _row(kids)
    return _script(kids[0], kids[1], kids[2])


def _mmultiscripts(el: etree._Element) -> str:
    kids = _children(el)
    if not kids:
        return ""
    base = _lin(kids[0])
    post, pre, target = [], [], None
    target = post
    for k in kids[1:]:
        if k.tag == "mprescripts":
            target = pre
            continue
        target.append("" if k.tag == "none" else _lin(k))
    s = ""
    for i in range(0, len(pre) - 1, 2):
        s += _script("", pre[i], pre[i + 1]) if (pre[i] or pre[i + 1]) else ""
    # Prescripts hang on an empty base, apart from the base they precede: "{}_c^d X".
    s = "{}" + s + " " + base if s else base
    for i in range(0, len(post) - 1, 2):
        s = _script(s, post[i] or None, post[i + 1] or None)
    return s


def _msqrt(el: etree._Element) -> str:
    return f"sqrt({_row(_children(el))})"


def _mroot(el: etree._Element) -> str:
    kids = _children(el)
    if len(kids) != 2:
        return _row(kids)
    return f"root({_lin(kids[0])}, {_lin(kids[1])})"


def _under_over(el: etree._Element) -> str:
    kids = _children(el)
    if not kids:
        return ""
    base = _lin(kids[0])
    under = over = None
    if el.tag == "munder" and len(kids) == 2:
        under = _lin(kids[1])
    elif el.tag == "mover" and len(kids) == 2:
        over = _lin(kids[1])
    elif el.tag == "munderover" and len(kids) == 3:
        under, over = _lin(kids[1]), _lin(kids[2])
    else:
        return _row(kids)
    accent = _ACCENTS.get(over or "") if under is None else None
    if accent and not _named_op(kids[0]):
        return f"{accent}({base})"
    if over is None and under in ("_", "\u00af", "\u0332", "\u2015"):
        return f"underline({base})"
    if over is None and under in _UNDER_ACCENTS and not _named_op(kids[0]):
        return f"{_UNDER_ACCENTS[under]}({base})"
    op = _LARGE_OPS.get(base) or _named_op(kids[0])
    if not op and base.endswith(" "):
        # The base is an operator that has limits already (<mover><munder>∑ i</munder> n</mover>):
        # one more limit, "sum_i^n", not "(sum_i)^n".
        op = base.rstrip()
    s = op or (base if _atomic(kids[0], False) or _is_atom(base) else f"({base})")
    if under:
        s += "_" + _nested(_wrap(under))
    if over:
        s += "^" + _nested(_wrap(over))
    # A large operator applies to what follows: "sum_(i = 1)^10 i", not "...^10i".
    return s + " " if op else s


def _menclose(el: etree._Element) -> str:
    """Enclosed content, inside the names of the notations that mean something."""
    text = _row(list(el))
    names = []
    for notation in (el.get("notation") or "").split():
        name = _ENCLOSE_NAMES.get(notation)
        if name and name not in names:
            names.append(name)
    for name in reversed(names):
        text = f"{name}({text})"
    return text


def _mglyph(el: etree._Element) -> str:
    """A glyph given as an image reads as its ``alt`` text (the operand it stands for)."""
    return el.get("alt", "").strip()


def _mfenced(el: etree._Element) -> str:
    open_, close = el.get("open", "("), el.get("close", ")")
    seps = "".join((el.get("separators", ",")).split())
    parts = [_lin(c) for c in _children(el)]
    out = ""
    for i, p in enumerate(parts):
        if i:
            sep = seps[min(i - 1, len(seps) - 1)] if seps else ""
            out += sep + (" " if sep in ",;" else "")
        out += p
    return f"{open_}{out}{close}"


def _mtable(el: etree._Element) -> str:
    rows = []
    for tr in _children(el):
        if tr.tag in ("mtr", "mlabeledtr"):
            tds = _children(tr)[1:] if tr.tag == "mlabeledtr" else _children(tr)
            cells = [(_AMP_CELL_RE.sub("", _lin(td)), _is_words(td)) for td in tds]
            cells = [c for c in cells if c[0]]
            row = ""
            for i, (text, words) in enumerate(cells):
                # A cell of words ("if", "otherwise") reads with its neighbours: "-x if x < 0".
                if i:
                    row += " " if words or cells[i - 1][1] else ", "
                row += text
            rows.append(row)
        else:
            rows.append(_lin(tr))
    return "[" + "; ".join(rows) + "]"


def _is_words(el: etree._Element) -> bool:
    """True for a table cell that holds only text (``<mtext>if</mtext>``)."""
    kids = [k for k in el.iter() if isinstance(k.tag, str) and k is not el]
    return bool(kids) and all(k.tag == "mtext" or k.tag in _ROWLIKE for k in kids) \
        and any(k.tag == "mtext" and _text(k).replace(" ", "").isalpha() for k in kids)


def _semantics(el: etree._Element) -> str:
    kids = _children(el)
    for k in kids:
        if k.tag not in ("annotation", "annotation-xml"):
            return _lin(k)
    # Only annotations: fall back on a TeX one, as text.
    for k in kids:
        if k.tag == "annotation" and _text(k):
            return _text(k)
    return ""


def _ms(el: etree._Element) -> str:
    return '"' + (el.text or "") + '"'


_HANDLERS = {
    "mi": _token, "mn": _token, "mtext": _token, "mo": _mo, "ms": _ms,
    "mspace": lambda el: " ",
    "mfrac": _mfrac, "msup": _msup, "msub": _msub, "msubsup": _msubsup,
    "mmultiscripts": _mmultiscripts, "msqrt": _msqrt, "mroot": _mroot,
    "munder": _under_over, "mover": _under_over, "munderover": _under_over,
    "mfenced": _mfenced, "mtable": _mtable, "semantics": _semantics,
    "menclose": _menclose, "mglyph": _mglyph,
}


# --- Content MathML -------------------------------------------------------------------------
# Precedence: higher binds tighter.
_INFIX = {
    "plus": (" + ", 10), "minus": (" - ", 10), "times": ("*", 20), "divide": ("/", 20),
    "eq": (" = ", 1), "neq": (" != ", 1), "lt": (" < ", 1), "gt": (" > ", 1), "leq": (" <= ", 1),
    "geq": (" >= ", 1), "approx": (" ~ ", 1), "equivalent": (" <=> ", 0), "implies": (" => ", 0),
    "and": (" and ", 0), "or": (" or ", 0), "xor": (" xor ", 0), "union": (" \u222a ", 5),
    "intersect": (" \u2229 ", 5), "in": (" \u2208 ", 1), "notin": (" \u2209 ", 1),
    "subset": (" \u2286 ", 1), "prsubset": (" \u2282 ", 1), "notsubset": (" \u2288 ", 1),
    "notprsubset": (" \u2284 ", 1), "setdiff": (" \\ ", 5), "cartesianproduct": (" \u00d7 ", 20),
    "vectorproduct": (" \u00d7 ", 20), "scalarproduct": (" \u22c5 ", 20),
    "outerproduct": (" \u2297 ", 20), "compose": (" \u2218 ", 25), "rem": (" mod ", 20),
    "factorof": (" | ", 1),
}
# Operators written large, with their limits, when they carry bound variables or a domain.
_BIG = {"sum": "sum", "product": "prod", "plus": "sum", "times": "prod", "int": "int",
        "union": "union", "intersect": "intersection", "and": "\u22c0", "or": "\u22c1",
        "max": "max", "min": "min", "gcd": "gcd", "lcm": "lcm"}
_QUALIFIERS = ("bvar", "lowlimit", "uplimit", "degree", "logbase", "condition",
               "domainofapplication", "momentabout")
_FUNCS = {"quotient": "quotient", "factorof": "divides", "max": "max", "min": "min", "gcd": "gcd",
          "lcm": "lcm", "exp": "exp", "ln": "ln", "floor": "floor", "ceiling": "ceil",
          "conjugate": "conj", "arg": "arg", "real": "Re", "imaginary": "Im", "determinant": "det",
          "transpose": "transpose", "not": "not", "card": "card", "mean": "mean", "sdev": "sd",
          "variance": "var", "median": "median", "mode": "mode", "sum": "sum", "product": "prod",
          "int": "int", "limit": "lim", "diff": "d/dx", "partialdiff": "d/d"}
_TRIG = {"sin", "cos", "tan", "sec", "csc", "cot", "sinh", "cosh", "tanh", "sech", "csch", "coth",
         "arcsin", "arccos", "arctan", "arcsec", "arccsc", "arccot", "arcsinh", "arccosh",
         "arctanh", "log"}
_CONSTANTS = {"pi": "pi", "exponentiale": "e", "imaginaryi": "i", "infinity": "oo", "true": "true",
              "false": "false", "emptyset": "{}", "eulergamma": "gamma", "notanumber": "NaN",
              "integers": "\u2124", "reals": "\u211d", "rationals": "\u211a",
              "naturalnumbers": "\u2115", "complexes": "\u2102", "primes": "\u2119",
              "ident": "id"}
_CONTENT_TAGS = frozenset({"apply", "ci", "cn", "csymbol", "bind", "set", "list", "vector",
                           "matrix", "interval", "piecewise", "cs", "share", "cerror", "cbytes",
                           "bvar", "lowlimit", "uplimit", "degree", "logbase", "condition",
                           "domainofapplication", "momentabout", "matrixrow", "lambda", "piece",
                           "otherwise", "forall", "exists", "selector", "inverse", "moment",
                           "tendsto"}
                          | set(_INFIX) | set(_FUNCS) | _TRIG | set(_CONSTANTS)
                          | {"power", "root", "abs", "factorial", "minus"})
_ATOMIC = 100
_CSYMBOL_OPS = {"superscript": "power", "subscript": "subscript", "divide": "divide",
                "times": "times", "plus": "plus", "minus": "minus", "equals": "eq"}


def _cn(el: etree._Element) -> str:
    kind = el.get("type", "")
    parts = [(el.text or "").strip()]
    for sep in el:
        if sep.tag == "sep":
            parts.append((sep.tail or "").strip())
    if kind == "rational" and len(parts) == 2:
        return f"{parts[0]}/{parts[1]}"
    if kind == "e-notation" and len(parts) == 2:
        return f"{parts[0]}e{parts[1]}"
    if kind == "complex-cartesian" and len(parts) == 2:
        return f"{parts[0]} + {parts[1]}i"
    return "".join(parts)


def _content(el: etree._Element) -> tuple[str, int]:
    """Linear text and precedence of a Content MathML node."""
    tag = el.tag
    if tag == "cn":
        s = _cn(el)
        return s, (_ATOMIC if not s.startswith("-") and "/" not in s else 15)
    if tag in ("ci", "cs"):
        kids = _children(el)
        s = _lin(kids[0]) if kids else _text(el)
        return s, _ATOMIC
    if tag == "csymbol":
        name = _text(el)
        return _CONSTANTS.get(name, name), _ATOMIC
    if tag in _CONSTANTS:
        return _CONSTANTS[tag], _ATOMIC
    if tag in ("set", "list", "vector", "matrix") and any(
            c.tag in _QUALIFIERS for c in _children(el)):
        return _by_rule(el), _ATOMIC
    if tag in ("set", "list", "vector"):
        inner = ", ".join(_content(c)[0] for c in _children(el) if c.tag != "bvar")
        brackets = {"set": "{}", "list": "[]", "vector": "()"}[tag]
        return brackets[0] + inner + brackets[1], _ATOMIC
    if tag == "piecewise":
        return _piecewise(el), _ATOMIC
    if tag == "lambda":
        return _lambda(el), 0
    if tag == "interval":
        kids = [_content(c)[0] for c in _children(el)]
        closure = el.get("closure", "closed")
        left = "[" if closure in ("closed", "closed-open") else "("
        right = "]" if closure in ("closed", "open-closed") else ")"
        return f"{left}{', '.join(kids)}{right}", _ATOMIC
    if tag == "matrix":
        rows = ["[" + ", ".join(_content(c)[0] for c in _children(r)) + "]" for r in _children(el)]
        return "[" + ", ".join(rows) + "]", _ATOMIC
    if tag in ("apply", "bind"):
        return _apply(el)
    if _children(el):
        return _row(_children(el)), 0
    return _text(el) or tag, _ATOMIC


def _operand(el: etree._Element, min_prec: int) -> str:
    s, p = _content(el)
    return s if p >= min_prec else f"({s})"


def _bvars(quals: list) -> list[tuple[str, str | None]]:
    """(variable, degree) of each ``bvar``: ``<bvar><ci>x</ci><degree>2</degree></bvar>``."""
    out = []
    for q in quals:
        if q.tag == "bvar":
            kids = _children(q)
            var = next((_content(k)[0] for k in kids if k.tag != "degree"), _text(q))
            deg = next((_qual_text(k) for k in kids if k.tag == "degree"), None)
            out.append((var, deg))
    return out


def _qual_text(q: etree._Element) -> str:
    """The expression a qualifier (``lowlimit``, ``condition``, ``degree`` ...) holds."""
    kids = _children(q)
    return _content(kids[0])[0] if len(kids) == 1 else _row(kids) if kids else _text(q)


def _qual(quals: list, tag: str) -> str | None:
    return next((_qual_text(q) for q in quals if q.tag == tag), None)


def _domain(quals: list, names: list[str], interval: etree._Element | None) -> tuple:
    """The limits written under and over a large operator: ``(x = a, b)``, ``(x ∈ B, None)``."""
    low, up = _qual(quals, "lowlimit"), _qual(quals, "uplimit")
    if interval is not None:
        ends = [_content(c)[0] for c in _children(interval)]
        if len(ends) == 2:
            low, up = ends
    var = ", ".join(names)
    if low is not None:
        return (f"{var} = {low}" if var else low), up
    cond = _qual(quals, "condition")
    if cond is not None:
        return cond, up
    dom = _qual(quals, "domainofapplication")
    if dom is not None:
        return (f"{var} \u2208 {dom}" if var else dom), up
    return (var or None), up


def _limits(name: str, under: str | None, over: str | None) -> str:
    s = name
    if under:
        s += "_" + _nested(_wrap(under))
    if over:
        s += "^" + _nested(_wrap(over))
    return s


def _big(op: str, quals: list, args: list) -> tuple[str, int]:
    """``sum_(i = 0)^100 x^i``, ``int_0^1 x^2 dx``, ``lim_(x → 0) sin(x)``, ``⋀_(i = 0)^n ...``."""
    interval = None
    if len(args) > 1 and args[0].tag == "interval":
        interval, args = args[0], args[1:]
    bvars = _bvars(quals)
    names = [v for v, _ in bvars]
    body = ", ".join(_operand(a, 20) for a in args)
    if op == "int":
        low, up = _qual(quals, "lowlimit"), _qual(quals, "uplimit")
        if interval is not None and len(_children(interval)) == 2:
            low, up = (_content(c)[0] for c in _children(interval))
        if low is None and up is None:  # a condition or a domain, written under the sign
            low = _qual(quals, "condition")
            low = _qual(quals, "domainofapplication") if low is None else low
        text = _limits("int", low, up) + " " + body
        text += "".join(f" d{v}" for v in names)
        return text, 5
    if op == "limit":
        low = _qual(quals, "lowlimit")
        under = f"{', '.join(names)} \u2192 {low}" if low is not None else _qual(quals, "condition")
        return _limits("lim", under, None) + " " + body, 5
    under, over = _domain(quals, names, interval)
    return _limits(_BIG[op], under, over) + " " + body, 5


def _quantifier(op: str, quals: list, args: list) -> tuple[str, int]:
    """``∀x: x - x = 0``, ``∃x ∈ ℤ: f(x) = 0``, ``∀x, x > 0: ...``."""
    names = ", ".join(v for v, _ in _bvars(quals))
    s = ("\u2200" if op == "forall" else "\u2203") + names
    dom = _qual(quals, "domainofapplication")
    if dom is not None:
        s += f" \u2208 {dom}"
    cond = _qual(quals, "condition")
    if cond is not None:
        s += f", {cond}"
    return f"{s}: " + ", ".join(_content(a)[0] for a in args), 0


def _derivative(op: str, quals: list, args: list) -> tuple[str, int]:
    """``d/dx(sin(x))``, ``d^2/dx^2(x^4)``, ``∂^2/(∂x ∂y)(f(x, y))``, ``f'``."""
    bvars = _bvars(quals)
    inner = ", ".join(_content(a)[0] for a in args)
    if not bvars:
        if op == "diff" and len(args) == 1:  # the derivative of a function: f'
            return _operand(args[0], 31) + "'", 40
        if op == "partialdiff" and len(args) == 2 and args[0].tag == "list":
            index = ", ".join(_content(c)[0] for c in _children(args[0]))
            return f"D_{_wrap(index)} {_operand(args[1], 31)}", 30
        return f"{'d' if op == 'diff' else '∂'}({inner})", _ATOMIC
    d = "d" if op == "diff" else "\u2202"
    parts, degrees = [], []
    for var, deg in bvars:
        parts.append(f"{d}{var}" + (f"^{_wrap(deg)}" if deg and deg != "1" else ""))
        degrees.append(deg or "1")
    total = _qual(quals, "degree")
    if total is None:
        total = str(sum(int(g) for g in degrees)) if all(g.isdigit() for g in degrees) \
            else " + ".join(degrees)
    top = d if total == "1" else f"{d}^{_wrap(total)}"
    bottom = parts[0] if len(parts) == 1 else "(" + " ".join(parts) + ")"
    return f"{top}/{bottom}({inner})", _ATOMIC


def _by_rule(el: etree._Element) -> str:
    """A set, list or matrix given by a rule: ``{x | x < 5}``, ``{2*x | x ∈ ℤ}``."""
    kids = _children(el)
    quals = [k for k in kids if k.tag in _QUALIFIERS]
    rest = [k for k in kids if k.tag not in _QUALIFIERS]
    names = [v for v, _ in _bvars(quals)]
    expr = _content(rest[-1])[0] if rest else ", ".join(names)
    cond = _qual(quals, "condition")
    if cond is None:
        dom = _qual(quals, "domainofapplication")
        cond = f"{', '.join(names)} \u2208 {dom}" if dom is not None else ""
    brackets = {"set": "{}", "list": "[]", "vector": "()", "matrix": "[]"}[el.tag]
    inner = f"{expr} | {cond}" if cond else expr
    return brackets[0] + inner + brackets[1]


def _piecewise(el: etree._Element) -> str:
    """``{-x if x < 0; 0 if x = 0; x otherwise}``."""
    pieces = []
    for k in _children(el):
        parts = [_content(c)[0] for c in _children(k)]
        if k.tag == "piece" and len(parts) == 2:
            pieces.append(f"{parts[0]} if {parts[1]}")
        elif k.tag == "otherwise" and parts:
            pieces.append(f"{parts[0]} otherwise")
    return "{" + "; ".join(pieces) + "}"


def _lambda(el: etree._Element) -> str:
    """``x ↦ sin(x + 1)``, ``(x, y) ↦ ...``."""
    kids = _children(el)
    quals = [k for k in kids if k.tag in _QUALIFIERS]
    rest = [k for k in kids if k.tag not in _QUALIFIERS]
    names = [v for v, _ in _bvars(quals)]
    head = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
    dom = _qual(quals, "domainofapplication")
    if dom is not None:
        head = f"{head} \u2208 {dom}" if names else dom
    body = ", ".join(_content(k)[0] for k in rest)
    return f"{head} \u21a6 {body}" if names or dom else body


def _apply(el: etree._Element) -> tuple[str, int]:
    kids = _children(el)
    if not kids:
        return "", _ATOMIC
    head, args = kids[0], kids[1:]
    qualifiers = [a for a in args if a.tag in _QUALIFIERS]
    args = [a for a in args if a not in qualifiers]
    op = head.tag
    if op == "csymbol":
        # LaTeXML writes layout it cannot interpret as csymbols of the "ambiguous" dictionary.
        op = _CSYMBOL_OPS.get(_text(head), _text(head))
    has_domain = any(q.tag != "degree" and q.tag != "logbase" and q.tag != "momentabout"
                     for q in qualifiers) or (op in ("int", "sum", "product") and len(args) > 1
                                              and args[0].tag == "interval")
    if op in ("forall", "exists"):
        return _quantifier(op, qualifiers, args)
    if op in ("diff", "partialdiff"):
        return _derivative(op, qualifiers, args)
    if op == "limit" or op in ("int", "sum", "product") or op in _BIG and has_domain:
        return _big(op, qualifiers, args)
    if op == "subscript" and len(args) == 2:
        return f"{_operand(args[0], 31)}_{_operand(args[1], 31)}", 30
    if op == "minus" and len(args) == 1:
        return "-" + _operand(args[0], 20), 15
    if op == "tendsto" and len(args) == 2:
        side = {"above": "+", "below": "-"}.get(head.get("type", ""), "")
        right = _operand(args[1], 31) + "^" + side if side else _operand(args[1], 2)
        return f"{_operand(args[0], 2)} \u2192 {right}", 1
    if op in _INFIX:
        sym, prec = _INFIX[op]
        # Left-associative: the right operand of - and / must bind tighter.
        parts = [_operand(a, prec + (1 if i and op in ("minus", "divide") else 0))
                 for i, a in enumerate(args)]
        return sym.join(parts), prec
    if op == "power" and len(args) == 2:
        return f"{_operand(args[0], 31)}^{_operand(args[1], 31)}", 30
    if op == "root":
        degree = next((q for q in qualifiers if q.tag == "degree"), None)
        inner = _content(args[0])[0] if args else ""
        if degree is None:
            return f"sqrt({inner})", _ATOMIC
        return f"root({inner}, {_row(_children(degree))})", _ATOMIC
    if op == "abs" and args:
        return f"|{_content(args[0])[0]}|", _ATOMIC
    if op == "card" and args:
        return f"|{_content(args[0])[0]}|", _ATOMIC
    if op == "factorial" and args:
        return _operand(args[0], 40) + "!", 40
    if op == "selector" and args:
        index = ", ".join(_content(a)[0] for a in args[1:])
        return f"{_operand(args[0], 31)}_{_wrap(index)}" if index else _content(args[0])[0], 30
    if op == "inverse" and args:
        return f"{_operand(args[0], 31)}^(-1)", 30
    if op == "moment":
        degree, about = _qual(qualifiers, "degree"), _qual(qualifiers, "momentabout")
        data = ", ".join(_content(a)[0] for a in args)
        data = data if len(args) == 1 and _operand(args[0], 31) == data else f"({data})"
        s = "\u27e8" + data + (f"^{_wrap(degree)}" if degree else "") + "\u27e9"
        about = about if about is None or about.isalnum() else _wrap(about)
        return (f"{s}_{about}" if about else s), 30
    if op == "log":
        base = next((q for q in qualifiers if q.tag == "logbase"), None)
        name = f"log_{_wrap(_row(_children(base)))}" if base is not None else "log"
        return f"{name}({', '.join(_content(a)[0] for a in args)})", _ATOMIC
    if op in _TRIG:
        return f"{op}({', '.join(_content(a)[0] for a in args)})", _ATOMIC
    name = _FUNCS.get(op) or (op if op != "apply" else _content(head)[0])
    if head.tag in ("apply", "ci", "bind", "semantics") and op not in _FUNCS:
        name = _wrap(_content(head)[0])
    inner = ", ".join(_content(a)[0] for a in args)
    bvars = [v for v, _ in _bvars(qualifiers)]
    if bvars:  # grad, laplacian ... of an expression in bound variables: a function of them
        head_vars = bvars[0] if len(bvars) == 1 else "(" + ", ".join(bvars) + ")"
        inner = f"{head_vars} \u21a6 {inner}"
    return f"{name}({inner})", _ATOMIC
