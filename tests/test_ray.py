"""``index build --ray``, ``index add --ray`` and ``match --ray`` against the single process.

One local Ray (2 CPUs, a 100 MB object store) serves the module; the corpus is the sample
(300 records + 6 MathML files) encoded by the tiny encoder in chunks of 32 records, so the
chunks are spread over both workers.  Vectors, ids, search results and runs must be those of
the single-process build.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

from index import VectorIndex  # noqa: E402
from index.layout import part_dir  # noqa: E402
from mathmatch.cli import main  # noqa: E402
from retriever.ray_encode import RAY_INSTALL, RayConfig, start_ray, stop_ray  # noqa: E402

CHUNK = ["--save-every", "32", "--workers", "0", "--device", "cpu"]
PASSAGES = ["--passages", "--passage-stride", "32"]


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray for the module: 2 CPUs, a bounded object store; every --ray joins it."""
    import ray

    assert not ray.is_initialized()
    started = start_ray(RayConfig(num_cpus=2, object_store_mb=100))
    yield ray
    stop_ray(started)


@pytest.fixture(scope="module")
def corpora(sample_dir) -> list[Path]:
    return [sample_dir / "records.jsonl", sample_dir / "mathml"]


def _build(out: Path, corpora: list[Path], encoder: Path, *flags: str) -> Path:
    assert main(["-q", "index", "build", *map(str, corpora), "--out", str(out),
                 "--encoder", str(encoder), *CHUNK, *flags]) == 0
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory, corpora, tiny_encoder_path) -> Path:
    """The single-process build, the reference."""
    return _build(tmp_path_factory.mktemp("single") / "idx", corpora, tiny_encoder_path)


@pytest.fixture(scope="module")
def single_passages(tmp_path_factory, corpora, tiny_encoder_path) -> Path:
    """The single-process build with passages (long answers: several vectors)."""
    return _build(tmp_path_factory.mktemp("single") / "passages", corpora, tiny_encoder_path,
                  *PASSAGES)


def _vectors(index_dir: Path, section: str = "dense") -> tuple[np.ndarray, np.ndarray]:
    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    index = VectorIndex.load(part_dir(index_dir, manifest, section), mmap=False)
    ids = np.sort(index.ids())
    return ids, index.vectors_of(ids)


def _assert_same_vectors(ray_dir: Path, single_dir: Path) -> float:
    ids, vecs = _vectors(ray_dir)
    ref_ids, ref_vecs = _vectors(single_dir)
    np.testing.assert_array_equal(ids, ref_ids)
    diff = float(np.abs(vecs - ref_vecs).max())
    # A worker makes the same encoder call on the same chunk: equal up to float rounding.
    assert diff <= 1e-5, diff
    return diff


def _search(index_dir: Path, queries: list[tuple[str, str]]) -> dict:
    from retriever.searcher import open_searcher

    searcher = open_searcher(index_dir, mode="hybrid", device="cpu")
    try:
        return searcher.search(queries, 10)
    finally:
        searcher.close()


def _queries(sample_dir: Path, n: int = 40) -> list[tuple[str, str]]:
    with open(sample_dir / "queries.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh][:n]
    return [(r["_id"], r["text"]) for r in rows]


def test_index_build_ray_gives_the_single_process_vectors_and_results(
        ray_session, run_cli, tmp_path, corpora, single, tiny_encoder_path, sample_dir,
        capsys):
    out = tmp_path / "ray"
    assert run_cli(["index", "build", *map(str, corpora), "--out", str(out),
                    "--encoder", str(tiny_encoder_path), *CHUNK, "--ray"]) == 0
    # 306 records in chunks of 32, spread over both workers.
    assert "encoded 10 chunks (306 records) on 2 Ray workers" in capsys.readouterr().err
    assert ray_session.is_initialized()  # the module's Ray was joined, not shut down
    diff = _assert_same_vectors(out, single)
    print(f"max abs vector difference, --ray against one process: {diff:.3g}")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    reference = json.loads((single / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["store"]["checksum"] == reference["store"]["checksum"]
    assert manifest["dense"]["count"] == reference["dense"]["count"] == 306
    assert manifest["dense"]["encode"]["records"] == 306
    assert not (out / "pending").exists()  # the chunks went into the committed vectors
    queries = _queries(sample_dir)
    assert _search(out, queries) == _search(single, queries)


def test_index_add_ray_encodes_passages_as_one_process_would(
        ray_session, run_cli, tmp_path, corpora, single_passages, tiny_encoder_path, capsys):
    out = _build(tmp_path / "grown", corpora[:1], tiny_encoder_path, *PASSAGES)
    assert run_cli(["index", "add", str(out), str(corpora[1]), "--save-every", "4",
                    "--workers", "0", "--device", "cpu", "--ray"]) == 0
    assert "encoded 2 chunks (6 records) on 2 Ray workers" in capsys.readouterr().err
    ids, _ = _vectors(out)
    assert ids.size > 306  # long answers have several passages
    _assert_same_vectors(out, single_passages)


def test_match_ray_writes_the_run_of_match(ray_session, run_cli, tmp_path, single,
                                           sample_dir, capsys):
    args = ["-q", "match", str(single), "--queries", str(sample_dir / "queries.jsonl"),
            "--device", "cpu", "--batch-size", "8", "--k", "5"]
    assert run_cli([*args, "--out", str(tmp_path / "one.jsonl")]) == 0
    capsys.readouterr()
    assert run_cli([*args[1:], "--out", str(tmp_path / "ray.jsonl"), "--ray"]) == 0
    assert "matching on Ray: 2 CPU actors" in capsys.readouterr().err
    one = (tmp_path / "one.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(one) == sum(1 for _ in open(sample_dir / "queries.jsonl", encoding="utf-8"))
    assert (tmp_path / "ray.jsonl").read_text(encoding="utf-8").splitlines() == one


@pytest.mark.parametrize("command", [["index", "build", "CORPUS", "--out", "IDX"],
                                     ["match", "IDX", "--queries", "CORPUS"]])
def test_without_ray_the_flag_says_how_to_install_it(run_cli, tmp_path, corpora, single,
                                                     monkeypatch, capsys, command):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    where = {"CORPUS": str(corpora[1]), "IDX": str(tmp_path / "idx")}
    if command[0] == "match":
        where["IDX"] = str(single)
    assert run_cli([where.get(a, a) for a in command] + ["--ray"]) == 2
    assert RAY_INSTALL in capsys.readouterr().err
    assert not (tmp_path / "idx").exists()  # said before anything is made
