"""Does a zero-shot query likelihood help the cross-scorer? Dev MRR@10 with and without it.

    python -m benchmarks.likelihood --index DIR [--data ../shared/data] [--depth 10]
                                    [--stride 5] [--cross build/bench/rerank-givens.scores.json]
                                    [--out build/bench/likelihood.json]

The likelihood is UPR's (Sachan et al., 2022): the mean log-probability of the question's
tokens after a candidate solution, ``Solution: {answer}\\nThis solves the problem: {question}``,
under the untuned base LM with all its layers (the default base, SmolLM2-135M-Instruct; the
answer keeps its first 160 tokens, the question its first 96).  No training, so nothing of the
benchmark is learnt; it costs a full-depth pass of the LM per pair.

The dev match queries (every ``stride``-th, as ``benchmarks.rerank``) are searched once by the
first stage of the match :class:`mathmatch.pipeline.Pipeline` (the defaults of
:class:`~mathmatch.pipeline.MatchConfig`), as :func:`benchmarks.rerank.candidates` searches them
for a rerank depth of ``depth``; the first ``depth`` candidates of each are scored (saved beside
OUT, one line a query, so an interrupted run resumes).  The cross-scorer's scores come from the
file ``benchmarks.rerank`` saved for the same queries (its raw scores; it must hold every
candidate scored here).  The candidates are reordered by
``c x cross + u x z(likelihood) + f x z(first stage)`` over each query's ``depth`` candidates
(:func:`reranker.scorer.reorder`), for a grid of (u, f) with c = 0 (likelihood alone) and c = 1
(with the cross-scorer); the weights are chosen on the even-numbered queries, the odd ones are
held out.  Candidates past ``depth`` keep their first-stage order below.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result
from benchmarks.splits import dev_match, halves, print_split_table
from mathmatch.pipeline import MatchConfig, Pipeline

LIKELIHOOD_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
FIRST_WEIGHTS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
METRICS = ("mrr@10", "recall@1", "recall@10")
ANSWER_TOKENS, QUESTION_TOKENS = 160, 96


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--depth", type=int, default=10, help="candidates scored (default: 10)")
    p.add_argument("--stride", type=int, default=5)
    p.add_argument("--cross", type=Path, default=Path("build/bench/rerank-givens.scores.json"),
                   help="the cross-scorer's scores saved by benchmarks.rerank (same stride)")
    p.add_argument("--base", default=None, help="base LM folder (default: SmolLM2-135M)")
    p.add_argument("--out", type=Path, default=Path("build/bench/likelihood.json"))
    args = p.parse_args(argv)
    with Pipeline(args.index, MatchConfig(device="cpu", rerank_depth=args.depth)) as pipeline:
        return _measure(args, pipeline)


def _measure(args: argparse.Namespace, pipeline: Pipeline) -> int:
    from benchmarks.rerank import candidates
    from mathcore.evaluate import evaluate_splits
    from mathcore.scores import zscores
    from mathmatch.bench import query_groups
    from reranker.scorer import reorder

    queries, qrels = dev_match(args.data, args.stride)
    splits = halves(queries)
    cross = json.loads(args.cross.read_text())["cross"]

    store = pipeline.store
    first = candidates(pipeline, queries)  # the candidates benchmarks.rerank scored
    groups = query_groups(store, qrels)
    top = {q: sorted(hits, key=hits.get, reverse=True)[:args.depth] for q, hits in first.items()}
    missing = [q for q, docs in top.items() if not set(docs) <= set(cross.get(q, ()))]
    if missing:
        sys.exit(f"{args.cross}: no cross-scorer score for some candidates of {len(missing)} "
                 f"queries (e.g. {missing[0]}): run benchmarks.rerank with --stride "
                 f"{args.stride} on this index first")

    saved = args.out.with_suffix(".scores.jsonl")
    lik = _likelihoods(dict(queries), top, store, saved, args.base)
    pairs = sum(len(d) for d in top.values())
    lik_z = {q: dict(zip(docs, zscores([lik[q][d] for d in docs]), strict=True))
             for q, docs in top.items()}

    def run(c: float, u: float, f: float) -> dict:
        # c x cross + u x z(likelihood) as the raw rescored score, + f x z(first) by reorder.
        return reorder(first, {q: {d: c * cross[q][d] + u * lik_z[q][d] for d in docs}
                               for q, docs in top.items()}, f, "raw")

    systems = {"first stage": first}
    for c in (0.0, 1.0):
        for u in LIKELIHOOD_WEIGHTS:
            for f in FIRST_WEIGHTS:
                systems[(c, u, f)] = run(c, u, f)
    table = {name: evaluate_splits(qrels, r, METRICS, groups, splits)
             for name, r in systems.items()}
    grid = [n for n in table if n != "first stage"]

    def best(keep) -> tuple:
        return max((n for n in grid if keep(n)), key=lambda n: table[n]["even"]["all"]["mrr@10"])

    chosen = {"likelihood alone": best(lambda n: n[0] == 0 and n[1] > 0),
              "cross-scorer alone": best(lambda n: n[0] == 1 and n[1] == 0),
              "cross-scorer + likelihood": best(lambda n: n[0] == 1 and n[1] > 0)}
    named = {"first stage": table["first stage"]} | {k: table[n] for k, n in chosen.items()}
    shown = {"first stage": named["first stage"]} | {
        f"{k} {n[1]:g}/{n[2]:g}": table[n] for k, n in chosen.items()}
    speed = _speed(saved)
    result = {"task": "dev match queries, every stride-th", "depth": args.depth,
              "stride": args.stride, "queries": len(queries), "pairs": pairs,
              "chosen": {k: {"cross": c, "likelihood": u, "first": f}
                         for k, (c, u, f) in chosen.items()},
              "systems": named, "pairs_per_second": speed, "machine": machine()}
    print(f"machine: {describe(result['machine'])}")
    print(f"{len(queries)} queries (every {args.stride}-th), {pairs} pairs, depth {args.depth};"
          f" likelihood scored at {speed} pairs/s; weights (likelihood u / first"
          f" stage f) chosen on the even queries, odd held out")
    print_split_table("system (u/f)", shown, list(shown), width=34)
    save_result(args.out, result)
    return 0


def _speed(saved: Path) -> float:
    """Pairs per second over every line of *saved* (each holds its query's scores and the
    seconds they took)."""
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    seconds = sum(r["seconds"] for r in rows)
    return round(sum(len(r["s"]) for r in rows) / seconds, 2) if seconds else float("nan")


def _likelihoods(queries, top, store, saved: Path, base) -> dict:
    """``{query: {doc: mean log P(question | answer)}}``, read from *saved* where a line has
    them for the same candidates, the rest scored and appended."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathcore.runs import linear_query
    from reranker.model import resolve_base

    done = {}
    if saved.is_file():
        for line in saved.read_text().splitlines():
            row = json.loads(line)
            done[row["q"]] = row["s"]
    todo = [q for q, docs in top.items() if set(done.get(q, ())) != set(docs)]
    if not todo:
        return done
    path = resolve_base(base)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    cue = ids("\nThis solves the problem:")
    with saved.open("a") as out:
        for q in tqdm(todo, desc="likelihood", unit="query"):
            t0 = time.perf_counter()
            question = ids(" " + linear_query(q, queries[q]))[:QUESTION_TOKENS]
            heads = [ids("Solution: " + store.by_id(d).answer_text)[:ANSWER_TOKENS] + cue
                     for d in top[q]]
            width = max(len(h) for h in heads) + len(question)
            inp = torch.full((len(heads), width), pad)
            mask = torch.zeros_like(inp)
            for i, h in enumerate(heads):
                inp[i, :len(h) + len(question)] = torch.tensor(h + question)
                mask[i, :len(h) + len(question)] = 1
            with torch.inference_mode():
                logp = model(input_ids=inp, attention_mask=mask).logits.float().log_softmax(-1)
            target = torch.tensor(question)
            scores = {d: float(logp[i, torch.arange(len(h) - 1, len(h) + len(question) - 1),
                                    target].mean())
                      for i, (d, h) in enumerate(zip(top[q], heads, strict=True))}
            done[q] = scores
            out.write(json.dumps({"q": q, "s": scores,
                                  "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
            out.flush()
    return done


if __name__ == "__main__":
    sys.exit(main())
