"""VectorIndex: exact search equals brute force, approximate recall, add/remove, save/load."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from index import VectorIndex, _common, recall_against_exact
from index._exact import topk_numpy
from mathcore import device

DIM = 32


def clustered(n: int, seed: int, n_centers: int = 20, spread: float = 0.35) -> np.ndarray:
    """Normalised vectors around a few random centres (centres fixed, points drawn by seed)."""
    centers = np.random.default_rng(1234).standard_normal((n_centers, DIM))
    rng = np.random.default_rng(seed)
    x = centers[rng.integers(0, n_centers, n)] + spread * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = clustered(3000, seed=0)
    ids = np.arange(3000, dtype=np.int64) * 7 + 100  # caller row ids, not positions
    q = clustered(60, seed=1)
    return ids, x, q


def brute_force(q: np.ndarray, ids: np.ndarray, x: np.ndarray, k: int):
    s = q @ x.T
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, axis=1), ids[order]


def assert_topk_equal(got, ref, q, ids, x, atol=1e-5):
    """Same top-k scores; ids may differ only between tied scores (each id's true score matches)."""
    (gs, gi), (rs, _ri) = got, ref
    assert gs.dtype == np.float32 and gi.dtype == np.int64
    assert gs.shape == rs.shape == gi.shape
    np.testing.assert_allclose(gs, rs, atol=atol)
    row_of = {int(i): r for r, i in enumerate(ids)}
    for qi in range(q.shape[0]):
        assert len(set(gi[qi].tolist())) == gi.shape[1], "duplicate ids in one result row"
        for s, i in zip(gs[qi], gi[qi], strict=True):
            assert abs(float(q[qi] @ x[row_of[int(i)]]) - s) <= atol


@pytest.mark.parametrize("k", [1, 10, 100])
@pytest.mark.parametrize("chunk_size", [None, 7, 256, 5000])
@pytest.mark.parametrize("n_queries", [1, 8, 60])  # a few queries: the product the other way
def test_exact_equals_brute_force(corpus, k, chunk_size, n_queries):
    ids, x, q = corpus
    q = q[:n_queries]
    index = VectorIndex(DIM, chunk_size=chunk_size)
    for part in np.array_split(np.arange(len(ids)), 3):  # several blocks
        index.add(ids[part], x[part])
    assert len(index) == len(ids)
    assert_topk_equal(index.search(q, k), brute_force(q, ids, x, k), q, ids, x)


def test_exact_kernel_adversarial_order():
    """Scores rising along the corpus make every chunk beat the running threshold."""
    rng = np.random.default_rng(3)
    q = rng.standard_normal((5, DIM)).astype(np.float32)
    x = rng.standard_normal((2000, DIM)).astype(np.float32)
    x = x[np.argsort(x @ q[0])]  # ascending similarity to the first query
    s, p = topk_numpy(q, [x[:900], x[900:]], k=15, chunk_size=64)
    ref = np.sort(q @ x.T, axis=1)[:, ::-1][:, :15]
    np.testing.assert_allclose(s, ref, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(q @ x.T, p, axis=1), s, atol=1e-5)


def test_single_query_vector_and_padding(corpus):
    ids, x, q = corpus
    index = VectorIndex(DIM)
    index.add(ids[:5], x[:5])
    scores, got = index.search(q[0], 8)  # 1-D query, k > count
    assert scores.shape == got.shape == (1, 8)
    assert sorted(got[0, :5].tolist()) == sorted(ids[:5].tolist())
    assert (got[0, 5:] == -1).all() and np.isneginf(scores[0, 5:]).all()
    assert (np.diff(scores[0, :5]) <= 0).all()


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_empty_index_search(kind):
    index = VectorIndex(DIM, kind=kind)
    scores, ids = index.search(np.ones((3, DIM), dtype=np.float32) / np.sqrt(DIM), 4)
    assert len(index) == 0 and (ids == -1).all() and np.isneginf(scores).all()


def test_add_rejects_bad_input(corpus):
    ids, x, _ = corpus
    index = VectorIndex(DIM)
    index.add(ids[:10], x[:10])
    with pytest.raises(ValueError, match=f"id {ids[3]}"):
        index.add(ids[3:4], x[3:4])
    with pytest.raises(ValueError, match="id 5"):
        index.add(np.array([5, 5]), x[:2])
    with pytest.raises(ValueError, match="norm"):
        index.add(np.array([1]), 2 * x[:1])
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([1]), x[:1, :-1])
    with pytest.raises(ValueError, match=">= 0"):
        index.add(np.array([-4]), x[:1])
    with pytest.raises(ValueError, match="2 ids for 1"):
        index.add(np.array([1, 2]), x[:1])
    assert len(index) == 10


def test_params_and_device_are_validated(monkeypatch):
    with pytest.raises(ValueError, match="kind must be one of"):
        VectorIndex(DIM, kind="flat")
    with pytest.raises(ValueError, match="allowed"):
        VectorIndex(DIM, kind="hnsw", nprobe=3)
    with pytest.raises(ValueError, match="nlist must be an integer >= 1"):
        VectorIndex(DIM, kind="ivf", nlist=0)
    with pytest.raises(ValueError, match="fp16 must be"):
        VectorIndex(DIM, fp16="yes")
    assert VectorIndex(DIM, kind="ivf", nlist=np.int64(4)).params["nlist"] == 4  # JSON-safe int
    with pytest.raises(ValueError, match="device must be one of"):
        VectorIndex(DIM, device="tpu")
    with pytest.raises(ValueError, match="only implemented for kind='exact'"):
        VectorIndex(DIM, kind="hnsw", device="cuda")
    monkeypatch.setattr(device, "cuda_available", lambda: False)  # the one device rule
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        VectorIndex(DIM, device="cuda")
    assert VectorIndex(DIM, device="auto").device == "cpu"


def test_require_faiss_names_install_command(monkeypatch):
    _common.require_faiss.cache_clear()
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    try:
        with pytest.raises(ImportError, match="pip install faiss-cpu") as err:
            _common.require_faiss()
        assert "pip uninstall -y faiss-cpu && pip install faiss-gpu-cu12" in str(err.value)
    finally:
        _common.require_faiss.cache_clear()


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_remove_then_search_and_readd(corpus, kind):
    ids, x, q = corpus
    index = VectorIndex(DIM, kind=kind, **({"nprobe": 64} if kind == "ivf" else {}))
    index.add(ids, x)
    _, before = index.search(q, 5)
    gone = np.unique(before[:, 0])
    assert index.remove(np.concatenate([gone, [10**9]])) == gone.size  # unknown id ignored
    assert index.remove(gone) == 0
    assert len(index) == len(ids) - gone.size
    _, after = index.search(q, 20)
    assert not np.isin(after, gone).any()
    if kind == "exact":
        keep = ~np.isin(ids, gone)
        assert_topk_equal(
            index.search(q, 20), brute_force(q, ids[keep], x[keep], 20), q, ids[keep], x[keep]
        )
    # A removed id can come back with a new vector; the old one must not resurface.
    old_row = int(np.flatnonzero(ids == gone[0])[0])
    new_vec = -x[old_row : old_row + 1]
    index.add(gone[:1], new_vec)
    scores, hits = index.search(x[old_row : old_row + 1], 50)
    assert gone[0] not in hits[0]
    scores, hits = index.search(new_vec, 1)
    assert hits[0, 0] == gone[0] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_exact_save_load_mmap_roundtrip(tmp_path, corpus):
    ids, x, q = corpus
    index = VectorIndex(DIM, chunk_size=500)
    index.add(ids[:2000], x[:2000])
    index.add(ids[2000:], x[2000:])
    index.remove(ids[:100])
    facts = index.save(tmp_path / "vec")
    assert facts["kind"] == "exact" and facts["dim"] == DIM and facts["count"] == len(ids) - 100
    assert set(facts["files"]) == {"vector_index.json", "ids.npy", "vectors.npy"}
    assert np.load(tmp_path / "vec" / "vectors.npy").shape == (len(ids) - 100, DIM)  # compacted

    loaded = VectorIndex.load(tmp_path / "vec", mmap=True)
    assert isinstance(loaded._blocks[0], np.memmap) and len(loaded) == len(index)
    assert loaded.params["chunk_size"] == 500
    expected = index.search(q, 10)
    got = loaded.search(q, 10)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0], atol=1e-6)

    # Add and remove on the memory-mapped index, then save over its own folder.
    loaded.add(ids[:100], x[:100])
    loaded.remove(ids[500:600])
    loaded.save(tmp_path / "vec")
    again = VectorIndex.load(tmp_path / "vec", mmap=False)
    keep = ~np.isin(ids, ids[500:600])
    assert len(again) == keep.sum()
    assert_topk_equal(
        again.search(q, 10), brute_force(q, ids[keep], x[keep], 10), q, ids[keep], x[keep]
    )


def test_load_refuses_mismatch(tmp_path, corpus):
    ids, x, _ = corpus
    index = VectorIndex(DIM)
    index.add(ids[:50], x[:50])
    index.save(tmp_path)
    meta_path = tmp_path / "vector_index.json"
    meta = json.loads(meta_path.read_text())
    meta["count"] = 49
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="49"):
        VectorIndex.load(tmp_path)
    meta["count"], meta["dim"] = 50, DIM + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="vectors.npy"):
        VectorIndex.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        VectorIndex.load(tmp_path / "nowhere")


def test_hnsw_recall_and_roundtrip(tmp_path, corpus):
    ids, x, q = corpus
    exact = VectorIndex(DIM)
    exact.add(ids, x)
    hnsw = VectorIndex(DIM, kind="hnsw", M=16, efConstruction=80, efSearch=64)
    hnsw.add(ids[:1500], x[:1500])
    hnsw.add(ids[1500:], x[1500:])
    assert recall_against_exact(hnsw, exact, q, 10) >= 0.95
    removed = ids[::10]
    hnsw.remove(removed)
    exact.remove(removed)
    assert hnsw.n_tombstones == removed.size
    assert recall_against_exact(hnsw, exact, q, 10) >= 0.95
    facts = hnsw.save(tmp_path / "h")
    assert {"faiss.index", "ids.npy", "removed.npy"} <= set(facts["files"])
    loaded = VectorIndex.load(tmp_path / "h")
    assert len(loaded) == len(hnsw) and loaded.n_tombstones == removed.size
    np.testing.assert_array_equal(loaded.search(q, 10)[1], hnsw.search(q, 10)[1])
    assert not np.isin(loaded.search(q, 50)[1], removed).any()


def test_ivf_recall_nlist_and_roundtrip(tmp_path, corpus):
    ids, x, q = corpus
    exact = VectorIndex(DIM)
    exact.add(ids, x)
    ivf = VectorIndex(DIM, kind="ivf", nprobe=8)
    ivf.add(ids, x)
    assert ivf.params["nlist"] == min(round(4 * np.sqrt(3000)), 3000 // 39)  # resolved, saved
    assert recall_against_exact(ivf, exact, q, 10) >= 0.9
    ivf.remove(ids[:300])
    ivf.save(tmp_path / "i")
    loaded = VectorIndex.load(tmp_path / "i")
    assert len(loaded) == len(ids) - 300 and loaded.params["nlist"] == ivf.params["nlist"]
    np.testing.assert_array_equal(loaded.search(q, 10)[1], ivf.search(q, 10)[1])
    with pytest.raises(ValueError, match="nlist=64"):
        VectorIndex(DIM, kind="ivf", nlist=64).add(ids[:10], x[:10])


def test_recall_against_itself_is_one(corpus):
    ids, x, q = corpus
    index = VectorIndex(DIM)
    index.add(ids, x)
    assert recall_against_exact(index, index, q, 10) == 1.0


def _cuda() -> bool:
    return device.cuda_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("fp16", [False, True])
def test_gpu_exact_matches_cpu(corpus, monkeypatch, backend, fp16):
    from index import vectors

    if backend == "faiss" and _common.faiss_gpu_count() == 0:
        pytest.skip("GPU FAISS not installed")
    if backend == "torch":
        monkeypatch.setattr(vectors, "faiss_gpu_count", lambda: 0)
    elif fp16:
        pytest.skip("fp16 applies to the torch path only")
    ids, x, q = corpus
    cpu = VectorIndex(DIM)
    gpu = VectorIndex(DIM, device="cuda", fp16=fp16)
    for index in (cpu, gpu):
        index.add(ids, x)
        index.remove(ids[::5])
    keep = ~np.isin(ids, ids[::5])
    atol = 2e-3 if fp16 else 1e-5
    got = gpu.search(q, 10)
    np.testing.assert_allclose(got[0], cpu.search(q, 10)[0], atol=atol)
    assert_topk_equal(got, brute_force(q, ids[keep], x[keep], 10), q, ids[keep], x[keep], atol=atol)
    scores, hits = gpu.search(q[:2], len(ids) + 5)  # k beyond the count pads
    assert (hits[:, keep.sum() :] == -1).all() and np.isneginf(scores[:, keep.sum() :]).all()


@pytest.mark.parametrize("kind, params", [("exact", {}), ("hnsw", {}), ("ivf", {"nlist": 8})])
def test_ids_and_vectors_of_follow_removals(kind, params):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = VectorIndex(16, kind=kind, **params)
    index.add(np.arange(1000, 1400), x)
    index.remove([1000, 1399])
    assert index.ids().tolist() == list(range(1001, 1399))
    np.testing.assert_array_equal(index.vectors_of([1300, 1001]), x[[300, 1]])
    with pytest.raises(KeyError, match="1000"):
        index.vectors_of([1000])
