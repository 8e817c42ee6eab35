"""Metrics against hand-computed values, and the bench command on the sample index."""

from __future__ import annotations

import json
import math

import pytest

from mathcore.evaluate import evaluate_groups, evaluate_run

QRELS = {
    "q1": {"d1": 1, "d2": 1},
    "q2": {"d3": 1},
    "q3": {"d9": 0},  # no relevant document: cannot be scored, left out of the mean
    "q4": {"d5": 1},  # never retrieved: scores 0
}
RUN = {
    "q1": {"d4": 0.9, "d1": 0.8, "d5": 0.7, "d2": 0.6},  # k = 10 beyond a 4-hit list
    "q2": {"d7": 1.0, "d3": 1.0},  # a tie: the returned order (d7 first) is what counts
    "q3": {"d9": 1.0},
    "q5": {"d1": 1.0},  # not judged: ignored
}
METRICS = ["recall@1", "recall@2", "recall@10", "mrr@10", "ndcg@10"]


def _dcg(ranks):
    return sum(1 / math.log2(r + 1) for r in ranks)


def test_metrics_equal_hand_computed_values():
    ndcg_q1 = _dcg([2, 4]) / _dcg([1, 2])
    ndcg_q2 = _dcg([2]) / _dcg([1])
    expected = {
        "recall@1": 0.0,
        "recall@2": (0.5 + 1 + 0) / 3,
        "recall@10": (1 + 1 + 0) / 3,
        "mrr@10": (1 / 2 + 1 / 2 + 0) / 3,
        "ndcg@10": (ndcg_q1 + ndcg_q2 + 0) / 3,
    }
    got = evaluate_run(QRELS, RUN, METRICS)
    assert got == pytest.approx(expected, abs=1e-6)


def test_ties_keep_the_returned_order():
    swapped = {**RUN, "q2": {"d3": 1.0, "d7": 1.0}}
    assert evaluate_run({"q2": {"d3": 1}}, swapped, ["mrr@10"])["mrr@10"] == 1.0
    assert evaluate_run({"q2": {"d3": 1}}, RUN, ["mrr@10"])["mrr@10"] == 0.5


def test_groups_split_the_queries():
    groups = {"q1": "a", "q2": "b", "q4": "b"}
    got = evaluate_groups(QRELS, RUN, ["mrr@10"], groups)
    assert got["a"]["mrr@10"] == pytest.approx(0.5)
    assert got["b"]["mrr@10"] == pytest.approx(0.25)
    assert got["all"]["mrr@10"] == pytest.approx(1 / 3)


def test_qrels_without_relevant_documents_are_an_error():
    with pytest.raises(ValueError, match="no relevant"):
        evaluate_run({"q3": {"d9": 0}}, RUN, ["mrr@10"])


def test_bench_compares_systems_and_writes_reports(sample_index, sample_dir, tmp_path, run_cli):
    out = tmp_path / "results.json"
    code = run_cli(["-q", "bench", sample_index, "--queries", sample_dir / "queries.jsonl",
                    "--qrels", sample_dir / "qrels.tsv", "--mode", "bm25,dense",
                    "--out", out, "--device", "cpu"])
    assert code == 0
    res = json.loads(out.read_text())
    assert set(res["systems"]) == {"bm25", "dense"}
    dense = res["systems"]["dense"]
    assert set(dense["metrics"]) == {"all", "gsm8k", "math"}
    assert res["queries"]["all"] == 40
    assert dense["metrics"]["all"]["recall@100"] >= dense["metrics"]["all"]["recall@10"] \
        >= dense["metrics"]["all"]["recall@1"]
    assert dense["metrics"]["all"]["mrr@10"] > 0.8
    assert res["machine"]["cores"] and res["machine"]["date"]
    assert res["config"]["modes"] == ["bm25", "dense"]
    assert "| dense |" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_stride_takes_every_nth_judged_query(sample_index, sample_dir, tmp_path, run_cli):
    out = tmp_path / "results.json"
    assert run_cli(["-q", "bench", sample_index, "--queries", sample_dir / "queries.jsonl",
                    "--qrels", sample_dir / "qrels.tsv", "--mode", "bm25", "--stride", "3",
                    "--out", out, "--device", "cpu"]) == 0
    res = json.loads(out.read_text())
    assert res["queries"]["all"] == 14  # 40 judged queries: the 1st, 4th, ... 40th
    assert res["config"]["stride"] == 3
    # both sources of the sample are still there, as they are spread over the file
    assert res["queries"]["gsm8k"] and res["queries"]["math"]


def test_duplicate_scores_hand_computed():
    from mathcore.evaluate import duplicate_scores

    labels = {"a": 1, "b": 0, "c": 1, "d": 0}
    scores = {"a": 0.9, "b": 0.8, "c": 0.3, "d": 0.1}
    got = duplicate_scores(labels, scores, threshold=0.5)
    # Ranking a, b, c, d: precision at the duplicates' ranks is 1/1 and 2/3.
    assert got["average_precision"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-6)
    assert (got["precision"], got["recall"]) == (0.5, 0.5)
    assert got["f1"] == pytest.approx(0.5)
    assert got["chance_average_precision"] == 0.5


def test_choice_accuracy_counts_missing_items_wrong():
    from mathcore.evaluate import choice_accuracy

    got = choice_accuracy({"i1": 0, "i2": 3, "i3": 1}, {"i1": 0, "i2": 2})
    assert got == {"accuracy": round(1 / 3, 6), "items": 3, "right": 1}


@pytest.mark.parametrize("got, exp, verdict", [
    (0.8801, {"value": 0.880, "tolerance": 0.01}, "OK"),
    (0.874, {"value": 0.880, "tolerance": 0.01}, "OKish"),
    (0.85, {"value": 0.880, "tolerance": 0.01}, "FAIL"),
    (5200, {"min": 5000, "tolerance": 0.2}, "OK"),
    (4100, {"min": 5000, "tolerance": 0.2}, "OKish"),
    (3000, {"min": 5000, "tolerance": 0.2}, "FAIL"),
    (3000, {"max": 3600, "tolerance": 0.1}, "OK"),
    (3800, {"max": 3600, "tolerance": 0.1}, "OKish"),
    (4000, {"max": 3600, "tolerance": 0.1}, "FAIL"),
])
def test_matrix_verdicts(got, exp, verdict):
    from benchmarks.matrix import judge

    assert judge(got, exp) == verdict


def test_benchmark_halves_and_their_table(capsys):
    from benchmarks.splits import halves, print_split_table
    from mathcore.evaluate import evaluate_splits

    queries = [("q0", "a"), ("q1", "b"), ("q2", "c")]
    splits = halves(queries)
    assert splits == {"even": {"q0", "q2"}, "odd": {"q1"}, "all": {"q0", "q1", "q2"}}
    qrels = {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q0": {"d0": 2.0, "dx": 1.0}, "q1": {"dx": 2.0, "d1": 1.0}, "q2": {"d2": 1.0}}
    table = {3.0: evaluate_splits(qrels, run, ("mrr@10", "recall@1", "recall@100"),
                                  {"q0": "gsm8k", "q1": "math", "q2": "math"}, splits)}
    print_split_table("weight", table, [3.0], total="recall@100")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["weight", "split", "all", "MRR@10", "all", "R@1", "gsm8k",
                                "MRR@10", "gsm8k", "R@1", "math", "MRR@10", "math", "R@1",
                                "all", "recall@100"]
    # The odd half has no GSM8K query: its cells are dashes.
    assert lines[2].split() == ["3.0", "odd", "0.5000", "0.0000", "-", "-", "0.5000", "0.0000",
                                "1.0000"]
    assert lines[3].split()[:4] == ["3.0", "all", f"{2.5 / 3:.4f}", f"{2 / 3:.4f}"]


def test_benchmark_dev_match_reads_judged_queries_every_stride(tmp_path):
    from benchmarks.splits import dev_match

    task = tmp_path / "tasks" / "match"
    task.mkdir(parents=True)
    (task / "queries.jsonl").write_text("".join(
        json.dumps({"_id": f"q{i}", "text": f"question {i}"}) + "\n" for i in range(6)))
    # q3 has no judgement: it is skipped before the stride is taken.
    (task / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\td{i}\t1\n" for i in (0, 1, 2, 4, 5)))
    queries, qrels = dev_match(tmp_path, stride=2)
    assert queries == [("q0", "question 0"), ("q2", "question 2"), ("q5", "question 5")]
    assert qrels == {"q0": {"d0": 1}, "q2": {"d2": 1}, "q5": {"d5": 1}}
    assert [q for q, _ in dev_match(tmp_path)[0]] == ["q0", "q1", "q2", "q4", "q5"]


def test_bench_measures_the_symbolic_stage_as_match_runs_it(sample_index, sample_dir, tmp_path,
                                                             run_cli):
    """``bench --symbolic`` adds a ``+symbolic`` system whose run is what ``match --symbolic``
    writes with the same settings (one pipeline behind both)."""
    from mathcore.evaluate import evaluate_run
    from mathcore.runs import read_qrels

    stage = ["--margin", "0.5", "--no-duplicates", "--device", "cpu"]
    out = tmp_path / "results.json"
    queries = tmp_path / "q.jsonl"
    lines = open(sample_dir / "queries.jsonl").read().splitlines()[::4]
    queries.write_text("\n".join(lines) + "\n")
    assert run_cli(["-q", "bench", sample_index, "--queries", queries, "--qrels",
                    sample_dir / "qrels.tsv", "--mode", "bm25", "--symbolic", "--out", out,
                    *stage]) == 0
    res = json.loads(out.read_text())
    assert set(res["systems"]) == {"bm25", "bm25+symbolic"}
    assert res["systems"]["bm25+symbolic"]["symbolic"] is True
    assert run_cli(["-q", "match", sample_index, "--queries", queries, "--mode", "bm25",
                    "--k", "100", "--symbolic", "--out", tmp_path / "m.jsonl", *stage]) == 0
    run = {r["query_id"]: {h["doc_id"]: h["score"] for h in r["hits"]}
           for r in map(json.loads, open(tmp_path / "m.jsonl"))}
    qrels = {q: d for q, d in read_qrels(sample_dir / "qrels.tsv").items() if q in run}
    got = res["systems"]["bm25+symbolic"]["metrics"]["all"]
    assert got["mrr@10"] == pytest.approx(evaluate_run(qrels, run, ["mrr@10"])["mrr@10"])
