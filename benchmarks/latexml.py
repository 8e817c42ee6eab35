"""Do LaTeXML's MathML and latex2mathml's give the same linear text and BM25 tokens?

Usage::

    python -m benchmarks.latexml [--data DIR] [--out FILE.json] [--examples N]

The forum records (``corpus/mse.jsonl`` and the ``match_mse`` queries) carry MathML made by
LaTeXML, each ``<math>`` with an ``alttext`` holding the LaTeX it came from; the other corpora were
made by latex2mathml.  For every such formula this converts the ``alttext`` with latex2mathml
(``pip install latex2mathml``; only this benchmark needs it), writes both as linear text
(:func:`mathcore.linear.to_linear`) and BM25 tokens (:func:`mathcore.tokens.analyze`), and
reports the share of formulas whose tokens are equal, the mean Jaccard similarity of their
token sets, and the formulas whose tokens differ counted by kind of difference (one formula can
show several kinds), with examples.

The alttext is unescaped first (the posts' LaTeX was HTML-escaped once too often: ``&lt;``),
and LaTeXML's line-breaking comments (``%`` and a newline) are removed.  Some differences are
latex2mathml's own failures (``\\color``, ``\\qvar@construct``, ``\\not=`` written ``⧸ =``): the
kind "latex2mathml artefact" counts those, and the figures are also given without them.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from benchmarks.machine import DEFAULT_DATA, machine, save_result

SOURCES = (("corpus/mse.jsonl", ("question", "answer")),
           ("tasks/match_mse/queries.jsonl", ("text",)))
_COMMENT_RE = re.compile(r"(?<!\\)%\s*")

# Kinds of difference, each a test on the tokens found on one side only (lx: LaTeXML,
# l2m: latex2mathml) and the LaTeX.  A formula counts once for each kind it shows.
_LARGE_OPS = ("\u2211", "\u220f", "\u222b", "\u22c3", "\u22c2", "sum", "prod", "int", "union",
              "intersection", "lim", "max", "min", "sup", "inf")
_VARIANTS = set("\u22c5\u00b7\u223c~\u2225\u2016\u2216\u29f5\u21d4\u27fa\u21d2\u27f9\u2223|"
                "\u2a7e\u2a7d\u2265\u2264\u2219\u2022\u2212")
_L2M_ARTEFACTS = {"@", "construct", "qvar", "rgb", "par", "$", "\u29f8"}
KINDS = {
    "latex2mathml artefact (\\color, \\qvar@construct, \\not=, \\par)":
        lambda lx, l2m, tex: bool(l2m & _L2M_ARTEFACTS) or "\\color" in tex,
    "large operator: \u2211 vs sum (inline msubsup vs display munderover)":
        lambda lx, l2m, tex: any(t.startswith(_LARGE_OPS) for t in lx | l2m),
    "styled letter: \U0001d451x vs dx, \U0001d5a2, \U0001d7ce (math alphanumerics)":
        lambda lx, l2m, tex: any(_styled(t) for t in lx | l2m),
    "operator variant: \u22c5/\u00b7, \u223c/~, \u2225/\u2016, \u2216/\u29f5, \u21d4/\u27fa":
        lambda lx, l2m, tex: any(set(t) & _VARIANTS for t in lx | l2m),
    "ellipsis: \u2026 vs ...":
        lambda lx, l2m, tex: any("\u2026" in t or "\u22ef" in t for t in lx | l2m),
    "prime: \u2032 vs '":
        lambda lx, l2m, tex: any(set(t) & set("\u2032\u2033\u2034") for t in lx | l2m),
    "negation slash (U+0338) vs precomposed \u2260":
        lambda lx, l2m, tex: any("\u0338" in t or "\u2260" in t for t in lx | l2m),
    "HTML-escaped LaTeX: &lt; &gt; &#39; &amp; read letter by letter":
        lambda lx, l2m, tex: bool(lx & {"lt", "gt", "amp", "39", "#", "&"}),
    "TeX macro LaTeXML did not know (\\gt, \\lt, \\geqslant)":
        lambda lx, l2m, tex: "\\" in lx,
    "invisible operator (U+2061..2064) left in text":
        lambda lx, l2m, tex: any(set(t) & set("\u2061\u2062\u2063\u2064") for t in lx),
}
GLUED = "glued words: invisible times dropped without a space (nln, xdx, nsum)"


def _styled(token: str) -> bool:
    return any(0x1D400 <= ord(c) < 0x1D800 or c in "\u2133\u2112\u2131\u212c\u210e" for c in token)


def _glued(x_only: set[str], l_only: set[str], x_tokens: list[str],
           l_tokens: list[str]) -> bool:
    """A token on one side is two neighbouring tokens of the other, or the same split."""
    pairs_x = {a + b for a, b in zip(x_tokens, x_tokens[1:], strict=False)}
    pairs_l = {a + b for a, b in zip(l_tokens, l_tokens[1:], strict=False)}
    return bool(x_only & pairs_l or l_only & pairs_x)


def formulas(data: Path):
    """(source, alttext LaTeX, LaTeXML MathML) of every formula with an alttext."""
    from mathcore.mathml import split_math

    for rel, fields in SOURCES:
        path = data / rel
        if not path.is_file():
            print(f"{path}: missing, skipped", file=sys.stderr)
            continue
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                for field in fields:
                    for seg in split_math(record.get(field) or ""):
                        if seg.is_math and "alttext=" in seg.text[:200]:
                            yield rel, seg.text


def compare(data: Path, examples: int = 3) -> dict:
    """Linear text and tokens of each LaTeXML formula against latex2mathml's of its alttext."""
    try:
        from latex2mathml.converter import convert
    except ImportError:
        raise ImportError("this benchmark needs latex2mathml: pip install latex2mathml") from None
    from mathcore.linear import to_linear
    from mathcore.mathml import MathMLError, parse_math
    from mathcore.tokens import analyze

    counts: Counter = Counter()
    kinds: Counter = Counter()
    samples: dict[str, list[dict]] = {}
    jaccard = jaccard_clean = 0.0
    start = time.perf_counter()
    for _, source in formulas(data):
        try:
            root = parse_math(source)
        except MathMLError:
            counts["refused"] += 1
            continue
        tex = root.get("alttext") or ""
        tex = _COMMENT_RE.sub("", html.unescape(tex))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                other = parse_math(convert(tex))
        except Exception:  # latex2mathml raises many kinds of error on what it cannot read
            counts["latex2mathml failed"] += 1
            continue
        counts["formulas"] += 1
        x_lin, l_lin = to_linear(root), to_linear(other)
        x_tok, l_tok = analyze(x_lin), analyze(l_lin)
        xs, ls = set(x_tok), set(l_tok)
        jac = len(xs & ls) / len(xs | ls) if xs | ls else 1.0
        jaccard += jac
        counts["same linear text"] += x_lin == l_lin
        if x_tok == l_tok:
            counts["same tokens"] += 1
            counts["clean"] += 1
            jaccard_clean += jac
            counts["clean same tokens"] += 1
            continue
        x_only = set((Counter(x_tok) - Counter(l_tok)).keys())
        l_only = set((Counter(l_tok) - Counter(x_tok)).keys())
        found = [k for k, test in KINDS.items() if test(x_only, l_only, tex)]
        if _glued(x_only, l_only, x_tok, l_tok):
            found.append(GLUED)
        if not found:
            found = ["other"]
        artefact = found[0].startswith("latex2mathml artefact")
        if not artefact:
            counts["clean"] += 1
            jaccard_clean += jac
        for kind in found:
            kinds[kind] += 1
            if len(samples.setdefault(kind, [])) < examples:
                samples[kind].append({"latex": tex[:200], "latexml": x_lin[:200],
                                      "latex2mathml": l_lin[:200]})
    n, clean = counts["formulas"], counts["clean"]
    return {"formulas": n, "refused": counts["refused"],
            "latex2mathml_failed": counts["latex2mathml failed"],
            "same_linear_share": counts["same linear text"] / max(n, 1),
            "same_tokens_share": counts["same tokens"] / max(n, 1),
            "jaccard_mean": jaccard / max(n, 1),
            "without_latex2mathml_artefacts": {
                "formulas": clean, "same_tokens_share": counts["clean same tokens"] / max(clean, 1),
                "jaccard_mean": jaccard_clean / max(clean, 1)},
            "differing": n - counts["same tokens"],
            "kinds": dict(kinds.most_common()), "examples": samples,
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latexml",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="the dev data folder (corpus/, tasks/)")
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/latexml.json"))
    parser.add_argument("--examples", type=int, default=3, help="examples kept per kind")
    args = parser.parse_args(argv)

    import latex2mathml

    from mathcore.linear import LINEAR_VERSION
    from mathcore.tokens import ANALYZER_VERSION

    figures = compare(args.data, args.examples)
    if not figures["formulas"]:
        print(f"no LaTeXML formulas with an alttext under {args.data}", file=sys.stderr)
        return 1
    info = machine()
    version = getattr(latex2mathml, "__version__", None)
    if version is None:
        from importlib.metadata import version as _version
        version = _version("latex2mathml")
    print(f"LaTeXML MathML vs latex2mathml {version} of its alttext (linear {LINEAR_VERSION}, "
          f"analyzer {ANALYZER_VERSION}; python {info['python']}, {info['platform']})")
    clean = figures["without_latex2mathml_artefacts"]
    print(f"formulas compared       {figures['formulas']:7d}  (latex2mathml failed on "
          f"{figures['latex2mathml_failed']}, refused {figures['refused']})")
    print(f"same linear text        {figures['same_linear_share']:7.2%}")
    print(f"same BM25 tokens        {figures['same_tokens_share']:7.2%}   without latex2mathml "
          f"artefacts {clean['same_tokens_share']:7.2%} of {clean['formulas']}")
    print(f"token-set Jaccard, mean {figures['jaccard_mean']:7.4f}   without latex2mathml "
          f"artefacts {clean['jaccard_mean']:7.4f}")
    print(f"\n{figures['differing']} formulas with different tokens, by kind of difference:")
    for kind, count in figures["kinds"].items():
        example = figures["examples"][kind][0]
        print(f"  {count:6d}  {kind}\n          e.g. {example['latex'][:70]!r}\n"
              f"            LaTeXML      {example['latexml'][:90]}\n"
              f"            latex2mathml {example['latex2mathml'][:90]}")
    report = {"benchmark": "latexml", "latex2mathml": version, "linear": LINEAR_VERSION,
              "analyzer": ANALYZER_VERSION, "machine": info, "data": str(args.data), **figures}
    save_result(args.out, report)
    print(f"\nsaved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
