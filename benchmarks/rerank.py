"""Does the cross-scorer help matching? Dev MRR@10 and R@1 of the first stage, reranked.

    python -m benchmarks.rerank --index DIR --rerank CKPT [--data ../shared/data] [--task T]
                                [--mode hybrid] [--depth N] [--stride 5]
                                [--out build/bench/rerank.json]

The dev match queries (every ``stride``-th: a subset spread over both sources, since the
queries file lists them by source) are searched once by the first stage of the match
:class:`mathmatch.pipeline.Pipeline` (``--mode``, its other settings the defaults of
:class:`~mathmatch.pipeline.MatchConfig`), as ``match --rerank`` searches them
(:func:`candidates`); the first ``depth`` candidates of each (default: the pipeline's rerank
depth, the one the checkpoint's fusion was fitted at) are scored once by the pipeline's
cross-scorer (pairs/s reported). Systems, on the same candidates:

* ``first stage``: the index's order;
* ``cross alone``: the cross-scorer's order;
* ``checkpoint``: the checkpoint's own fusion, what ``match --rerank`` does (for a scorer
  trained as a residual, its raw scores plus the training weight times the first stage's
  z-scores; nothing is chosen on these queries);
* ``fused w``: z-scores of the cross-scorer (raw scores for a residual one) plus ``w`` times
  z-scores of the first stage within each query's candidates (:func:`reranker.scorer.fuse`),
  for each ``w`` of a grid;
* ``ceiling``: the judged answer put first wherever it is among the ``depth`` candidates, the
  best any reranker of this depth can do; the log says what share of the first stage's gap to
  it the chosen weight closes.

The grid's weight is chosen on the even-numbered queries of the subset (the largest MRR@10
there); the odd-numbered ones are held out. Figures: MRR@10 and R@1 overall and per source on
the even, odd and all queries. Candidates past ``depth`` keep their first-stage order below.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result
from benchmarks.splits import TASKS, dev_task, halves, print_split_table
from mathcore.runs import Run
from mathmatch.pipeline import MatchConfig, Pipeline
from reranker.scorer import DEFAULT_RERANK_DEPTH

WEIGHTS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
METRICS = ("mrr@10", "recall@1", "recall@10")


def candidates(pipeline: Pipeline, queries: Sequence[tuple[str, str]]) -> Run:
    """The first-stage run every system reorders: the pipeline's first stage, searched as deep
    as :meth:`Pipeline.run` searches it for the cross-scorer (``max(k, rerank_depth)``)."""
    return pipeline.search(queries, max(pipeline.config.k, pipeline.rerank_depth))


def main(argv: list[str] | None = None) -> int:
    from mathcore.options import add_options, from_args

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--rerank", type=Path, required=True, help="reranker checkpoint folder")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--task", choices=TASKS, default="match",
                   help="dev task whose judged queries are reranked (default: match)")
    add_options(p, MatchConfig, only=("mode", "device"), defaults={"device": "cpu"})
    p.add_argument("--depth", type=int, default=None,
                   help="candidates rescored (default: the pipeline's rerank depth: the depth "
                        "the checkpoint's fusion was fitted at, else "
                        f"{DEFAULT_RERANK_DEPTH})")
    p.add_argument("--stride", type=int, default=5,
                   help="every N-th judged query (default: 5, 300 of the 1,500)")
    p.add_argument("--out", type=Path, default=Path("build/bench/rerank.json"))
    p.add_argument("--scores", type=Path, default=None,
                   help="the cross-scorer's scores of the candidates, saved by a run of the same "
                        "checkpoint, queries and depth (default: OUT with .scores.json; read "
                        "back instead of scoring again when present, --rescore to redo)")
    p.add_argument("--rescore", action="store_true", help="score again even if --scores exists")
    args = p.parse_args(argv)
    config = from_args(MatchConfig, args, rerank=str(args.rerank), rerank_depth=args.depth,
                       progress=True)
    with Pipeline(args.index, config) as pipeline:
        return _measure(args, pipeline)


def _measure(args: argparse.Namespace, pipeline: Pipeline) -> int:
    from mathcore.evaluate import evaluate_splits
    from mathmatch.bench import query_groups
    from reranker.model import folder_checksum
    from reranker.scorer import read_fusion, reorder, resolve_checkpoint

    queries, qrels = dev_task(args.data, args.task, args.stride)
    splits = halves(queries)
    depth = pipeline.rerank_depth  # --depth, else the checkpoint's (loads the cross-scorer)

    store = pipeline.store
    t0 = time.perf_counter()
    first = candidates(pipeline, queries)
    search_s = time.perf_counter() - t0
    groups = query_groups(store, qrels)
    ckpt = resolve_checkpoint(pipeline.config.rerank)
    weight, scale, fusion_depth = read_fusion(ckpt)  # without loading the cross-scorer
    saved = args.scores or args.out.with_suffix(".scores.json")
    # The scores belong to these weights and these candidates: a retrained checkpoint in the
    # same folder, or another index, scores again.
    key = {"adapter": folder_checksum(ckpt), "depth": depth,
           "candidates": {q: sorted(hits, key=hits.get, reverse=True)[:depth]
                          for q, hits in first.items()}}
    cached = json.loads(saved.read_text()) if saved.is_file() and not args.rescore else None
    if cached is not None and cached["key"] == key:
        cross, score_s = cached["cross"], cached["score_seconds"]
        print(f"cross-scorer scores read back from {saved} (--rescore to score again)")
    else:
        t0 = time.perf_counter()
        cross = pipeline.reranker.rescore(dict(queries), first, store, depth=depth)  # once
        score_s = time.perf_counter() - t0
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"key": key, "cross": cross,
                                     "score_seconds": round(score_s, 1)}))
    pairs = sum(len(d) for d in cross.values())

    systems = {"first stage": first, "cross alone": reorder(first, cross, None),
               "checkpoint": reorder(first, cross, weight, scale)}
    for w in WEIGHTS:
        systems[f"fused {w}"] = reorder(first, cross, w, scale)
    systems["ceiling"] = reorder(first, {q: {d: float(qrels[q].get(d, 0) > 0) for d in c}
                                         for q, c in cross.items()}, None)
    table = {name: evaluate_splits(qrels, run, METRICS, groups, splits)
             for name, run in systems.items()}
    fused = [f"fused {w}" for w in WEIGHTS]
    chosen = max(fused, key=lambda n: (table[n]["even"]["all"]["mrr@10"], n))
    result = {
        "task": f"dev {args.task} queries, every stride-th", "mode": pipeline.config.mode,
        "depth": depth, "stride": args.stride, "queries": len(queries), "pairs": pairs,
        "search_seconds": round(search_s, 1), "score_seconds": round(score_s, 1),
        "pairs_per_second": round(pairs / score_s, 2), "chosen_weight": chosen,
        "checkpoint_fusion": {"weight": weight, "cross": scale, "depth": fusion_depth},
        "checkpoint": str(args.rerank), "systems": table, "chosen": table[chosen],
        "machine": machine(),
    }
    print(f"machine: {describe(result['machine'])}")
    print(f"{len(queries)} queries (every {args.stride}-th), {pairs} pairs scored in "
          f"{score_s:.0f} s: {result['pairs_per_second']} pairs/s")
    print(f"checkpoint fusion: weight {weight}, cross-scorer scale {scale}, fitted at depth "
          f"{fusion_depth or 'unrecorded'}; grid weight chosen on the even queries: {chosen}; "
          f"odd queries held out")
    if scale == "raw" and fusion_depth and fusion_depth != depth:
        print(f"note: the checkpoint's weight was fitted over {fusion_depth} candidates, "
              f"this run reranks {depth}")
    first_mrr, best, top = (table[n]["all"]["all"]["mrr@10"]
                            for n in ("first stage", chosen, "ceiling"))
    if top > first_mrr:
        closed = (best - first_mrr) / (top - first_mrr)
        print(f"MRR@10, all: first stage {first_mrr:.4f}, chosen {best:.4f}, ceiling at depth "
              f"{depth} {top:.4f}: the chosen weight closes {closed:.0%} of the gap")
    print_split_table("system", table, ["first stage", "cross alone", "checkpoint", chosen]
                      + [n for n in fused if n != chosen] + ["ceiling"], width=14)
    save_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
