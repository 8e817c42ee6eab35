"""The insertion judge: is what one question adds to another an aside, or another step?

Two word problems with the same givens can still differ by a sentence: an inserted aside
(``Meanwhile, two men wear 1 inch heel shoes`` -- the same problem) or an added operation
(``Additionally, she makes an extra pair of mittens for each`` -- another problem). Counting
quantities and marker words cannot tell these apart well; a small cross-encoder reading the
added text against the other question's question sentence can. It is all-MiniLM-L6-v2 (the
packaged default encoder, so nothing is downloaded) with a LoRA adapter and a linear head over
its first token, trained by ``python -m benchmarks.duplicates --fit`` (see
:mod:`tuning.judge`). Its logit (clipped to +-:data:`CLIP`) is one feature of
:mod:`dedup.features`.

The shipped judge (``dedup/models/judge/``, about 1 MB) stores the adapter's A and B
matrices in plain safetensors; loading merges them into the base weights, so inference needs
neither peft nor anything beyond the core install.

Example:
    >>> judge = InsertionJudge.default()  # doctest: +SKIP
    >>> judge.logits([("and 25 cakes", "How many eggs does she use?")])  # doctest: +SKIP
    array([1.9], dtype=float32)
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mathcore.outputs import write_text
from retriever.encoder import BASE_ENCODER, default_model_path

logger = logging.getLogger(__name__)

DEFAULT_JUDGE = Path(__file__).resolve().parent / "models" / "judge"
CONFIG = "judge.json"
WEIGHTS = "judge.safetensors"
# Logits are clipped to this bound, so the judge's say in a duplicate score is bounded too
# (and a pair's best possible score is known before the judge is asked).
CLIP = 6.0


def load_base(name: str) -> tuple[Any, Any]:
    """The judge's base encoder and tokenizer: the packaged all-MiniLM-L6-v2 by its name, or a
    local model folder (the training and the loading of a judge share this)."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging


    path = default_model_path() if name == BASE_ENCODER else Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: the judge's base is not a model folder")
    hf_logging.disable_progress_bar()
    prev = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the sentence-transformers folder has no pooler
    try:
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    finally:
        hf_logging.set_verbosity(prev)
    return model, AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def save_judge(out: Path, lora: dict[str, tuple[Any, Any]], head_weight: Any, head_bias: Any,
               meta: dict) -> None:
    """Write a judge folder: the adapter matrices and head (safetensors) and its settings.

    Args:
        out: the folder (created; its two files replaced).
        lora: ``{module name: (A [r, in], B [out, r])}`` of the base's linear layers.
        head_weight, head_bias: the linear head ([1, hidden], [1]).
        meta: settings saved beside them: ``base``, ``scaling``, ``max_length`` and any
            training facts.
    """
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors = {"head.weight": head_weight.detach().cpu().float().contiguous(),
               "head.bias": head_bias.detach().cpu().float().contiguous()}
    for name, (a, b) in lora.items():
        tensors[f"{name}.lora_A"] = a.detach().cpu().float().contiguous()
        tensors[f"{name}.lora_B"] = b.detach().cpu().float().contiguous()
    save_file(tensors, str(out / WEIGHTS))
    write_text(out / CONFIG, json.dumps(meta, indent=2) + "\n")


class InsertionJudge:
    """Scores (added text, the other question's question sentence) pairs: high for an aside.

    Args:
        model: the base encoder with the adapter merged in.
        head: the linear head over its first token.
        tokenizer: the base's tokenizer.
        max_length: tokens of a pair at most.
        device: where the model runs.
    """

    def __init__(self, model: Any, head: Any, tokenizer: Any, max_length: int,
                 device: str = "cpu") -> None:
        self.model, self.head, self.tokenizer = model, head, tokenizer
        self.max_length, self.device = max_length, device

    @classmethod
    def load(cls, path: Path = DEFAULT_JUDGE, device: str = "cpu") -> InsertionJudge:
        """A saved judge folder (:func:`save_judge`); the default is the shipped one."""
        import torch
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / CONFIG).is_file():
            raise FileNotFoundError(f"{path}: not a duplicate judge folder (no {CONFIG})")
        meta = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        model, tok = load_base(meta["base"])
        tensors = load_file(str(path / WEIGHTS))
        modules = dict(model.named_modules())
        scaling = float(meta["scaling"])
        with torch.no_grad():
            for key in tensors:
                if not key.endswith(".lora_A"):
                    continue
                name = key[:-len(".lora_A")]
                if name not in modules:
                    raise ValueError(f"{path / WEIGHTS}: no module {name!r} in the base "
                                     f"{meta['base']}")
                a, b = tensors[key], tensors[f"{name}.lora_B"]
                modules[name].weight += scaling * (b @ a)
        head = torch.nn.Linear(tensors["head.weight"].shape[1], 1)
        with torch.no_grad():
            head.weight.copy_(tensors["head.weight"])
            head.bias.copy_(tensors["head.bias"])
        model.eval().to(device)
        head.eval().to(device)
        return cls(model, head, tok, int(meta["max_length"]), device)

    @classmethod
    def default(cls) -> InsertionJudge:
        """The shipped judge, loaded once per process (on the CPU)."""
        return _default_judge()

    def logits(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
        """Clipped logits of ``(added text, question sentence)`` pairs, in input order."""
        import torch

        out = np.zeros(len(pairs), dtype=np.float32)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                out[idx] = self.raw_logits(self.model, self.head, self.tokenizer,
                                           [pairs[i] for i in idx], self.max_length,
                                           self.device).cpu().numpy()
        return np.clip(out, -CLIP, CLIP)

    @staticmethod
    def raw_logits(model: Any, head: Any, tok: Any, pairs: Sequence[tuple[str, str]],
                   max_length: int, device: str):
        """Unclipped logits of a batch (a tensor; used by training and inference alike)."""
        enc = tok([p[0] for p in pairs], [p[1] for p in pairs], truncation=True,
                  max_length=max_length, padding=True, return_tensors="pt").to(device)
        return head(model(**enc).last_hidden_state[:, 0]).squeeze(-1)


@functools.cache
def _default_judge() -> InsertionJudge:
    return InsertionJudge.load(DEFAULT_JUDGE)
