"""A trained cross-scorer checkpoint, loaded for reranking.

A checkpoint folder holds the LoRA adapter and the score head (peft's ``adapter_model``, the
head saved as a module to save), the tokenizer's pad setting, and ``reranker.json``: the base
(name, folder, checksum), the template and the length budget.  :func:`load_reranker` rebuilds
the scorer from them, merges the adapter into the base on CPU (fewer operations per token) and
gives the same scores as the model that was trained.

Reranking rescores the first ``depth`` candidates of each query by the cross-scorer and puts
them first, in its order -- or in the order of its z-scores plus ``weight`` times those of the
first stage (:func:`fuse`; the checkpoint's ``fusion.weight`` by default); candidates past
``depth`` keep their order below them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mathcore.device import resolve_device
from mathcore.runs import Run, linear_query
from mathcore.scores import zscores
from reranker.model import (
    DEFAULT_BASE,
    PROMPT,
    Budget,
    folder_checksum,
    load_scorer_model,
    render_pair,
    require_tune_extra,
    resolve_base,
    score_ids,
)

logger = logging.getLogger(__name__)

CONFIG_FILE = "reranker.json"
# The cross-scorer shipped with mathmatch (trained on the dev corpus, benchmark queries and
# their answers excluded; reranker/default/README.md has the command that reproduces it).
DEFAULT_CHECKPOINT = Path(__file__).resolve().with_name("default")
DEFAULT_NAME = "default"
# Candidates rescored when a checkpoint does not say at which depth its fusion was fitted.
DEFAULT_RERANK_DEPTH = 20


class RerankerError(Exception):
    """A checkpoint that cannot be used (missing files, another template)."""


class Reranker:
    """Score (question, answer) pairs with a checkpoint; rerank runs.

    Args:
        checkpoint: a folder written by ``mathmatch tune reranker``.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: pairs per forward pass.
        progress: show a progress bar while scoring.
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto",
                 batch_size: int = 16, progress: bool = False) -> None:

        self.path = Path(checkpoint)
        self.config = _read_config(self.path)
        if self.config.get("prompt", PROMPT) != PROMPT:
            raise RerankerError(f"{self.path}: trained with another template than this version's")
        self.device = resolve_device(device, purpose="reranking")
        self.batch_size = batch_size
        self.progress = progress
        self.budget = Budget(**self.config["budget"])
        self.pairs_per_second: float | None = None
        base = self.config["base"]
        self.base_path = resolve_base(None if base["name"] == DEFAULT_BASE else base["path"])
        if base.get("checksum") and folder_checksum(self.base_path) != base["checksum"]:
            logger.warning("%s: the base %s differs from the one the reranker was trained on; "
                           "scores may differ", self.path, self.base_path)
        self.model, self.tok = _load(self.base_path, self.path, self.device,
                                     base.get("layers"))
        self.fusion_weight, self.fusion_cross, self.fusion_depth = _fusion(self.path,
                                                                           self.config)
        self._warned_depth = False

    def score(self, questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """Scores of linear-text pairs, in order."""
        rows = [render_pair(self.tok, q, a, self.budget)
                for q, a in zip(questions, answers, strict=True)]
        t = time.perf_counter()
        scores = score_ids(self.model, self.tok, rows, self.device, self.batch_size,
                           self.progress)
        if rows:
            self.pairs_per_second = len(rows) / max(time.perf_counter() - t, 1e-9)
        return scores

    def rescore(self, queries: Mapping[str, str], run: Run, store,
                depth: int = DEFAULT_RERANK_DEPTH) -> Run:
        """The cross-scorer's scores of each query's first *depth* candidates."""

        pairs_q: list[str] = []
        pairs_a: list[str] = []
        slots: list[tuple[str, str]] = []
        for qid, hits in run.items():
            qtext = linear_query(qid, queries[qid]) if qid in queries else ""
            for doc in sorted(hits, key=hits.get, reverse=True)[:depth]:
                rec = store.by_id(doc)
                if rec is None:
                    continue
                pairs_q.append(qtext)
                pairs_a.append(rec.answer_text)
                slots.append((qid, doc))
        scores = self.score(pairs_q, pairs_a)
        fresh: Run = {qid: {} for qid in run}
        for (qid, doc), s in zip(slots, scores, strict=True):
            fresh[qid][doc] = float(s)
        if slots and self.pairs_per_second:
            logger.info("reranked %d pairs at %.1f pairs/s", len(slots), self.pairs_per_second)
        return fresh

    def rerank(self, queries: Mapping[str, str], run: Run, store,
               depth: int = DEFAULT_RERANK_DEPTH, weight: float | None = None) -> Run:
        """Rescore each query's first *depth* candidates and reorder (:func:`reorder`) with
        *weight* (default: the checkpoint's :attr:`fusion_weight`)."""
        if (self.fusion_cross == "raw" and self.fusion_depth and depth != self.fusion_depth
                and not self._warned_depth):
            # The raw scores were trained beside W x z-scores over fusion.depth candidates;
            # z-scores over another number of candidates have another spread.
            logger.warning("%s was trained to rerank %d candidates, not %d: the fusion weight "
                           "%.2f may not suit this depth", self.path, self.fusion_depth, depth,
                           self.fusion_weight if weight is None else weight)
            self._warned_depth = True
        fresh = self.rescore(queries, run, store, depth)
        return reorder(run, fresh, self.fusion_weight if weight is None else weight,
                       self.fusion_cross)


def reorder(run: Run, fresh: Run, weight: float | None, cross: str = "z") -> Run:
    """Each query's rescored candidates first, in the order of :func:`fuse`; the others keep
    their first-stage order below every rescored one."""
    out: Run = {}
    for qid, hits in run.items():
        top = fuse(hits, fresh.get(qid, {}), weight, cross)
        new = dict(sorted(top.items(), key=lambda kv: -kv[1]))
        floor = min(top.values(), default=0.0)
        rest = [d for d in sorted(hits, key=hits.get, reverse=True) if d not in top]
        for i, doc in enumerate(rest, 1):
            new[doc] = floor - i
        out[qid] = new
    return out


def fuse(first: Mapping[str, float], cross: Mapping[str, float],
         weight: float | None, scale: str = "z") -> dict[str, float]:
    """Scores of a query's rescored candidates (the keys of *cross*).

    ``weight`` None or 0: the cross-scorer's own scores.  Otherwise the z-score of the
    cross-scorer (``scale="z"``; its raw score with ``scale="raw"``, for a scorer trained as a
    residual over the first stage) plus *weight* times the z-score of the first stage, both
    taken over these candidates (so the two scales need not agree); one candidate, or constant
    scores, count as z = 0.
    """
    docs = list(cross)
    if not weight or not docs:
        return {d: float(cross[d]) for d in docs}
    c = np.array([cross[d] for d in docs], dtype=np.float64)
    if scale == "z":
        c = zscores(c)
    elif scale != "raw":
        raise ValueError(f"scale must be z or raw, got {scale!r}")
    f = zscores([first[d] for d in docs])
    return {d: float(v) for d, v in zip(docs, c + weight * f, strict=True)}


def read_fusion(checkpoint: str | os.PathLike) -> tuple[float, str, int | None]:
    """A checkpoint's fusion (weight, cross-scorer scale, depth), read from its
    ``reranker.json`` without loading the model; ``default`` names the shipped one."""
    path = resolve_checkpoint(checkpoint)
    return _fusion(path, _read_config(path))


def fusion_entry(weight: float, cross: str, depth: int | None, chosen: str,
                 training_weight: float | None = None) -> dict:
    """The ``fusion`` section of ``reranker.json`` (read back by :func:`read_fusion`).

    Args:
        weight: the first stage's weight in :func:`fuse`.
        cross: the cross-scorer's scale there, ``z`` or ``raw`` (a scorer trained as a
            residual over the first stage).
        depth: the candidates over which the z-scores were taken when *weight* was fitted.
        chosen: how *weight* was chosen: the command, data and criterion.
        training_weight: for a residual scorer whose *weight* was chosen after training, the
            weight it was trained with.
    """
    if cross not in ("z", "raw"):
        raise ValueError(f"cross must be z or raw, got {cross!r}")
    entry: dict = {"weight": weight, "cross": cross, "depth": depth}
    if training_weight is not None:
        entry["training_weight"] = training_weight
    entry["chosen"] = chosen
    return entry


def save_config(checkpoint: str | os.PathLike, config: dict) -> None:
    """Write a checkpoint's ``reranker.json`` (replaced atomically)."""
    path = Path(checkpoint) / CONFIG_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=1) + "\n")
    tmp.replace(path)


def write_fusion(checkpoint: str | os.PathLike, weight: float, cross: str, depth: int | None,
                 source: str) -> dict:
    """Record in a checkpoint's ``reranker.json`` the fusion weight a benchmark chose for it
    (``python -m benchmarks.rerank --fit``): the fitted value goes beside the model, never
    into code. The weight training wrote is kept as ``training_weight``.

    Args:
        checkpoint: the checkpoint folder; ``default`` names the shipped one.
        weight, cross, depth: as in :func:`fusion_entry`.
        source: the command, data and criterion that chose *weight*.

    Returns:
        The new ``fusion`` section.
    """
    path = resolve_checkpoint(checkpoint)
    config = _read_config(path)
    old = config.get("fusion", {})
    trained = old.get("training_weight", old.get("weight") if old.get("cross") == "raw"
                      else None)
    config["fusion"] = fusion_entry(float(weight), cross, depth, source, trained)
    save_config(path, config)
    return config["fusion"]


def _read_config(path: Path) -> dict:
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise RerankerError(f"{path}: not a reranker checkpoint (no {CONFIG_FILE})")
    return json.loads(cfg_file.read_text())


def _fusion(path: Path, config: dict) -> tuple[float, str, int | None]:
    # How much of the first stage the new order keeps (see :func:`fuse`): the checkpoint's
    # ``fusion.weight`` when it has one, else 0 (the cross-scorer's order alone).  A
    # checkpoint trained as a residual over the first stage (``fusion.cross`` = ``raw``) adds
    # its raw scores to the weighted first-stage z-scores, as in training, where the z-scores
    # were taken over ``fusion.depth`` candidates.
    fusion = config.get("fusion", {})
    cross = fusion.get("cross", "z")
    if cross not in ("z", "raw"):
        raise RerankerError(f"{path}: unknown fusion.cross {cross!r}")
    depth = fusion.get("depth")
    return float(fusion.get("weight", 0.0)), cross, None if depth is None else int(depth)


def _load(base: Path, checkpoint: Path, device: str, layers: int | None = None):
    PeftModel = require_tune_extra("peft").PeftModel

    model, tok = load_scorer_model(base, device, layers=layers)
    model = PeftModel.from_pretrained(model, str(checkpoint), is_trainable=False)
    model = model.merge_and_unload()
    model.eval()
    return model, tok


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder; ``default`` (when no such folder exists here) is the shipped one."""
    if str(path) == DEFAULT_NAME and not Path(path).exists():
        return DEFAULT_CHECKPOINT
    return Path(path)


def load_reranker(path: str | os.PathLike, device: str = "auto", batch_size: int = 16,
                  progress: bool = False) -> Reranker:
    """The reranker of a checkpoint folder (see :class:`Reranker`); ``default`` names the one
    shipped with mathmatch."""
    return Reranker(resolve_checkpoint(path), device=device, batch_size=batch_size,
                    progress=progress)
