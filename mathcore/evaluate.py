"""Retrieval metrics, computed by ranx (a maintained IR evaluation library), overall and by group.

Runs are ``{query_id: {doc_id: score}}`` and qrels ``{query_id: {doc_id: relevance}}``.  The
ranking evaluated is exactly the order a system returned: scores are replaced by strictly
decreasing values derived from the rank before evaluation, so ties in raw scores cannot be
reordered by the evaluator.

Conventions (those of ranx and trec_eval): a query of the qrels missing from the run scores 0;
a query of the run missing from the qrels, or whose qrels hold no relevant document, is left
out of the mean (it cannot be scored); ``recall@k`` with k larger than the list counts what the
list holds.

Example:
    >>> evaluate_run({"q": {"d1": 1}}, {"q": {"d2": 2.0, "d1": 1.0}}, ["mrr@10"])
    {'mrr@10': 0.5}
"""

from __future__ import annotations

from typing import Collection, Mapping, Sequence

from mathcore.runs import Qrels, Run


def metric_names(ks: Sequence[int], mrr_k: int = 10, ndcg_k: int = 10) -> list[str]:
    """ranx names of the metrics reported: recall at each k, MRR@10, nDCG@10."""
    return [f"recall@{k}" for k in ks] + [f"mrr@{mrr_k}", f"ndcg@{ndcg_k}"]


def _by_rank(run: Run) -> dict[str, dict[str, float]]:
    out = {}
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda kv: -kv[1]) if not isinstance(docs, dict) \
            else list(docs.items())
        # Dicts keep insertion order: the order the system returned.
        n = len(ranked)
        out[qid] = {doc: float(n - i) for i, (doc, _) in enumerate(ranked)}
    return out


def evaluate_run(qrels: Qrels, run: Run, metrics: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over the queries that have at least one relevant document."""
    from ranx import Qrels as RQrels
    from ranx import Run as RRun
    from ranx import evaluate

    judged = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()
              if any(r > 0 for r in docs.values())}
    if not judged:
        raise ValueError("the qrels hold no relevant document")
    ranked = _by_rank({q: run.get(q, {}) for q in judged})
    # ranx refuses empty rankings: a query with no hits gets one dummy non-relevant hit.
    for _q, docs in ranked.items():
        if not docs:
            docs["\0no-hit"] = 0.0
    scores = evaluate(RQrels.from_dict(judged), RRun.from_dict(ranked), list(metrics),
                      make_comparable=True)
    if isinstance(scores, float):
        scores = {metrics[0]: scores}
    return {m: round(float(v), 6) for m, v in scores.items()}


def evaluate_groups(qrels: Qrels, run: Run, metrics: Sequence[str],
                    groups: Mapping[str, str],
                    only: Collection[str] | None = None) -> dict[str, dict[str, float]]:
    """Metrics overall (``"all"``) and for each group of queries (e.g. by corpus source);
    with *only*, over those queries alone (a held-out half, say)."""
    if only is not None:
        qrels = {q: d for q, d in qrels.items() if q in only}
    out = {"all": evaluate_run(qrels, run, metrics)}
    for name in sorted(set(groups.values())):
        sub = {q: d for q, d in qrels.items() if groups.get(q) == name}
        if any(any(r > 0 for r in d.values()) for d in sub.values()):
            out[name] = evaluate_run(sub, run, metrics)
    return out


def evaluate_splits(qrels: Qrels, run: Run, metrics: Sequence[str], groups: Mapping[str, str],
                    splits: Mapping[str, Collection[str]]) -> dict[str, dict]:
    """:func:`evaluate_groups` on each named subset of the queries (``{"even": ..., "odd":
    ...}``: a half something was chosen on and the half held out)."""
    return {name: evaluate_groups(qrels, run, metrics, groups, only=keep)
            for name, keep in splits.items()}


def counts(qrels: Qrels, groups: Mapping[str, str]) -> dict[str, int]:
    """How many judged queries each group has."""
    out = {"all": sum(1 for d in qrels.values() if any(r > 0 for r in d.values()))}
    for q, d in qrels.items():
        if any(r > 0 for r in d.values()) and q in groups:
            out[groups[q]] = out.get(groups[q], 0) + 1
    return out


# --- the other two tasks: duplicate pairs and multiple choice ---------------------------------

def duplicate_scores(labels: Mapping[str, int], scores: Mapping[str, float],
                     threshold: float) -> dict[str, float]:
    """Average precision of pair scores, and precision/recall/F1 of ``score >= threshold``.

    Args:
        labels: pair id -> 1 (duplicate) or 0.
        scores: pair id -> score (higher: more likely a duplicate); a missing pair scores -inf.
        threshold: the decision threshold.

    Average precision ranks all pairs by score as one query (ranx's ``map``), ties kept in the
    order of *labels*; a random order has AP equal to the share of duplicates.
    """
    if not any(labels.values()):
        raise ValueError("no duplicate pair among the labels")
    order = sorted(labels, key=lambda p: -scores.get(p, float("-inf")))
    run = {"pairs": {p: float(len(order) - i) for i, p in enumerate(order)}}
    qrels = {"pairs": {p: int(v) for p, v in labels.items() if v > 0}}
    ap = evaluate_run(qrels, run, ["map"])["map"]
    predicted = {p for p in labels if scores.get(p, float("-inf")) >= threshold}
    positives = {p for p, v in labels.items() if v > 0}
    tp = len(predicted & positives)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(positives)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"average_precision": ap, "precision": round(precision, 6),
            "recall": round(recall, 6), "f1": round(f1, 6), "threshold": threshold,
            "pairs": len(labels), "duplicates": len(positives),
            "chance_average_precision": round(len(positives) / len(labels), 6)}


def choice_accuracy(correct: Mapping[str, int], chosen: Mapping[str, int]) -> dict[str, float]:
    """Share of items whose chosen option is the correct one (an item not chosen is wrong)."""
    if not correct:
        raise ValueError("no item with a correct answer")
    right = sum(1 for item, c in correct.items() if chosen.get(item) == c)
    return {"accuracy": round(right / len(correct), 6), "items": len(correct), "right": right}
