"""The Python API: the README's example runs as written, and the API and the CLI give the same
results (the CLI is a thin layer over the same pipeline)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from mathmatch import Index, MatchConfig, Pipeline, as_run
from mathmatch.cli import main as run_cli

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no Python example"
    return next(b for b in blocks if "from mathmatch import" in b)


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    (tmp_path / "data").symlink_to(ROOT / "data")  # the example's paths are the repository's
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_example(), "README.md", "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    # The first question is a sample record's own question: its answer comes first, and that
    # record's paraphrase (the duplicates call) finds it as a duplicate.
    asked = re.search(r'index\.match\(\["([^"]+)"', readme_example()).group(1)
    own = next(json.loads(line)["id"] for line in open(ROOT / "data/sample/records.jsonl")
               if json.loads(line)["question"] == asked)
    assert lines[0].startswith(f"1 [('{own}', ")
    assert lines[2].startswith("<math")  # the stored final answer, MathML as given
    assert lines[3] == f"{own} True"
    assert list(eval(lines[4])) == ["1", "2"]  # noqa: S307 -- the printed BEIR-style run
    assert (tmp_path / "build" / "api-index" / "manifest.json").is_file()


@pytest.fixture
def questions(sample_dir):
    return [(q["_id"], q["text"]) for q in map(json.loads, open(sample_dir / "queries.jsonl"))][:6]


def test_match_gives_what_the_cli_writes(sample_index, questions, tmp_path):
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in questions))
    assert run_cli(["-q", "match", str(sample_index), "--queries", str(qfile), "--k", "5",
                    "--out", str(tmp_path / "cli.jsonl")]) == 0
    cli = {r["query_id"]: {h["doc_id"]: h["score"] for h in r["hits"]}
           for r in map(json.loads, open(tmp_path / "cli.jsonl"))}
    with Index.open(sample_index) as index:
        matches = index.match(dict(questions), k=5)
    api = as_run(matches)
    assert list(api) == [q for q, _ in questions]
    assert {q: list(h) for q, h in api.items()} == {q: list(h) for q, h in cli.items()}
    assert all(h.rank == i for m in matches for i, h in enumerate(m.hits, 1))
    assert api == {q: {d: pytest.approx(s, abs=1e-6) for d, s in h.items()}
                   for q, h in cli.items()}


def test_the_pipeline_runs_each_stage_on_a_run(sample_index, questions):
    with Pipeline(sample_index, MatchConfig(k=3)) as pipeline:
        first = pipeline.search(questions, 20)
        assert pipeline.rerank(questions, first) is first  # no cross-scorer configured
        assert pipeline.tiebreak(questions, first) is first  # no symbolic stage configured
        run = pipeline.run(questions)
    assert run == {q: dict(list(first[q].items())[:3]) for q, _ in questions}


def test_questions_may_be_a_list_pairs_or_a_dict(sample_index, questions):
    texts = [t for _, t in questions[:2]]
    with Index.open(sample_index) as index:
        by_list = index.match(texts, k=2, mode="bm25")
        by_dict = index.match({"a": texts[0], "b": texts[1]}, k=2, mode="bm25")
        assert [m.query_id for m in by_list] == ["1", "2"]
        assert [m.hits for m in by_list] == [m.hits for m in by_dict]
        with pytest.raises(ValueError, match="unique"):
            index.match([("x", texts[0]), ("x", texts[1])])
        with pytest.raises(TypeError, match="list"):
            index.match(texts[0])


def test_duplicates_give_what_the_cli_writes(sample_index, sample_dir, tmp_path):
    assert run_cli(["-q", "dedup", str(sample_index), "--queries",
                    str(sample_dir / "demo_duplicates.txt"), "--k", "2",
                    "--out", str(tmp_path / "dups.jsonl")]) == 0
    cli = [json.loads(line) for line in open(tmp_path / "dups.jsonl")]
    lines = [line.strip() for line in open(sample_dir / "demo_duplicates.txt") if line.strip()]
    with Index.open(sample_index) as index:
        found = index.duplicates(lines, k=2)
    assert [[(c.doc_id, c.duplicate) for c in d.candidates] for d in found] == \
        [[(c["doc_id"], c["duplicate"]) for c in row["candidates"]] for row in cli]
    assert any(c.duplicate for d in found for c in d.candidates)


def test_opening_a_folder_that_is_not_an_index_names_it(tmp_path):
    from index.manifest import ManifestError

    with pytest.raises(ManifestError, match=str(tmp_path)):
        Index.open(tmp_path)


def test_question_vectors_follow_adds_and_removes_encoding_only_the_difference(
        tmp_path, tiny_encoder_path, sample_dir):
    from index.manifest import read_manifest
    from retriever.questions import QuestionIndex

    records = [json.loads(line) for line in open(sample_dir / "records.jsonl")][:30]
    first, more = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in records[:20]))
    more.write_text("".join(json.dumps(r) + "\n" for r in records[20:]))
    index = Index.build([first], tmp_path / "idx", encoder=str(tiny_encoder_path), device="cpu",
                        workers=0)
    QuestionIndex.open(index.path, device="cpu").close()
    assert read_manifest(index.path)["questions"]["count"] == 20
    index.add([more], device="cpu", workers=0)
    index.remove([records[0]["id"]])
    qi = QuestionIndex.open(index.path, device="cpu")
    section = read_manifest(index.path)["questions"]
    ids = set(qi.store.ids_of(qi.vectors.ids().tolist()).values())
    qi.close()
    assert ids == {r["id"] for r in records[1:]}
    assert section["encode"]["records"] == 10  # the added ones only, not all 29 again
