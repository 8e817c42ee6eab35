"""The benchmarks measure what mathmatch runs: their first stage is the match pipeline's.

Each benchmark that reorders a first-stage run (``benchmarks.rerank``, ``.tiebreak``,
``.givens``, ``.likelihood``) must start from :meth:`mathmatch.pipeline.Pipeline.search` with
the settings of :class:`~mathmatch.pipeline.MatchConfig`: the tests compare the run each one
produces (and, run end to end on the sample, its figures) with the pipeline's.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mathmatch.pipeline import MatchConfig, Pipeline

CPU = MatchConfig(device="cpu")


@pytest.fixture(scope="module")
def dev_data(tmp_path_factory, sample_dir) -> Path:
    """The sample's queries and qrels laid out as the dev data (``tasks/match``)."""
    out = tmp_path_factory.mktemp("data")
    task = out / "tasks" / "match"
    task.mkdir(parents=True)
    for name in ("queries.jsonl", "qrels.tsv"):
        shutil.copy(sample_dir / name, task / name)
    return out


def _ordered(run: dict) -> dict:
    """A run with its rank order made part of what ``==`` compares."""
    return {q: list(hits.items()) for q, hits in run.items()}


def _search(index: Path, config: MatchConfig, queries, k: int) -> dict:
    with Pipeline(index, config) as pipeline:
        return pipeline.search(queries, k)


def _figures(index: Path, run: dict, queries, qrels: dict, metrics) -> dict:
    """What the benchmarks print of a run: every split and source group."""
    from benchmarks.splits import halves
    from mathcore.evaluate import evaluate_splits
    from mathmatch.bench import query_groups

    with Pipeline(index, CPU, mode="bm25") as pipeline:
        groups = query_groups(pipeline.store, qrels)
    return evaluate_splits(qrels, run, metrics, groups, halves(queries))


def test_the_rerank_candidates_are_the_pipelines_first_stage(sample_index, dev_data):
    """As deep as Pipeline.run searches for the cross-scorer: max(k, rerank depth)."""
    from benchmarks.rerank import candidates
    from benchmarks.splits import dev_match

    queries, _ = dev_match(dev_data)
    for depth, deep in ((3, CPU.k), (25, 25), (None, 20)):
        with Pipeline(sample_index, CPU, rerank_depth=depth) as pipeline:
            got = candidates(pipeline, queries)
        want = _search(sample_index, CPU, queries, deep)
        assert _ordered(got) == _ordered(want)
        assert all(len(hits) == deep for hits in got.values())


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_the_tiebreak_first_stage_is_the_pipelines(sample_index, dev_data, mode):
    from benchmarks.tiebreak import first_stage
    from mathcore.runs import iter_queries

    queries = list(iter_queries(dev_data / "tasks" / "match" / "queries.jsonl"))
    run, seconds = first_stage(sample_index, replace(CPU, mode=mode), queries)
    assert _ordered(run) == _ordered(_search(sample_index, replace(CPU, mode=mode), queries,
                                             CPU.k))
    assert seconds > 0 and all(len(hits) == CPU.k for hits in run.values())


def test_each_givens_weight_run_is_the_pipelines_at_that_weight(sample_index, dev_data):
    """One fusion rescored per weight gives what a pipeline with that givens weight
    searches."""
    from benchmarks.givens import WEIGHTS, fusion_only, weight_runs
    from benchmarks.splits import dev_match

    assert CPU.givens_weight in WEIGHTS  # the default's figures are read from the grid
    queries, _ = dev_match(dev_data)
    config = replace(CPU, depth=30)
    weights = (0.0, CPU.givens_weight, max(WEIGHTS))
    with fusion_only(sample_index, config) as pipeline:
        runs, seconds, _ = weight_runs(pipeline, queries, weights)
    assert set(seconds) == set(weights)
    for w in weights:
        want = _search(sample_index, replace(config, givens_weight=w), queries, config.depth)
        assert _ordered(runs[w]) == _ordered(want), w
    assert _ordered(runs[0.0]) != _ordered(runs[max(WEIGHTS)])  # the weight did something
    with pytest.raises(ValueError, match="hybrid"):
        with Pipeline(sample_index, config) as pipeline:  # the givens term already on
            weight_runs(pipeline, queries, weights)


def test_the_givens_benchmark_reports_the_pipelines_figures(sample_index, dev_data, tmp_path):
    from benchmarks import givens
    from benchmarks.splits import dev_match

    # Without the sample's one query with figure code: its section needs some in both halves.
    task = tmp_path / "data" / "tasks" / "match"
    task.mkdir(parents=True)
    lines = (dev_data / "tasks" / "match" / "queries.jsonl").read_text().splitlines(True)
    (task / "queries.jsonl").write_text("".join(x for x in lines if "[asy]" not in x))
    shutil.copy(dev_data / "tasks" / "match" / "qrels.tsv", task / "qrels.tsv")
    dev_data = tmp_path / "data"
    out = tmp_path / "givens.json"
    assert givens.main(["--index", str(sample_index), "--data", str(dev_data), "--depth", "30",
                        "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    queries, qrels = dev_match(dev_data)
    config = replace(CPU, depth=30)
    assert result["default_weight"] == CPU.givens_weight and result["depth"] == 30
    assert result["queries"] == len(queries) == len(lines) - 1
    for name, weight in (("default", CPU.givens_weight), ("without", 0.0)):
        run = _search(sample_index, replace(config, givens_weight=weight), queries, 30)
        assert result[name] == _figures(sample_index, run, queries, qrels, givens.METRICS)


def test_the_rerank_benchmark_scores_the_pipelines_candidates_as_match_does(
        sample_index, dev_data, tiny_llama_path, tmp_path, run_cli):
    """Its first stage is the pipeline's, its default depth the pipeline's, and its
    ``checkpoint`` row is what ``match --rerank`` (Pipeline.run) ranks."""
    from benchmarks import rerank
    from benchmarks.splits import dev_match

    ckpt = tmp_path / "rr"
    assert run_cli(["tune", "reranker", sample_index, "--out", ckpt, "--base", tiny_llama_path,
                    "--steps", "2", "--group-size", "3", "--groups-per-step", "1",
                    "--device", "cpu", "-q"]) == 0
    out = tmp_path / "rerank.json"
    assert rerank.main(["--index", str(sample_index), "--rerank", str(ckpt), "--data",
                        str(dev_data), "--stride", "10", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    queries, qrels = dev_match(dev_data, 10)
    config = replace(CPU, rerank=str(ckpt))
    with Pipeline(sample_index, config) as pipeline:
        depth = pipeline.rerank_depth
        matched = pipeline.run(queries, k=CPU.k)
    assert result["depth"] == depth and result["mode"] == CPU.mode
    first = _search(sample_index, CPU, queries, max(CPU.k, depth))
    saved = json.loads(out.with_suffix(".scores.json").read_text())
    assert saved["key"]["candidates"] == {q: list(hits)[:depth] for q, hits in first.items()}
    assert result["systems"]["first stage"] == _figures(sample_index, first, queries, qrels,
                                                        rerank.METRICS)
    assert result["systems"]["checkpoint"] == _figures(sample_index, matched, queries, qrels,
                                                       rerank.METRICS)


def test_the_likelihood_benchmark_starts_from_the_pipelines_first_stage(
        sample_index, dev_data, tiny_llama_path, tmp_path):
    from benchmarks import likelihood
    from benchmarks.splits import dev_match

    queries, qrels = dev_match(dev_data, 10)
    depth = 3
    first = _search(sample_index, CPU, queries, max(CPU.k, depth))
    cross = tmp_path / "cross.json"  # scores of exactly the first stage's first candidates
    cross.write_text(json.dumps({"cross": {q: {d: float(-i) for i, d in enumerate(list(h)[:depth])}
                                           for q, h in first.items()}}))
    out = tmp_path / "likelihood.json"
    assert likelihood.main(["--index", str(sample_index), "--data", str(dev_data), "--stride",
                            "10", "--depth", str(depth), "--cross", str(cross), "--base",
                            str(tiny_llama_path), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["pairs"] == depth * len(queries)
    assert result["systems"]["first stage"] == _figures(sample_index, first, queries, qrels,
                                                        likelihood.METRICS)
