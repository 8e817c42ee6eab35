"""Passage indexes: long answers split into overlapping windows, one vector per window, a
record scored by its best passage; build, add, remove and resume keep the passage-to-record map.

The encoder is the tiny random one with a 32-token window (30 text tokens), so most sample
answers split.
"""

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

from index import VectorIndex
from index.layout import part_dir
from index.manifest import read_manifest
from index.passages import MAX_PASSAGES, SLOTS, best_per_record, passage_ids, record_rows
from mathcore.records import Record, derive
from mathcore.store import Store
from mathmatch.cli import main
from retriever.encoder import Encoder, windows
from retriever.searcher import open_searcher

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
QUERIES = ["Solve x^2 - 5x + 6 = 0.", "How many cupcakes should Paul buy?",
           "Erica made 20 Valentine's cards", "What is the sum of the fractions 1/2 and 1/3?"]


@pytest.fixture(scope="module")
def short_encoder(tiny_encoder_path, tmp_path_factory) -> Path:
    """The tiny encoder reading 32 tokens (30 of text) instead of 128."""
    out = tmp_path_factory.mktemp("short") / "encoder"
    shutil.copytree(tiny_encoder_path, out)
    config = out / "sentence_bert_config.json"
    settings = json.loads(config.read_text())
    settings["max_seq_length"] = 32
    config.write_text(json.dumps(settings))
    return out


@pytest.fixture(scope="module")
def encoder(short_encoder) -> Encoder:
    return Encoder(short_encoder, device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def answers() -> list[str]:
    """The linear answer texts of the sample records, as the store derives them."""
    out = []
    for line in (SAMPLE / "records.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rec = Record(id=row["id"], question=row["question"], answer=row["answer"],
                     final=row.get("final"), source=row.get("source", ""))
        out.append(derive(rec).answer_text)
    return out


def _build(out: Path, encoder_path: Path, *extra) -> None:
    assert main(["-q", "index", "build", str(SAMPLE / "records.jsonl"), "--out", str(out),
                 "--encoder", str(encoder_path), "--workers", "0", "--device", "cpu",
                 *extra]) == 0


def _expected_counts(encoder: Encoder, texts: list[str]) -> list[int]:
    return [min(len(windows(len(ids), encoder.window, encoder.window // 2)), MAX_PASSAGES)
            for ids in encoder._token_ids(texts)]


def _check_passages_map_records(index: Path, encoder: Encoder) -> np.ndarray:
    """Every stored record holds exactly its passages 0..c-1 (c its number of windows), and
    no id of another row is there; returns the passage ids."""
    ids = VectorIndex.load(part_dir(index, read_manifest(index), "dense")).ids()
    assert np.unique(ids).size == ids.size
    with Store(index / "records.sqlite", readonly=True) as store:
        rowids = store.rowids()
        texts = store.texts(rowids)
    counts = _expected_counts(encoder, texts)
    assert sorted(ids.tolist()) == passage_ids(np.array(rowids), np.array(counts)).tolist()
    return ids


# --- splitting ----------------------------------------------------------------------------------

def test_windows_overlap_by_the_stride_and_reach_the_end():
    assert windows(5, 8, 4) == [(0, 5)]
    assert windows(8, 8, 4) == [(0, 8)]
    assert windows(9, 8, 4) == [(0, 8), (4, 9)]
    assert windows(20, 8, 4) == [(0, 8), (4, 12), (8, 16), (12, 20)]
    assert windows(21, 8, 8) == [(0, 8), (8, 16), (16, 21)]
    with pytest.raises(ValueError, match="stride"):
        windows(20, 8, 9)


def test_long_answer_splits_into_overlapping_windows(encoder, answers):
    assert encoder.window == 30  # 32 less [CLS] and [SEP]
    tokenizer = encoder.model.tokenizer

    def round_trips(ids: list[int]) -> bool:
        # A window may start inside a word ("##..."), whose decoded text tokenizes otherwise
        # (why passages are encoded as token windows): compare with text on those that don't.
        return all(encoder._token_ids([tokenizer.decode(ids[s:e])])[0] == ids[s:e]
                   for s, e in windows(len(ids), 30, 15))

    long = max((t for t in answers if 90 < len(encoder._token_ids([t])[0]) <= 15 * 32
                and round_trips(encoder._token_ids([t])[0])), key=len)
    short = next(t for t in answers if 0 < len(encoder._token_ids([t])[0]) <= 30)
    ids = encoder._token_ids([long])[0]
    spans = windows(len(ids), 30, 15)
    passages = encoder.passages(long)
    assert len(passages) == len(spans) >= 5
    # Each passage holds its window's tokens; neighbours share half a window.
    for text, (s, e) in zip(passages, spans, strict=True):
        assert encoder._token_ids([text])[0] == ids[s:e]
    assert spans[0] == (0, 30) and spans[-1][1] == len(ids)
    assert all(b[0] - a[0] == 15 and a[1] - b[0] == 15
               for a, b in zip(spans[:-1], spans[1:], strict=True))
    assert encoder.passages(short) == [short]
    assert encoder.passages(long, stride=30) == [tokenizer.decode(ids[s:e])
                                                 for s, e in windows(len(ids), 30, 30)]

    vecs, counts = encoder.encode_passages([short, long])
    assert counts.tolist() == [1, len(spans)] and vecs.shape[0] == 1 + len(spans)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # A short answer: its vector as today; a long one: its first window is today's vector.
    today = encoder.encode([short, long])
    np.testing.assert_allclose(vecs[0], today[0], atol=1e-6)
    np.testing.assert_allclose(vecs[1], today[1], atol=1e-6)
    # Every other passage is the vector of its own window.
    np.testing.assert_allclose(vecs[1:], encoder.encode(passages), atol=1e-5)
    assert np.abs(vecs[2] - vecs[1]).max() > 1e-3


def test_passages_are_capped(encoder):
    text = " ".join(f"w{i} + {i}" for i in range(400))
    assert len(windows(len(encoder._token_ids([text])[0]), 30, 15)) > MAX_PASSAGES
    vecs, counts = encoder.encode_passages([text, "x + 1"])
    assert counts.tolist() == [MAX_PASSAGES, 1] and vecs.shape[0] == MAX_PASSAGES + 1
    assert len(encoder.passages(text)) == MAX_PASSAGES
    assert MAX_PASSAGES <= SLOTS


def test_passage_ids_map_to_records_and_score_by_the_best_passage():
    ids = passage_ids(np.array([3, 5, 9]), np.array([2, 1, 3]))
    assert ids.tolist() == [192, 193, 320, 576, 577, 578]
    assert record_rows(ids, passages=True).tolist() == [3, 3, 5, 9, 9, 9]
    assert record_rows(np.array([192, -1]), passages=False).tolist() == [192, -1]
    with pytest.raises(ValueError):
        passage_ids(np.array([1]), np.array([MAX_PASSAGES + 1]))
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, -np.inf],
                       [0.9, 0.8, 0.7, -np.inf, -np.inf, -np.inf]], dtype=np.float32)
    hits = np.array([[577, 193, 578, 320, 192, -1], [193, 192, 577, -1, -1, -1]])
    s, r, complete = best_per_record(scores, hits, k=3)
    assert r.tolist() == [[9, 3, 5], [3, 9, -1]]
    np.testing.assert_array_equal(s, np.float32([[0.9, 0.8, 0.6], [0.9, 0.7, -np.inf]]))
    assert complete.tolist() == [True, False]


# --- the index: build, add, remove, search --------------------------------------------------

def test_passage_index_maps_passages_to_records_through_add_and_remove(tmp_path, short_encoder,
                                                                       encoder):
    out = tmp_path / "idx"
    _build(out, short_encoder, "--passages")
    m = read_manifest(out)
    dense = m["dense"]
    assert dense["passages"] is True and dense["window"] == 30 and dense["stride"] == 15
    assert dense["max_passages"] == MAX_PASSAGES
    assert dense["count"] == m["store"]["records"] == 300
    ids = _check_passages_map_records(out, encoder)
    assert dense["passage_count"] == ids.size > 2 * 300

    # Remove: none of the removed records' passages remain, the others' are untouched.
    gone = ["gsm8k-test-00395", "gsm8k-test-00565"]
    with Store(out / "records.sqlite", readonly=True) as store:
        gone_rows = [store.by_id(i).rowid for i in gone]
    assert np.isin(record_rows(ids, True), gone_rows).sum() > len(gone)  # several passages
    (tmp_path / "gone.txt").write_text("\n".join(gone) + "\n")
    assert main(["-q", "index", "remove", str(out), "--ids", str(tmp_path / "gone.txt")]) == 0
    left = _check_passages_map_records(out, encoder)
    assert not np.isin(record_rows(left, True), gone_rows).any()
    assert set(left.tolist()) == set(ids.tolist()) - set(
        ids[np.isin(record_rows(ids, True), gone_rows)].tolist())

    # Add: the new records get all their passages; the index stays a passage index.
    assert main(["-q", "index", "add", str(out), str(SAMPLE / "mathml"), "--workers", "0",
                 "--device", "cpu"]) == 0
    m = read_manifest(out)
    assert m["dense"]["passages"] is True and m["dense"]["stride"] == 15
    assert m["dense"]["count"] == m["store"]["records"] == 304
    after = _check_passages_map_records(out, encoder)
    assert set(left.tolist()) < set(after.tolist())
    assert m["dense"]["passage_count"] == after.size

    # Search: record rows, each once, scored by its best passage.
    searcher = open_searcher(out, "dense", device="cpu")
    vectors = VectorIndex.load(part_dir(out, read_manifest(out), "dense"))
    all_ids = vectors.ids()
    q = encoder.encode(QUERIES)
    sims = q @ vectors.vectors_of(all_ids).T
    rows_of = record_rows(all_ids, True)
    for k in (1, 10, 304, 400):
        scores, rows = searcher.search_rows(QUERIES, k)
        assert rows.shape == (len(QUERIES), k)
        for i in range(len(QUERIES)):
            live = rows[i][rows[i] >= 0]
            assert live.size == min(k, 304) and np.unique(live).size == live.size
            best = {int(r): sims[i][rows_of == r].max() for r in np.unique(rows_of)}
            ranked = sorted(best.values(), reverse=True)[:live.size]
            np.testing.assert_allclose(scores[i][:live.size], ranked, atol=1e-5)
            np.testing.assert_allclose([best[int(r)] for r in live], scores[i][:live.size],
                                       atol=1e-5)
    for mode in ("dense", "hybrid"):
        run = open_searcher(out, mode, device="cpu").search({"q": QUERIES[0]}, k=20)
        with Store(out / "records.sqlite", readonly=True) as store:
            assert set(run["q"]) <= set(store.ids_of(store.rowids()).values())
        assert len(run["q"]) == 20


def test_index_without_passages_searches_as_before(tmp_path, short_encoder, encoder, answers):
    out = tmp_path / "idx"
    _build(out, short_encoder)
    dense = read_manifest(out)["dense"]
    assert not {"passages", "window", "stride", "passage_count"} & set(dense)
    vectors = VectorIndex.load(part_dir(out, read_manifest(out), "dense"))
    with Store(out / "records.sqlite", readonly=True) as store:
        rowids = store.rowids()
        texts = store.texts(rowids)
    assert sorted(vectors.ids().tolist()) == rowids  # ids are rowids
    # One vector per record, from its first window: what the encoder reads of the whole text.
    np.testing.assert_allclose(vectors.vectors_of(rowids), encoder.encode(texts), atol=1e-6)
    searcher = open_searcher(out, "dense", device="cpu")
    assert searcher.retriever.passages is False
    for k in (5, 300):
        scores, rows = searcher.search_rows(QUERIES, k)
        ref_s, ref_r = vectors.search(encoder.encode(QUERIES), k)
        np.testing.assert_array_equal(rows, ref_r)
        np.testing.assert_array_equal(scores, ref_s)
    # A passage index cannot be grown from it, nor the other way round.
    assert main(["-q", "index", "build", str(SAMPLE / "mathml"), "--out", str(out),
                 "--workers", "0", "--device", "cpu", "--passages"]) == 2
    assert read_manifest(out)["store"]["records"] == 300


def test_passage_setting_is_kept_by_a_rebuild_and_refused_when_changed(tmp_path, short_encoder):
    out = tmp_path / "idx"
    _build(out, short_encoder, "--passages", "--passage-stride", "10")
    before = read_manifest(out)["dense"]
    assert before["stride"] == 10
    # Run again without the flags (as after an interruption): nothing changes, nothing lost.
    _build(out, short_encoder)
    after = read_manifest(out)["dense"]
    assert after["passages"] is True and after["stride"] == 10
    assert after["passage_count"] == before["passage_count"]
    assert main(["-q", "index", "build", str(SAMPLE / "records.jsonl"), "--out", str(out),
                 "--workers", "0", "--device", "cpu", "--passage-stride", "15"]) == 2


# --- resume -------------------------------------------------------------------------------------

def test_killed_passage_build_resumes_without_loss_or_doubles(tmp_path, short_encoder, encoder):
    """Kill `index build --passages` with SIGKILL while it encodes; run it again."""
    out = tmp_path / "idx"
    cmd = [sys.executable, "-m", "mathmatch.cli", "-q", "index", "build",
           str(SAMPLE / "records.jsonl"), "--out", str(out), "--encoder", str(short_encoder),
           "--workers", "0", "--batch-size", "4", "--save-every", "16", "--device", "cpu",
           "--passages"]
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
    chunks = sorted(pending.glob("chunk-*.ids.npy"))
    assert len(chunks) >= 3
    # The pending chunks hold passage ids of whole records.
    first = np.load(chunks[0])
    assert first.size > 16 and np.unique(record_rows(first, True)).size == 16
    assert subprocess.run(cmd, env=env, cwd=tmp_path).returncode == 0
    m = read_manifest(out)
    assert m["store"]["records"] == m["dense"]["count"] == 300 and m["dense"]["passages"]
    assert m["dense"]["encode"]["records"] == 300 - 16 * len(chunks)  # only the rest encoded
    ids = _check_passages_map_records(out, encoder)
    assert m["dense"]["passage_count"] == ids.size
    assert not pending.exists()


def test_interrupted_passage_build_resumes_as_it_began(tmp_path, short_encoder, encoder):
    """A passage build stopped after two chunks and run again without --passages goes on as
    a passage build, encoding only the records its chunks lack."""
    from index.parts import update_dense

    out = tmp_path / "idx"
    assert main(["-q", "index", "build", str(SAMPLE / "records.jsonl"), "--out", str(out),
                 "--workers", "0", "--no-vectors"]) == 0

    class Stop(Exception):
        pass

    class Interrupted:
        def __init__(self, inner, after: int) -> None:
            self.inner, self.after, self.calls = inner, after, 0
            self.spec, self.dim, self.window = inner.spec, inner.dim, inner.window

        def encode(self, texts):
            return self.inner.encode(texts)

        def encode_passages(self, texts, stride=None):
            self.calls += 1
            if self.calls > self.after:
                raise Stop
            return self.inner.encode_passages(texts, stride)

    with Store(out / "records.sqlite") as store:
        with pytest.raises(Stop):
            update_dense(out, store, Interrupted(encoder, 2), None, chunk_rows=50,
                         progress=False, passages=True)
        assert len(list((out / "pending" / "dense").glob("chunk-*.ids.npy"))) == 2
        again = Interrupted(encoder, 100)
        section = update_dense(out, store, again, None, chunk_rows=50, progress=False)
    assert again.calls == 4  # 200 records left, 50 a chunk
    assert section["passages"] is True and section["count"] == 300
    assert section["encode"]["records"] == 200
    from index.build import commit

    commit(out, {**read_manifest(out), "dense": section})
    assert not (out / "pending").exists()  # the chunks went with the commit
    _check_passages_map_records(out, encoder)
