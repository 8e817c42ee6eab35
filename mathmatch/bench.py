"""``mathmatch bench``: recall@k and friends for several systems, compared in one run.

A *system* is an index folder searched in one mode (``bm25``, ``dense``, ``hybrid``), optionally
followed by a reranker.  Each system matches the same queries; metrics come from ranx
(:mod:`mathcore.evaluate`), overall and per corpus ``source`` of the queries' gold records,
with queries/s.  ``results.json`` holds the figures, the configuration, package versions, the
machine, date and git revision; ``results.md`` (a table) and ``results.png`` (recall@k curves)
are written beside it.

Example:
    >>> run_bench(BenchConfig(index=Path("idx"), queries=Path("q.jsonl"),
    ...                       qrels=Path("qrels.tsv")))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from index.layout import STORE_FILE
from mathcore.evaluate import counts, evaluate_groups, evaluate_run, metric_names
from mathcore.machine import describe, machine
from mathcore.outputs import atomic_path, check_output, write_text
from mathcore.runs import iter_queries, read_qrels
from mathcore.store import Store
from mathmatch.pipeline import MatchConfig, Pipeline

logger = logging.getLogger(__name__)

CURVE_KS = (1, 2, 3, 5, 10, 20, 30, 50, 100)


@dataclass
class System:
    """One system to measure: an index folder matched with one :class:`MatchConfig`."""

    name: str
    index: Path
    config: MatchConfig = field(default_factory=MatchConfig)

    def __post_init__(self) -> None:
        self.index = Path(self.index)


@dataclass
class BenchConfig:
    """What ``mathmatch bench`` measures.

    Args:
        index: the index folder of the main systems.
        queries: queries file (BEIR, records JSONL or text).
        qrels: BEIR ``qrels.tsv`` or TREC qrels.
        modes: modes of *index* to measure (each one a system).
        ks: cut-offs of recall (MRR and nDCG are at 10).
        match: the other stages' settings, shared by every system (givens weight, the
            cross-scorer's depth and weight, the tie-break's, device).
        rerank: a cross-scorer checkpoint: adds a ``MODE+rerank`` system for every mode.
        symbolic: adds a ``+symbolic`` system (the tie-break after every stage) for every
            system of *index*; the query's judged records are never counted as its duplicates.
        extra: more systems, e.g. an index built with a tuned encoder.
        stride: measure every N-th judged query only (a subset spread over the whole file, so
            over every source; say so when quoting).
        limit: measure only the first N judged queries (after *stride*; a subset).
        out: where ``results.json`` goes (``.md`` and ``.png`` beside it).
        queries_format: how *queries* is read (:data:`mathcore.runs.QUERY_FORMATS`).
    """

    index: Path
    queries: Path
    qrels: Path
    modes: list[str] = field(default_factory=lambda: ["bm25", "dense", "hybrid"])
    ks: list[int] = field(default_factory=lambda: [1, 10, 100])
    match: MatchConfig = field(default_factory=MatchConfig)
    rerank: str | None = None
    symbolic: bool = False
    extra: list[System] = field(default_factory=list)
    stride: int = 1
    limit: int | None = None
    out: Path = Path("results.json")
    queries_format: str = "auto"

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"stride must be at least 1, got {self.stride}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise ValueError(f"k values must be positive, got {self.ks}")
        for mode in self.modes:
            replace(self.match, mode=mode)  # validates the mode

    def systems(self) -> list[System]:
        base = replace(self.match, symbolic=False, rerank=None)
        out = [System(mode, self.index, replace(base, mode=mode)) for mode in self.modes]
        if self.rerank is not None:
            out += [System(f"{m}+rerank", self.index, replace(base, mode=m, rerank=self.rerank))
                    for m in self.modes]
        if self.symbolic:
            out += [System(f"{s.name}+symbolic", s.index, replace(s.config, symbolic=True))
                    for s in list(out)]
        return out + list(self.extra)


def query_groups(store, qrels: dict) -> dict[str, str]:
    """Each query's group: the ``source`` of its (first) relevant record in *store*."""
    groups = {}
    for qid, docs in qrels.items():
        for doc, rel in docs.items():
            if rel > 0:
                rec = store.by_id(doc)
                groups[qid] = rec.record.source if rec else "(not in the index)"
                break
    return groups


def _run_system(system: System, queries: list[tuple[str, str]], depth: int,
                qrels: dict) -> tuple[dict, float]:
    exclude = {q: set(docs) for q, docs in qrels.items()}  # a query's own record is no duplicate
    run: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    with Pipeline(system.index, system.config) as pipeline:
        for _, found in pipeline.stream(queries, k=depth, exclude=exclude):
            run.update(found)
    return run, time.perf_counter() - t0


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Measure every system of *cfg*; write results.json, results.md and results.png (each
    whole or not at all; an output that is one of the inputs is refused first)."""
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    for path in (cfg.out, cfg.out.with_suffix(".md"), cfg.out.with_suffix(".png")):
        check_output(path, inputs=[cfg.queries, cfg.qrels])
    qrels = read_qrels(cfg.qrels)
    queries = [(q, t) for q, t in iter_queries(cfg.queries, cfg.queries_format) if q in qrels]
    if not queries:
        raise ValueError(f"no query of {cfg.queries} has judgements in {cfg.qrels}")
    queries = queries[::cfg.stride]
    if cfg.limit:
        queries = queries[:cfg.limit]
    qrels = {q: qrels[q] for q, _ in queries}

    with Store(cfg.index / STORE_FILE, readonly=True) as store:
        groups = query_groups(store, qrels)
    metrics = metric_names(cfg.ks)
    depth = max(max(cfg.ks), max(CURVE_KS))
    results: dict[str, Any] = {"systems": {}, "queries": counts(qrels, groups)}
    for system in cfg.systems():
        logger.info("bench: %s (%s, %s)", system.name, system.index, system.config.mode)
        run, seconds = _run_system(system, queries, depth, qrels)
        scores = evaluate_groups(qrels, run, metrics, groups)
        curve = evaluate_run(qrels, run, [f"recall@{k}" for k in CURVE_KS])
        results["systems"][system.name] = {
            "index": str(system.index), "mode": system.config.mode,
            "rerank": system.config.rerank, "symbolic": system.config.symbolic,
            "metrics": scores, "recall_curve": curve,
            "seconds": round(seconds, 3), "queries_per_second": round(len(queries) / seconds, 2),
        }
        logger.info("bench: %s  MRR@10 %.4f  R@1 %.4f  (%.1f q/s)", system.name,
                    scores["all"]["mrr@10"], scores["all"].get("recall@1", float("nan")),
                    len(queries) / seconds)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
              if k not in ("extra", "match")}
    config["match"] = cfg.match.to_dict()
    config["extra"] = [{"name": s.name, "index": str(s.index), **s.config.to_dict()}
                       for s in cfg.extra]
    results.update({"config": config, "metrics": metrics, "machine": machine()})
    write_text(cfg.out, json.dumps(results, indent=2, sort_keys=True) + "\n")
    md = write_text(cfg.out.with_suffix(".md"), markdown_table(results))
    png = cfg.out.with_suffix(".png")
    with atomic_path(png) as tmp:
        plot_curves(results, tmp)
    logger.info("bench: wrote %s, %s, %s (machine: %s)", cfg.out, md, png,
                describe(results["machine"]))
    return results


def markdown_table(results: dict[str, Any]) -> str:
    """One row per system and query group, one column per metric."""
    metrics = results["metrics"]
    head = "| system | queries | " + " | ".join(m.replace("recall", "R").replace("mrr", "MRR")
                                                .replace("ndcg", "nDCG") for m in metrics)
    lines = [head + " | q/s |", "|---|---|" + "---|" * (len(metrics) + 1)]
    for name, sysres in results["systems"].items():
        for group, scores in sysres["metrics"].items():
            label = name if group == "all" else f"— {group}"
            qps = f"{sysres['queries_per_second']:.1f}" if group == "all" else ""
            n = results["queries"].get(group, "")
            lines.append(f"| {label} | {n} | " + " | ".join(f"{scores[m]:.3f}" for m in metrics)
                         + f" | {qps} |")
    m = results["machine"]
    lines.append("")
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['gpu'] or 'no GPU'}; "
                 f"{m['date']}, git {m['git']}.")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Recall@k against k (log scale), one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, sysres in results["systems"].items():
        curve = sysres["recall_curve"]
        ks = [int(k.split("@")[1]) for k in curve]
        ax.plot(ks, list(curve.values()), marker="o", markersize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks(list(CURVE_KS))
    ax.set_xticklabels([str(k) for k in CURVE_KS])
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_title(f"Recall@k, {results['queries']['all']} queries")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
