"""Duplicate detection on the GSM-Plus pairs: ``mathmatch dedup`` against MiniLM cosine.

    python -m benchmarks.duplicates --index DIR [--data ../shared/data] [--k 10]
                                    [--fit [--folds 5] [--judge-out DIR]]
                                    [--out build/bench/duplicates.json]

Each variant of ``tasks/duplicates/pairs.jsonl`` is a query; its target is the seed record of
the index. Two runs: the queries with their final answers (``variant_answer``, compared with
the seed record's ``final``: a duplicate has the same answer, see :mod:`dedup.features`) and
the questions alone. The pair's score is the seed's duplicate score among the query's ``k``
candidates (the nearest stored questions); a seed not among them scores -inf (ranked last).
Figures: average precision over all pairs (chance = share of duplicates), and precision /
recall / F1 at the default threshold, for the pairs with an even ``seed_idx`` (the split the
weights and the threshold were chosen on), the odd ones (held out) and all; the same for the
cosine of all-MiniLM-L6-v2 between seed and variant (its best-F1 threshold, chosen on the same
data, so flattering the baseline), and the share called duplicate per kind of variant.

``--fit`` trains the insertion judge (:mod:`tuning.judge`, a few minutes) and saves it where
the package ships it, then refits the logistic weights and the threshold on the even half
(pairs scored directly, seed against variant, the judge's feature out of fold: ``--folds``
folds of the even seeds, default 5), prints them with the even half's average precision of
those out-of-fold scores (to judge a recipe without the odd half), and writes them with the
recipe and data to ``duplicates.json`` beside the judge folder (for the shipped judge,
``dedup/models/duplicates.json``, which :mod:`dedup.features` reads). Nothing is fitted or
trained on the odd half.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _report(pairs: list[dict], scores: dict[str, float], threshold: float) -> dict:
    from mathcore.evaluate import duplicate_scores

    out = {}
    for name, keep in (("even", 0), ("odd", 1), ("all", None)):
        sub = [p for p in pairs if keep is None or p["seed_idx"] % 2 == keep]
        labels = {p["variant_id"]: int(p["duplicate"]) for p in sub}
        out[name] = duplicate_scores(labels, {p: scores[p] for p in labels if p in scores},
                                     threshold)
    return out


def _best_threshold(pairs: list[dict], scores: dict[str, float]) -> float:
    """The threshold maximising F1 on the even half."""
    from mathcore.evaluate import duplicate_scores

    even = [p for p in pairs if p["seed_idx"] % 2 == 0]
    labels = {p["variant_id"]: int(p["duplicate"]) for p in even}
    values = sorted({round(scores[p], 6) for p in labels if np.isfinite(scores.get(p, -np.inf))})
    best = max(values, key=lambda t: duplicate_scores(labels, scores, t)["f1"])
    return float(best)


# Features the even pairs cannot teach, and the fitted feature whose weight each takes instead:
# the GSM-Plus pairs hold no formula, and a formula absent on each side is a changed given,
# as a number absent on each side is.
TIED = {"formulas": "missing"}
L2 = 1.0


def fit(pairs: list[dict], seeds: dict[str, str], qi, judge_out: Path, folds: int = 5,
        weights_out: Path | None = None) -> None:
    """Train the insertion judge, refit the weights and threshold on the even half, and write
    them to *weights_out* (default: ``duplicates.json`` beside *judge_out*).

    The judge's feature for the logistic fit is out of fold (*folds* folds of the even seeds,
    each scored by a judge trained on the others), so its weight is not inflated by pairs the
    judge has seen; with more folds each fold's judge sees more of the data, closer to the
    judge saved to *judge_out*, which is trained on the whole even half.
    """
    from dataclasses import asdict

    from dedup.features import FEATURES, PairScore, Side, fit_logistic
    from dedup.fitted import save_fitted
    from mathcore.evaluate import duplicate_scores
    from mathcore.records import query_text
    from tuning.judge import JudgeRecipe, save, train_judge

    even = [p for p in pairs if p["seed_idx"] % 2 == 0]
    a = qi.encode([query_text(seeds[p["seed_id"]]) for p in even])
    b = qi.encode([query_text(p["variant"]) for p in even])
    cos = (a * b).sum(axis=1)
    prepared = [PairScore.of(Side.of(query_text(seeds[p["seed_id"]]), seeds[p["seed_id"]]),
                             Side.of(query_text(p["variant"]), p["variant"]), float(c))
                for p, c in zip(even, cos, strict=True)]
    inputs = [s.judge_text for s in prepared]
    y = np.array([p["duplicate"] for p in even], dtype=float)
    recipe = JudgeRecipe()
    rank = {s: i for i, s in enumerate(sorted({p["seed_idx"] for p in even}))}
    fold = np.array([rank[p["seed_idx"]] % folds for p in even])  # a seed's variants together
    judged = np.zeros(len(even))
    for k in range(folds):
        train = np.flatnonzero(fold != k)
        test = np.flatnonzero(fold == k)
        print(f"judge fold {k + 1}/{folds}: training on {len(train)} pairs, scoring {len(test)}")
        trained = train_judge([inputs[i] for i in train], y[train], recipe, progress=True)
        judged[test] = trained.judge.logits([inputs[i] for i in test])
    print(f"judge: training on all {len(even)} even pairs")
    trained = train_judge(inputs, y, recipe, progress=True)
    save(trained, judge_out, trained_on="GSM-Plus pairs (tasks/duplicates/pairs.jsonl) with an "
         "even seed_idx; the odd half is held out", reproduce="python -m benchmarks.duplicates "
         f"--index DIR --fit --folds {folds}")
    facts = trained.facts
    print(f"saved the judge to {judge_out} ({facts['seconds']} s, loss {facts['loss_first']} "
          f"-> {facts['loss_last']})")
    # Restated pairs (no features) are decided without the model, so they are left out of it.
    model = [i for i, s in enumerate(prepared) if s.features is not None]
    x = np.array([np.r_[prepared[i].features[:-1], judged[i]] for i in model])
    w, bias = fit_logistic(x, y[model], l2=L2)
    col = {f: i for i, f in enumerate(FEATURES)}
    tied = {f: src for f, src in TIED.items() if not x[:, col[f]].any()}
    for f, src in tied.items():  # a feature the pairs never show keeps its fitted 0 otherwise
        w[col[f]] = w[col[src]]
    # Scored with the refitted weights and the out-of-fold judge, so the threshold sees the
    # gates as they will be.
    scores = {p["variant_id"]: s.score(float(j), w, bias)
              for p, s, j in zip(even, prepared, judged, strict=True)}
    threshold = _best_threshold(even, scores)
    print(f"fitted on {len(model)} of the {len(even)} even pairs (the others are restated):")
    print("weights: " + ", ".join(f"{f}={v:.3f}" for f, v in zip(FEATURES, w, strict=True)))
    if tied:
        print("  (never seen in these pairs, so tied: "
              + ", ".join(f"{f} takes the weight of {src}" for f, src in tied.items()) + ")")
    print(f"bias {bias:.3f}; threshold {threshold:.3f} (best F1 on the even half)")
    out = weights_out or Path(judge_out).parent / "duplicates.json"
    save_fitted(
        out, FEATURES, w, bias, threshold, tied=tied,
        source=f"fitted by `python -m benchmarks.duplicates --index DIR --fit --folds {folds}` "
               "(L2-regularised logistic regression, dedup.features.fit_logistic; the "
               "threshold is the best F1 on the same pairs)",
        data="GSM-Plus pairs of the dev data (tasks/duplicates/pairs.jsonl) with an even "
             f"seed_idx ({len(even)} pairs; the {len(even) - len(model)} restated ones, decided "
             "without the model, left out of the fit); the odd half is never fitted on and is "
             "the held-out figure",
        recipe={"folds": folds, "l2": L2,
                "judge_feature": f"out of fold: {folds} folds of the even seeds, each scored "
                                 f"by a judge trained on the other {folds - 1} "
                                 f"({asdict(recipe)})",
                "judge": f"{Path(judge_out).name}/ (trained on all the even pairs by the same "
                         "command)"})
    print(f"wrote the weights, bias and threshold to {out}")
    # The same scores with the logistic model also out of fold (fitted on the other folds).
    held, rows = {}, np.array(model)
    for k in range(folds):
        rest = fold[rows] != k
        wk, bk = fit_logistic(x[rest], y[rows[rest]], l2=L2)
        held.update({even[i]["variant_id"]: prepared[i].score(float(judged[i]), wk, bk)
                     for i in np.flatnonzero(fold == k)})
    labels = {p["variant_id"]: int(p["duplicate"]) for p in even}
    ap = duplicate_scores(labels, scores, 0.5)["average_precision"]
    ap_held = duplicate_scores(labels, held, 0.5)["average_precision"]
    print(f"even half, judge out of fold ({folds} folds): AP {ap:.4f} with the weights above, "
          f"{ap_held:.4f} with the weights out of fold too")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, required=True, help="index folder over the corpus")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--k", type=int, default=10, help="candidates per variant (default: 10)")
    p.add_argument("--fit", action="store_true",
                   help="train the insertion judge and refit weights and threshold (even half)")
    p.add_argument("--folds", type=int, default=5,
                   help="--fit: folds of the even seeds for the judge's out-of-fold feature "
                   "(default: 5)")
    p.add_argument("--judge-out", type=Path, default=None,
                   help="where --fit saves the judge (default: the shipped dedup/models/judge)")
    p.add_argument("--weights-out", type=Path, default=None,
                   help="where --fit writes the fitted weights, bias and threshold (default: "
                        "duplicates.json beside the judge folder; for the shipped judge, "
                        "dedup/models/duplicates.json)")
    p.add_argument("--out", type=Path, default=Path("build/bench/duplicates.json"))
    args = p.parse_args(argv)
    if args.folds < 2:
        p.error("--folds must be at least 2")
    from dedup.features import fitted
    from dedup.finder import DuplicateFinder
    from mathcore.records import query_text
    from retriever.questions import QuestionIndex

    pairs = _read(args.data / "tasks" / "duplicates" / "pairs.jsonl")
    seeds = {r["id"]: r["question"] for r in _read(args.data / "corpus" / "gsm8k.jsonl")}
    qi = QuestionIndex.open(args.index, device="cpu")
    if args.fit:
        from dedup.judge import DEFAULT_JUDGE

        fit(pairs, seeds, qi, args.judge_out or DEFAULT_JUDGE, args.folds, args.weights_out)
        return 0
    threshold = fitted().threshold
    finder = DuplicateFinder(qi)
    queries = [(p["variant_id"], p["variant"]) for p in pairs]
    runs, seconds, retrieved = {}, {}, 0
    # With the answers: each variant's own final answer, compared with the seed record's.
    for name, finals in (("answers", {p["variant_id"]: p["variant_answer"] for p in pairs}),
                         ("questions", None)):
        t0 = time.perf_counter()
        found = finder.find(queries, k=args.k, finals=finals)
        seconds[name] = round(time.perf_counter() - t0, 1)
        runs[name], retrieved = {}, 0
        for pair, cands in zip(pairs, found, strict=True):
            hit = next((c for c in cands if c.doc_id == pair["seed_id"]), None)
            if hit is not None:
                runs[name][pair["variant_id"]] = hit.score
                retrieved += 1
    a = qi.encode([query_text(seeds[p["seed_id"]]) for p in pairs])
    b = qi.encode([query_text(p["variant"]) for p in pairs])
    cosine = {p["variant_id"]: float(c) for p, c in zip(pairs, (a * b).sum(axis=1), strict=True)}
    cos_threshold = _best_threshold(pairs, cosine)
    kinds: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for name, scores in runs.items():
        for pair in pairs:
            kinds[name][pair["kind"]].append(
                int(scores.get(pair["variant_id"], -1.0) >= threshold))
    result = {
        "task": "GSM-Plus pairs: variant as query, seed record as target",
        "k": args.k, "threshold": threshold, "seeds_retrieved": retrieved,
        "pairs": len(pairs), "seconds": seconds,
        "dedup": _report(pairs, runs["answers"], threshold),
        "dedup_questions_only": _report(pairs, runs["questions"], threshold),
        "minilm_cosine": {"threshold": cos_threshold,
                          **_report(pairs, cosine, cos_threshold)},
        "called_duplicate_by_kind": {
            name: {k: round(float(np.mean(v)), 3) for k, v in sorted(by_kind.items())}
            for name, by_kind in (("answers", kinds["answers"]),
                                  ("questions_only", kinds["questions"]))},
        "machine": machine(),
    }
    print(f"machine: {describe(result['machine'])}")
    print(f"{len(pairs)} pairs; seed among the {args.k} candidates of its variant: {retrieved}; "
          f"{seconds['answers']:.1f} s with the answers, {seconds['questions']:.1f} s without")
    print("weights and threshold chosen on the even seed_idx half; the odd half is held out")
    print(f"{'system':<34}{'split':<6}{'AP':>7}{'chance':>8}{'P':>7}{'R':>7}{'F1':>7}")
    for name, rep, thr in (("dedup, queries with answers", result["dedup"], threshold),
                           ("dedup, questions only", result["dedup_questions_only"],
                            threshold),
                           ("MiniLM cosine (best-F1 threshold)", result["minilm_cosine"],
                            cos_threshold)):
        for split in ("even", "odd", "all"):
            r = rep[split]
            print(f"{name:<34}{split:<6}{r['average_precision']:7.3f}"
                  f"{r['chance_average_precision']:8.3f}{r['precision']:7.3f}"
                  f"{r['recall']:7.3f}{r['f1']:7.3f}")
        print(f"{'':<34}threshold {thr:.3f}")
    print(f"share called duplicate, by kind of variant: {'answers':>10}{'questions':>11}")
    by_kind = result["called_duplicate_by_kind"]
    for kind, share in by_kind["answers"].items():
        print(f"  {kind:<41}{share:10.3f}{by_kind['questions_only'][kind]:11.3f}")
    save_result(args.out, result)
    qi.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
