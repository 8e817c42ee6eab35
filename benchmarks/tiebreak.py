"""Does the symbolic tie-break help matching? Dev MRR@10 and R@1 with and without it.

    python -m benchmarks.tiebreak --index DIR [--data ../shared/data] [--modes hybrid,dense]
                                  [--limit N] [--out build/bench/tiebreak.json]

For each retrieval mode the 1,500 dev match queries are searched once by the first stage of the
match :class:`mathmatch.pipeline.Pipeline` in that mode (``k`` hits, its other settings the
defaults of :class:`~mathmatch.pipeline.MatchConfig`; :func:`first_stage`); evidence
(verification, agreement with the answers of the query's duplicates, consensus) is gathered
once for every candidate by the pipeline's tie-breaker (:meth:`reranker.tiebreak.TieBreaker.
gather`, its duplicate finder, timeout and budget), then the run is reordered at each margin of
a grid. The margin is
chosen on the even-numbered queries (line order of queries.jsonl): the largest MRR@10 among
the margins that lower neither MRR@10 nor R@1 there (ties: the smaller margin; 0 = only exact
ties). The odd-numbered queries are held out. Figures: MRR@10 and R@1 overall and per source,
without the tie-break and with it at the chosen margin, on the even, odd and all queries.

Two variants of the evidence are measured: ``full`` (verification, agreement with duplicates,
consensus) and ``no-consensus`` (consensus left out). A margin other than 0 is only chosen when
it raises the even queries' MRR@10 by at least ``MIN_GAIN`` (about 1.5 of 750 queries moving
from rank 2 to 1) and lowers neither metric there; otherwise 0 (exact ties only).

The record a query was taken from (its judged answer's record) is never used as a duplicate
of that query: otherwise its own final answer would be looked up.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result
from benchmarks.splits import halves
from mathcore.runs import Run
from mathmatch.pipeline import MatchConfig, Pipeline

MARGINS = {"hybrid": (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
           "dense": (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)}
METRICS = ("mrr@10", "recall@1")
MIN_GAIN = 0.002
VARIANTS = ("full", "no-consensus")


def first_stage(index: Path, config: MatchConfig,
                queries: Sequence[tuple[str, str]]) -> tuple[Run, float]:
    """The run the margins reorder: *config*'s first stage, ``k`` hits a query, and the seconds
    it took."""
    with Pipeline(index, config) as pipeline:
        t0 = time.perf_counter()
        run = pipeline.search(queries, pipeline.config.k)
        return run, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--modes", default="hybrid,dense")
    p.add_argument("--limit", type=int, default=None, help="only the first N queries")
    p.add_argument("--out", type=Path, default=Path("build/bench/tiebreak.json"))
    args = p.parse_args(argv)
    from mathcore.runs import iter_queries, read_qrels
    from mathmatch.bench import query_groups

    task = args.data / "tasks" / "match"
    queries = list(iter_queries(task / "queries.jsonl"))[:args.limit]
    qrels = read_qrels(task / "qrels.tsv")
    qrels = {q: d for q, d in qrels.items() if q in dict(queries)}
    splits = halves(queries)
    config = MatchConfig(device="cpu")
    t0 = time.perf_counter()
    with Pipeline(args.index, replace(config, symbolic=True)) as symbolic:
        tb = symbolic.tiebreaker  # its finder, timeout and budget; the margins are the grid's
        finder = tb.finder
        store = finder.store
        groups = query_groups(store, qrels)
        exclude = {q: set(d) for q, d in qrels.items()}
        found = finder.find(queries, k=tb.duplicates, exclude=exclude)
        dup_finals = {}
        n_dups = 0
        for (qid, _), cands in zip(queries, found, strict=True):
            finals = [store.by_id(c.doc_id).record.final for c in cands if c.duplicate]
            dup_finals[qid] = [f for f in finals if f]
            n_dups += bool(dup_finals[qid])
        dup_seconds = time.perf_counter() - t0
        result: dict = {"queries": len(queries), "queries_with_duplicates": n_dups,
                        "duplicate_seconds": round(dup_seconds, 1), "modes": {},
                        "machine": machine()}
        for mode in args.modes.split(","):
            run, search_seconds = first_stage(args.index, replace(config, mode=mode), queries)
            result["modes"][mode] = _sweep(mode, run, search_seconds, queries, qrels, groups,
                                           splits, tb, store, dup_finals)
    _report(result, len(queries), n_dups)
    save_result(args.out, result)
    return 0


def _sweep(mode: str, run: Run, search_seconds: float, queries: Sequence[tuple[str, str]],
           qrels: dict, groups: dict, splits: dict, tb, store, dup_finals: dict) -> dict:
    """One mode's figures: its first stage without the tie-break, then each variant of the
    evidence at each margin of the grid."""
    from mathcore.evaluate import evaluate_splits
    from reranker.tiebreak import reorder

    t1 = time.perf_counter()
    evidence = {}
    for qid, text in queries:
        finals = {d: (store.by_id(d).record.final if store.by_id(d) else None)
                  for d in run[qid]}
        evidence[qid] = tb.gather(text, finals, list(run[qid]), dup_finals[qid])
    ev_seconds = time.perf_counter() - t1
    base = evaluate_splits(qrels, run, METRICS, groups, splits)
    checked = [e for ev in evidence.values() for e in ev.values()]
    gold = [evidence[q][d] for q, docs in qrels.items() for d in docs if d in evidence[q]]
    entry = {"without": base, "variants": {},
             "candidates_verified": sum(e.check.value == "verified" for e in checked),
             "candidates_refuted": sum(e.check.value == "refuted" for e in checked),
             "relevant_refuted": sum(e.check.value == "refuted" for e in gold),
             "relevant_verified": sum(e.check.value == "verified" for e in gold),
             "search_seconds": round(search_seconds, 1),
             "evidence_seconds": round(ev_seconds, 1)}
    for variant in VARIANTS:
        ev_v = evidence if variant == "full" else {
            q: {d: replace(e, consensus=0) for d, e in ev.items()}
            for q, ev in evidence.items()}
        sweep = {}
        for margin in MARGINS[mode]:
            rr = {q: reorder(r, margin, ev_v[q]) for q, r in run.items()}
            sweep[margin] = {**evaluate_splits(qrels, rr, METRICS, groups, splits),
                             "queries_reordered": sum(list(rr[q]) != list(run[q])
                                                      for q in run)}
        b = base["even"]["all"]
        eligible = [m for m, r in sweep.items() if m == 0.0 or (
            all(r["even"]["all"][k] >= b[k] for k in METRICS)
            and r["even"]["all"]["mrr@10"] >= b["mrr@10"] + MIN_GAIN)]
        chosen = max(eligible, key=lambda m: (sweep[m]["even"]["all"]["mrr@10"], -m))
        entry["variants"][variant] = {"sweep": {str(m): r for m, r in sweep.items()},
                                      "chosen_margin": chosen, "with": sweep[chosen]}
    return entry


def _report(result: dict, n_queries: int, n_dups: int) -> None:
    print(f"machine: {describe(result['machine'])}")
    print(f"{n_queries} queries; {n_dups} have a detected duplicate in the corpus (their own "
          f"record excluded); margin chosen on the even queries, odd held out")
    for mode, r in result["modes"].items():
        print(f"\n{mode}: candidates verified {r['candidates_verified']}, refuted "
              f"{r['candidates_refuted']} (relevant ones: verified {r['relevant_verified']}, "
              f"refuted {r['relevant_refuted']}); evidence {r['evidence_seconds']} s")
        for variant, v in r["variants"].items():
            print(f" evidence {variant}: chosen margin {v['chosen_margin']}")
            print(f"  {'margin':<8}{'even MRR':>9}{'even R@1':>9}{'odd MRR':>9}{'odd R@1':>9}"
                  f"{'reordered':>10}")
            print(f"  {'off':<8}" + "".join(f"{r['without'][s]['all'][k]:9.4f}"
                                            for s in ("even", "odd") for k in METRICS))
            for m, sw in v["sweep"].items():
                print(f"  {m:<8}" + "".join(f"{sw[s]['all'][k]:9.4f}" for s in ("even", "odd")
                                            for k in METRICS) + f"{sw['queries_reordered']:10d}")
        v = r["variants"]["full"]
        print(f"  at the chosen margin ({v['chosen_margin']}), full evidence, all queries:")
        print(f"  {'group':<22}{'MRR@10 off':>11}{'MRR@10 on':>11}{'R@1 off':>9}{'R@1 on':>9}")
        for g, off in r["without"]["all"].items():
            on = v["with"]["all"][g]
            print(f"  {g:<22}{off['mrr@10']:11.4f}{on['mrr@10']:11.4f}{off['recall@1']:9.4f}"
                  f"{on['recall@1']:9.4f}")


if __name__ == "__main__":
    sys.exit(main())
