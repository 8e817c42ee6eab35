"""Duplicate detection: quantity extraction, pair verdicts, question vectors, the CLI."""

from __future__ import annotations

import json
from fractions import Fraction as F

import pytest

from dedup.features import (
    ANSWERS_DIFFER,
    DEFAULT_THRESHOLD,
    FEATURES,
    Side,
    answers_differ,
    duplicate_score,
    pair_features,
    restated,
    score_pairs,
)
from dedup.quantities import extract, formulas_of


@pytest.mark.parametrize(("text", "values"), [
    ("Three of the women wear 4 inch heels.", [3, 4]),
    ("He paid $1,360.50 for 10,000 minutes.", [F("1360.5"), 10000]),
    ("She spends 25% of it, then half of the rest.", [F(1, 4), F(1, 2)]),
    ("A quarter of a cup, one-third of a box, two-thirds of 12.", [F(1, 4), F(1, 3),
                                                                  F(2, 3), 12]),
    ("twenty-five apples and two hundred pears", [25, 200]),
    ("twice as many, triple the amount, a dozen eggs", [2, 3, 12]),
    ("the ratio 7:13 and 1/4 more", [7, 13, F(1, 4)]),
    ("It costs 0.5 dollars or .25 dollars, and -7 degrees.", [F(1, 2), F(1, 4), -7]),
    ("He walks for an hour on the third day.", []),  # 1 is left out; ordinals are not givens
    ("three quarters of 40", [F(3, 4), 40]),
    ("a hexagonal prism, a regular pentagon and a triangle", [6, 5, 3]),
])
def test_quantity_extraction(text, values):
    assert sorted(extract(text).values.elements()) == sorted(F(v) for v in values)


def test_number_forms_are_recorded():
    forms = [q.form for q in extract("4 and 4.5 and 1/2 and 50% and five").quantities]
    assert forms == ["digits", "decimal", "fraction", "percent", "word"]


def test_formulas_of_inline_mathml():
    q = ('Compute <math xmlns="http://www.w3.org/1998/Math/MathML"><mfrac><mn>1</mn>'
         '<mn>2</mn></mfrac></math> now.')
    assert len(formulas_of(q)) == 1
    assert formulas_of("no math here") == []


SEED = ("John is a carpenter. For his friend Ali, he manufactured 4 wooden tables for $20 each "
        "and 2 roof frames for $10 each. How much does Ali have to pay John?")
PAIRS = [
    ("paraphrase", True,
     "John works as a carpenter and recently completed a job for his friend Ali. The job "
     "involved crafting 4 tables, each priced at $20, and 2 roof frames, each costing $10. "
     "What is the total amount Ali needs to settle with John?", 0.85),
    ("distraction", True,
     "John is a carpenter who also enjoys painting. For his friend Ali, he manufactured 4 "
     "wooden tables for $20 each and 2 roof frames for $10 each. He also painted a landscape "
     "worth $15, but he did not charge Ali for it. How much does Ali have to pay John?", 0.95),
    ("substitution", False,
     "John is a carpenter. For his friend Ali, he manufactured 3 wooden tables for $30 each "
     "and 5 roof frames for $15 each. How much does Ali have to pay John?", 0.97),
    ("decimal", False,
     "John is a carpenter. For his friend Ali, he manufactured 4 wooden tables for $20.5 each "
     "and 2 roof frames for $10.5 each. How much does Ali have to pay John?", 0.98),
    ("added step", False,
     "John is a carpenter. For his friend Ali, he manufactured 4 wooden tables for $20 each "
     "and 2 roof frames for $10 each. Additionally, John also made a wooden chair for Ali, "
     "which cost $15. How much does Ali have to pay John?", 0.96),
    ("unstated given", False,
     "John is a carpenter. For his friend Ali, he manufactured several wooden tables for $20 "
     "each and 2 roof frames for $10 each. How much does Ali have to pay John?", 0.98),
]


@pytest.mark.parametrize(("kind", "duplicate", "variant", "cosine"), PAIRS,
                         ids=[p[0] for p in PAIRS])
def test_duplicate_verdicts_on_handmade_pairs(kind, duplicate, variant, cosine):
    score = duplicate_score(SEED, variant, cosine)
    assert (score >= DEFAULT_THRESHOLD) is duplicate, (kind, score)


@pytest.mark.parametrize(("variant", "same"), [
    (SEED, True),
    (SEED.upper().replace(". ", ".  "), True),  # case and spacing
    (SEED.replace("manufactured", "manufacture").replace("?", " ?"), True),  # word ending
    (SEED.replace("4 wooden", "several wooden"), False),  # a given withdrawn
    (SEED.replace("$20 each", "$20.00 each"), False),  # a converted given
    (SEED.replace("How much", "In dollars, how much"), False),  # a new word
    (SEED.replace("4 wooden", "5 wooden"), False),
])
def test_restated_questions_are_duplicates(variant, same):
    """A question written again (same givens, same content words) is a duplicate whatever the
    fitted weights say; any change of a given or a content word goes to the model."""
    a, b = Side.of(SEED), Side.of(variant)
    assert restated(a, b) is same and restated(b, a) is same
    if same:
        assert duplicate_score(SEED, variant, cosine=0.99) == 1.0


def test_extra_givens_counting_something_new_or_known():
    """An extra given that counts something the other side never names (``turkeys``) is an
    aside; one that counts what it does name (``eggs``) changes the problem."""
    seed = ("Chatty prepared three dozen eggs for her four children's Easter activity. "
            "How many eggs does each child receive?")
    aside = seed.replace("eggs for", "eggs and 2 turkeys for")
    step = seed.replace("activity.", "activity, and she broke 2 eggs.")
    col = {f: i for i, f in enumerate(FEATURES)}
    x_aside = pair_features(Side.of(seed), Side.of(aside))
    x_step = pair_features(Side.of(seed), Side.of(step))
    assert (x_aside[col["extra_new_thing"]], x_aside[col["extra_known_thing"]]) == (1, 0)
    assert (x_step[col["extra_new_thing"]], x_step[col["extra_known_thing"]]) == (0, 1)
    assert duplicate_score(seed, aside, 0.95) > duplicate_score(seed, step, 0.95)
    money = pair_features(Side.of("Ann pays $3 for tea. How much?"),
                          Side.of("Ann pays $3 for tea and $2 for cake. How much?"))
    assert money[col["extra_known_thing"]] == 1  # a sum of money where the other has money


def test_a_rounding_precision_is_a_given_kept_apart_from_numbers():
    tenth, whole = extract("Round 3.45 to the nearest tenth."), extract("Round 3.45 to the "
                                                                       "nearest integer.")
    assert tenth.values != whole.values
    assert ("precision", F(1, 10)) in tenth.values and F(1, 10) not in tenth.values
    assert not restated(Side.of("Round 3.45 to the nearest tenth."),
                        Side.of("Round 3.45 to the nearest integer."))
    # an added precision is an extra given like a number: counted where it stands
    col = {f: i for i, f in enumerate(FEATURES)}
    x = pair_features(Side.of("Round 3.45."), Side.of("Round 3.45 to the nearest tenth."))
    assert x[col["extra"]] == 1 and x[col["extra_edited"]] + x[col["extra_new"]] == 1


def test_problems_sharing_few_givens_are_scaled_down():
    """Neighbours in a corpus often share a number or two and nothing else: below half of the
    richer side's givens shared, the score falls linearly to 0."""
    from dedup.features import givens_gate, shared_givens

    a = Side.of("Tom buys 3 pens for $2 each. How much does he pay?")
    b = Side.of("Ann buys 3 pens for $2 each, 5 books for $7 each and 9 cups for $4 each. "
                "How much does she pay?")
    assert shared_givens(a, b) == pytest.approx(2 / 6)
    assert givens_gate(shared_givens(a, b)) == pytest.approx((2 / 6) / 0.5)
    assert shared_givens(a, a) == 1.0 and givens_gate(1.0) == 1.0
    assert shared_givens(Side.of("How many?"), Side.of("How much?")) == 1.0
    from dedup.features import score_features, score_pair

    # score_pair applies the gate on top of the fitted model (the judge's logit its last
    # feature)
    x = pair_features(a, b)
    x[-1] = 1.5
    assert score_pair(a, b, 0.99, judged=1.5) == pytest.approx(
        givens_gate(2 / 6) * score_features(x))


def test_one_in_digits_is_a_given():
    assert extract("Bagels cost $1 each.").values == {F(1): 1}
    assert not extract("Each bagel costs one dollar, an hour a day.").values


MN = '<math xmlns="http://www.w3.org/1998/Math/MathML"><mrow><mn>{}</mn></mrow></math>'


@pytest.mark.parametrize(("a", "b", "differ"), [
    (MN.format(72), "72", False),
    (MN.format(72), "72.0", False),
    (MN.format("0.5"), "1/2", False),
    ("<math><mfrac><mn>13</mn><mn>3</mn></mfrac></math>", "4.33", False),  # rounded
    ("13/3", "4.3", False),
    (MN.format(72), "73", True),
    (MN.format(3), "4.33", True),
    ("13/3", "4.4", True),
    ("-13/3", "-4.33", False),
    ("sqrt(2)", "1.41", False),  # an irrational value rounded
    ("sqrt(2)", "1.42", True),
    ("1/8", "0.12", False),  # exactly halfway: either way
    ("1/8", "0.13", False),
    ("1/8", "0.14", True),
    ("x + 1", "1 + x", False),
    ("x + 1", "x + 2", True),
    (MN.format(72), "None", False),  # unreadable: no evidence either way
    ("$18", "18", False),
    ("<math><mtext>even</mtext></math>", "odd", True),  # word answers
    ("<math><mtext>Even</mtext></math>", "even.", False),
])
def test_answers_differ(a, b, differ):
    assert answers_differ(a, b) is differ and answers_differ(b, a) is differ


def test_a_pair_with_other_answers_is_not_a_duplicate():
    """A duplicate has the same answer: known final answers that differ scale the score by
    ANSWERS_DIFFER; the same answer, or an unknown one, leaves it as the givens made it."""
    paraphrase = PAIRS[0][2]
    sides = {final: (Side.of(SEED, final=MN.format(100)), Side.of(paraphrase, final=final), 0.9)
             for final in (None, "100", "90")}
    plain, same, other = score_pairs(list(sides.values()))
    # scored in one batch: the judge's logits may differ in the last float bits
    assert plain >= DEFAULT_THRESHOLD and same == pytest.approx(plain, rel=1e-6)
    assert other == pytest.approx(plain * ANSWERS_DIFFER) and other < DEFAULT_THRESHOLD


def test_pair_features_are_symmetric():
    a, b = Side.of(SEED), Side.of(PAIRS[1][2])
    assert list(pair_features(a, b)) == list(pair_features(b, a))
    assert len(pair_features(a, b)) == len(FEATURES)


def test_dedup_queries_and_mining(sample_index, tmp_path, run_cli):
    import shutil

    idx = tmp_path / "idx"
    shutil.copytree(sample_index, idx)
    queries = tmp_path / "q.jsonl"
    from mathcore.store import Store

    with Store(idx / "records.sqlite", readonly=True) as store:
        rec = store.get(store.rowids()[:1])[0]
    seed = rec.record.question
    other = seed
    for old in ("1", "2", "3", "4", "5", "6", "7", "8", "9"):
        if old in seed:
            other = seed.replace(old, str(int(old) + 1) if old != "9" else "11")
            break
    assert rec.record.final  # the sample's records carry their final answers
    queries.write_text(json.dumps({"id": "same", "question": seed}) + "\n"
                       + json.dumps({"id": "changed", "question": other}) + "\n"
                       + json.dumps({"id": "answered", "question": seed,
                                     "final": rec.record.final}) + "\n"
                       + json.dumps({"id": "other-answer", "question": seed,
                                     "final": "123456789"}) + "\n")
    out = tmp_path / "dups.jsonl"
    assert run_cli(["-q", "dedup", idx, "--queries", queries, "--k", "3", "--out", out,
                    "--device", "cpu"]) == 0
    rows = {r["query_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"same", "changed", "answered", "other-answer"}
    top = rows["same"]["candidates"][0]
    assert top["doc_id"] == rec.record.id and top["duplicate"] is True
    assert set(top) == {"doc_id", "score", "duplicate"}
    assert rows["answered"]["candidates"][0] == top
    # The same question with another final answer is not the record's duplicate.
    assert all(not (c["doc_id"] == rec.record.id and c["duplicate"])
               for c in rows["other-answer"]["candidates"])
    if other != seed:
        assert all(not (c["doc_id"] == rec.record.id and c["duplicate"])
                   for c in rows["changed"]["candidates"])
    manifest = json.loads((idx / "manifest.json").read_text())
    assert manifest["questions"]["count"] > 0  # built on first use, recorded
    mined = tmp_path / "groups.jsonl"
    assert run_cli(["-q", "dedup", idx, "--out", mined, "--device", "cpu"]) == 0
    for row in map(json.loads, mined.read_text().splitlines()):
        assert row["candidates"] and all(c["duplicate"] for c in row["candidates"])


def test_queries_file_finals(tmp_path):
    from mathcore.runs import QueryFileError, iter_queries, iter_queries_with_finals

    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "Q1", "final": MN.format(3)}) + "\n"
                    + json.dumps({"id": "b", "question": "Q2"}) + "\n")
    assert list(iter_queries_with_finals(path)) == [("a", "Q1", MN.format(3)), ("b", "Q2", None)]
    assert list(iter_queries(path)) == [("a", "Q1"), ("b", "Q2")]
    path.write_text(json.dumps({"id": "a", "question": "Q1", "final": 3}) + "\n")
    with pytest.raises(QueryFileError, match=r"q.jsonl:1: final answer must be a string"):
        list(iter_queries_with_finals(path))


def test_finder_excludes_ids(sample_index):
    from dedup.finder import DuplicateFinder
    from retriever.questions import QuestionIndex

    finder = DuplicateFinder(QuestionIndex.open(sample_index, device="cpu"))
    try:
        rec = finder.store.get(finder.store.rowids()[:1])[0]
        found = finder.find([(rec.record.id, rec.record.question)], k=3)[0]
        assert found[0].doc_id == rec.record.id
        kept = finder.find([(rec.record.id, rec.record.question)], k=3,
                           exclude={rec.record.id: {rec.record.id}})[0]
        assert rec.record.id not in {c.doc_id for c in kept} and len(kept) == 3
    finally:
        finder.questions.close()
