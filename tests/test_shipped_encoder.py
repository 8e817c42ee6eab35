"""The tuned encoder shipped with mathmatch: the default of new indexes, loaded offline.

It is a LoRA adapter over the packaged all-MiniLM-L6-v2 (retriever/models/minilm-math); an index
built with the off-the-shelf model, the default before it, keeps opening with that model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from retriever.encoder import (
    ADAPTER_FILE,
    BASE_ENCODER,
    DEFAULT_ENCODER,
    SHIPPED_ENCODER,
    SHIPPED_PATH,
    Encoder,
    EncoderSpec,
)


def test_the_shipped_adapter_is_the_default_and_small():
    assert DEFAULT_ENCODER == SHIPPED_ENCODER
    spec = EncoderSpec.resolve(None)
    assert spec.name == SHIPPED_ENCODER and spec.path == str(SHIPPED_PATH)
    marker = json.loads((SHIPPED_PATH / ADAPTER_FILE).read_text())
    assert marker["base"] == BASE_ENCODER
    assert marker["base_checksum"] == EncoderSpec.resolve(BASE_ENCODER).checksum
    size = sum(p.stat().st_size for p in SHIPPED_PATH.rglob("*") if p.is_file())
    assert size < 5_000_000, size


def test_the_shipped_encoder_loads_offline_and_differs_from_its_base(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = ["Find the roots of x^2 - 5x + 6 = 0.", "(x - 2)(x - 3) = 0, so x = 2 or x = 3."]
    tuned = Encoder(device="cpu").encode(texts)
    base = Encoder(BASE_ENCODER, device="cpu").encode(texts)
    assert tuned.shape == base.shape == (2, 384)
    assert np.allclose(np.linalg.norm(tuned, axis=1), 1.0, atol=1e-5)
    cosine = (tuned * base).sum(axis=1)
    assert (cosine < 0.9999).all() and (cosine > 0.5).all(), cosine


def test_a_new_index_records_the_shipped_encoder_and_its_checksum(sample_index):
    from index.manifest import read_manifest

    dense = read_manifest(sample_index)["dense"]
    assert dense["encoder"] == SHIPPED_ENCODER
    assert dense["encoder_checksum"] == EncoderSpec.resolve(SHIPPED_ENCODER).checksum


@pytest.fixture(scope="module")
def old_default_index(tmp_path_factory, sample_dir):
    """An index built as the default built them before the shipped encoder: off the shelf."""
    from mathmatch.cli import main

    out = tmp_path_factory.mktemp("old") / "idx"
    assert main(["-q", "index", "build", str(sample_dir / "records.jsonl"), "--out", str(out),
                 "--device", "cpu", "--encoder", BASE_ENCODER]) == 0
    return out


def test_an_index_built_with_the_old_default_still_opens_and_searches(old_default_index,
                                                                     sample_dir, tmp_path,
                                                                     run_cli):
    from index.manifest import read_manifest
    from mathmatch.pipeline import MatchConfig, Pipeline

    assert read_manifest(old_default_index)["dense"]["encoder"] == BASE_ENCODER
    with Pipeline(old_default_index, MatchConfig(mode="dense", device="cpu")) as pipeline:
        assert pipeline.searcher.retriever.encoder.spec.name == BASE_ENCODER
        first = json.loads((sample_dir / "records.jsonl").read_text().splitlines()[0])
        run = pipeline.search([("q", first["question"])], 3)
    assert next(iter(run["q"])) == first["id"]
    # Adding to it encodes with the index's own encoder, not the new default.
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps(dict(first, id="extra-1")) + "\n")
    assert run_cli(["-q", "index", "add", old_default_index, extra, "--device", "cpu"]) == 0
    assert read_manifest(old_default_index)["dense"]["encoder"] == BASE_ENCODER


def test_asking_an_old_index_for_the_new_default_is_refused(old_default_index, run_cli, capsys,
                                                           tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text("What is 2 + 2?\n")
    status = run_cli(["match", old_default_index, "--queries", queries, "--encoder",
                      SHIPPED_ENCODER, "--mode", "dense", "--device", "cpu"])
    assert status != 0
    assert "another model" in capsys.readouterr().err


def test_an_index_of_older_linear_text_opens_with_a_warning(sample_index, tmp_path, caplog):
    import shutil

    from index.manifest import read_manifest, write_manifest
    from mathcore.linear import LINEAR_VERSION
    from mathmatch.pipeline import MatchConfig, Pipeline

    assert read_manifest(sample_index)["store"]["linear_version"] == LINEAR_VERSION
    old = tmp_path / "old"
    shutil.copytree(sample_index, old)
    manifest = read_manifest(old)
    del manifest["store"]["linear_version"]  # as written before the field existed
    write_manifest(old, manifest)
    with caplog.at_level("WARNING"), Pipeline(old, MatchConfig(mode="bm25")) as pipeline:
        run = pipeline.search([("q", "How many apples does she have left?")], 3)
    assert run["q"]
    assert "linear text version 1" in caplog.text and "rebuild the index" in caplog.text
