"""Formula agreement: the share of a question's formulas a candidate answer restates, and the
hybrid rescoring that adds it (retriever/formulas.py)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from mathcore.scores import rank_with_terms
from retriever.formulas import (
    FormulaAgreement,
    canonical,
    formulas,
    trivial,
)
from retriever.givens import GivensAgreement

# latex2mathml's Presentation MathML (the MATH and AoPS records).
QUADRATIC = ('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"><mrow><msup><mi>x'
             '</mi><mn>2</mn></msup><mo>&#x02212;</mo><mn>5</mn><mi>x</mi><mo>&#x0002B;</mo><mn>6'
             '</mn><mo>&#x0003D;</mo><mn>0</mn></mrow></math>')
FACTORED = ('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"><mrow><mo stretchy='
            '"false">&#x00028;</mo><mi>x</mi><mo>&#x02212;</mo><mn>2</mn><mo stretchy="false">'
            '&#x00029;</mo><mo stretchy="false">&#x00028;</mo><mi>x</mi><mo>&#x02212;</mo><mn>3'
            '</mn><mo stretchy="false">&#x00029;</mo><mo>&#x0003D;</mo><mn>0</mn></mrow></math>')
OTHER = ('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"><mrow><mo stretchy='
         '"false">&#x00028;</mo><mi>x</mi><mo>&#x02212;</mo><mn>1</mn><mo stretchy="false">'
         '&#x00029;</mo><mo stretchy="false">&#x00028;</mo><mi>x</mi><mo>&#x02212;</mo><mn>6'
         '</mn><mo stretchy="false">&#x00029;</mo><mo>&#x0003D;</mo><mn>0</mn></mrow></math>')
LONE_X = ('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"><mrow><mi>x</mi>'
          '</mrow></math>')

# LaTeXML's (Math StackExchange, ARQMath), from mse-104205 of the sample.
_LTX = ('<math alttext="{alt}" class="ltx_Math" display="inline" '
        'xmlns="http://www.w3.org/1998/Math/MathML"><semantics>{body}</semantics></math>')
CUBIC_BODY = ('<mrow><msup><mi>n</mi><mn>3</mn></msup><mo>+</mo><mrow><mn>6</mn><mo>\u2062</mo>'
              '<msup><mi>n</mi><mn>2</mn></msup></mrow><mo>+</mo><mrow><mn>11</mn><mo>\u2062</mo>'
              '<mi>n</mi></mrow><mo>+</mo><mn>6</mn></mrow>')
DIVIDES = _LTX.format(alt="3\\mid n^{3}+6n^{2}+11n+6",
                      body='<mrow><mn>3</mn><mo lspace="2.5pt" rspace="2.5pt">∣</mo>'
                           f'{CUBIC_BODY}</mrow>')
CUBIC = _LTX.format(alt="n^{3}+6n^{2}+11n+6", body=CUBIC_BODY)
N_AT_LEAST_0 = _LTX.format(alt="n\\geq 0", body="<mrow><mi>n</mi><mo>≥</mo><mn>0</mn></mrow>")


def _paren(inner: str) -> str:
    return (f'<mrow><mo stretchy="false">(</mo><mrow>{inner}</mrow>'
            '<mo stretchy="false">)</mo></mrow>')


# (n + 1)(n + 2)(n + 3), written as LaTeXML writes a product of brackets.
PRODUCT = _LTX.format(alt="(n+1)(n+2)(n+3)", body="<mrow>" + "<mo>\u2062</mo>".join(
    _paren(f"<mi>n</mi><mo>+</mo><mn>{i}</mn>") for i in (1, 2, 3)) + "</mrow>")


def _texts(table):
    return lambda rows: [table[r] for r in rows]


@pytest.fixture
def agree():
    # A generous budget: these tests are about the verdicts, not about a loaded machine's speed.
    return FormulaAgreement(_texts({}), weight=1.0, budget=10.0)


def test_canonical_forms_ignore_spacing_signs_and_trailing_punctuation():
    assert canonical("x^2 − 5x + 6 = 0.") == "x^2-5x+6=0"
    assert canonical("2 × 3 ⋅ a") == "2*3*a"
    assert [trivial(k) for k in ("x", "x_1", "f(x)", "12", "-3.5", "ab", "x^2", "2^k-1")] == [
        True, True, True, True, True, True, False, False]


def test_formulas_have_units_for_the_sides_of_a_relation():
    (quad,) = formulas(f"Solve {QUADRATIC} for {LONE_X}.")  # a lone letter is no formula
    assert [u.key for u in quad.units] == ["x^2-5x+6=0", "x^2-5x+6"]
    assert quad.units[1].letters == {"x"}
    # LaTeXML's parallel markup and a "divides" relation: the cubic is a side of its own.
    (div,) = formulas(f"Show that {DIVIDES} for all {N_AT_LEAST_0}")  # n ≥ 0: trivial
    assert [u.key for u in div.units] == ["3∣n^3+6n^2+11n+6", "n^3+6n^2+11n+6"]
    # The same formula twice counts once; text without MathML has none.
    assert len(formulas(QUADRATIC + " and again " + QUADRATIC)) == 1
    assert formulas("x^2 - 5x + 6 = 0 written as plain text") == ()


def test_factored_and_expanded_forms_agree_and_other_formulas_do_not(agree):
    q = f"Solve {QUADRATIC}."
    assert agree.coverage(q, f"Factor: {FACTORED}, so x is 2 or 3.") == 1.0
    assert agree.coverage(q, f"Factor: {OTHER}.") == 0.0
    assert agree.coverage(q, "x is 2 or 3.") == 0.0
    assert agree.coverage("Solve the equation.", f"{FACTORED}") == 0.0  # nothing asked


def test_latexml_formulas_agree_by_sympy_and_by_canonical_form(agree):
    q = f"Prove that {DIVIDES} for every {N_AT_LEAST_0}."
    assert agree.coverage(q, f"Write it as {PRODUCT}: three consecutive numbers.") == 1.0
    assert agree.coverage(q, f"Expand: {CUBIC} = 6 binom(n, 3) + ...") == 1.0
    # Inside a longer formula: (n^3 + 6n^2 + 11n + 6)/3 ...
    inside = _LTX.format(alt="", body=f"<mrow>{_paren(CUBIC_BODY)}<mo>/</mo><mn>3</mn></mrow>")
    assert agree.coverage(q, f"Then {inside} is an integer.") == 1.0
    assert agree.coverage(q, f"By {OTHER}.") == 0.0


def test_an_undecided_or_late_equivalence_gives_no_credit_and_does_not_hang():
    from mathcore.symbolic import close_default_pool

    # sqrt((x+1)^2) and x + 1 agree at every positive point but are not equal for all x: the
    # numeric check cannot decide, the symbolic step (in a worker) cannot prove it in 0.05 s.
    root = ('<math><msqrt><msup><mrow><mo>(</mo><mi>x</mi><mo>+</mo><mn>1</mn><mo>)</mo></mrow>'
            '<mn>2</mn></msup></msqrt></math>')
    plain = '<math><mrow><mi>x</mi><mo>+</mo><mn>1</mn></mrow></math>'
    try:
        t0 = time.monotonic()
        quick = FormulaAgreement(_texts({}), weight=1.0, timeout=0.05)
        assert quick.coverage(f"Simplify {root}.", f"It is {plain}.") == 0.0
        assert time.monotonic() - t0 < 5.0
        # A spent budget: the SymPy step is not started at all; the canonical form still counts.
        spent = FormulaAgreement(_texts({}), weight=1.0, budget=1e-9)
        assert spent.coverage(f"Solve {QUADRATIC}.", f"So {FACTORED}.") == 0.0
        assert spent.coverage(f"Solve {QUADRATIC}.", f"So {QUADRATIC}.") == 1.0
        none = FormulaAgreement(_texts({}), weight=1.0, max_pairs=0)
        assert none.coverage(f"Solve {QUADRATIC}.", f"So {FACTORED}.") == 0.0
    finally:
        close_default_pool()


def test_rescoring_lifts_the_answer_that_restates_the_questions_formula():
    answers = {10: f"Complete the square: {OTHER}", 11: f"It factors: {FACTORED}",
               12: "No formula here."}
    scores = np.array([[2.0, 1.9, 1.0], [2.0, 1.9, 1.0]])
    rows = np.array([[10, 11, 12], [10, 11, 12]])
    q = [f"Solve {QUADRATIC}.", "Solve the quadratic equation."]
    s, r = FormulaAgreement(_texts(answers), weight=2.0, budget=10.0).rescore(q, scores, rows,
                                                                              k=3)
    assert r.tolist() == [[11, 10, 12], [10, 11, 12]]  # a question without formulas keeps its order
    assert all(np.all(np.diff(row) <= 0) for row in s)
    # Weight 0: the first-stage order, whatever the formulas.
    s0, r0 = FormulaAgreement(_texts(answers), weight=0.0).rescore(q, scores, rows, k=3)
    assert r0.tolist() == rows.tolist()


def test_with_weight_0_the_givens_rescoring_is_unchanged():
    numbers = {1: "100 - 60 = 40, 40 × 3 = 120", 2: "no numbers", 3: "60 and 3"}
    givens = GivensAgreement(_texts(numbers), weight=3.0)
    texts = ["60% charged, 1 point per 3 minutes", "no numbers"]
    scores = np.array([[1.0, 0.9, 0.2], [3.0, -1.0, -np.inf]])
    rows = np.array([[2, 1, 3], [1, 3, -1]])
    want = givens.rescore(texts, scores, rows, k=2)
    got = FormulaAgreement(_texts({}), weight=0.0).rescore(texts, scores, rows, k=2,
                                                           givens=givens)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    assert givens.coverages(texts, rows)[1].tolist() == [0.0, 0.0, 0.0]
    ranked = rank_with_terms(scores, rows, np.zeros(rows.shape), 3)[1]
    assert ranked.tolist() == [[2, 1, 3], [1, 3, -1]]


@pytest.mark.parametrize("weight", [-1.0, float("nan")])
def test_a_negative_or_missing_weight_is_refused(weight):
    from mathmatch.pipeline import MatchConfig

    with pytest.raises(ValueError, match="formula weight"):
        FormulaAgreement(_texts({}), weight=weight)
    with pytest.raises(ValueError, match="formula weight"):
        MatchConfig(formula_weight=weight)


def test_hybrid_search_adds_the_formula_term_to_the_givens_term(sample_index, sample_dir):
    from mathcore.runs import iter_queries
    from retriever.formulas import answer_sources
    from retriever.searcher import open_searcher, search_text

    queries = [(q, t) for q, t in iter_queries(sample_dir / "queries.jsonl") if "<math" in t]
    texts = [search_text(q, t) for q, t in queries]
    questions = [t for _, t in queries]
    plain = open_searcher(sample_index, "hybrid", device="cpu", depth=30, givens_weight=0)
    both = open_searcher(sample_index, "hybrid", device="cpu", depth=30, givens_weight=3.0,
                         formula_weight=2.0)
    try:
        fused = plain.search_rows(texts, 30)
        agree = FormulaAgreement(answer_sources(plain.store), 2.0)
        want = agree.rescore(questions, *fused, k=5,
                             givens=GivensAgreement(plain.store.texts, 3.0), texts=texts)
        got = both.search_rows(texts, 5, questions=questions)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0])
        # The run of Searcher.search is the same, read from the queries with their MathML.
        run = both.search(queries, 5)
        ids = both.store.ids_of(sorted({int(r) for r in got[1].ravel() if r >= 0}))
        assert [list(run[q]) for q, _ in queries] == [[ids[int(r)] for r in row if r >= 0]
                                                      for row in got[1]]
    finally:
        plain.close()
        both.close()


def test_the_benchmark_runs_are_the_pipelines_at_each_weight(sample_index, sample_dir, tmp_path):
    import json
    import shutil

    from benchmarks import formulas as bench
    from mathcore.runs import iter_queries
    from mathmatch.pipeline import MatchConfig, Pipeline

    cpu = MatchConfig(device="cpu", depth=30)
    queries = list(iter_queries(sample_dir / "queries.jsonl"))
    with bench.fusion_only(sample_index, cpu) as pipeline:
        runs, info = bench.weight_runs(pipeline, queries, (0.0, 2.0), cpu.givens_weight)
    assert info["queries_with_formulas"] > 0
    for w in (0.0, 2.0):
        with Pipeline(sample_index, replace(cpu, formula_weight=w)) as pipeline:
            want = pipeline.search(queries, 30)
        assert {q: list(h.items()) for q, h in runs[w].items()} == {
            q: list(h.items()) for q, h in want.items()}
    # End to end on the sample laid out as both tasks.
    data = tmp_path / "data"
    for task in ("match", "match_mse"):
        (data / "tasks" / task).mkdir(parents=True)
        for name in ("queries.jsonl", "qrels.tsv"):
            shutil.copy(sample_dir / name, data / "tasks" / task / name)
    out = tmp_path / "formulas.json"
    assert bench.main(["--index", str(sample_index), "--data", str(data), "--depth", "30",
                       "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["tasks"]) == {"match", "match_mse"}
    assert result["tasks"]["match"]["chosen_weight"] in bench.WEIGHTS
