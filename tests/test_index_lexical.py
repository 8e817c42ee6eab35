"""LexicalIndex: BM25 scores equal rank_bm25 (Robertson) and the Lucene formula; save/load.

``tests/data/bm25_sample.jsonl``: the first 150 GSM8K train records (openai/grade-school-math,
MIT), question and answer, with the answers' MathML flattened to its text.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from index import LexicalIndex

DATA = Path(__file__).parent / "data" / "bm25_sample.jsonl"
WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return WORD.findall(text.lower())


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, list[list[str]], list[list[str]]]:
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    docs = [tokenize(r["answer"]) for r in records]
    queries = [tokenize(r["question"]) for r in records[::7][:20]]
    ids = np.arange(len(docs), dtype=np.int64) * 3 + 1000
    return ids, docs, queries


@pytest.fixture(scope="module")
def built(sample) -> LexicalIndex:
    ids, docs, _ = sample
    index = LexicalIndex(k1=1.5, b=0.75, method="robertson")
    index.build(ids, docs)
    return index


def assert_matches_reference(got, ref_scores: np.ndarray, ids: np.ndarray, k: int) -> None:
    """Top-k scores equal the reference's (padding = 0); ids may differ only within ties."""
    scores, hits = got
    for qi, ref in enumerate(ref_scores):
        expected = np.sort(ref)[::-1][:k]
        expected = np.where(expected > 0, expected, 0.0)
        np.testing.assert_allclose(scores[qi], expected, rtol=1e-5, atol=1e-6)
        by_id = dict(zip(ids.tolist(), ref.tolist(), strict=True))
        valid = hits[qi] >= 0
        assert valid.sum() == min(k, int((ref > 0).sum()))
        for s, i in zip(scores[qi][valid], hits[qi][valid], strict=True):
            assert by_id[int(i)] == pytest.approx(float(s), rel=1e-5)


def test_robertson_equals_rank_bm25(sample, built):
    rank_bm25 = pytest.importorskip("rank_bm25")
    ids, docs, queries = sample
    ref = rank_bm25.BM25Okapi(docs, k1=1.5, b=0.75, epsilon=0)
    ref_scores = np.array([ref.get_scores(q) for q in queries])
    assert_matches_reference(built.search(queries, 10), ref_scores, ids, 10)


def lucene_scores(docs: list[list[str]], query: list[str], k1: float, b: float) -> np.ndarray:
    n = len(docs)
    avg = sum(map(len, docs)) / n
    df = Counter(t for d in docs for t in set(d))
    tfs = [Counter(d) for d in docs]
    out = np.zeros(n)
    for t in query:
        if t not in df:
            continue
        idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
        for j, tf in enumerate(tfs):
            f = tf.get(t, 0)
            out[j] += idf * f / (f + k1 * (1 - b + b * len(docs[j]) / avg))
    return out


def test_lucene_equals_formula(sample):
    ids, docs, queries = sample
    index = LexicalIndex(k1=1.2, b=0.5, method="lucene")
    index.build(ids, docs)
    ref_scores = np.array([lucene_scores(docs, q, 1.2, 0.5) for q in queries[:8]])
    assert_matches_reference(index.search(queries[:8], 10), ref_scores, ids, 10)


def test_unknown_tokens_and_empty_queries(built, sample):
    _, _, queries = sample
    q = queries[0]
    with_noise = built.search([q + ["zzzunknownzzz", "qqq"]], 10)
    plain = built.search([q], 10)
    np.testing.assert_array_equal(with_noise[1], plain[1])
    np.testing.assert_allclose(with_noise[0], plain[0])
    scores, hits = built.search([["zzzunknownzzz"], [], q], 5)
    assert (hits[:2] == -1).all() and (scores[:2] == 0).all()
    assert (hits[2] >= 0).all() and (np.diff(scores[2]) <= 0).all()


def test_only_matching_documents_are_returned():
    index = LexicalIndex()
    index.build(np.array([10, 20, 30]), [["red", "apple"], ["green", "pear"], ["blue", "sky"]])
    scores, hits = index.search([["apple"], ["pear", "sky"]], 5)
    assert hits[0].tolist() == [10, -1, -1, -1, -1]
    assert sorted(hits[1, :2].tolist()) == [20, 30] and (hits[1, 2:] == -1).all()
    assert scores[0, 0] > 0 and (scores[0, 1:] == 0).all()


def test_save_load_mmap_roundtrip(tmp_path, built, sample):
    _, _, queries = sample
    facts = built.save(tmp_path / "bm25")
    assert facts["count"] == len(built) and facts["method"] == "robertson"
    assert {"ids.npy", "vocab.index.json", "lexical_index.json"} <= set(facts["files"])
    for name in facts["files"]:
        assert (tmp_path / "bm25" / name).is_file()
    loaded = LexicalIndex.load(tmp_path / "bm25", mmap=True)
    assert isinstance(loaded._ids, np.memmap)
    assert loaded.vocab_size == built.vocab_size
    expected, got = built.search(queries, 10), loaded.search(queries, 10)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0])


def test_rebuild_replaces_documents(sample):
    ids, docs, queries = sample
    index = LexicalIndex()
    index.build(ids, docs)
    index.build(ids[:2], docs[:2])  # a rebuild is how documents are added or removed
    assert len(index) == 2
    _, hits = index.search(queries, 10)
    assert set(hits[hits >= 0].tolist()) <= set(ids[:2].tolist())


def test_empty_index_and_documents_without_tokens(tmp_path):
    empty = LexicalIndex()
    scores, hits = empty.search([["a"]], 3)
    assert (hits == -1).all() and (scores == 0).all()
    blank = LexicalIndex()
    blank.build(np.array([1, 2]), [[], []])
    assert len(blank) == 2 and (blank.search([["a"]], 3)[1] == -1).all()
    blank.save(tmp_path)
    assert len(LexicalIndex.load(tmp_path)) == 2


def test_build_and_params_are_validated():
    index = LexicalIndex()
    with pytest.raises(ValueError, match="id 8"):
        index.build(np.array([7, 8]), [["a"], "b c"])
    with pytest.raises(ValueError, match="non-empty strings"):
        index.build(np.array([7]), [["a", 3]])
    with pytest.raises(ValueError, match="2 ids for 1"):
        index.build(np.array([7, 8]), [["a"]])
    with pytest.raises(ValueError, match="id 7 occurs"):
        index.build(np.array([7, 7]), [["a"], ["b"]])
    with pytest.raises(ValueError, match="method must be one of"):
        LexicalIndex(method="bm25+")
    with pytest.raises(ValueError, match="b must be"):
        LexicalIndex(b=2)
    with pytest.raises(ValueError, match="k must be"):
        index.search([["a"]], 0)


@pytest.mark.slow
def test_numba_backend_matches_numpy(sample, built):
    _, _, queries = sample
    ids, docs, _ = sample
    fast = LexicalIndex(backend="numba", n_threads=2)
    fast.build(ids, docs)
    expected, got = built.search(queries, 10), fast.search(queries, 10)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)


def test_scores_of_given_documents_are_their_search_scores(built, sample):
    ids, _, queries = sample
    for q in queries[:5]:
        scores, hits = built.search([q], len(ids))
        ranked = dict(zip(hits[0].tolist(), scores[0].tolist(), strict=True))
        # the last-ranked documents and one that is not indexed
        asked = [int(i) for i in ids[::-5]] + [7]
        got = built.scores_of(q, asked)
        for i, s in zip(asked, got, strict=True):
            assert s == pytest.approx(ranked.get(i, 0.0), rel=1e-6, abs=1e-7)
    assert not built.scores_of(["zzzunknownzzz"], [int(ids[0])]).any()
