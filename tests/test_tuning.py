"""Contrastive tuning of the embedder (``mathmatch tune embedder``) on the bundled sample.

The base model is the tiny 2-layer encoder built from a config, so a few training steps take
seconds; the data are the sample's real records and its real qrels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tuning.data import Exclusions, TrainRecord, load_pairs
from tuning.embedder import CHECKPOINTS, PAIRS_FILE, TuneConfig, TuneError, tune_embedder
from tuning.negatives import mine_hard_negatives


def _config(sample_dir: Path, base: Path, out: Path, **kw) -> TuneConfig:
    settings = dict(corpora=[sample_dir / "records.jsonl"], out=out, base=str(base),
                    exclude_qrels=[sample_dir / "qrels.tsv"], batch_size=8, max_steps=6,
                    eval_steps=3, val_size=20, val_distractors=60, learning_rate=1e-3,
                    device="cpu", seed=0)
    settings.update(kw)
    return TuneConfig(**settings)


def _excluded(sample_dir: Path) -> tuple[set[str], set[str]]:
    """Ids named by the sample's qrels, and its query texts as linear text."""
    from mathcore.records import query_text
    from mathcore.runs import iter_queries, read_qrels

    qrels = read_qrels(sample_dir / "qrels.tsv")
    ids = set(qrels) | {d for docs in qrels.values() for d in docs}
    texts = {" ".join(query_text(t).lower().split())
             for qid, t in iter_queries(sample_dir / "queries.jsonl") if qid in qrels}
    return ids, texts


# --- exclusion ----------------------------------------------------------------------------------


def test_excluded_ids_never_reach_training_pairs_negatives_or_validation(
        sample_dir, tiny_encoder_path, tmp_path):
    ids, texts = _excluded(sample_dir)
    assert len(ids) >= 40 and len(texts) == 40
    cfg = _config(sample_dir, tiny_encoder_path, tmp_path / "m", keep_checkpoints=True,
                  hard_negatives=1, max_steps=2, margin=0.0)
    report = tune_embedder(cfg)
    rows = [json.loads(line) for line in (cfg.out / CHECKPOINTS / PAIRS_FILE).open()]
    assert len(rows) == report.data["train_pairs"] > 200
    used = {r["id"] for r in rows} | {n for r in rows for n in r["negative_ids"]}
    assert not used & ids
    assert not {" ".join(r["anchor"].lower().split()) for r in rows} & texts
    assert all(len(r["negative_ids"]) == 1 and r["negative_ids"][0] != r["id"] for r in rows)
    pairs = load_pairs(cfg.corpora, Exclusions.from_qrels(cfg.exclude_qrels), 20)
    assert pairs.val and not {r.id for r in pairs.val} & ids
    assert not {r.id for r in pairs.val} & {r["id"] for r in rows}
    saved = json.loads((cfg.out / "tuning.json").read_text())
    assert saved["exclusions"]["gold_ids"] == 40 and saved["exclusions"]["query_texts"] == 40


def test_a_copy_of_a_benchmark_question_under_another_id_is_excluded(sample_dir, tmp_path):
    """The query text, not only its id: a re-keyed copy of a judged problem stays out."""
    qrels = sample_dir / "qrels.tsv"
    gold = next(iter(json.loads(line) for line in open(sample_dir / "records.jsonl")
                     if json.loads(line)["id"] == qrels.read_text().split()[4]))
    copy = dict(gold, id="renamed-copy")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps(copy) + "\n" + json.dumps(dict(gold, id="other", question="An "
                      "unrelated question about 2 apples?")) + "\n")
    pairs = load_pairs([corpus], Exclusions.from_qrels([qrels]), val_size=0)
    assert [r.id for r in pairs.train] == ["other"]
    assert pairs.excluded == {"question text of an excluded query": 1}


def test_missing_qrels_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such.tsv"):
        Exclusions.from_qrels([tmp_path / "no-such.tsv"])


# --- hard negatives -------------------------------------------------------------------------------


def _rec(i: int, final: str, question: str | None = None, source: str = "s") -> TrainRecord:
    return TrainRecord(f"r{i}", question or f"question {i}", f"answer {i}", final, source, "")


def test_mining_skips_candidates_within_the_margin_and_same_answer_problems():
    recs = [_rec(0, "5"), _rec(1, "7"), _rec(2, "5"), _rec(3, "9"), _rec(4, "11")]
    q_norm = np.eye(5, dtype=np.float32)  # question i points along axis i
    # Answers of record 0's neighbours: r1 scores within the margin of the gold, r2 shares the
    # gold's final answer, r3 is the hardest acceptable negative, r4 is easier.
    a = np.eye(5, dtype=np.float32)
    for i, s in ((1, 0.98), (2, 0.9), (3, 0.8), (4, 0.3)):
        a[i, 0], a[i, i] = s, np.sqrt(1 - s * s)
    gold = float(q_norm[0] @ a[0])
    assert float(q_norm[0] @ a[1]) > gold - 0.05  # the built case is what the comment says
    negs, stats = mine_hard_negatives(recs, q_norm, a, count=1, margin=0.05)
    assert negs[0] == [3]
    assert stats.skipped_margin >= 1 and stats.skipped_same_final >= 1
    assert all(len(n) == 1 and i not in n for i, n in enumerate(negs))


def test_mining_falls_back_to_a_random_answer_of_the_same_source():
    recs = [_rec(0, "1", source="a"), _rec(1, "2", source="a"), _rec(2, "3", source="b")]
    vecs = np.ones((3, 4), dtype=np.float32) / 2  # every score ties the gold: all in the margin
    negs, stats = mine_hard_negatives(recs, vecs, vecs, count=1, margin=0.05)
    assert stats.mined == 0 and stats.random_fallback == 3
    assert negs[0] == [1] and negs[1] == [0]


# --- training -----------------------------------------------------------------------------------


def _mnrl_loss(model_path: Path, rows: list[dict]) -> float:
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    model = SentenceTransformer(str(model_path), device="cpu")
    model.max_seq_length = 128
    loss = MultipleNegativesRankingLoss(model)
    with torch.no_grad():
        feats = [model.tokenize([r[c] for r in rows]) for c in ("anchor", "positive")]
        return float(loss(feats, None))


def test_a_few_steps_lower_the_loss_and_change_the_model(sample_dir, tiny_encoder_path,
                                                         tmp_path):
    from safetensors.numpy import load_file

    cfg = _config(sample_dir, tiny_encoder_path, tmp_path / "m", hard_negatives=0,
                  freeze_layers=0, max_steps=20, eval_steps=10, val_size=0,
                  keep_checkpoints=True, warmup_ratio=0.0, lora=0)
    report = tune_embedder(cfg)
    rows = [json.loads(line) for line in (cfg.out / CHECKPOINTS / PAIRS_FILE).open()][:64]
    before, after = _mnrl_loss(tiny_encoder_path, rows), _mnrl_loss(cfg.out, rows)
    assert after < before - 0.05, (before, after)
    old = load_file(str(tiny_encoder_path / "model.safetensors"))
    new = load_file(str(cfg.out / "model.safetensors"))
    assert any(not np.allclose(old[k], new[k]) for k in old)
    assert report.steps == 20
    curve = json.loads((cfg.out / "training_curve.json").read_text())
    assert [p["step"] for p in curve["loss"]][-1] == 20
    assert (cfg.out / "training_curve.png").stat().st_size > 1000


def test_frozen_layers_do_not_change(sample_dir, tiny_encoder_path, tmp_path):
    from safetensors.numpy import load_file

    cfg = _config(sample_dir, tiny_encoder_path, tmp_path / "m", hard_negatives=0,
                  freeze_layers=1, max_steps=4, val_size=0, lora=0)
    tune_embedder(cfg)
    old = load_file(str(tiny_encoder_path / "model.safetensors"))
    new = load_file(str(cfg.out / "model.safetensors"))
    changed = {k for k in old if not np.allclose(old[k], new[k])}
    assert changed and all("layer.1." in k or "pooler" in k for k in changed), changed


def test_saved_folder_reloads_encodes_and_indexes(sample_dir, tiny_encoder_path, tmp_path,
                                                  run_cli):
    from index.manifest import read_manifest
    from retriever.encoder import Encoder, EncoderSpec

    out = tmp_path / "m"
    assert run_cli(["tune", "embedder", sample_dir / "records.jsonl", "--out", out, "--base",
                    tiny_encoder_path, "--exclude-qrels", sample_dir / "qrels.tsv",
                    "--batch-size", "8", "--max-steps", "3", "--eval-steps", "3",
                    "--val-size", "10", "--device", "cpu", "-q"]) == 0
    weights = out / "adapter_model.safetensors"  # LoRA by default: the adapter alone
    assert not (out / "model.safetensors").exists()
    mtime = weights.stat().st_mtime_ns
    # The same command again finds the finished model of the same recipe and does nothing.
    assert run_cli(["tune", "embedder", sample_dir / "records.jsonl", "--out", out, "--base",
                    tiny_encoder_path, "--exclude-qrels", sample_dir / "qrels.tsv",
                    "--batch-size", "8", "--max-steps", "3", "--eval-steps", "3",
                    "--val-size", "10", "--device", "cpu", "-q"]) == 0
    assert weights.stat().st_mtime_ns == mtime
    report = json.loads((out / "tuning.json").read_text())
    assert report["steps"] == 3 and set(report["validation_after"]) == {
        "recall@1", "recall@10", "mrr@10"}
    assert not (out / CHECKPOINTS).exists()
    vecs = Encoder(out, device="cpu").encode(["x^2 + 1 = 5", "How many apples?"])
    assert vecs.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    idx = tmp_path / "idx"
    assert run_cli(["index", "build", sample_dir / "records.jsonl", "--out", idx,
                    "--encoder", out, "-q"]) == 0
    dense = read_manifest(idx)["dense"]
    assert dense["encoder"] == str(out.resolve())
    assert dense["encoder_checksum"] == EncoderSpec.resolve(out).checksum


# --- resuming and the output folder --------------------------------------------------------------


def test_an_interrupted_run_resumes_from_its_checkpoint(sample_dir, tiny_encoder_path, tmp_path,
                                                        monkeypatch):
    from transformers import TrainerCallback

    import tuning.embedder as emb

    class Interrupt(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    original = emb._log_to_logger
    monkeypatch.setattr(emb, "_log_to_logger",
                        lambda trainer: (original(trainer), trainer.add_callback(Interrupt())))
    cfg = _config(sample_dir, tiny_encoder_path, tmp_path / "m")
    with pytest.raises(KeyboardInterrupt):
        tune_embedder(cfg)
    assert (cfg.out / CHECKPOINTS / "checkpoint-3").is_dir()
    assert not (cfg.out / "tuning.json").exists()
    monkeypatch.setattr(emb, "_log_to_logger", original)
    report = tune_embedder(cfg)
    assert report.resumed and report.steps == 6
    assert json.loads((cfg.out / "tuning.json").read_text())["resumed"] is True


def test_checkpoints_of_another_recipe_are_not_resumed(sample_dir, tiny_encoder_path, tmp_path):
    cfg = _config(sample_dir, tiny_encoder_path, tmp_path / "m")
    (cfg.out / CHECKPOINTS).mkdir(parents=True)
    (cfg.out / CHECKPOINTS / "recipe.json").write_text(json.dumps({"seed": 99}))
    with pytest.raises(TuneError, match="another recipe"):
        tune_embedder(cfg)


def test_a_finished_model_is_not_overwritten_without_asking(sample_dir, tiny_encoder_path,
                                                            tmp_path, run_cli, capsys):
    out = tmp_path / "m"
    out.mkdir()
    (out / "tuning.json").write_text("{}")
    status = run_cli(["tune", "embedder", sample_dir / "records.jsonl", "--out", out, "--base",
                      tiny_encoder_path, "--max-steps", "1"])
    assert status == 2
    assert "already holds a model tuned with another recipe; pass --overwrite" in \
        capsys.readouterr().err


# --- the adapter ---------------------------------------------------------------------------------


def test_a_lora_run_saves_an_adapter_that_loads_merged_as_peft_computes_it(
        sample_dir, tiny_encoder_path, tmp_path):
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer

    from retriever.encoder import ADAPTER_FILE, Encoder, EncoderSpec

    cfg = _config(sample_dir, tiny_encoder_path, tmp_path / "m", hard_negatives=0, val_size=0,
                  lora=4, freeze_layers=1, max_steps=4, learning_rate=1e-2)
    tune_embedder(cfg)
    marker = json.loads((cfg.out / ADAPTER_FILE).read_text())
    assert marker["base"] == str(tiny_encoder_path.resolve())
    assert marker["base_checksum"] == EncoderSpec.resolve(tiny_encoder_path).checksum
    adapter = json.loads((cfg.out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == marker["base"] and adapter["r"] == 4
    texts = ["Solve x^2 - 5x + 6 = 0", "The roots are 2 and 3"]
    ours = Encoder(cfg.out, device="cpu").encode(texts)
    reference = SentenceTransformer(str(tiny_encoder_path), device="cpu")
    base = reference.encode(texts, normalize_embeddings=True)
    reference[0].auto_model = PeftModel.from_pretrained(reference[0].auto_model,
                                                        str(cfg.out)).merge_and_unload()
    merged = reference.encode(texts, normalize_embeddings=True)
    assert np.allclose(ours, merged, atol=1e-6)
    assert not np.allclose(ours, base, atol=1e-4)  # the adapter did change the model
    # LoRA sits on the layers above the frozen one only.
    from safetensors.numpy import load_file

    keys = load_file(str(cfg.out / "adapter_model.safetensors"))
    assert keys and all(".layer.1." in k for k in keys)


def test_an_adapter_refuses_a_base_that_changed(sample_dir, tiny_encoder_path, tmp_path):
    from retriever.encoder import ADAPTER_FILE, Encoder

    cfg = _config(sample_dir, tiny_encoder_path, tmp_path / "m", hard_negatives=0, val_size=0,
                  lora=4, max_steps=1)
    tune_embedder(cfg)
    marker = json.loads((cfg.out / ADAPTER_FILE).read_text())
    (cfg.out / ADAPTER_FILE).write_text(json.dumps(dict(marker, base_checksum="0" * 64)))
    with pytest.raises(ValueError, match="trained on .* with checksum 000000000000"):
        Encoder(cfg.out, device="cpu").encode(["x"])


# --- forum threads, id patterns, long answers ------------------------------------------------


MSE_THREADS = Path(__file__).resolve().parent / "data" / "mse_threads.jsonl"


def test_a_threads_answers_stay_together_and_are_never_each_others_negatives(tmp_path):
    from collections import Counter, defaultdict

    # Real Math StackExchange answers (LaTeXML MathML), threads of 1 to 5 answers.
    pairs = load_pairs([MSE_THREADS], Exclusions(), val_size=8, seed=3)
    threads = Counter(r.thread for r in [*pairs.train, *pairs.val])
    assert all(threads.values()) and max(threads.values()) >= 2 and "" not in threads
    val_threads = {r.thread for r in pairs.val}
    assert pairs.val and not val_threads & {r.thread for r in pairs.train}
    records = pairs.train
    # Vectors where every answer is nearest to the other answers of its own thread: the miner
    # must still pick an answer of another thread.
    by_thread = defaultdict(list)
    for i, r in enumerate(records):
        by_thread[r.thread].append(i)
    # Each question scores its own answer 1, its thread's other answers about 0.86 (clear of
    # the margin), other threads' about 0.
    rng = np.random.default_rng(0)
    centres = {t: rng.normal(size=256) / 16 for t in by_thread}
    a = np.stack([centres[r.thread] + 0.4 * rng.normal(size=256) / 16 for r in records])
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    negs, stats = mine_hard_negatives(records, a, a, count=1, margin=0.05)
    assert all(records[j].thread != records[i].thread for i, n in enumerate(negs) for j in n)
    assert stats.skipped_same_final >= sum(len(v) > 1 for v in by_thread.values())
    # Validation: one query per thread, every answer of the thread relevant.
    from tuning.embedder import _evaluator

    evaluator = _evaluator(pairs, seed=0, distractors=10, batch_size=8)
    assert len(evaluator.queries) == len(val_threads)
    assert sorted(map(len, evaluator.relevant_docs.values())) == sorted(
        Counter(r.thread for r in pairs.val).values())


def test_id_patterns_exclude_a_split_everywhere(sample_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    lines = [json.loads(line) for line in open(sample_dir / "records.jsonl")][:40]
    for i, rec in enumerate(lines):
        rec["id"] = f"gsm8k-test-{i}" if i % 2 else f"gsm8k-train-{i}"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in lines))
    pairs = load_pairs([corpus], Exclusions.from_qrels([], ["gsm8k-test-*"]), val_size=5)
    kept = [r.id for r in [*pairs.train, *pairs.val]]
    assert len(kept) == 20 and all(i.startswith("gsm8k-train-") for i in kept)
    assert pairs.excluded == {"id matches gsm8k-test-*": 20}


def test_a_long_answer_trains_as_its_passage_nearest_the_question():
    from retriever.encoder import default_model_path, load_sentence_model
    from tuning.embedder import long_answers_as_passages

    model = load_sentence_model(default_model_path())  # the packaged MiniLM
    model.max_seq_length = 64
    filler = " ".join(f"apples {i} and pears are sold at the market on day {i}." for i in range(40))
    long = TrainRecord("long", "What is the derivative of sin x?",
                       filler + " The derivative of sin x is cos x, by the limit of sin(h)/h.",
                       "", "s", "")
    short = TrainRecord("short", "What is 2 + 2?", "2 + 2 = 4", "4", "s", "")
    out, changed = long_answers_as_passages(model, [long, short], index_length=256)
    assert changed == 1 and out[1] == short
    assert "derivative of sin x is cos x" in out[0].answer
    assert len(model.tokenizer(out[0].answer, add_special_tokens=False)["input_ids"]) <= 62


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="loss"):
        TuneConfig(corpora=[], out=tmp_path, loss="triplet")
    with pytest.raises(ValueError, match="in-batch"):
        TuneConfig(corpora=[], out=tmp_path, batch_size=1)
    with pytest.raises(ValueError, match="lora"):
        TuneConfig(corpora=[], out=tmp_path, lora=-1)
