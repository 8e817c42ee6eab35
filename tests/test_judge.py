"""The insertion judge of duplicate detection: training, save/load, the shipped one."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dedup.features import JUDGE_CLIP, PairScore, Side, judge_input, score_pairs
from dedup.judge import DEFAULT_JUDGE, InsertionJudge

QUESTION = "How much does Ali have to pay John?"
# (added text, other side's question sentence, 1 for an aside / 0 for another step)
TOY = [
    ("he also painted a landscape but did not charge ali for it", QUESTION, 1),
    ("meanwhile his cat sleeps 12 hours a day which does not matter", QUESTION, 1),
    ("john enjoys painting in his own spare time", QUESTION, 1),
    ("ignoring the 3 chairs he gave away for free", QUESTION, 1),
    ("additionally he made a wooden chair for ali which cost 15", QUESTION, 0),
    ("however ali gets a 10 discount on the total", QUESTION, 0),
    ("he also charges 5 for delivery of each table", QUESTION, 0),
    ("then ali pays an extra 20 for the varnish", QUESTION, 0),
]


@pytest.fixture(scope="module")
def trained():
    pytest.importorskip("peft")
    from tuning.judge import JudgeRecipe, train_judge

    recipe = JudgeRecipe(epochs=8, lr=2e-3, batch_size=4, max_length=48)
    return train_judge([(a, q) for a, q, _ in TOY], [y for *_, y in TOY], recipe)


def test_training_lowers_the_loss_and_separates_the_toy_set(trained):
    assert trained.facts["loss_last"] < trained.facts["loss_first"]
    logits = trained.judge.logits([(a, q) for a, q, _ in TOY])
    labels = np.array([y for *_, y in TOY])
    assert logits[labels == 1].mean() > logits[labels == 0].mean()


def test_saved_judge_loads_back_to_the_same_logits(trained, tmp_path):
    from tuning.judge import save

    save(trained, tmp_path / "judge", note="test")
    loaded = InsertionJudge.load(tmp_path / "judge")
    pairs = [(a, q) for a, q, _ in TOY]
    np.testing.assert_allclose(loaded.logits(pairs), trained.judge.logits(pairs), atol=1e-4)
    assert sorted(p.name for p in (tmp_path / "judge").iterdir()) == ["judge.json",
                                                                       "judge.safetensors"]


def test_a_folder_without_a_judge_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="judge"):
        InsertionJudge.load(tmp_path)


def test_the_shipped_judge_is_small_and_tells_an_aside_from_a_step():
    assert sum(p.stat().st_size for p in DEFAULT_JUDGE.iterdir()) < 3_000_000
    seed = Side.of("John is a carpenter. For his friend Ali, he manufactured 4 wooden tables "
                   "for $20 each and 2 roof frames for $10 each. How much does Ali have to pay "
                   "John?")
    aside = Side.of(seed.text.replace("each. How", "each. In the same week he also painted a "
                                      "landscape worth $15 for his own enjoyment, and did not "
                                      "charge Ali for it. How"))
    step = Side.of(seed.text.replace("each. How", "each. Additionally, John also made a "
                                     "wooden chair for Ali, which cost $15. How"))
    logits = InsertionJudge.default().logits([judge_input(seed, aside), judge_input(seed, step)])
    assert logits[0] > logits[1]
    assert np.all(np.abs(logits) <= JUDGE_CLIP)


class Counting:
    """The shipped judge, counting the pairs it is asked about."""

    def __init__(self) -> None:
        self.judge, self.asked = InsertionJudge.default(), 0

    def logits(self, pairs):
        self.asked += len(pairs)
        return self.judge.logits(pairs)


def test_the_judge_is_asked_only_where_it_can_matter():
    a = Side.of("Tom buys 3 pens for $2 each and 4 pads for $5 each. How much does he pay?")
    aside = Side.of("Tom buys 3 pens for $2 each and 4 pads for $5 each, and his dog barks 5 "
                    "times. How much does he pay?")
    # two givens changed: similar enough to be scored (gate 1), too different to be a duplicate
    other = Side.of("Tom buys 3 pens for $2 each and 6 pads for $8 each. How much does he pay?")
    assert PairScore.of(a, other, 0.95).gate == 1.0
    judge = Counting()
    scores = score_pairs([(a, aside, 0.95), (a, other, 0.95), (a, a, 0.99)], judge,
                         floor=0.25)
    # the restated pair needs no judge; the one with other numbers cannot reach the floor
    assert PairScore.of(a, other, 0.95).best() < 0.25 <= PairScore.of(a, aside, 0.95).best()
    assert judge.asked == 1 and scores[2] == 1.0
    # without a floor every modelled pair is judged, and the score moves with the logit
    assert score_pairs([(a, other, 0.95)], judge) == [pytest.approx(
        PairScore.of(a, other, 0.95).score(float(judge.logits([judge_input(a, other)])[0])))]
    lo, hi = (PairScore.of(a, aside, 0.95).score(v) for v in (-JUDGE_CLIP, JUDGE_CLIP))
    assert lo < hi


def test_the_finder_asks_its_judge_and_only_where_verdicts_can_change(sample_index):
    """``judge_all=False`` (the tie-break and the chooser) asks about fewer candidates and
    gives the same verdicts, and the same scores to every duplicate."""
    from dedup.finder import DuplicateFinder
    from retriever.questions import QuestionIndex

    questions = QuestionIndex.open(sample_index, device="cpu")
    try:
        recs = [r for r in questions.store.get(questions.store.rowids())
                if r.record.source == "gsm8k"][:6]
        # each question with an aside, and with its numbers changed (another problem)
        queries = [(f"aside-{r.record.id}", "A neighbour owns 7 dogs. " + r.record.question)
                   for r in recs]
        queries += [(f"other-{r.record.id}", re.sub(r"\d+", lambda m: str(int(m[0]) + 3),
                                                    r.record.question)) for r in recs]
        every, few = Counting(), Counting()
        full = DuplicateFinder(questions, judge=every).find(queries, k=5)
        lean = DuplicateFinder(questions, judge=few, judge_all=False).find(queries, k=5)
    finally:
        questions.close()
    assert every.asked > few.asked > 0
    assert any(c.duplicate for cands in full for c in cands)  # the asides, at least
    for a, b in zip(full, lean, strict=True):
        assert [(c.doc_id, c.score) for c in a if c.duplicate] == \
            [(c.doc_id, c.score) for c in b if c.duplicate]
        assert {c.doc_id for c in a if not c.duplicate} == {c.doc_id for c in b
                                                             if not c.duplicate}
