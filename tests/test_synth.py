"""The synthetic corpus generator of the scale benchmark (benchmarks/synth.py)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from benchmarks.synth import (
    WORDINGS,
    SynthConfig,
    generate,
    iter_synthetic,
    main,
    scalable,
    wording,
)
from mathcore.loaders import iter_corpus
from mathcore.mathml import iter_formulas
from mathcore.records import Record, derive

M = '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"><mrow>{}</mrow></math>'


def mn(*parts: str) -> str:
    return M.format("".join(f"<mo>{p[1:]}</mo>" if p.startswith("o") else f"<mn>{p}</mn>"
                            for p in parts))


ADDITIVE = {  # every number used, only + and -: its numbers can be scaled
    "id": "add-1", "source": "gsm8k",
    "question": "Tom has 15 apples and buys 23 more. He gives 8 away. How many are left?",
    "answer": f"He has {mn('15', 'o&#x0002B;', '23', 'o=', '38')} apples.\n"
              f"Then {mn('38', 'o&#x02212;', '8', 'o=', '30')}.\nThe answer is {mn('30')}.",
    "final": mn("30"),
}
PRODUCT = {  # a product: scaling every number would break it
    "id": "mul-1", "source": "gsm8k",
    "question": "A box holds 12 pens. How many pens are in 3 boxes?",
    "answer": f"There are {mn('12', 'o&#x000D7;', '3', 'o=', '36')} pens. "
              f"The answer is {mn('36')}.",
    "final": mn("36"),
}
WORD_NUMBER = {  # "two" is not a digit: 2 comes from nowhere, so nothing is scaled
    "id": "word-1", "source": "gsm8k",
    "question": "Ann has 5 cats and gets two more. How many cats?",
    "answer": f"{mn('5', 'o+', '2', 'o=', '7')}. Find it: The answer is {mn('7')}.",
    "final": mn("7"),
}
SOURCES = [ADDITIVE, PRODUCT, WORD_NUMBER]


def numbers(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", re.sub(r"<math.*?>|&#x[0-9A-Fa-f]+;", "", text))]


def test_scalable_only_when_arithmetic_stays_true():
    assert scalable(ADDITIVE)
    assert not scalable(PRODUCT)
    assert not scalable(WORD_NUMBER)
    unused = dict(ADDITIVE, question=ADDITIVE["question"] + " It is day 4.")
    assert not scalable(unused)  # a question number the answer never uses
    decimal = dict(ADDITIVE, question=ADDITIVE["question"].replace("15", "1.5"))
    assert not scalable(decimal)


def test_deterministic_given_seed_and_ids_unique():
    a = list(iter_synthetic(SOURCES, 60, seed=3))
    b = list(iter_synthetic(SOURCES, 60, seed=3))
    c = list(iter_synthetic(SOURCES, 60, seed=4))
    assert a == b and a != c
    ids = [r["id"] for r in a]
    assert len(set(ids)) == 60
    assert all(re.fullmatch(r"synth-\d+-(add|mul|word)-1", i) for i in ids)
    assert all(r["id"].endswith(r["meta"]["source_id"]) for r in a)
    # Each round holds every source once; a prefix is a sample of the sources.
    assert sorted(r["meta"]["source_id"] for r in a[:3]) == ["add-1", "mul-1", "word-1"]


def test_numbers_scaled_consistently_and_wording_varied():
    recs = list(iter_synthetic(SOURCES, 90, seed=0))
    added = [r for r in recs if r["meta"]["source_id"] == "add-1"]
    assert all(r["meta"]["scale"] in range(2, 10) for r in added)
    for r in added:
        f = r["meta"]["scale"]
        assert numbers(r["question"]) == [15 * f, 23 * f, 8 * f]
        assert f"<mn>{30 * f}</mn>" in r["final"] and f"<mn>{38 * f}</mn>" in r["answer"]
    for r in recs:
        if r["meta"]["source_id"] != "add-1":
            assert r["meta"]["scale"] == 1
    # Distinct wordings: no two variants of one source read the same.
    for sid in ("add-1", "mul-1", "word-1"):
        texts = [(r["question"], r["answer"]) for r in recs if r["meta"]["source_id"] == sid]
        if sid != "add-1":
            assert len(set(texts)) == len(texts)
    assert len({wording(i) for i in range(WORDINGS)}) == WORDINGS


def test_mathml_still_parses_and_records_derive():
    for rec in iter_synthetic(SOURCES, 30, seed=1):
        for field in ("question", "answer", "final"):
            for el in iter_formulas(rec[field]):
                assert el.tag == "math"
        derived = derive(Record(id=rec["id"], question=rec["question"], answer=rec["answer"],
                                final=rec["final"]))
        assert derived.formulas >= 2


def test_generate_writes_gzip_the_loader_reads(tmp_path: Path):
    data = tmp_path / "data"
    (data / "corpus").mkdir(parents=True)
    with open(data / "corpus" / "tiny.jsonl", "w", encoding="utf-8") as fh:
        for rec in SOURCES:
            fh.write(json.dumps(rec) + "\n")
    out = tmp_path / "synth.jsonl.gz"
    facts = generate(SynthConfig(data, 25, out, seed=0))
    assert facts["records"] == 25 and facts["sources"] == 3
    assert 0 < facts["numbers_scaled"] < 25
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        assert len(fh.readlines()) == 25
    items = list(iter_corpus([out]))
    assert len(items) == 25 and all(isinstance(i, Record) for i in items)
    assert items[0].meta["meta"]["source_id"] in {"add-1", "mul-1", "word-1"}
    assert main(["--data", str(data), "--records", "5", "--out", str(tmp_path / "s.jsonl")]) == 0
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 5


def test_config_refuses_no_records(tmp_path: Path):
    with pytest.raises(ValueError, match="at least 1"):
        SynthConfig(tmp_path, 0, tmp_path / "x.jsonl")
