"""Fitted values are artifacts: read from the JSON beside their model, written by the command
that fits them, never copied into code."""

from __future__ import annotations

import json
import shutil

import pytest

from dedup import features
from dedup.fitted import MODEL_FILE, load_fitted, save_fitted
from reranker.scorer import CONFIG_FILE, DEFAULT_CHECKPOINT, read_fusion, write_fusion


def test_the_duplicate_model_is_read_from_its_file():
    saved = json.loads(MODEL_FILE.read_text())
    model = features.fitted()
    assert model.features == features.FEATURES == tuple(saved["features"])
    assert model.weights == tuple(saved["weights"]) and len(model.weights) == len(
        features.FEATURES)
    assert (features.WEIGHTS, features.BIAS, features.DEFAULT_THRESHOLD) == (
        model.weights, model.bias, model.threshold)
    assert "benchmarks.duplicates" in saved["source"] and saved["mathmatch_version"]
    assert features.fitted() is model  # read once


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "duplicates.json"
    weights = [0.5 * i for i in range(len(features.FEATURES))]
    save_fitted(path, features.FEATURES, weights, -0.25, 0.4, source="a test")
    model = load_fitted(path, features.FEATURES)
    assert model.weights == tuple(weights) and (model.bias, model.threshold) == (-0.25, 0.4)
    assert json.loads(path.read_text())["source"] == "a test"


def test_a_missing_or_mismatched_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.*benchmarks.duplicates --index DIR --fit"):
        load_fitted(tmp_path / "none.json", features.FEATURES)
    other = tmp_path / "other.json"
    save_fitted(other, ("missing", "extra"), [1.0, 2.0], 0.0, 0.5)
    with pytest.raises(ValueError, match=f"{other}.*fitted for the features"):
        load_fitted(other, features.FEATURES)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a fitted duplicate model"):
        load_fitted(tmp_path / "bad.json", features.FEATURES)


def test_write_fusion_records_a_chosen_weight_beside_the_model(tmp_path):
    # The shipped checkpoint's fusion, written again by write_fusion over what training wrote,
    # gives the shipped file byte for byte.
    ckpt = tmp_path / "rr"
    ckpt.mkdir()
    shipped = (DEFAULT_CHECKPOINT / CONFIG_FILE).read_text()
    config = json.loads(shipped)
    fusion = config["fusion"]
    config["fusion"] = {"weight": fusion["training_weight"], "cross": "raw",
                        "depth": fusion["depth"]}  # as tune reranker first wrote it
    (ckpt / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    written = write_fusion(ckpt, fusion["weight"], "raw", fusion["depth"], fusion["chosen"])
    assert written == fusion and (ckpt / CONFIG_FILE).read_text() == shipped
    assert read_fusion(ckpt) == (fusion["weight"], "raw", fusion["depth"])
    write_fusion(ckpt, 2.0, "raw", 20, "again")  # the training weight is kept
    assert json.loads((ckpt / CONFIG_FILE).read_text())["fusion"]["training_weight"] == \
        fusion["training_weight"]
    with pytest.raises(ValueError, match="cross must be z or raw"):
        write_fusion(ckpt, 1.0, "minmax", 20, "x")


def test_write_fusion_on_a_checkpoint_without_fusion(tmp_path):
    ckpt = tmp_path / "plain"
    shutil.copytree(DEFAULT_CHECKPOINT, ckpt, ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((ckpt / CONFIG_FILE).read_text())
    del config["fusion"]
    (ckpt / CONFIG_FILE).write_text(json.dumps(config))
    assert read_fusion(ckpt) == (0.0, "z", None)
    assert write_fusion(ckpt, 1.5, "z", 20, "chosen") == {
        "weight": 1.5, "cross": "z", "depth": 20, "chosen": "chosen"}
    assert read_fusion(ckpt) == (1.5, "z", 20)
