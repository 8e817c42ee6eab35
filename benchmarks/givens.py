"""Does the numbers' agreement help hybrid search? Dev MRR@10 and R@k at each givens weight.

    python -m benchmarks.givens --index DIR [--data ../shared/data] [--depth 100]
                                [--out build/bench/givens.json]

The 1,500 dev match queries are searched once by the first stage of a hybrid
:class:`mathmatch.pipeline.Pipeline` without the givens term (givens weight 0: the dense + BM25
fusion alone, ``depth`` deep, the other settings the defaults of
:class:`~mathmatch.pipeline.MatchConfig`); then, for each weight of a grid, the fused first
``depth`` candidates are rescored by :class:`retriever.givens.GivensAgreement` (z-scored fused
score + weight x the share of the question's numbers found in the candidate's answer) -- what
the pipeline's first stage does with ``mathmatch match --givens-weight W``
(:func:`weight_runs`). The weight is chosen on the even-numbered queries
(line order of queries.jsonl; the largest MRR@10 there, ties to the smaller weight); the odd ones
are held out. Figures: MRR@10, R@1, R@10 and R@100 overall and per source on the even, odd and
all queries (``without``, ``default``, ``chosen`` and the whole ``grid``), and the time the
rescoring at the default weight adds per query. The queries with figure code (``[asy]``) are
also searched at the default weight as they are and as the first stage searches them, their
figures reduced to their labels (``figure_code``, on the even, odd and all of them).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result
from benchmarks.splits import dev_match, halves, print_split_table
from mathcore.runs import Run
from mathmatch.pipeline import MatchConfig, Pipeline

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
METRICS = ("mrr@10", "recall@1", "recall@10", "recall@100")


def fusion_only(index: Path, config: MatchConfig) -> Pipeline:
    """The hybrid pipeline of *config* without the givens term: the fusion the grid rescores."""
    return Pipeline(index, replace(config, mode="hybrid", givens_weight=0.0))


def weight_runs(pipeline: Pipeline, queries: Sequence[tuple[str, str]],
                weights: Sequence[float]) -> tuple[dict[float, Run], dict[float, float], float]:
    """The first stage's run at each givens weight, from one search of *pipeline* (hybrid,
    givens weight 0: :func:`fusion_only`): each weight's is what a pipeline with that
    ``givens_weight`` searches, ``depth`` hits a query.

    Returns:
        ``(runs, seconds, search_seconds)``: the run and the rescoring's seconds of each
        weight, and the seconds of the search.
    """
    from retriever.givens import GivensAgreement
    from retriever.searcher import search_text

    if pipeline.config.mode != "hybrid" or pipeline.config.givens_weight:
        raise ValueError("weight_runs needs a hybrid pipeline without the givens term")
    depth, store = pipeline.config.depth, pipeline.store
    texts = [search_text(q, t) for q, t in queries]
    t0 = time.perf_counter()
    scores, rows = pipeline.searcher.search_rows(texts, depth)
    search_s = time.perf_counter() - t0
    runs, seconds = {}, {}
    for w in weights:
        t0 = time.perf_counter()
        s, r = (scores, rows) if w == 0 else GivensAgreement(store.texts, w).rescore(
            texts, scores, rows, depth)
        seconds[w] = time.perf_counter() - t0
        runs[w] = _as_run(store, queries, s, r)
    return runs, seconds, search_s


def main(argv: list[str] | None = None) -> int:
    from mathcore.options import add_options, from_args

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    add_options(p, MatchConfig, only=("depth",))
    p.add_argument("--out", type=Path, default=Path("build/bench/givens.json"))
    args = p.parse_args(argv)
    config = from_args(MatchConfig, args, device="cpu")
    with fusion_only(args.index, config) as pipeline:
        return _measure(args, pipeline)


def _measure(args: argparse.Namespace, pipeline: Pipeline) -> int:
    from mathcore.evaluate import evaluate_splits
    from mathcore.runs import linear_query
    from mathmatch.bench import query_groups
    from retriever.givens import GivensAgreement
    from retriever.searcher import search_text

    default_weight = MatchConfig().givens_weight  # what match uses
    depth = pipeline.config.depth
    queries, qrels = dev_match(args.data)
    splits = halves(queries)

    store = pipeline.store
    groups = query_groups(store, qrels)
    texts = [search_text(q, t) for q, t in queries]
    runs, seconds, search_s = weight_runs(pipeline, queries, WEIGHTS)
    table = {w: evaluate_splits(qrels, runs[w], METRICS, groups, splits) for w in WEIGHTS}
    chosen = max(WEIGHTS, key=lambda w: (table[w]["even"]["all"]["mrr@10"], -w))
    result = {
        "task": "dev match queries, hybrid search, givens weight grid", "depth": depth,
        "queries": len(queries), "search_seconds": round(search_s, 1),
        "rescore_ms_per_query": round(1000 * seconds[default_weight] / len(queries), 2),
        "chosen_weight": chosen, "default_weight": default_weight,
        "without": table[0.0], "default": table[default_weight], "chosen": table[chosen],
        "grid": [{"weight": w, **t} for w, t in table.items()], "machine": machine(),
    }
    print(f"machine: {describe(result['machine'])}")
    print(f"{len(queries)} queries, hybrid fused {depth} deep in {search_s:.0f} s; "
          f"rescoring adds {result['rescore_ms_per_query']} ms a "
          f"query; weight chosen on the even queries: {chosen} (default "
          f"{default_weight}); odd queries held out")
    print_split_table("weight", table, WEIGHTS, total="recall@100")
    # The queries whose search text differs from their linear text: those with figure code,
    # searched once more as they are (as labels only, they are in the default weight's run).
    linear = [linear_query(q, t) for q, t in queries]
    fig = [i for i, (lin, text) in enumerate(zip(linear, texts, strict=True)) if lin != text]
    if fig:
        figures = [queries[i] for i in fig]
        as_is = [linear[i] for i in fig]
        givens = GivensAgreement(store.texts, default_weight)
        s, r = givens.rescore(as_is, *pipeline.searcher.search_rows(as_is, depth), depth)
        fig_splits = {k: {q for q, _ in figures} & ids for k, ids in splits.items()}
        result["figure_code"] = {"queries": len(figures)} | {
            name: evaluate_splits(qrels, run, METRICS, {}, fig_splits)
            for name, run in (("as is", _as_run(store, figures, s, r)),
                              ("labels only", runs[default_weight]))}
        print(f"{len(figures)} queries with figure code, weight {default_weight}, "
              "searched as they are and as the first stage does (labels only):")
        print_split_table("figures", result["figure_code"], ["as is", "labels only"],
                          width=12, total="recall@100")
    save_result(args.out, result)
    return 0


def _as_run(store, queries, scores, rows) -> Run:
    """The run ``{query_id: {record_id: score}}`` of search rows of *queries*, in order."""
    ids = store.ids_of(sorted({int(x) for x in rows.ravel() if x >= 0}))
    return {qid: {ids[int(x)]: float(v) for v, x in zip(srow, rrow, strict=True) if x >= 0}
            for (qid, _), srow, rrow in zip(queries, scores, rows, strict=True)}


if __name__ == "__main__":
    sys.exit(main())
