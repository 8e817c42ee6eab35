"""End-to-end retrieval over the bundled sample: build, match, add/remove, refusals, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.layout import part_dir
from index.manifest import ManifestError, read_manifest, write_manifest
from mathcore.runs import iter_queries, read_qrels, read_run
from mathcore.store import Store
from mathmatch.cli import main
from retriever.encoder import DEFAULT_ENCODER
from retriever.searcher import open_searcher

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture()
def index_copy(sample_index, tmp_path) -> Path:
    dst = tmp_path / "idx"
    shutil.copytree(sample_index, dst)
    return dst


def _match(index: Path, tmp_path: Path, *extra: str) -> list[dict]:
    out = tmp_path / "run.jsonl"
    assert main(["-q", "match", str(index), "--queries", str(SAMPLE / "queries.jsonl"),
                 "--out", str(out), *extra]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_manifest_describes_every_part(sample_index):
    m = read_manifest(sample_index)
    with Store(sample_index / "records.sqlite", readonly=True) as store:
        assert m["store"]["records"] == store.count() == 306
        assert m["dense"]["count"] == m["lexical"]["count"] == 306
        assert m["dense"]["corpus_checksum"] == store.checksum()
    assert m["dense"]["encoder"] == DEFAULT_ENCODER == "mathmatch-minilm-math"
    assert m["dense"]["dim"] == 384 and m["dense"]["metric"] == "inner_product"


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_match_streams_in_batches_and_finds_answers(sample_index, tmp_path, mode):
    rows = _match(sample_index, tmp_path, "--mode", mode, "--batch-size", "7", "--k", "5")
    queries = list(iter_queries(SAMPLE / "queries.jsonl"))
    assert [r["query_id"] for r in rows] == [q for q, _ in queries]  # order kept across batches
    qrels = read_qrels(SAMPLE / "qrels.tsv")
    found = 0
    for row in rows:
        hits = row["hits"]
        assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert len(hits) == 5 or mode == "bm25"
        found += any(h["doc_id"] in qrels[row["query_id"]] for h in hits)
    # The questions of indexed records: every mode finds nearly all their answers in the top 5.
    assert found / len(rows) >= 0.9


def test_hybrid_fuses_dense_and_bm25(sample_index):
    from index import convex, rrf

    queries = list(iter_queries(SAMPLE / "queries.jsonl"))[:10]
    texts = [t for _, t in queries]
    hybrid = open_searcher(sample_index, "hybrid", device="cpu", depth=50, givens_weight=0)
    dense = open_searcher(sample_index, "dense", device="cpu")
    bm25 = open_searcher(sample_index, "bm25")
    from mathcore.runs import linear_query

    lin = [linear_query(q, t) for q, t in queries]
    rankings = [dense.search_rows(lin, 50), bm25.search_rows(lin, 50)]
    expected = convex(rankings, k=10, weights=(0.7, 0.3), normalize="zscore")
    np.testing.assert_array_equal(hybrid.search_rows(lin, 10)[1], expected[1])
    by_rrf = open_searcher(sample_index, "hybrid", device="cpu", depth=50, fusion="rrf",
                           weights=(1.0, 1.0), givens_weight=0)
    np.testing.assert_array_equal(by_rrf.search_rows(lin, 10)[1], rrf(rankings, k=10)[1])
    assert len(texts) == 10


def test_rankings_kept_while_keeping_are_not_searched_again(sample_index):
    from mathcore.runs import linear_query

    hybrid = open_searcher(sample_index, "hybrid", device="cpu", depth=20)
    parts = [hybrid.retriever.dense, hybrid.retriever.lexical]
    lin = [linear_query(q, t) for q, t in list(iter_queries(SAMPLE / "queries.jsonl"))[:6]]
    searched: list[list[str]] = []
    for part in parts:
        inner = part._search
        part._search = lambda texts, k, inner=inner: searched.append(list(texts)) or \
            inner(texts, k)
    fresh = [part.search_texts(lin[:1], 20) for part in parts]
    with parts[0].keeping(), parts[1].keeping():
        batch = hybrid.search_rows(lin, 10)
        assert len(searched) == 4  # one search of each part (after one each before)
        again = [part.search_texts(lin[:1], 20) for part in parts]  # kept: not searched
        assert len(searched) == 4
        part_of_batch = [part.search_texts(lin[2:4] + lin[:1], 20) for part in parts]
        assert len(searched) == 4
        parts[1].search_texts(lin[:1], 5)  # another depth: searched
        assert searched[-1] == lin[:1]
    for (s, r), (s0, r0) in zip(again, fresh, strict=True):
        np.testing.assert_array_equal(r, r0)
        np.testing.assert_allclose(s, s0, atol=1e-5)
    for (_, r), part in zip(part_of_batch, parts, strict=True):
        assert r.shape == (3, 20)
        np.testing.assert_array_equal(r, part.search_texts(lin[2:4] + lin[:1], 20)[1])
    assert len(searched) == 7  # nothing kept once the block is left
    np.testing.assert_array_equal(batch[1], hybrid.search_rows(lin, 10)[1])


def test_trec_output_is_readable(sample_index, tmp_path):
    out = tmp_path / "run.trec"
    assert main(["-q", "match", str(sample_index), "--queries", str(SAMPLE / "queries.jsonl"),
                 "--format", "trec", "--out", str(out), "--mode", "bm25"]) == 0
    lines = out.read_text().splitlines()
    assert all(len(line.split()) == 6 and line.split()[1] == "Q0" for line in lines)
    run = read_run(out)
    assert len(run) == 40


def test_plain_text_queries_and_stdout(sample_index, tmp_path, capsys):
    queries = tmp_path / "q.txt"
    queries.write_text("Solve x^2 - 5x + 6 = 0.\nWhat is 1/2 + 1/3?\n")
    assert main(["-q", "match", str(sample_index), "--queries", str(queries), "--k", "3",
                 "--mode", "dense"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["query_id"] for r in rows] == ["1", "2"]
    assert "mathml-quadratic" in [h["doc_id"] for h in rows[0]["hits"]]
    assert "mathml-fraction-sum" in [h["doc_id"] for h in rows[1]["hits"]]


def test_remove_then_add_then_search(index_copy, tmp_path):
    gone = ["mathml-quadratic", "mathml-fraction-sum", "gsm8k-test-00395"]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(gone) + "\nnot-an-id\n")
    assert main(["-q", "index", "remove", str(index_copy), "--ids", str(ids_file)]) == 0
    m = read_manifest(index_copy)
    assert m["store"]["records"] == m["dense"]["count"] == m["lexical"]["count"] == 303
    for mode in ("dense", "bm25", "hybrid"):
        s = open_searcher(index_copy, mode, device="cpu")
        run = s.search({"q": "Solve x^2 - 5x + 6 = 0."}, k=303)
        assert not set(gone) & set(run["q"]), mode
    # Add them back from the sample folder (and nothing else: the others are duplicates).
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(SAMPLE / "mathml" / "quadratic.xml", extra)
    assert main(["-q", "index", "add", str(index_copy), str(extra)]) == 0
    m = read_manifest(index_copy)
    assert m["store"]["records"] == m["dense"]["count"] == m["lexical"]["count"] == 304
    s = open_searcher(index_copy, "dense", device="cpu")
    assert "mathml-quadratic" in s.search({"q": "Solve x^2 - 5x + 6 = 0."}, k=3)["q"]


def test_searcher_reads_the_committed_state_while_the_store_is_ahead(index_copy):
    """A writer at work has records in the store that the manifest does not name yet: a
    searcher opened meanwhile reads the last committed state and never returns them."""
    from mathcore.records import Record, derive

    rec = Record(id="sneaky", question="", answer="<math><mn>1</mn></math>", origin="test")
    with Store(index_copy / "records.sqlite") as store, store.transaction():
        store.insert([(rec, derive(rec))])
    for mode in ("dense", "bm25", "hybrid"):
        searcher = open_searcher(index_copy, mode, device="cpu")
        run = searcher.search([("q", "1")], k=400)
        searcher.close()
        assert run["q"] and "sneaky" not in run["q"]


def test_part_out_of_step_with_the_manifest_is_refused(index_copy):
    manifest = read_manifest(index_copy)
    manifest["lexical"]["corpus_checksum"] = "0" * 64
    write_manifest(index_copy, manifest)
    with pytest.raises(ManifestError, match="index verify"):
        open_searcher(index_copy, "bm25", device="cpu")


def test_other_encoder_is_refused(sample_index, tiny_encoder_path):
    with pytest.raises(ManifestError, match="another model"):
        open_searcher(sample_index, "dense", encoder=str(tiny_encoder_path), device="cpu")
    assert main(["-q", "match", str(sample_index), "--queries", str(SAMPLE / "queries.jsonl"),
                 "--encoder", str(tiny_encoder_path)]) == 2


def test_build_into_index_of_other_encoder_is_refused(index_copy, tiny_encoder_path):
    code = main(["-q", "index", "build", str(SAMPLE / "mathml"), "--out", str(index_copy),
                 "--encoder", str(tiny_encoder_path), "--workers", "0"])
    assert code == 2


def test_approximate_index_reports_recall(tmp_path, tiny_encoder_path):
    out = tmp_path / "hnsw"
    assert main(["-q", "index", "build", str(SAMPLE / "records.jsonl"), "--out", str(out),
                 "--encoder", str(tiny_encoder_path), "--approximate", "hnsw",
                 "--workers", "0"]) == 0
    dense = read_manifest(out)["dense"]
    assert dense["kind"] == "hnsw"
    assert 0.5 <= dense["recall_at_10"] <= 1.0


def test_killed_build_resumes_without_loss_or_doubles(tmp_path, tiny_encoder_path):
    """Kill `index build` with SIGKILL while it encodes; run it again; every record once."""
    out = tmp_path / "idx"
    cmd = [sys.executable, "-m", "mathmatch.cli", "-q", "index", "build",
           str(SAMPLE / "records.jsonl"), "--out", str(out), "--encoder", str(tiny_encoder_path),
           "--workers", "0", "--batch-size", "4", "--save-every", "16", "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path)
    pending = out / "pending" / "dense"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(pending.glob("chunk-*.ids.npy"))) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "dense" not in read_manifest(out)  # nothing committed
    chunks_before = len(list(pending.glob("chunk-*.ids.npy")))
    assert chunks_before >= 3
    assert subprocess.run(cmd, env=env, cwd=tmp_path).returncode == 0
    m = read_manifest(out)
    assert m["store"]["records"] == m["dense"]["count"] == 300
    assert m["dense"]["encode"]["records"] == 300 - 16 * chunks_before  # only the rest encoded
    from index import VectorIndex

    ids = VectorIndex.load(part_dir(out, read_manifest(out), "dense")).ids()
    with Store(out / "records.sqlite", readonly=True) as store:
        assert sorted(ids.tolist()) == store.rowids()
    assert not pending.exists()


def test_figure_code_is_searched_as_its_labels(sample_index):
    from retriever.searcher import figure_labels_only, search_text

    figure = ('[asy] draw((0,0)--(10,0)--(10,3)--cycle); label("10 cm",(5,0),S); '
              'label ( "3 cm" ,(10,1.5),E); [/asy]')
    assert figure_labels_only(f"Find the area. {figure} Answer in cm. [ASY]dot((0,0));[/ASY]") \
        == "Find the area. 10 cm 3 cm Answer in cm."
    assert figure_labels_only("a  b [asy] unclosed") == "a  b [asy] unclosed"  # untouched
    question = next(t for _, t in iter_queries(SAMPLE / "queries.jsonl"))
    assert search_text("q", f"{question} {figure}").endswith(" 10 cm 3 cm")
    # The searcher searches that text: the drawing commands change nothing, the labels do.
    searcher = open_searcher(sample_index, "hybrid", device="cpu")
    run = searcher.search([("bare", question), ("drawn", f"{question} {figure}"),
                           ("labels", f"{question} 10 cm 3 cm")], k=10)
    bare, drawn, labels = (list(run[q].items()) for q in ("bare", "drawn", "labels"))
    assert [(d, round(s, 5)) for d, s in drawn] == [(d, round(s, 5)) for d, s in labels]
    assert drawn != bare
