"""LaTeXML's MathML reads, and is tokenised for BM25, as latex2mathml's of the same LaTeX does.

``tests/data/latexml_pairs.jsonl`` holds real formulas of the forum records (LaTeXML, copied byte
for byte) with the latex2mathml 3.81.1 output of their ``alttext``; ``benchmarks.latexml`` makes
the same comparison over every formula of the dev data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathcore.linear import to_linear
from mathcore.mathml import MATHML_NS, parse_math
from mathcore.tokens import analyze

DATA = Path(__file__).resolve().parent / "data"
PAIRS = [json.loads(line) for line in
         (DATA / "latexml_pairs.jsonl").read_text(encoding="utf-8").splitlines()]


def lin(body: str) -> str:
    return to_linear(parse_math(f'<math xmlns="{MATHML_NS}">{body}</math>'))


def _pair(kind: str) -> dict:
    return next(p for p in PAIRS if p["kind"] == kind)


@pytest.mark.parametrize("pair", PAIRS, ids=[p["kind"] for p in PAIRS])
def test_latexml_linear_text(pair):
    assert to_linear(parse_math(pair["latexml"])) == pair["linear"]


@pytest.mark.parametrize("pair", PAIRS, ids=[p["kind"] for p in PAIRS])
def test_latexml_and_latex2mathml_give_the_same_tokens(pair):
    latexml = analyze(to_linear(parse_math(pair["latexml"])))
    latex2mathml = analyze(to_linear(parse_math(pair["latex2mathml"])))
    assert latexml == latex2mathml


def test_invisible_times_before_ln_keeps_the_words_apart():
    pair = _pair("invisible times before a function name")
    text = to_linear(parse_math(pair["latexml"]))
    assert text.startswith("2001ln n - n ln 1.001 = ")
    tokens = analyze(text)
    assert "nln" not in tokens and tokens.count("ln") == 5


def test_styled_differential_is_a_plain_d():
    text = to_linear(parse_math(_pair("styled differential d")["latexml"]))
    assert text == "int_0^\u221e e^(-xt) dt = 1/x"
    assert "dt" in analyze(text)


def test_operator_variants_meet_in_one_token():
    assert analyze("g(x) \u22c5 f(x)") == analyze("g(x) \u00b7 f(x)")
    assert "x\u00b7f" in analyze("g(x) \u22c5 f(x)")
    assert analyze("p \u223c U") == analyze("p ~ U") == ["p", "~", "u"]
    assert analyze("\u2225v\u2225 = 1") == analyze("\u2016v\u2016 = 1")
    assert analyze("X\u2216Y") == analyze("X\u29f5Y")
    assert analyze("a = 0 \u21d4 b") == analyze("a = 0 \u27fa b")
    assert analyze("x \u2a7e 1") == analyze("x \u2265 1")


def test_primes_ellipses_and_minus_signs_fold():
    assert analyze("f\u2032\u2032\u2032(x)") == analyze("f'''(x)") == ["f", "x"]
    assert analyze("1, 2, \u2026, n") == analyze("1, 2, ..., n") == ["1", "2", "n"]
    assert analyze("\u22121") == analyze("-1")


def test_a_negation_slash_composes():
    assert analyze("a =\u0338 1") == analyze("a \u2260 1") == ["\u2260", "1", "a\u22601"]


# --- presentation MathML as each producer writes it ----------------------------------------

@pytest.mark.parametrize("body, expected", [
    ("<mi>n</mi><mo>\u2062</mo><mrow><mi>ln</mi><mo>\u2061</mo><mi>n</mi></mrow>", "n ln n"),
    ("<mi>n</mi><mi>ln</mi><mi>n</mi>", "n ln n"),  # latex2mathml
    ("<mi>\u03c0</mi><mi>csc</mi><mi>x</mi>", "\u03c0 csc x"),
    ("<mi>x</mi><msqrt><mn>2</mn></msqrt>", "x sqrt(2)"),
    ("<msup><mi>x</mi><mi>n</mi></msup><mi>f</mi>", "x^n f"),
    ("<msub><mi>a</mi><mi>i</mi></msub><msub><mi>b</mi><mi>j</mi></msub>", "a_i b_j"),
    ("<mn>2</mn><mi>x</mi><mi>y</mi>", "2xy"),
], ids=["latexml", "latex2mathml", "greek", "root", "after a script", "two subscripts",
        "letters stay together"])
def test_a_word_after_a_letter_is_spaced(body, expected):
    assert lin(body) == expected


def test_large_operators_read_alike_inline_and_displayed():
    inline = lin("<msubsup><mo>\u2211</mo><mrow><mi>k</mi><mo>=</mo><mn>1</mn></mrow><mi>n</mi>"
                 "</msubsup><mi>k</mi>")
    display = lin("<munderover><mo>\u2211</mo><mrow><mi>k</mi><mo>=</mo><mn>1</mn></mrow>"
                  "<mi>n</mi></munderover><mi>k</mi>")
    assert inline == display == "sum_(k = 1)^n k"
    assert lin("<msub><mo>lim</mo><mrow><mi>x</mi><mo>\u2192</mo><mn>0</mn></mrow></msub>"
               "<mi>f</mi>") == "lim_(x \u2192 0) f"
    assert lin("<munder><mo>sup</mo><mi>x</mi></munder><mi>f</mi>") == "sup_x f"
    assert lin("<msubsup><mo>\u222b</mo><mn>0</mn><mn>1</mn></msubsup><mi>x</mi><mi>d</mi>"
               "<mi>x</mi>") == "int_0^1 x dx"


def test_styled_letters_become_plain_but_double_struck_stay():
    assert lin("<mi>\U0001d41c</mi><mo>+</mo><mi>\U0001d5a2</mi><mo>+</mo><mi>\u2133</mi>"
               "<mo>+</mo><mn>\U0001d7ce</mn>") == "c + C + M + 0"
    assert lin("<mi>\u211d</mi><mo>,</mo><mi>\U0001d53d</mi>") == "\u211d, \U0001d53d"


def test_prime_characters_inside_tokens_read_as_primes():
    assert lin("<mi>g</mi><mo>\u2062</mo><mi>\u2032</mi><mo>\u2062</mo><mrow><mo>(</mo><mn>8</mn>"
               "<mo>)</mo></mrow>") == "g'(8)"
    assert lin("<msup><mi>h</mi><mrow><mi>\u2032</mi><mn>2</mn></mrow></msup>") == "h'^2"


def test_spaces_written_as_text_or_operator_stay_spaces():
    assert lin("<mi>x</mi><mtext>\u00a0</mtext><mi>d</mi><mi>x</mi>") == "x dx"
    assert lin("<mn>0</mn><mo>\u2003\u2003</mo><mi>n</mi>") == "0 n"


def test_power_of_a_bracket_reads_as_one_operand():
    # latex2mathml puts the exponent on the closing bracket; LaTeXML on the bracketed row.
    l2m = lin("<mfrac><mrow><mo>(</mo><mi>x</mi><mo>-</mo><mn>1</mn><msup><mo>)</mo><mn>2</mn>"
              "</msup></mrow><mn>2</mn></mfrac>")
    latexml = lin("<mfrac><msup><mrow><mo>(</mo><mrow><mi>x</mi><mo>-</mo><mn>1</mn></mrow>"
                  "<mo>)</mo></mrow><mn>2</mn></msup><mn>2</mn></mfrac>")
    assert l2m == latexml == "(x - 1)^2/2"
    assert lin("<mfrac><mrow><mi>a</mi><mo>+</mo><msup><mi>b</mi><mn>2</mn></msup></mrow>"
               "<mn>2</mn></mfrac>") == "(a + b^2)/2"


def test_norm_with_a_subscript():
    assert lin("<mo>\u2016</mo><mi>A</mi><msub><mo>\u2016</mo><mn>1</mn></msub>") == \
        "\u2016A\u2016_1"


def test_escaped_alignment_cells_lose_their_amp():
    # A forum post's "&amp;" in an aligned environment: LaTeXML reads the "amp;" after the "&".
    body = ("<mtable><mtr><mtd><mi>x</mi></mtd><mtd><mrow><mi>a</mi><mi>m</mi><mi>p</mi>"
            "<mo>;</mo><mo>=</mo><mn>1</mn></mrow></mtd></mtr></mtable>")
    assert lin(body) == "[x, =1]"
