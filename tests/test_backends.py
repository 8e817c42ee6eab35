"""The encoder's backends: ONNX export (cached by checksum), int8 and bf16, the family rule of
an index's vectors, and ``auto``'s choice (retriever/backends.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retriever import backends
from retriever.backends import BackendError, bf16_fast, resolve_backend
from retriever.encoder import Encoder

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
TEXTS = ["What is 12 + 30?", "x^2 + 1 = 5 so x = 2 or x = -2",
         "The area of a circle of radius r is pi r^2. " * 30,  # longer than the tiny window
         "Natalia sold 48/2 = 24 clips in May."]

onnx = pytest.mark.skipif(not backends.onnx_available(), reason="onnxruntime not installed")


@pytest.fixture
def shown(tmp_path, monkeypatch):
    """Point `auto` at a file of our own: ``shown({checksum: [backends]})``."""
    path = tmp_path / "backends.json"
    monkeypatch.setattr(backends, "SHOWN", path)

    def write(entries: dict) -> Path:
        path.write_text(json.dumps({c: {"equal": b} for c, b in entries.items()}))
        return path

    return write


def test_auto_is_torch_unless_a_faster_backend_was_shown_equal(shown):
    assert resolve_backend("auto", "abc", "cpu") == "torch"
    shown({"abc": ["onnx-int8"], "other": ["onnx"]})
    expected = "onnx-int8" if backends.onnx_available() else "torch"
    assert resolve_backend("auto", "abc", "cpu") == expected
    assert resolve_backend("auto", "def", "cpu") == "torch"  # another model: nothing shown
    assert resolve_backend("auto", "abc", "cuda") == "torch"  # ONNX runs on the CPU only


def test_auto_keeps_the_family_of_the_vectors_there(shown):
    shown({"abc": ["onnx-int8"]})
    # An index of float vectors: int8 queries would not meet them, whatever was shown.
    assert resolve_backend("auto", "abc", "cpu", previous="torch") == "torch"
    if backends.onnx_available():
        assert resolve_backend("auto", "abc", "cpu", previous="onnx-int8") == "onnx-int8"
        # Nothing shown for this model: the int8 index's queries are still int8.
        assert resolve_backend("auto", "zzz", "cpu", previous="onnx-int8") == "onnx-int8"


def test_a_backend_of_another_family_than_the_index_is_refused():
    with pytest.raises(BackendError, match="int8 family.*float vectors"):
        resolve_backend("torch", "abc", "cpu", previous="onnx-int8", where="idx")
    with pytest.raises(BackendError, match="unknown encoder backend 'fp8'"):
        resolve_backend("fp8", "abc", "cpu")
    with pytest.raises(BackendError, match="runs on the CPU"):
        resolve_backend("onnx", "abc", "cuda")


@onnx
def test_onnx_vectors_match_torch_and_int8_stay_close(tiny_encoder_path, tmp_path, monkeypatch):
    monkeypatch.setenv("MATHMATCH_CACHE", str(tmp_path / "cache"))
    ref = Encoder(tiny_encoder_path, device="cpu").encode(TEXTS)
    fp32 = Encoder(tiny_encoder_path, device="cpu", backend="onnx").encode(TEXTS)
    int8 = Encoder(tiny_encoder_path, device="cpu", backend="onnx-int8").encode(TEXTS)
    assert fp32.shape == int8.shape == ref.shape
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert (fp32 * ref).sum(axis=1).min() > 0.9999
    assert (int8 * ref).sum(axis=1).min() > 0.9
    # The export is kept under the model's checksum and reused, not made again.
    folders = sorted((tmp_path / "cache" / "onnx").glob("[!.]*-int8-*"))
    assert len(folders) == 1 and (folders[0] / "export.json").is_file()
    stamp = (folders[0] / "model.onnx").stat().st_mtime_ns
    again = Encoder(tiny_encoder_path, device="cpu", backend="onnx-int8")
    assert np.array_equal(again.encode(TEXTS), int8)
    assert (folders[0] / "model.onnx").stat().st_mtime_ns == stamp
    assert json.loads((folders[0] / "export.json").read_text())["checksum"] == \
        again.spec.checksum


@onnx
def test_onnx_passages_are_the_torch_passages(tiny_encoder_path, tmp_path, monkeypatch):
    monkeypatch.setenv("MATHMATCH_CACHE", str(tmp_path / "cache"))
    torch_enc = Encoder(tiny_encoder_path, device="cpu")
    onnx_enc = Encoder(tiny_encoder_path, device="cpu", backend="onnx")
    assert onnx_enc.window == torch_enc.window
    ref, counts = torch_enc.encode_passages(TEXTS)
    vecs, onnx_counts = onnx_enc.encode_passages(TEXTS)
    assert counts.tolist() == onnx_counts.tolist() and counts.max() > 1
    assert (vecs * ref).sum(axis=1).min() > 0.9999


@pytest.mark.skipif(not bf16_fast(), reason="no bfloat16 units on this CPU")
def test_bf16_vectors_are_torch_vectors_to_four_decimals(tiny_encoder_path):
    ref = Encoder(tiny_encoder_path, device="cpu").encode(TEXTS)
    bf16 = Encoder(tiny_encoder_path, device="cpu", backend="torch-bf16").encode(TEXTS)
    assert bf16.dtype == np.float32
    assert np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert (bf16 * ref).sum(axis=1).min() > 0.999


def test_an_unexportable_model_is_refused_with_the_way_out():
    class Odd:
        pass

    with pytest.raises(BackendError, match="--backend torch"):
        backends._pooling([Odd()])


@onnx
def test_index_records_its_backend_and_its_queries_keep_the_family(run_cli, tiny_encoder_path,
                                                                  tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("MATHMATCH_CACHE", str(tmp_path / "cache"))
    idx, queries = tmp_path / "idx", SAMPLE / "demo_questions.txt"
    assert run_cli(["-q", "index", "build", SAMPLE / "records.jsonl", "--out", idx,
                    "--encoder", tiny_encoder_path, "--backend", "onnx-int8",
                    "--device", "cpu"]) == 0
    manifest = json.loads((idx / "manifest.json").read_text())
    assert manifest["dense"]["backend"] == "onnx-int8"
    # Queries: auto encodes them with int8 as well; torch would not meet the vectors.
    assert run_cli(["-q", "match", idx, "--queries", queries, "--mode", "dense",
                    "--out", tmp_path / "auto.jsonl", "--device", "cpu"]) == 0
    assert run_cli(["-q", "match", idx, "--queries", queries, "--mode", "dense",
                    "--backend", "onnx-int8", "--out", tmp_path / "int8.jsonl",
                    "--device", "cpu"]) == 0
    assert (tmp_path / "auto.jsonl").read_text() == (tmp_path / "int8.jsonl").read_text()
    capsys.readouterr()
    assert run_cli(["-q", "match", idx, "--queries", queries, "--backend", "torch",
                    "--out", tmp_path / "torch.jsonl", "--device", "cpu"]) == 2
    assert "onnx-int8 backend (int8 family)" in capsys.readouterr().err
    assert not (tmp_path / "torch.jsonl").exists()
    # index add refuses another family before loading anything
    assert run_cli(["-q", "index", "add", idx, SAMPLE / "mathml", "--backend", "torch",
                    "--device", "cpu"]) == 2
    assert "int8 family" in capsys.readouterr().err
    assert json.loads((idx / "manifest.json").read_text())["store"]["records"] == \
        manifest["store"]["records"]
    # ... and takes one of the same family, recording it
    assert run_cli(["-q", "index", "add", idx, SAMPLE / "mathml", "--device", "cpu"]) == 0
    after = json.loads((idx / "manifest.json").read_text())
    assert after["dense"]["backend"] == "onnx-int8"
    assert after["dense"]["count"] > manifest["dense"]["count"]


@onnx
def test_an_int8_vector_does_not_depend_on_the_texts_encoded_with_it(tiny_encoder_path, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("MATHMATCH_CACHE", str(tmp_path / "cache"))
    enc = Encoder(tiny_encoder_path, device="cpu", backend="onnx-int8")
    together = enc.encode(TEXTS)
    alone = np.stack([enc.encode([t])[0] for t in TEXTS])
    assert np.array_equal(together, alone)
    vecs, counts = enc.encode_passages(TEXTS)
    assert np.array_equal(vecs[:1], enc.encode_passages(TEXTS[:1])[0])


@onnx
def test_int8_passes_run_side_by_side_with_the_vectors_of_one_thread(tiny_encoder_path, tmp_path,
                                                                     monkeypatch):
    from retriever.backends import OnnxModel
    from retriever.encoder import EncoderSpec

    monkeypatch.setenv("MATHMATCH_CACHE", str(tmp_path / "cache"))
    spec = EncoderSpec.resolve(str(tiny_encoder_path))
    one, two = OnnxModel(spec, True, threads=1), OnnxModel(spec, True, threads=2)
    assert (one.workers, two.workers) == (1, 2)
    # Each pass on one ONNX Runtime thread, two passes at once.
    assert two.session.get_session_options().intra_op_num_threads == 1
    texts = TEXTS * 4
    assert np.array_equal(two.encode(texts), one.encode(texts))
    assert OnnxModel(spec, False, threads=2).workers == 1  # float batches: one at a time


@onnx
def test_the_server_keeps_onnx_threads_from_spinning(tiny_encoder_path, tmp_path, monkeypatch):
    from mathmatch.server import ServeConfig
    from mathmatch.service import Service

    monkeypatch.setenv("MATHMATCH_CACHE", str(tmp_path / "cache"))
    enc = Encoder(tiny_encoder_path, device="cpu", backend="onnx")
    assert enc.onnx.spin  # a build or a batch match: spinning, the fastest back to back
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "manifest.json").write_text(json.dumps({"format_version": 1, "store": {}}))
    service = Service(idx, ServeConfig())
    service.adopt(enc)
    assert not enc.onnx.spin
    options = enc.onnx.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
