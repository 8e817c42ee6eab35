"""Fusion: RRF and convex combination by hand, against a plain-Python reference, and against ranx.

The ranx comparisons are marked ``slow``: ranx JIT-compiles its numba kernels per doc-id string
length (about 20 s warm, over a minute cold), far more than the fusion itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from index import convex, rrf


def test_rrf_hand_computed():
    bm25 = (np.array([[3.0, 2.0, 1.0]]), np.array([[10, 11, 12]]))
    dense = (np.array([[0.9, 0.8, -np.inf]]), np.array([[12, 13, -1]]))  # -1: padding
    scores, ids = rrf([bm25, dense], k=5)
    assert ids.tolist() == [[12, 10, 11, 13, -1]]  # 11 and 13 tie: smaller id first
    np.testing.assert_allclose(scores[0], [1 / 63 + 1 / 61, 1 / 61, 1 / 62, 1 / 62, 0.0])
    scores, ids = rrf([bm25, dense], k=2, c=0, weights=[1.0, 3.0])
    assert ids.tolist() == [[12, 13]]
    np.testing.assert_allclose(scores[0], [1 / 3 + 3 / 1, 3 / 2])


def test_rrf_ranks_by_score_not_by_position():
    shuffled = (np.array([[1.0, 3.0, 2.0]]), np.array([[7, 5, 6]]))
    _, ids = rrf([shuffled], k=3)
    assert ids.tolist() == [[5, 6, 7]]


def random_rankings(n_queries: int, n_systems: int, width: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_systems):
        ids = np.stack([rng.choice(3 * width, size=width, replace=False) for _ in range(n_queries)])
        scores = np.sort(rng.random((n_queries, width)), axis=1)[:, ::-1].copy()
        ids[:, width - 3 :] = np.where(rng.random((n_queries, 3)) < 0.5, -1, ids[:, width - 3 :])
        out.append((scores, ids))
    return out


def to_ranx_run(scores: np.ndarray, ids: np.ndarray, name: str):
    from ranx import Run

    return Run(
        {
            f"q{qi}": {f"d{d}": float(s) for s, d in zip(srow, irow, strict=True) if d >= 0}
            for qi, (srow, irow) in enumerate(zip(scores, ids, strict=True))
        },
        name=name,
    )


def assert_same_as_ranx(fused, ranx_run, k: int) -> None:
    """Same top-k scores per query; ids may differ only among tied scores."""
    scores, ids = fused
    for qi in range(scores.shape[0]):
        ref = ranx_run.run[f"q{qi}"]
        expected = sorted(ref.values(), reverse=True)[:k]
        valid = ids[qi] >= 0
        np.testing.assert_allclose(scores[qi][valid], expected, rtol=1e-9)
        for s, d in zip(scores[qi][valid], ids[qi][valid], strict=True):
            assert ref[f"d{d}"] == pytest.approx(s, rel=1e-9)


def reference_rrf(rankings, c: int) -> list[dict[int, float]]:
    """RRF as ranx computes it: per run, ``1 / (c + i + 1)`` over docs sorted by score, summed."""
    fused: list[dict[int, float]] = [{} for _ in range(rankings[0][0].shape[0])]
    for scores, ids in rankings:
        for qi, (srow, irow) in enumerate(zip(scores, ids, strict=True)):
            docs = sorted(
                ((s, d) for s, d in zip(srow, irow, strict=True) if d >= 0), key=lambda p: -p[0]
            )
            for i, (_, d) in enumerate(docs):
                fused[qi][int(d)] = fused[qi].get(int(d), 0.0) + 1 / (c + i + 1)
    return fused


def test_rrf_equals_reference():
    rankings = random_rankings(n_queries=30, n_systems=3, width=20, seed=4)
    scores, ids = rrf(rankings, k=25, c=10)
    for qi, ref in enumerate(reference_rrf(rankings, c=10)):
        expected = sorted(ref.items(), key=lambda p: (-p[1], p[0]))[:25]
        assert ids[qi].tolist()[: len(expected)] == [d for d, _ in expected]
        np.testing.assert_allclose(
            scores[qi][: len(expected)], [s for _, s in expected], rtol=1e-12
        )


@pytest.mark.slow
def test_rrf_equals_ranx():
    ranx = pytest.importorskip("ranx")
    rankings = random_rankings(n_queries=12, n_systems=3, width=20, seed=0)
    runs = [to_ranx_run(s, i, f"sys{j}") for j, (s, i) in enumerate(rankings)]
    expected = ranx.fuse(runs, norm=None, method="rrf", params={"k": 60})
    assert_same_as_ranx(rrf(rankings, k=15, c=60), expected, 15)


@pytest.mark.slow
def test_convex_minmax_equals_ranx_wsum():
    ranx = pytest.importorskip("ranx")
    rankings = random_rankings(n_queries=12, n_systems=2, width=20, seed=1)
    runs = [to_ranx_run(s, i, f"sys{j}") for j, (s, i) in enumerate(rankings)]
    # With min-max, a list's minimum normalises to 0, which is ranx's score for a missing doc.
    expected = ranx.fuse(runs, norm="min-max", method="wsum", params={"weights": [0.3, 0.7]})
    assert_same_as_ranx(convex(rankings, k=10, weights=[0.3, 0.7]), expected, 10)


def test_convex_hand_computed():
    bm25 = (np.array([[3.0, 2.0, 1.0]]), np.array([[10, 11, 12]]))
    dense = (np.array([[0.9, 0.8, 0.0]]), np.array([[12, 13, -1]]))
    scores, ids = convex([bm25, dense], k=5)
    assert ids.tolist() == [[10, 12, 11, 13, -1]]
    np.testing.assert_allclose(scores[0], [1.0, 1.0, 0.5, 0.0, -np.inf])
    # z-scores: bm25 -> (1.2247, 0, -1.2247), dense -> (1, -1); a missing doc gets the list min.
    scores, ids = convex([bm25, dense], k=4, normalize="zscore")
    z = np.sqrt(1.5)
    assert ids.tolist() == [[10, 12, 11, 13]]
    np.testing.assert_allclose(scores[0], [z - 1, -z + 1, 0 - 1, -z - 1])


def test_padding_only_rows_and_missing_system():
    full = (np.array([[0.5, 0.4], [0.9, 0.1]]), np.array([[1, 2], [3, 4]]))
    empty = (np.zeros((2, 3)), np.full((2, 3), -1))
    for fuse in (rrf, convex):
        scores, ids = fuse([full, empty], k=3)
        assert ids.tolist() == [[1, 2, -1], [3, 4, -1]]
    scores, ids = rrf([empty, empty], k=2)
    assert (ids == -1).all() and (scores == 0).all()


def test_inputs_are_validated():
    a = (np.zeros((2, 3)), np.zeros((2, 3), dtype=np.int64))
    b = (np.zeros((3, 3)), np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="queries"):
        rrf([a, b], k=2)
    with pytest.raises(ValueError, match="weights"):
        rrf([a, a], k=2, weights=[1.0])
    with pytest.raises(ValueError, match="normalize must be one of"):
        convex([a], k=2, normalize="rank")
    with pytest.raises(ValueError, match="non-empty"):
        rrf([], k=2)
    with pytest.raises(ValueError, match="shapes"):
        rrf([(np.zeros((2, 3)), np.zeros((2, 2), dtype=np.int64))], k=2)


def test_large_batch_is_vectorised():
    rankings = random_rankings(n_queries=1000, n_systems=2, width=100, seed=2)
    scores, ids = rrf(rankings, k=10)
    assert scores.shape == ids.shape == (1000, 10)
    assert (np.diff(scores, axis=1) <= 0).all()
