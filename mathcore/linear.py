"""MathML as readable linear math, for the embedder.

Presentation MathML is written the way a person would type it: ``(x^2 + 1)/(2x)``,
``sqrt(3)``, ``x_1^2``, ``sum_(i=1)^n i``.  Content MathML (``apply``/``ci``/``cn``/
``csymbol``) is written with operator precedence, so ``<apply><times/><cn>2</cn><apply><plus/>
<ci>x</ci><cn>1</cn></apply></apply>`` becomes ``2*(x + 1)``.  Parallel markup
(``<semantics>``) uses its first child; annotations (LaTeX, Content) are skipped.

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
LINEAR_VERSION = 2

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
              "\u2229\u2227\u2228\u2223\u2218*")
_OPEN = set("([{\u27e8\u2308\u230a")
_CLOSE = set(")]}\u27e9\u2309\u230b")
_ACCENTS = {
    "\u00af": "bar", "\u2015": "bar", "\u203e": "bar", "_": "bar", "\u0332": "bar",
    "^": "hat", "\u02c6": "hat", "\u0302": "hat",
    "\u2192": "vec", "\u20d7": "vec",
    "~": "tilde", "\u02dc": "tilde", "\u0303": "tilde",
    "\u02d9": "dot", ".": "dot", "\u00a8": "ddot", "\u2322": "arc", "\u23dc": "arc",
}
_LARGE_OPS = {"\u2211": "sum", "\u220f": "prod", "\u222b": "int", "\u222e": "oint", "lim": "lim",
              "\u22c3": "union", "\u22c2": "intersection", "max": "max", "min": "min"}
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
                        "malignmark", "maligngroup", "mglyph"})


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
    return OPERATOR_TEXT[t] if t in OPERATOR_TEXT else t.translate(_FOLD)


def _token(el: etree._Element) -> str:
    t = _text(el)
    if not t and el.text and el.tag == "mtext":  # latex2mathml writes "\ " as an <mtext>
        return " "
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
    if el.tag != "mo":
        return None
    t = _text(el)
    if t in _LARGE_OPS:
        return _LARGE_OPS[t]
    return t if len(t) > 1 and t.isalpha() else None


def _row(children: list) -> str:
    """Join a row's children with the spacing a reader expects around operators."""
    out: list[str] = []
    prev_kind = "start"  # start | operand | op | open
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
                or integral and _differential(s, children[i + 1:i + 2])):
            out.append(" ")
        out.append(s)
        integral = integral or s.startswith(_INTEGRALS)
        prev_kind = "operand"
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


def _needs_space(left: str, right: str, tag: str) -> bool:
    """Two operands side by side: keep ``2x`` and ``x(y)``, but write ``sin x``, ``3 4`` and
    ``n ln n`` (``nln n`` would read, and be tokenised, as one word)."""
    if tag == "mtext" or left[-1:].isdigit() and right[:1].isdigit():
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
        elif not (_atomic(base, False) or _is_atom(s) or s[-1:] in ")]}|'\u2032\u2016\u2225"):
            s = f"({s})"
    if sub is not None and not isinstance(sub, str):
        sub = _pres_operand(sub)
    elif sub:
        sub = _wrap(sub)
    primes = ""
    if sup is not None and not isinstance(sup, str):
        primes, rest = _leading_primes(sup)
        if primes:
            sup = _wrap(_row(rest))
        else:
            text = _lin(sup)
            only_primes = text and set(text) <= _PRIMES
            sup = text if only_primes or _atomic(sup, False) or _is_atom(text) or not text \
                else f"({text})"
    elif sup and not set(sup) <= _PRIMES:
        sup = _wrap(sup)
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
    s += base
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
    if accent:
        return f"{accent}({base})"
    if over is None and under in _ACCENTS and under in ("_", "\u00af", "\u0332", "\u2015"):
        return f"underline({base})"
    op = _LARGE_OPS.get(base) or _named_op(kids[0])
    s = op or (base if _atomic(kids[0], False) or _is_atom(base) else f"({base})")
    if under:
        s += "_" + _wrap(under)
    if over:
        s += "^" + _wrap(over)
    # A large operator applies to what follows: "sum_(i = 1)^10 i", not "...^10i".
    return s + " " if op else s


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
            cells = [_AMP_CELL_RE.sub("", _lin(td)) for td in _children(tr)]
            if tr.tag == "mlabeledtr":
                cells = cells[1:]
            rows.append(", ".join(c for c in cells if c) if len(cells) > 1 else "".join(cells))
        else:
            rows.append(_lin(tr))
    return "[" + "; ".join(rows) + "]"


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
}


# --- Content MathML -------------------------------------------------------------------------
# Precedence: higher binds tighter.
_INFIX = {
    "plus": (" + ", 10), "minus": (" - ", 10), "times": ("*", 20), "divide": ("/", 20),
    "eq": (" = ", 1), "neq": (" != ", 1), "lt": (" < ", 1), "gt": (" > ", 1), "leq": (" <= ", 1),
    "geq": (" >= ", 1), "approx": (" ~ ", 1), "equivalent": (" <=> ", 0), "implies": (" => ", 0),
    "and": (" and ", 0), "or": (" or ", 0), "union": (" U ", 5), "intersect": (" n ", 5),
    "in": (" in ", 1), "notin": (" not in ", 1), "subset": (" subset ", 1),
    "compose": (" o ", 25), "rem": (" mod ", 20),
}
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
              "false": "false", "emptyset": "{}", "eulergamma": "gamma", "notanumber": "NaN"}
_CONTENT_TAGS = frozenset({"apply", "ci", "cn", "csymbol", "bind", "set", "list", "vector",
                           "matrix", "interval", "piecewise", "cs", "share", "cerror", "cbytes",
                           "bvar", "lowlimit", "uplimit", "degree", "logbase", "condition",
                           "domainofapplication", "momentabout", "matrixrow"}
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
    if tag in ("set", "list", "vector"):
        inner = ", ".join(_content(c)[0] for c in _children(el) if c.tag != "bvar")
        brackets = {"set": "{}", "list": "[]", "vector": "()"}[tag]
        return brackets[0] + inner + brackets[1], _ATOMIC
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


def _apply(el: etree._Element) -> tuple[str, int]:
    kids = _children(el)
    if not kids:
        return "", _ATOMIC
    head, args = kids[0], kids[1:]
    qualifiers = [a for a in args if a.tag in ("bvar", "lowlimit", "uplimit", "degree", "logbase",
                                               "condition", "domainofapplication", "momentabout")]
    args = [a for a in args if a not in qualifiers]
    op = head.tag
    if op == "csymbol":
        # LaTeXML writes layout it cannot interpret as csymbols of the "ambiguous" dictionary.
        op = _CSYMBOL_OPS.get(_text(head), _text(head))
    if op == "subscript" and len(args) == 2:
        return f"{_operand(args[0], 31)}_{_operand(args[1], 31)}", 30
    if op == "minus" and len(args) == 1:
        return "-" + _operand(args[0], 20), 15
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
    if op == "factorial" and args:
        return _operand(args[0], 40) + "!", 40
    if op == "log":
        base = next((q for q in qualifiers if q.tag == "logbase"), None)
        name = f"log_{_wrap(_row(_children(base)))}" if base is not None else "log"
        return f"{name}({', '.join(_content(a)[0] for a in args)})", _ATOMIC
    if op in _TRIG:
        return f"{op}({', '.join(_content(a)[0] for a in args)})", _ATOMIC
    if op in ("diff", "partialdiff"):
        bvar = next((q for q in qualifiers if q.tag == "bvar"), None)
        var = _row(_children(bvar)) if bvar is not None else "x"
        inner = ", ".join(_content(a)[0] for a in args)
        return f"d/d{var}({inner})", _ATOMIC
    name = _FUNCS.get(op) or (op if op != "apply" else _content(head)[0])
    if head.tag in ("apply", "ci") and op not in _FUNCS:
        name = _wrap(_content(head)[0])
    return f"{name}({', '.join(_content(a)[0] for a in args)})", _ATOMIC
