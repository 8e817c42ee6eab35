"""Multiple choice: reading items, scoring options, the fallbacks, the CLI."""

from __future__ import annotations

import json

import pytest

from mathcore.symbolic import WorkerPool
from mathmatch.choose import Chooser, Item, ItemError, read_items


def _cn(v):
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML"><cn>{v}</cn></math>'


def _mn(v):
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML"><mn>{v}</mn></math>'


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(size=1) as p:
        yield p


def test_read_items_reports_the_bad_line(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "q", "options": ["1", "2"]}) + "\n"
                    + json.dumps({"id": "b", "question": "q"}) + "\n")
    with pytest.raises(ItemError, match=r"items.jsonl:2"):
        list(read_items(path))
    path.write_text(json.dumps({"id": "a", "question": "q", "options": ["1"], "correct": 3}))
    with pytest.raises(ItemError, match="correct"):
        list(read_items(path))


def test_verified_option_wins_whatever_its_form(pool):
    chooser = Chooser(pool=pool)
    item = Item("i1", "Solve 12*w = -9*w + 21 for w.", [_cn(-10), _mn(1), _cn(7)])
    choice = chooser.choose(item)
    assert choice.choice == 1
    assert choice.scores[1] >= 20 and max(choice.scores[0], choice.scores[2]) < 10
    item = Item("i2", "What is 3/4 + 1/4?", ["<math><mn>0.5</mn></math>", "1.0", _cn(2)])
    assert chooser.choose(item).choice == 1


def test_fallback_to_embedding_similarity_when_nothing_is_verified(pool):
    class FakeEncoder:
        def encode(self, texts):
            import numpy as np

            return np.array([[1.0, 0.0] if "apple" in t else [0.0, 1.0] for t in texts])

    chooser = Chooser(pool=pool, encoder=FakeEncoder())
    item = Item("i3", "Which fruit is an apple?", ["a pear", "an apple", "a plum"])
    choice = chooser.choose(item)
    assert choice.choice == 1
    assert choice.evidence["checks"] == ["unknown"] * 3 and "cosine" in choice.evidence


def test_choose_cli_with_and_without_index(sample_index, tmp_path, run_cli, capsys):
    from mathcore.store import Store

    with Store(sample_index / "records.sqlite", readonly=True) as store:
        rec = next(r for r in store.get(store.rowids()) if r.record.source == "gsm8k")
    items = tmp_path / "items.jsonl"
    # Copied from the corpus under its own id: the index must not lend it its own answer.
    lines = [{"id": rec.record.id, "question": rec.record.question,
              "options": [_mn(123456789), rec.record.final], "correct": 1},
             {"id": "solve", "question": "Solve 2*x = 4 for x.", "options": [_cn(3), _cn(2)],
              "correct": 1}]
    items.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "choices.jsonl"
    assert run_cli(["-q", "choose", "--items", items, "--out", out, "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [set(r) for r in rows] == [{"id", "choice", "scores"}] * 2
    assert rows[1]["choice"] == 1
    assert "accuracy" in capsys.readouterr().out
    out2 = tmp_path / "choices-index.jsonl"
    assert run_cli(["-q", "choose", "--items", items, "--index", sample_index, "--out", out2,
                    "--device", "cpu"]) == 0
    rows2 = [json.loads(line) for line in out2.read_text().splitlines()]
    # The item's own record is excluded: no agreement evidence can come from it, so the
    # first item's scores have no agreement share of 1 on the gold option.
    assert rows2[0]["scores"][1] - rows[0]["scores"][1] < 3.0
    assert rows2[1]["choice"] == 1
