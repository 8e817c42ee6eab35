"""What the scale benchmark needs of VectorIndex: float16 storage, IVF-PQ, the kind per size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index import VectorIndex, recall_against_exact
from index._exact import topk_numpy
from index.vectors import EXACT_UP_TO, HNSW_UP_TO, choose_kind
from tests.test_index_vectors import DIM, clustered


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = clustered(3000, seed=0)
    return np.arange(3000, dtype=np.int64) * 3 + 5, x, clustered(50, seed=1)


def test_float16_exact_matches_float32_and_halves_the_file(tmp_path, corpus):
    ids, x, q = corpus
    full, half = VectorIndex(DIM), VectorIndex(DIM, dtype="float16")
    full.add(ids, x)
    half.add(ids, x)
    assert half._blocks[0].dtype == np.float16
    assert recall_against_exact(half, full, q, 10) >= 0.99
    s_full, _ = full.search(q, 10)
    s_half, _ = half.search(q, 10)
    np.testing.assert_allclose(s_half, s_full, atol=2e-3)
    np.testing.assert_allclose(half.vectors_of(ids[:5]), x[:5], atol=1e-3)
    full.save(tmp_path / "f")
    half.save(tmp_path / "h")
    meta = json.loads((tmp_path / "h" / "vector_index.json").read_text())
    assert meta["params"]["dtype"] == "float16"
    size = (tmp_path / "h" / "vectors.npy").stat().st_size
    assert size < 0.55 * (tmp_path / "f" / "vectors.npy").stat().st_size
    for mmap in (True, False):
        loaded = VectorIndex.load(tmp_path / "h", mmap=mmap)
        assert loaded._blocks[0].dtype == np.float16 and loaded.params["dtype"] == "float16"
        np.testing.assert_array_equal(loaded.search(q, 10)[1], half.search(q, 10)[1])
    half.remove(ids[:100])  # compacted on save, in half precision still
    half.save(tmp_path / "h")
    assert len(VectorIndex.load(tmp_path / "h")) == len(ids) - 100


def test_float16_kernel_converts_in_chunks(corpus):
    _, x, q = corpus
    ref = topk_numpy(q, [x[:1000], x[1000:]], 7)
    got = topk_numpy(q, [x[:1000].astype(np.float16), x[1000:].astype(np.float16)], 7,
                     chunk_size=256)
    assert (got[1] == ref[1]).mean() > 0.97
    np.testing.assert_allclose(got[0], ref[0], atol=2e-3)


def test_float16_load_refuses_a_float32_file(tmp_path, corpus):
    ids, x, _ = corpus
    index = VectorIndex(DIM)
    index.add(ids, x)
    index.save(tmp_path / "v")
    meta_path = tmp_path / "v" / "vector_index.json"
    meta = json.loads(meta_path.read_text())
    meta["params"]["dtype"] = "float16"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="expected float16"):
        VectorIndex.load(tmp_path / "v")


def test_dtype_is_validated():
    with pytest.raises(ValueError, match="dtype must be one of"):
        VectorIndex(DIM, dtype="int8")
    with pytest.raises(ValueError, match="unknown parameter"):
        VectorIndex(DIM, kind="hnsw", dtype="float16")


def test_ivfpq_recall_removal_and_roundtrip(tmp_path, corpus):
    ids, x, q = corpus
    exact = VectorIndex(DIM)
    exact.add(ids, x)
    pq = VectorIndex(DIM, kind="ivfpq", nlist=16, nprobe=16, pq_m=16, pq_bits=8)
    pq.add(ids[:2000], x[:2000])
    pq.add(ids[2000:], x[2000:])  # trained on the first add, later adds encoded
    assert pq.params["pq_m"] == 16 and pq.params["nlist"] == 16
    assert recall_against_exact(pq, exact, q, 10) >= 0.5
    assert pq.vectors_of(ids[:3]).shape == (3, DIM)  # decoded, approximately
    pq.remove(ids[:50])
    assert not np.isin(pq.search(q, 10)[1], ids[:50]).any()
    pq.save(tmp_path / "pq")
    meta = json.loads((tmp_path / "pq" / "vector_index.json").read_text())
    assert meta["kind"] == "ivfpq" and meta["params"]["pq_bits"] == 8
    loaded = VectorIndex.load(tmp_path / "pq")
    assert len(loaded) == len(ids) - 50
    np.testing.assert_array_equal(loaded.search(q, 10)[1], pq.search(q, 10)[1])
    # Compressed: far smaller than the float32 vectors.
    assert (tmp_path / "pq" / "faiss.index").stat().st_size < x.nbytes / 2


def test_ivfpq_default_codes_and_errors(corpus):
    ids, x, _ = corpus
    pq = VectorIndex(DIM, kind="ivfpq", nlist=8, pq_bits=4)
    pq.add(ids, x)
    assert pq.params["pq_m"] == DIM // 8
    with pytest.raises(ValueError, match="must divide"):
        VectorIndex(DIM, kind="ivfpq", nlist=4, pq_m=5, pq_bits=4).add(ids, x)
    with pytest.raises(ValueError, match="needs at least 256 vectors"):
        VectorIndex(DIM, kind="ivfpq", nlist=4).add(ids[:100], x[:100])


def test_choose_kind_by_size():
    assert choose_kind(0) == choose_kind(EXACT_UP_TO) == "exact"
    assert choose_kind(EXACT_UP_TO + 1) == choose_kind(HNSW_UP_TO) == "hnsw"
    assert choose_kind(HNSW_UP_TO + 1) == choose_kind(10**8) == "ivfpq"
    with pytest.raises(ValueError):
        choose_kind(-1)


def test_build_resolves_approximate_auto_by_store_size():
    from index.build import APPROXIMATE, vector_kind

    assert {"ivfpq", "auto"} <= set(APPROXIMATE)
    assert vector_kind(None, 10**7) == "exact" and vector_kind("ivf", 10) == "ivf"
    assert vector_kind("auto", 1000) == "exact"
    assert vector_kind("auto", 1_000_000) == "hnsw"
    assert vector_kind("auto", 10_000_000) == "ivfpq"
