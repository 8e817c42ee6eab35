"""Linear text of MathML (mathcore.linear) and of whole records (mathcore.records).

Exact strings for a table of small formulas, then every formula of the real samples: the 64
ARQMath records (LaTeXML, when ``../shared/data`` is there; 4 of them are always in
``tests/data``), the latex2mathml corpus sample and the producer variants.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from mathcore import Record, derive, query_text, to_linear
from mathcore.linear import _CONTENT_TAGS, _HANDLERS, _INVISIBLE, _ROWLIKE
from mathcore.mathml import MATHML_NS, MathMLError, iter_formulas, parse_math
from mathcore.records import RecordError

DATA = Path(__file__).resolve().parent / "data"
MSE_ALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "samples" / \
    "mse_arqmath_mathml.jsonl"
# A MathML tag left in linear text (a "<" operator, as in "x < 2" or "<v_1, v_2>", is fine).
LEFTOVER_TAG = re.compile(r"</?(?:m[a-z]+|math|semantics|annotation(?:-xml)?|apply|ci|cn|"
                          r"csymbol|sep|none)\b|xmlns|alttext")


def lin(body: str) -> str:
    return to_linear(parse_math(f'<math xmlns="{MATHML_NS}">{body}</math>'))


def _records(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# --- presentation MathML -------------------------------------------------------------------

PRESENTATION = [
    ("fraction of sums",
     "<mfrac><mrow><msup><mi>x</mi><mn>2</mn></msup><mo>+</mo><mn>1</mn></mrow>"
     "<mrow><mi>x</mi><mo>-</mo><mn>1</mn></mrow></mfrac>", "(x^2 + 1)/(x - 1)"),
    ("simple fraction", "<mfrac><mi>a</mi><mn>2</mn></mfrac>", "a/2"),
    ("nested fraction", "<mfrac><mn>1</mn><mfrac><mn>1</mn><mi>x</mi></mfrac></mfrac>",
     "1/(1/x)"),
    ("binomial", '<mfrac linethickness="0"><mi>n</mi><mi>k</mi></mfrac>', "(n choose k)"),
    ("square root", "<msqrt><mn>3</mn></msqrt>", "sqrt(3)"),
    ("square root of a row", "<msqrt><mi>x</mi><mo>+</mo><mn>1</mn></msqrt>", "sqrt(x + 1)"),
    ("root", "<mroot><mi>x</mi><mn>3</mn></mroot>", "root(x, 3)"),
    ("subscript", "<msub><mi>x</mi><mn>1</mn></msub>", "x_1"),
    ("sub and superscript", "<msubsup><mi>x</mi><mn>1</mn><mn>2</mn></msubsup>", "x_1^2"),
    ("compound subscript",
     "<msubsup><mi>a</mi><mrow><mi>i</mi><mo>+</mo><mn>1</mn></mrow><mn>2</mn></msubsup>",
     "a_(i + 1)^2"),
    ("compound exponent",
     "<msup><mi>x</mi><mrow><mi>n</mi><mo>+</mo><mn>1</mn></mrow></msup>", "x^(n + 1)"),
    ("power of a group",
     "<msup><mrow><mo>(</mo><mi>a</mi><mo>+</mo><mi>b</mi><mo>)</mo></mrow><mn>2</mn></msup>",
     "(a + b)^2"),
    ("prime", "<msup><mi>f</mi><mo>&#x2032;</mo></msup><mo>(</mo><mi>x</mi><mo>)</mo>",
     "f'(x)"),
    ("triple prime", "<msup><mi>f</mi><mo>\u2032\u2032\u2032</mo></msup>", "f'''"),
    ("mfenced", "<mfenced><mi>a</mi><mi>b</mi></mfenced>", "(a, b)"),
    ("mfenced brackets and separators",
     '<mfenced open="[" close="]" separators=";"><mn>1</mn><mn>2</mn><mn>3</mn></mfenced>',
     "[1; 2; 3]"),
    ("mfenced power",
     "<msup><mfenced><mrow><mi>a</mi><mo>+</mo><mn>1</mn></mrow></mfenced><mn>2</mn></msup>",
     "(a + 1)^2"),
    ("sum", "<munderover><mo>&#x2211;</mo><mrow><mi>i</mi><mo>=</mo><mn>1</mn></mrow>"
            "<mi>n</mi></munderover><mi>i</mi>", "sum_(i = 1)^n i"),
    ("limit", "<munder><mo>lim</mo><mrow><mi>x</mi><mo>&#x2192;</mo><mn>0</mn></mrow></munder>"
              "<mi>f</mi>", "lim_(x \u2192 0) f"),
    ("overbar", "<mover><mi>x</mi><mo>&#x00AF;</mo></mover>", "bar(x)"),
    ("unary minus", "<mo>&minus;</mo><mi>x</mi><mo>+</mo><mn>1</mn>", "-x + 1"),
    ("unary minus after =", "<mi>a</mi><mo>=</mo><mo>-</mo><mn>3</mn>", "a = -3"),
    ("negative fraction", "<mo>-</mo><mfrac><mn>1</mn><mn>2</mn></mfrac>", "-1/2"),
    ("plus-minus", "<mi>x</mi><mo>=</mo><mo>&PlusMinus;</mo><mn>2</mn>", "x = \u00b12"),
    ("invisible times",
     "<mn>2</mn><mo>&InvisibleTimes;</mo><mi>x</mi><mo>&InvisibleTimes;</mo><mi>y</mi>", "2xy"),
    ("invisible times, LaTeXML's U+2062",
     "<mn>2</mn><mo>\u2062</mo><msup><mi>q</mi><mn>2</mn></msup>", "2q^2"),
    ("function application", "<mi>sin</mi><mo>&ApplyFunction;</mo><mi>x</mi>", "sin x"),
    ("function name then operand", "<mi>sin</mi><mi>x</mi>", "sin x"),
    ("function application with parentheses",
     "<mi>f</mi><mo>&#x2061;</mo><mo>(</mo><mi>x</mi><mo>)</mo>", "f(x)"),
    ("two numbers side by side", "<mn>3</mn><mn>4</mn>", "3 4"),
    ("dot product", "<mn>2</mn><mo>&#x22C5;</mo><mn>3</mn>", "2 \u22c5 3"),
    ("matrix", "<mtable><mtr><mtd><mn>1</mn></mtd><mtd><mn>2</mn></mtd></mtr>"
               "<mtr><mtd><mn>3</mn></mtd><mtd><mn>4</mn></mtd></mtr></mtable>",
     "[1, 2; 3, 4]"),
    ("text", "<mtext>if</mtext><mi>x</mi><mo>&gt;</mo><mn>0</mn>", "if x > 0"),
    ("boxed answer (MATH)", '<menclose notation="box"><mrow><mn>7</mn></mrow></menclose>', "7"),
    ("space", '<mi>a</mi><mspace width="1em"/><mi>b</mi>', "a b"),
    ("string literal", "<ms>abc</ms>", '"abc"'),
    ("phantom is invisible", "<mi>x</mi><mphantom><mn>0</mn></mphantom>", "x"),
    ("empty", "", ""),
]


@pytest.mark.parametrize("body, expected", [c[1:] for c in PRESENTATION],
                         ids=[c[0] for c in PRESENTATION])
def test_presentation(body, expected):
    assert lin(body) == expected


def test_implicit_product_in_a_denominator_is_bracketed():
    body = ("<mfrac><mrow><msup><mi>x</mi><mn>2</mn></msup><mo>+</mo><mn>1</mn></mrow>"
            "<mrow><mn>2</mn><mo>&InvisibleTimes;</mo><mi>x</mi></mrow></mfrac>")
    assert lin(body) == "(x^2 + 1)/(2x)"  # as the module docstring promises


def test_implicit_product_in_a_subscript_is_bracketed():
    assert lin("<msub><mi>H</mi><mrow><mn>2</mn><mi>n</mi></mrow></msub>") == "H_(2n)"


def test_semantics_uses_presentation_not_annotations():
    body = ("<semantics><mrow><mi>x</mi><mo>+</mo><mn>1</mn></mrow>"
            '<annotation-xml encoding="MathML-Content"><apply><plus/><ci>y</ci><cn>9</cn></apply>'
            '</annotation-xml><annotation encoding="application/x-tex">z+8</annotation>'
            "</semantics>")
    assert lin(body) == "x + 1"


def test_semantics_with_only_tex_falls_back_on_it():
    assert lin('<semantics><annotation encoding="application/x-tex">x+1</annotation>'
               "</semantics>") == "x+1"


# --- Content MathML ------------------------------------------------------------------------

CONTENT = [
    ("times binds tighter than plus",
     "<apply><times/><cn>2</cn><apply><plus/><ci>x</ci><cn>1</cn></apply></apply>", "2*(x + 1)"),
    ("negation of a difference", "<apply><minus/><apply><minus/><ci>a</ci><ci>b</ci></apply>"
                                 "</apply>", "-(a - b)"),
    ("minus is left-associative",
     "<apply><minus/><apply><minus/><ci>a</ci><ci>b</ci></apply><ci>c</ci></apply>", "a - b - c"),
    ("right operand of minus",
     "<apply><minus/><ci>a</ci><apply><minus/><ci>b</ci><ci>c</ci></apply></apply>", "a - (b - c)"),
    ("right operand of divide",
     "<apply><divide/><ci>a</ci><apply><times/><ci>b</ci><ci>c</ci></apply></apply>", "a/(b*c)"),
    ("power of a sum", "<apply><power/><apply><plus/><ci>x</ci><cn>1</cn></apply><cn>2</cn>"
                       "</apply>", "(x + 1)^2"),
    ("sum in an exponent", "<apply><power/><ci>x</ci><apply><plus/><ci>n</ci><cn>1</cn></apply>"
                           "</apply>", "x^(n + 1)"),
    ("negative base", "<apply><power/><cn>-2</cn><cn>2</cn></apply>", "(-2)^2"),
    ("negative factor", "<apply><times/><cn>-2</cn><ci>x</ci></apply>", "(-2)*x"),
    ("negated factor", "<apply><times/><apply><minus/><ci>a</ci></apply><ci>b</ci></apply>",
     "(-a)*b"),
    ("rational", '<cn type="rational">1<sep/>2</cn>', "1/2"),
    ("rational factor", '<apply><times/><ci>k</ci><cn type="rational">1<sep/>2</cn></apply>',
     "k*(1/2)"),
    ("rational exponent", '<apply><power/><ci>x</ci><cn type="rational">1<sep/>2</cn></apply>',
     "x^(1/2)"),
    ("e-notation", '<cn type="e-notation">1<sep/>3</cn>', "1e3"),
    ("csymbol operator", '<apply><csymbol cd="arith1">plus</csymbol><ci>x</ci><cn>1</cn></apply>',
     "x + 1"),
    ("csymbol constant", '<apply><times/><cn>2</cn><csymbol cd="nums1">pi</csymbol></apply>',
     "2*pi"),
    ("equation", "<apply><eq/><ci>y</ci><apply><plus/><apply><times/><cn>3</cn><ci>x</ci>"
                 "</apply><cn>1</cn></apply></apply>", "y = 3*x + 1"),
    ("function", "<apply><sin/><ci>x</ci></apply>", "sin(x)"),
    ("factorial of a sum", "<apply><factorial/><apply><plus/><ci>n</ci><cn>1</cn></apply>"
                           "</apply>", "(n + 1)!"),
    ("root with degree", "<apply><root/><degree><cn>3</cn></degree><ci>x</ci></apply>",
     "root(x, 3)"),
    ("square root", "<apply><root/><cn>5</cn></apply>", "sqrt(5)"),
    ("absolute value", "<apply><abs/><ci>x</ci></apply>", "|x|"),
    ("logarithm base", "<apply><log/><logbase><cn>2</cn></logbase><ci>x</ci></apply>",
     "log_2(x)"),
    ("set", "<set><cn>1</cn><cn>2</cn></set>", "{1, 2}"),
    ("half-open interval", '<interval closure="open-closed"><cn>0</cn><cn>1</cn></interval>',
     "(0, 1]"),
    ("unary minus of a number", "<apply><minus/><cn>3</cn></apply>", "-3"),
]


@pytest.mark.parametrize("body, expected", [c[1:] for c in CONTENT], ids=[c[0] for c in CONTENT])
def test_content(body, expected):
    assert lin(body) == expected


# --- real producers ------------------------------------------------------------------------

VARIANTS = {
    "variant-latexml-ntcir": "10^(2^(n + 2))",
    "variant-mathjax-sum": "sum_(x = A)^B f(x)",
    "variant-mathjax-pretty": "P(X \u2265 7) = sum_(k = 7)^(\u221e) P(X = k).",
    "variant-mml-declared": "3x - 1 = 5",
    "variant-mml-undeclared": "1/2",
    "variant-content": "y = (1/2)*(x + pi)",
    "variant-mfenced": "(a + b)^2 = [1, 2]",
    "variant-entities": "x = \u00b12y - sin \u03b8 \u2264 3 < \u221e",
}


@pytest.mark.parametrize("rid, expected", VARIANTS.items(), ids=list(VARIANTS))
def test_producer_variants(rid, expected):
    rec = next(r for r in _records(DATA / "variants.jsonl") if r["id"] == rid)
    assert to_linear(next(iter_formulas(rec["answer"]))) == expected


CORPUS = {
    "mdset-00850": "-96*n^2 - 12",  # Content MathML
    "mdset-00800": "2464*sqrt(5) + 10467",
    "mdset-02750": "1/3570",
    "mdset-00204": "-849, -6, -8/7, 0, 1",  # Presentation MathML
    "math-test-03811": "There are 7 two-digit numbers whose digits sum to 7: 16, 61, 25, 52, 34, "
                       "43, and 70.",
    "gsm8k-train-05645": "Each bag of oranges weighs 24 pounds / 12 = 2 pounds. 8 bags of oranges "
                         "would weigh 8 * 2 pounds = 16 pounds. The answer is 16.",
}


@pytest.mark.parametrize("rid, expected", CORPUS.items(), ids=list(CORPUS))
def test_latex2mathml_corpus_answers(rid, expected):
    rec = next(r for r in _records(DATA / "corpus_sample.jsonl") if r["id"] == rid)
    derived = derive(Record(id=rec["id"], question=rec["question"], answer=rec["answer"],
                            final=rec["final"]))
    assert derived.answer_text == expected


def _assert_linearizes(records: list[dict]) -> int:
    formulas = 0
    for rec in records:
        for field in ("question", "answer", "final"):
            for root in iter_formulas(rec.get(field) or ""):
                text = to_linear(root)
                assert not LEFTOVER_TAG.search(text), (rec["id"], text)
                assert "\n" not in text and text == text.strip()
                formulas += 1
        derived = derive(Record(id=rec["id"], question=rec["question"], answer=rec["answer"],
                                final=rec.get("final") or None))
        assert derived.answer_text
    return formulas


def test_sample_records_linearize():
    records = [r for name in ("variants.jsonl", "corpus_sample.jsonl", "mse_sample.jsonl")
               for r in _records(DATA / name)]
    assert _assert_linearizes(records) > 60


@pytest.mark.skipif(not MSE_ALL.is_file(), reason=f"{MSE_ALL} not found")
def test_all_64_arqmath_records_linearize():
    records = _records(MSE_ALL)
    assert len(records) == 64
    assert _assert_linearizes(records) > 1000


def test_random_trees_never_crash_the_writer():
    """Any tree of MathML elements linearizes to one line (or is refused as MathML)."""
    tags = sorted(set(_HANDLERS) | _ROWLIKE | _INVISIBLE | _CONTENT_TAGS
                  | {"sep", "mprescripts", "none", "unknown"})
    texts = ["", "x", "2", "-3", "(", ")", "|", "\u2212", "\u2062", "\u2061", "sin", "\u2211",
             "\u00af", "\u2032", "pi", "plus", "&amp;", " ", ","]
    attrs = ["", ' type="rational"', ' type="e-notation"', ' linethickness="0"',
             ' open="" close=""', ' separators=""', ' closure="open"']
    rng = random.Random(7)

    def tree(depth: int) -> str:
        tag, attr, text = rng.choice(tags), rng.choice(attrs), rng.choice(texts)
        if depth > 5 or rng.random() < 0.3:
            return f"<{tag}{attr}>{text}</{tag}>"
        kids = "".join(tree(depth + 1) for _ in range(rng.randint(0, 4)))
        return f"<{tag}{attr}>{text}{kids}</{tag}>"

    for _ in range(1500):
        try:
            out = lin(tree(0))
        except MathMLError:
            continue
        assert isinstance(out, str) and "\n" not in out


# --- whole records -------------------------------------------------------------------------

def test_record_text_joins_formulas_and_words():
    rec = Record(id="r1", question="What is 1+1?", answer="It is <math><mn>2</mn></math>.",
                 final="<math><mn>2</mn></math>")
    derived = derive(rec)
    assert (derived.question_text, derived.answer_text, derived.final_text) == \
        ("What is 1+1?", "It is 2.", "2")
    assert derived.formulas == 2


def test_a_formula_touching_a_word_gets_a_space():
    rec = Record(id="r", question="", answer="<math><mn>2</mn><mi>x</mi></math>apples and"
                                             "<math><mi>y</mi></math>")
    assert derive(rec).answer_text == "2x apples and y"


def test_whitespace_of_text_collapses():
    rec = Record(id="r", question="", answer="a\n\n  b\t<math><mi>c</mi></math>")
    assert derive(rec).answer_text == "a b c"


def test_beir_title_prefixes_the_answer_text():
    rec = Record(id="d", question="", answer="<math><mn>4</mn></math>", meta={"title": "Four"})
    assert derive(rec).answer_text == "Four. 4"


def test_query_text_is_linear():
    assert query_text("Solve <math><msup><mi>x</mi><mn>2</mn></msup><mo>=</mo><mn>4</mn></math>"
                      ) == "Solve x^2 = 4"
    assert query_text("plain x^2 = 4") == "plain x^2 = 4"


@pytest.mark.parametrize("rec, message", [
    (Record(id="", question="", answer="a"), "missing id"),
    (Record(id="  ", question="", answer="a"), "missing id"),
    (Record(id="r", question="q", answer=" \n"), "missing answer"),
    (Record(id="r", question="<math><mi>&bad;</mi></math>", answer="a"),
     r"question: formula 1 at character 0: undefined entity &bad;"),
    (Record(id="r", question="", answer="x <math><mi>1</mi></math> <math><mi>x</mo></math>"),
     r"answer: formula 2 at character 26: malformed MathML"),
    (Record(id="r", question="", answer="a", final="<math><mn>1</mn>"),
     r"final: <math> at character 0 has no closing </math>"),
])
def test_refused_records_name_field_and_formula(rec, message):
    with pytest.raises(RecordError, match=message):
        derive(rec)
