"""The symbolic tie-break: near-tie groups, the never-move property, evidence order, the CLI."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest

from mathcore.symbolic import Check, WorkerPool
from reranker.tiebreak import Evidence, TieBreaker, near_tie_groups, reorder


def test_groups_are_greedy_from_the_head():
    assert near_tie_groups([1.0, 0.99, 0.98, 0.97], 0.02) == [(0, 3), (3, 4)]
    assert near_tie_groups([3.0, 2.0, 1.0], 0.5) == [(0, 1), (1, 2), (2, 3)]
    assert near_tie_groups([1.0, 1.0, 0.5], 0.0) == [(0, 2), (2, 3)]
    assert near_tie_groups([], 0.1) == []
    with pytest.raises(ValueError):
        near_tie_groups([1.0], -0.1)


def test_evidence_order_inside_a_group_is_verified_agreement_consensus_then_stable():
    ranking = {"a": 1.0, "b": 0.99, "c": 0.98, "d": 0.97, "e": 0.96, "far": 0.1}
    ev = {"a": Evidence(Check.REFUTED), "b": Evidence(Check.UNKNOWN, consensus=2),
          "c": Evidence(Check.UNKNOWN, agreement=1), "d": Evidence(Check.VERIFIED),
          "e": Evidence(Check.UNKNOWN)}
    out = reorder(ranking, 0.05, ev)
    assert list(out) == ["d", "c", "b", "e", "a", "far"]
    # The group's scores are handed back in rank order: the run stays sorted.
    assert list(out.values()) == [1.0, 0.99, 0.98, 0.97, 0.96, 0.1]


def test_candidates_outside_near_tie_groups_never_move():
    rng = random.Random(7)
    checks = list(Check)
    for _ in range(500):
        n = rng.randint(1, 15)
        scores = sorted((round(rng.uniform(0, 1), rng.choice([1, 2, 3])) for _ in range(n)),
                        reverse=True)
        ranking = {f"d{i}": s for i, s in enumerate(scores)}
        ev = {d: Evidence(rng.choice(checks), rng.randint(0, 2), rng.randint(0, 3))
              for d in ranking if rng.random() < 0.8}
        margin = rng.choice([0.0, 0.01, 0.05, 0.2])
        out = reorder(ranking, margin, ev)
        assert sorted(out) == sorted(ranking)
        assert list(out.values()) == scores
        docs, new = list(ranking), list(out)
        for start, end in near_tie_groups(scores, margin):
            assert set(new[start:end]) == set(docs[start:end])  # nobody leaves its group
            if end - start == 1:
                assert new[start] == docs[start]
        if margin == 0.0 and len(set(scores)) == n:
            assert new == docs


@dataclass
class _Rec:
    final: str | None


@dataclass
class _Stored:
    record: _Rec


class _Store:
    def __init__(self, finals):
        self.finals = finals

    def by_id(self, doc):
        return _Stored(_Rec(self.finals[doc])) if doc in self.finals else None


def _cn(v):
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML"><cn>{v}</cn></math>'


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(size=1) as p:
        yield p


def test_rerank_promotes_the_verified_candidate_only_inside_its_group(pool):
    store = _Store({"wrong": _cn(3), "right": _cn(2), "other": _cn(5), "low": _cn(2)})
    run = {"q": {"wrong": 0.90, "right": 0.89, "other": 0.50, "low": 0.10}}
    tb = TieBreaker(margin=0.05, pool=pool)
    out = tb.rerank({"q": "Solve 2*x = 4 for x."}, run, store)
    assert list(out["q"]) == ["right", "wrong", "other", "low"]
    assert list(out["q"].values()) == [0.90, 0.89, 0.50, 0.10]
    # Margin 0: no near-tie, nothing moves, nothing is checked.
    assert TieBreaker(margin=0.0, pool=pool).rerank({"q": "Solve 2*x = 4 for x."}, run,
                                                     store) == run


def test_consensus_breaks_a_tie_the_checker_cannot(pool):
    frac = "<math><mfrac><mn>14</mn><mn>2</mn></mfrac></math>"
    store = _Store({"a": _cn(7), "b": frac, "c": _cn(9), "d": _cn(7)})
    run = {"q": {"c": 0.5, "a": 0.5, "b": 0.49, "d": 0.2}}
    out = TieBreaker(margin=0.02, pool=pool).rerank({"q": "A word problem."}, run, store)
    # a and b agree with each other and with d (7 = 14/2); c agrees with nobody.
    assert list(out["q"]) == ["a", "b", "c", "d"]


def test_tiebreaker_rejects_bad_settings():
    with pytest.raises(ValueError):
        TieBreaker(margin=-1)
    with pytest.raises(ValueError):
        TieBreaker(timeout=0)


def test_match_symbolic_reorders_within_near_ties_only(sample_index, sample_dir, tmp_path,
                                                       run_cli):
    plain, sym = tmp_path / "plain.jsonl", tmp_path / "sym.jsonl"
    queries = tmp_path / "queries.jsonl"
    lines = (sample_dir / "queries.jsonl").read_text().splitlines()
    queries.write_text("\n".join(lines[:6] + lines[-6:]) + "\n")  # GSM8K and MATH queries
    args = ["-q", "match", sample_index, "--queries", queries, "--k", "10", "--device", "cpu"]
    assert run_cli(args + ["--out", plain]) == 0
    assert run_cli(args + ["--out", sym, "--symbolic", "--margin", "0.05"]) == 0
    rows_a = [json.loads(line) for line in plain.read_text().splitlines()]
    rows_b = [json.loads(line) for line in sym.read_text().splitlines()]
    assert [r["query_id"] for r in rows_a] == [r["query_id"] for r in rows_b]
    for a, b in zip(rows_a, rows_b, strict=True):
        docs_a = [h["doc_id"] for h in a["hits"]]
        docs_b = [h["doc_id"] for h in b["hits"]]
        scores = [h["score"] for h in a["hits"]]
        assert [h["score"] for h in b["hits"]] == scores
        assert [h["rank"] for h in b["hits"]] == list(range(1, len(docs_b) + 1))
        for start, end in near_tie_groups(scores, 0.05):
            assert set(docs_b[start:end]) == set(docs_a[start:end])
