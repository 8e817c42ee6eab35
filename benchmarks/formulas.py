"""Does the formulas' agreement help hybrid search? Dev MRR@10 and R@k at each formula weight.

    python -m benchmarks.formulas --index DIR [--data ../shared/data] [--task match|match_mse|both]
                                  [--depth 100] [--stride N] [--out build/bench/formulas.json]

Each task's judged queries (``match``: the 1,500 dev match queries; ``match_mse``: the Math
StackExchange dev questions) are searched once by the first stage of a hybrid
:class:`mathmatch.pipeline.Pipeline` without the agreement terms (the dense + BM25 fusion
alone, ``depth`` deep, the other settings the defaults of
:class:`~mathmatch.pipeline.MatchConfig`); the share of each question's formulas found in each
candidate's answer (:meth:`retriever.formulas.FormulaAgreement.coverages`) is computed once, and
for each weight of a grid the fused first ``depth`` candidates are ranked by z-scored fused score
+ the givens term at its default weight + weight x that share -- what the pipeline's first stage
does with ``mathmatch match --formula-weight W`` (:func:`weight_runs`). The weight is chosen on
the even-numbered queries of each task (line order of queries.jsonl; the largest MRR@10 there,
ties to the smaller weight); the odd ones are held out. Figures: MRR@10, R@1, R@10 and R@100
overall and per source on the even, odd and all queries (``without``: weight 0, today's default;
``chosen`` and the whole ``grid``), the queries with formulas, and the time the agreement adds
per query (reading the formulas and the SymPy checks, measured cold, batch by batch).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result
from benchmarks.splits import TASKS, dev_task, halves, print_split_table
from mathcore.runs import Run
from mathmatch.pipeline import MatchConfig, Pipeline

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
METRICS = ("mrr@10", "recall@1", "recall@10", "recall@100")


def fusion_only(index: Path, config: MatchConfig) -> Pipeline:
    """The hybrid pipeline of *config* without the givens and formula terms: the fusion the
    grid rescores."""
    return Pipeline(index, replace(config, mode="hybrid", givens_weight=0.0, formula_weight=0.0))


def weight_runs(pipeline: Pipeline, queries: Sequence[tuple[str, str]], weights: Sequence[float],
                givens_weight: float) -> tuple[dict[float, Run], dict]:
    """The first stage's run at each formula weight (and *givens_weight*), from one search of
    *pipeline* (:func:`fusion_only`): each weight's is what a pipeline with that
    ``formula_weight`` searches, ``depth`` hits a query, batch by batch as it does.

    Returns:
        ``(runs, info)``: the run of each weight; seconds of the search and of the formula
        agreement, and the queries with formulas.
    """
    from mathcore.scores import rank_with_terms
    from retriever.formulas import FormulaAgreement, answer_sources, formulas
    from retriever.givens import GivensAgreement
    from retriever.searcher import search_text

    c = pipeline.config
    if c.mode != "hybrid" or c.givens_weight or c.formula_weight:
        raise ValueError("weight_runs needs a hybrid pipeline without the agreement terms")
    store = pipeline.store
    agree = FormulaAgreement(answer_sources(store), 1.0, timeout=c.symbolic_timeout)
    givens = GivensAgreement(store.texts, givens_weight)
    runs: dict[float, Run] = {w: {} for w in weights}
    search_s = formula_s = 0.0
    for start in range(0, len(queries), c.batch_size):
        batch = list(queries[start:start + c.batch_size])
        texts = [search_text(q, t) for q, t in batch]
        questions = [t for _, t in batch]
        t0 = time.perf_counter()
        scores, rows = pipeline.searcher.search_rows(texts, c.depth)
        search_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        cover = agree.coverages(questions, rows)
        formula_s += time.perf_counter() - t0
        given = givens_weight * givens.coverages(texts, rows) if givens_weight else 0.0
        for w in weights:
            # The terms added as FormulaAgreement.rescore adds them: formula term, then givens.
            s, r = rank_with_terms(scores, rows, w * cover + given, c.depth)
            runs[w].update(_as_run(store, batch, s, r))
    with_formulas = sum(1 for _, t in queries if formulas(t))
    return runs, {"search_seconds": search_s, "formula_seconds": formula_s,
                  "queries_with_formulas": with_formulas}


def main(argv: list[str] | None = None) -> int:
    from mathcore.options import add_options, from_args

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--task", choices=(*TASKS, "both"), default="both")
    p.add_argument("--stride", type=int, default=1, metavar="N",
                   help="every N-th judged query only (a quick look); default 1, all")
    add_options(p, MatchConfig, only=("depth", "symbolic_timeout"))
    p.add_argument("--out", type=Path, default=Path("build/bench/formulas.json"))
    args = p.parse_args(argv)
    config = from_args(MatchConfig, args, device="cpu")
    tasks = TASKS if args.task == "both" else (args.task,)
    with fusion_only(args.index, config) as pipeline:
        return _measure(args, pipeline, tasks)


def _measure(args: argparse.Namespace, pipeline: Pipeline, tasks: Sequence[str]) -> int:
    from mathcore.evaluate import evaluate_splits
    from mathmatch.bench import query_groups

    default = MatchConfig()
    result: dict = {"task": "hybrid search, formula weight grid", "depth": pipeline.config.depth,
                    "givens_weight": default.givens_weight,
                    "default_weight": default.formula_weight,
                    "symbolic_timeout": pipeline.config.symbolic_timeout, "tasks": {},
                    "machine": machine()}
    print(f"machine: {describe(result['machine'])}")
    for name in tasks:
        queries, qrels = dev_task(args.data, name, args.stride)
        splits = halves(queries)
        groups = query_groups(pipeline.store, qrels)
        runs, info = weight_runs(pipeline, queries, WEIGHTS, default.givens_weight)
        table = {w: evaluate_splits(qrels, runs[w], METRICS, groups, splits) for w in WEIGHTS}
        chosen = max(WEIGHTS, key=lambda w: (table[w]["even"]["all"]["mrr@10"], -w))
        gain = {s: table[chosen][s]["all"]["mrr@10"] - table[0.0][s]["all"]["mrr@10"]
                for s in ("even", "odd", "all")}
        n = len(queries)
        result["tasks"][name] = {
            "queries": n, "queries_with_formulas": info["queries_with_formulas"],
            "search_seconds": round(info["search_seconds"], 1),
            "formula_ms_per_query": round(1000 * info["formula_seconds"] / n, 1),
            "chosen_weight": chosen, "mrr@10_gain": {s: round(v, 4) for s, v in gain.items()},
            "without": table[0.0], "chosen": table[chosen],
            "grid": [{"weight": w, **t} for w, t in table.items()],
        }
        print(f"\n{name}: {n} queries ({info['queries_with_formulas']} with formulas), hybrid "
              f"fused {pipeline.config.depth} deep in {info['search_seconds']:.0f} s, givens "
              f"weight {default.givens_weight}; the formula agreement adds "
              f"{result['tasks'][name]['formula_ms_per_query']} ms a query; weight chosen on "
              f"the even queries: {chosen} (MRR@10 {gain['even']:+.4f} even, "
              f"{gain['odd']:+.4f} odd held out, {gain['all']:+.4f} all)")
        print_split_table("weight", table, WEIGHTS, total="recall@100")
    save_result(args.out, result)
    return 0


def _as_run(store, queries, scores: np.ndarray, rows: np.ndarray) -> Run:
    """The run ``{query_id: {record_id: score}}`` of search rows of *queries*, in order."""
    ids = store.ids_of(sorted({int(x) for x in rows.ravel() if x >= 0}))
    return {qid: {ids[int(x)]: float(v) for v, x in zip(srow, rrow, strict=True) if x >= 0}
            for (qid, _), srow, rrow in zip(queries, scores, rows, strict=True)}


if __name__ == "__main__":
    sys.exit(main())
