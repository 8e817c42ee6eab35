"""How the bi-encoder runs: the torch model as loaded, in bfloat16, or exported to ONNX Runtime.

=============  =========================================================  ==========
backend        what runs                                                  family
=============  =========================================================  ==========
``torch``      the sentence-transformers model, float32 (float16 on CUDA)  ``float``
``torch-bf16`` the same weights cast to bfloat16 (CPUs with AMX/AVX-512    ``float``
               BF16 units; elsewhere it is slower than float32)
``onnx``       the model exported to ONNX (``torch.onnx.export``), its     ``float``
               attention and layer norms fused, run by ONNX Runtime
``onnx-int8``  that graph with its matrix products (attention's too)       ``int8``
               dynamically quantised to int8, per channel
=============  =========================================================  ==========

Vectors of one family agree to a cosine of 0.9998 or better, so a query encoded by one backend
meets corpus vectors of another of its family; int8 vectors differ more (cosine 0.97 at worst
on the dev answers), so an index records its backend and its queries are encoded by a backend
of the same family (:func:`resolve_backend` refuses another).

``auto`` takes the fastest backend whose matching quality was shown equal to ``torch``'s for
that encoder on the dev tasks (``python -m benchmarks.backends`` measures it and writes
:data:`SHOWN`): a backend must keep MRR@10 within 0.005 of torch on dev match and MSE dev to be
listed; an encoder with no entry (any model of the user's) runs on ``torch``.

The ONNX export happens offline, at first use, from the local model folder (an adapter folder is
merged into its base first): it is written under the cache folder (``$MATHMATCH_CACHE``, else
``$XDG_CACHE_HOME/mathmatch``, else ``~/.cache/mathmatch``) in ``onnx/CHECKSUM-VARIANT/``,
CHECKSUM being the model folder's (:func:`retriever.encoder.model_checksum`), so a changed model
is exported anew; two processes exporting at once wait for each other (a file lock).

Example:
    >>> enc = Encoder(backend="onnx-int8")  # doctest: +SKIP
    >>> enc.encode(["x^2 + 1 = 5"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mathcore.device import BACKEND_FAMILY as FAMILY
from mathcore.device import ENCODER_BACKENDS as BACKEND_CHOICES

logger = logging.getLogger(__name__)

BACKENDS = BACKEND_CHOICES[1:]
# The backends whose dev MRR@10 matched torch's, per encoder checksum, fastest first
# (written by benchmarks.backends from its measurements; read by `auto`).
SHOWN = Path(__file__).resolve().parent / "models" / "backends.json"
# Bumped when the export recipe changes, so that caches of an older recipe are not reused.
EXPORT_VERSION = 1
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Texts per ONNX Runtime pass, at most: smaller batches pad less (on the dev answers, 2 CPU
# cores: 16 texts 102 answers/s, 64 texts 89; benchmarks.backends). int8 encodes one text a
# pass: dynamic quantisation scales each activation tensor by its largest value, so in a
# batch a text's vector would depend on the texts beside it (by up to 0.01 in a hybrid
# score); alone it is the same wherever it is encoded (build, add, match, serve), and barely
# slower, padding nothing (134 answers/s against 148 in batches of 16). Its passes run side
# by side, one ONNX Runtime thread each: a pass over one text gains nothing from a second
# thread (dev queries, 2 cores: 7.4 ms a query on one thread, 5.8 on two, taking 10 ms of
# CPU), while two passes at once take 3.4 ms a query.
ONNX_BATCH = 16


class BackendError(ValueError):
    """A backend that cannot run here, or that does not fit an index's vectors."""


def family(backend: str) -> str:
    """The family of *backend* (``float`` or ``int8``): vectors of one family are
    interchangeable."""
    try:
        return FAMILY[backend]
    except KeyError:
        raise BackendError(f"unknown encoder backend {backend!r}; choose one of "
                           f"{', '.join(BACKEND_CHOICES)}") from None


def bf16_fast() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX-512 BF16)."""
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # an older torch without the probe: assume not
        return False


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def shown_equal(checksum: str) -> list[str]:
    """The backends shown to match torch's quality for the encoder of *checksum*, fastest
    first (from :data:`SHOWN`)."""
    try:
        shown = json.loads(SHOWN.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [b for b in shown.get(checksum, {}).get("equal", []) if b in FAMILY]


def runnable(backend: str, device: str) -> str | None:
    """Why *backend* cannot run on *device* here, or None when it can."""
    if backend.startswith("onnx"):
        if device != "cpu":
            return f"the {backend} backend runs on the CPU (this encoder is on {device})"
        if not onnx_available():
            return (f"the {backend} backend needs ONNX Runtime: pip install "
                    "'mathmatch[onnx]' (onnxruntime and onnx)")
    if backend == "torch-bf16" and device == "cpu" and not bf16_fast():
        return "this CPU has no bfloat16 units (AMX or AVX-512 BF16): torch-bf16 would be slow"
    return None


def resolve_backend(requested: str | None, checksum: str, device: str,
                    previous: str | None = None, where: str = "the index") -> str:
    """The backend to encode with.

    Args:
        requested: ``auto`` (or None), or a backend name.
        checksum: the encoder's model checksum (whose :func:`shown_equal` list ``auto`` reads).
        device: ``cpu`` or ``cuda`` (resolved).
        previous: the backend the vectors already there were made with (an index's manifest:
            ``torch`` for one that does not say), or None for new vectors.
        where: what holds the previous vectors, for messages.

    Raises:
        BackendError: an unknown backend, one of another family than *previous*, or one that
            cannot run here.
    """
    requested = requested or "auto"
    if requested != "auto":
        family(requested)
        if previous is not None and family(requested) != family(previous):
            raise BackendError(
                f"{where} holds vectors made by the {previous} backend ({family(previous)} "
                f"family); {requested} makes {family(requested)} vectors, which do not meet "
                f"them. Leave --backend out (or give one of the {family(previous)} family: "
                f"{', '.join(b for b in BACKENDS if family(b) == family(previous))}), or "
                "build a new index")
        why = runnable(requested, device)
        if why:
            raise BackendError(why)
        return requested
    candidates = [b for b in (*shown_equal(checksum), "torch") if device == "cpu" or
                  not b.startswith("onnx")]
    if previous is not None:
        candidates = [b for b in candidates if family(b) == family(previous)] + [previous]
    for backend in dict.fromkeys(candidates):
        if runnable(backend, device) is None:
            return backend
    why = runnable(previous, device) if previous else None
    raise BackendError(f"{where}'s vectors were made by the {previous} backend, which cannot "
                       f"run here: {why}")


def cache_root() -> Path:
    """Where exported models are kept (see the module's docstring)."""
    if os.environ.get("MATHMATCH_CACHE"):
        return Path(os.environ["MATHMATCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mathmatch"


def _pooling(model: Any) -> tuple[str, bool]:
    """The pooling mode and whether the output is normalised, for a model of the shape
    Transformer → Pooling (→ Normalize); other shapes are refused."""
    names = [type(m).__name__ for m in model]
    if names[:2] != ["Transformer", "Pooling"] or names[2:] not in ([], ["Normalize"]):
        raise BackendError(f"the ONNX backends export models made of Transformer, Pooling and "
                           f"Normalize modules; this one has {', '.join(names)}: use "
                           "--backend torch")
    config = model[1].get_config_dict()
    mode = config.get("pooling_mode")
    if mode is None:  # older sentence-transformers: one flag per mode
        mode = next((m for m in ("cls", "mean", "max")
                     if config.get(f"pooling_mode_{m}_token" if m != "mean" else
                                   "pooling_mode_mean_tokens")), None)
    if mode not in ("mean", "cls", "max"):
        raise BackendError(f"the ONNX backends pool by mean, cls or max; this model pools by "
                           f"{mode!r}: use --backend torch")
    return mode, len(names) == 3


def export(spec: Any, quantize: bool, folder: Path) -> None:
    """Export the model of *spec* to ``folder/model.onnx`` (with its tokenizer and
    ``export.json``): traced with eager attention, its attention and layer norms fused by ONNX
    Runtime's transformer optimiser (for BERT-like models), and, with *quantize*, its matrix
    products dynamically quantised to int8 per channel (activations uint8, weights int8)."""
    import torch

    from retriever.encoder import load_sentence_model

    model = load_sentence_model(spec.path, device="cpu")
    mode, normalize = _pooling(model)
    transformer = model[0].auto_model.eval()
    if hasattr(transformer, "set_attn_implementation"):  # fusable by ORT's optimiser
        try:
            transformer.set_attn_implementation("eager")
        except Exception:  # noqa: BLE001 - a model that only has one implementation
            pass
    tok = model.tokenizer
    sample = tok(["x + 1 = 2", "y"], padding=True, return_tensors="pt")
    inputs = [n for n in _INPUTS if n in sample]

    class Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(inputs, args, strict=True))).last_hidden_state

    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.onnx"
    import warnings

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(transformer), tuple(sample[n] for n in inputs), str(raw),
                          input_names=inputs, output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "tokens"}
                                        for n in (*inputs, "last_hidden_state")},
                          opset_version=17, dynamo=False)
    graph = raw
    config = transformer.config
    if config.model_type in ("bert", "roberta", "xlm-roberta", "distilbert", "mpnet"):
        try:
            from onnxruntime.transformers.optimizer import optimize_model

            fused = optimize_model(str(raw), model_type="bert" if config.model_type != "distilbert"
                                   else "distilbert",
                                   num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size, opt_level=1)
            graph = folder / "fused.onnx"
            fused.save_model_to_file(str(graph))
        except Exception as exc:  # noqa: BLE001 - an unfused graph still runs
            logger.info("ONNX Runtime could not fuse %s (%s); its graph runs unfused",
                        spec.path, exc)
    target = folder / "model.onnx"
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        def advice(record: logging.LogRecord) -> bool:  # for static quantisation: noise here
            return not record.getMessage().startswith("Please consider to run pre-processing")

        root = logging.getLogger()
        root.addFilter(advice)
        try:
            quantize_dynamic(str(graph), str(target), per_channel=True,
                             op_types_to_quantize=["MatMul", "Attention"],
                             weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": 1})
        finally:
            root.removeFilter(advice)
    else:
        shutil.copyfile(graph, target)
    for f in {raw, graph} - {target}:
        f.unlink(missing_ok=True)
    tok.save_pretrained(str(folder / "tokenizer"))
    dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") \
        else model.get_sentence_embedding_dimension()
    (folder / "export.json").write_text(json.dumps({
        "model": spec.path, "checksum": spec.checksum, "quantized": quantize,
        "pooling": mode, "normalize": normalize, "dim": int(dim), "inputs": inputs,
        "max_seq_length": int(model.max_seq_length or tok.model_max_length),
        "export_version": EXPORT_VERSION, "torch": torch.__version__}, indent=1) + "\n",
        encoding="utf-8")


def exported(spec: Any, quantize: bool) -> Path:
    """The cache folder holding *spec*'s ONNX export (made now when missing)."""
    import fcntl

    variant = "int8" if quantize else "fp32"
    root = cache_root() / "onnx"
    folder = root / f"{spec.checksum[:32]}-{variant}-v{EXPORT_VERSION}"
    if (folder / "export.json").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process exporting: wait for it
        if (folder / "export.json").is_file():
            return folder
        tmp = root / f".{folder.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.perf_counter()
        logger.info("exporting %s to ONNX%s (once; kept in %s)", spec.name,
                    " int8" if quantize else "", folder)
        try:
            export(spec, quantize, tmp)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("exported in %.1f s", time.perf_counter() - t0)
    return folder


class OnnxModel:
    """An exported encoder run by ONNX Runtime on the CPU: tokenizer, forward pass, pooling
    and normalisation, as the sentence-transformers model does them."""

    def __init__(self, spec: Any, quantize: bool, threads: int | None = None) -> None:
        self.spec, self.quantize = spec, quantize
        # Whether ONNX Runtime's threads spin between passes (read when the session is made):
        # faster back-to-back encoding (a build: about 10 %), but CPU taken from whatever runs
        # between passes. The server turns it off for its encoders: its worker searches and
        # explains between encodes (30 ms of CPU a request instead of 44 under load).
        self.spin = True
        self.folder = exported(spec, quantize)
        self.info = json.loads((self.folder / "export.json").read_text(encoding="utf-8"))
        self.threads = threads

    @property
    def workers(self) -> int:
        """Passes run at once: int8's one-text passes run side by side, a thread each; the
        float model's batches run one at a time on every thread."""
        return max(1, self.threads or _torch_threads() or 1) if self.quantize else 1

    @cached_property
    def session(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.workers > 1:
            options.intra_op_num_threads = 1
        elif self.threads or _torch_threads():
            options.intra_op_num_threads = self.threads or _torch_threads()
        options.log_severity_level = 3  # its hardware-specific-optimisation warnings: noise
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if self.spin else "0")
        return ort.InferenceSession(str(self.folder / "model.onnx"), options,
                                    providers=["CPUExecutionProvider"])

    @cached_property
    def _pool(self):
        """The threads that run passes side by side (:attr:`workers`; a session's ``run`` may
        be called from several threads at once)."""
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="mathmatch-onnx")

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.folder / "tokenizer"),
                                             local_files_only=True)

    @property
    def max_seq_length(self) -> int:
        return int(self.info["max_seq_length"])

    @property
    def batch_limit(self) -> int:
        """Most texts a pass (:data:`ONNX_BATCH`; 1 for int8)."""
        return 1 if self.quantize else ONNX_BATCH

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    def embed(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Pooled (and normalised) vectors of one padded batch of token ids."""
        feed = {"input_ids": input_ids.astype(np.int64),
                "attention_mask": attention_mask.astype(np.int64)}
        if "token_type_ids" in self.info["inputs"]:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        hidden = self.session.run(None, feed)[0].astype(np.float32, copy=False)
        mask = attention_mask[..., None].astype(np.float32)
        mode = self.info["pooling"]
        if mode == "cls":
            out = hidden[:, 0]
        elif mode == "max":
            out = np.where(mask > 0, hidden, -1e9).max(axis=1)
        else:
            out = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        # mathmatch scores by inner product: unit vectors, whatever the model's last module
        out = out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return np.ascontiguousarray(out, dtype=np.float32)

    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: bool = False) -> np.ndarray:
        """Unit vectors of *texts*, in order (sorted by token length, as sentence-transformers
        sorts them, in batches of at most :data:`ONNX_BATCH`)."""
        batch_size = min(batch_size, self.batch_limit)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_seq_length,
                             verbose=False)["input_ids"]
        order = np.argsort([-len(i) for i in ids], kind="stable")
        pad = self.tokenizer.pad_token_id or 0
        batches = [order[start:start + batch_size]
                   for start in range(0, len(texts), batch_size)]

        def run(batch: np.ndarray) -> np.ndarray:
            width = max(len(ids[j]) for j in batch)
            tokens = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for r, j in enumerate(batch):
                tokens[r, :len(ids[j])] = ids[j]
                mask[r, :len(ids[j])] = 1
            return self.embed(tokens, mask)

        done = self._pool.map(run, batches) if self.workers > 1 and len(batches) > 1 else \
            map(run, batches)
        if progress:
            from tqdm.auto import tqdm

            done = tqdm(done, total=len(batches), desc="encoding", unit="batch")
        for batch, vectors in zip(batches, done, strict=True):
            out[batch] = vectors
        return out


def _torch_threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


def index_encoder(name: str | None, device: str, previous: str | None,
                  backend: str | None = "auto", batch_size: int = 64, where: str = "the index"):
    """The encoder for vectors that meet those of an index: model *name* (a name or folder),
    on the fastest backend of the family of *previous* (the backend the index's vectors were
    made with; None: no vectors yet) or the one asked for.

    Raises:
        BackendError: *backend* is of another family than *previous*, or cannot run here.
    """
    from mathcore.device import resolve_device
    from retriever.encoder import Encoder, EncoderSpec

    spec = EncoderSpec.resolve(name)
    device = resolve_device(device, purpose="encoding")
    chosen = resolve_backend(backend, spec.checksum, device, previous, where)
    return Encoder(spec, device=device, batch_size=batch_size, backend=chosen)
