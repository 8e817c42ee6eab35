"""Givens agreement: the share of a question's numbers a candidate answer works with, and the
hybrid rescoring that adds it (retriever/givens.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mathcore.runs import iter_queries, linear_query
from retriever.givens import GivensAgreement, coverage, numbers
from retriever.searcher import open_searcher


def test_numbers_are_read_as_digit_strings():
    assert numbers("It costs $1,360.50 for 3 boxes of 12.") == {"1360.50", "3", "12"}
    # A comma between numbers that are not thousands groups separates them.
    assert numbers("the sides 3,4,5 and the point (1, 22)") == {"3", "4", "5", "1", "22"}
    assert numbers("x^2 + 1 = 0") == {"2", "1", "0"}
    assert numbers("no numbers here") == frozenset()


def test_coverage_is_the_share_of_the_questions_numbers_in_the_answer():
    asked = numbers("A cup weighs 100 grams and has 3 grams of protein; John eats 200 grams.")
    assert coverage(asked, numbers("He eats 200/100 = 2 cups so 2 × 3 = 6 grams")) == 1.0
    assert coverage(asked, numbers("80 × 2 = 160 grams, 160/.8 = 200 grams")) == pytest.approx(
        1 / 3)
    assert coverage(frozenset(), numbers("1 + 1 = 2")) == 0.0


def _texts(table):
    return lambda rows: [table[r] for r in rows]


def test_rescoring_lifts_the_answer_that_uses_the_questions_numbers():
    answers = {10: "the radius is 5 so the area is 25 pi",
               11: "60 percent left: 100 - 60 = 40 points, 40 × 3 = 120 minutes",
               12: "no numbers at all"}
    agree = GivensAgreement(_texts(answers), weight=3.0)
    scores = np.array([[2.0, 1.9, 1.0], [2.0, 1.9, 1.0]])
    rows = np.array([[10, 11, 12], [10, 11, 12]])
    q = ["The phone is 60% charged and gains 1 point per 3 minutes: how long to 100%?",
         "How long does it take to charge the phone fully?"]
    s, r = agree.rescore(q, scores, rows, k=3)
    assert r[0].tolist() == [11, 10, 12]
    # A question without numbers keeps the first-stage order; scores are best first.
    assert r[1].tolist() == [10, 11, 12]
    assert all(np.all(np.diff(row) <= 0) for row in s)


def test_rescoring_keeps_padding_out_and_cuts_to_k():
    answers = {1: "3 + 4 = 7", 2: "2 + 2 = 4"}
    agree = GivensAgreement(_texts(answers), weight=1.0)
    s, r = agree.rescore(["What is 3 + 4?", "What is 9?"], np.array([[1.0, 2.0, -np.inf],
                                                                    [-np.inf] * 3]),
                         np.array([[2, 1, -1], [-1, -1, -1]]), k=2)
    assert r.tolist() == [[1, 2], [-1, -1]]
    assert np.isneginf(s[1]).all()


@pytest.mark.parametrize("weight", [-1.0, float("nan")])
def test_a_negative_or_missing_weight_is_refused(weight):
    with pytest.raises(ValueError, match="givens weight"):
        GivensAgreement(_texts({}), weight=weight)


def test_hybrid_search_rescores_the_fused_candidates(sample_index, sample_dir):
    queries = list(iter_queries(sample_dir / "queries.jsonl"))[:12]
    texts = [linear_query(q, t) for q, t in queries]
    plain = open_searcher(sample_index, "hybrid", device="cpu", depth=30, givens_weight=0)
    with_givens = open_searcher(sample_index, "hybrid", device="cpu", depth=30,
                                givens_weight=3.0)
    fused = plain.search_rows(texts, 30)
    expected = GivensAgreement(plain.store.texts, 3.0).rescore(texts, *fused, k=5)
    got = with_givens.search_rows(texts, 5)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0])
    # The sample's questions come with numbers: the term changes some orders, not all.
    assert (got[1] != fused[1][:, :5]).any()


def test_match_takes_the_givens_weight_from_the_command_line(sample_index, sample_dir,
                                                              tmp_path, run_cli):
    outs = {}
    for weight in ("0", "3"):
        out = tmp_path / f"w{weight}.jsonl"
        assert run_cli(["-q", "match", sample_index, "--queries", sample_dir / "queries.jsonl",
                        "--givens-weight", weight, "--out", out]) == 0
        outs[weight] = [[h["doc_id"] for h in json.loads(line)["hits"]]
                        for line in out.read_text().splitlines()]
    default = tmp_path / "default.jsonl"
    assert run_cli(["-q", "match", sample_index, "--queries", sample_dir / "queries.jsonl",
                    "--out", default]) == 0
    assert [[h["doc_id"] for h in json.loads(line)["hits"]]
            for line in default.read_text().splitlines()] == outs["3"]
    assert outs["0"] != outs["3"]
    assert run_cli(["-q", "match", sample_index, "--queries", sample_dir / "queries.jsonl",
                    "--givens-weight", "-2", "--out", tmp_path / "bad.jsonl"]) == 2


def test_configs_refuse_a_negative_givens_weight_and_record_it(tmp_path):
    from mathmatch.pipeline import MatchConfig
    from tuning.reranker import RerankTuneConfig

    with pytest.raises(ValueError, match="givens weight"):
        MatchConfig(givens_weight=-1.0)
    with pytest.raises(ValueError, match="givens weight"):
        RerankTuneConfig(index=tmp_path, out=tmp_path / "o", givens_weight=-0.5)
    # The first stage the training groups come from is part of the recipe a resume checks.
    assert RerankTuneConfig(index=tmp_path, out=tmp_path / "o",
                            givens_weight=0.0).recipe()["givens_weight"] == 0.0


def test_answers_numbers_are_read_once_per_row_and_the_cache_is_bounded(monkeypatch):
    texts = {1: "2 + 3 = 5", 2: "7 cups", 3: "10 - 4 = 6"}
    asked: list[list[int]] = []

    def answers(rows):
        asked.append(list(rows))
        return [texts[r] for r in rows]

    agree = GivensAgreement(answers, weight=1.0)
    first = agree.coverages(["What is 2 + 3?"], np.array([[1, 2, -1]]))
    again = agree.coverages(["What is 2 + 3?", "10 - 4?"], np.array([[1, 2, -1], [3, 1, 2]]))
    assert asked == [[1, 2], [3]]  # rows 1 and 2 were not read again
    assert np.array_equal(first[0], again[0])
    assert again[1].tolist() == [1.0, 0.0, 0.0]
    monkeypatch.setattr(GivensAgreement, "CACHED", 2)
    small = GivensAgreement(answers, weight=1.0)
    small.coverages(["2"], np.array([[1, 2]]))
    assert small.coverages(["10 4"], np.array([[3, 1]])).tolist() == [[1.0, 0.0]]
    assert len(small._numbers) == 2 and asked[-1] == [1, 3]
