"""How should a forum question's title and body be searched? MSE dev figures per variant.

    python -m benchmarks.forum_questions --index DIR [--data ../shared/data]
                                         [--modes dense,bm25,hybrid]
                                         [--out build/bench/forum_questions.json]

A Math StackExchange question is a title (its first line in ``match_mse/queries.jsonl``) and a
body. The 902 MSE dev questions are searched, with the default settings of
:class:`mathmatch.pipeline.MatchConfig` in each mode, as:

- ``title+body``: the text as it is (what ``mathmatch match`` searches);
- ``title``: the title alone;
- ``body``: the body alone;
- ``title x2``: the title twice, then the body (the title weighted up: BM25 counts its words
  twice, and the encoder's window holds it twice).

Figures: MRR@10, R@1, R@10 and R@100 overall, even and odd halves (the choice, if any, is made on
the even half), and the queries whose title or body is empty.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result
from benchmarks.splits import dev_task, halves
from mathcore.evaluate import evaluate_run
from mathmatch.pipeline import MatchConfig, Pipeline

METRICS = ("mrr@10", "recall@1", "recall@10", "recall@100")


def split_title(text: str) -> tuple[str, str]:
    """``(title, body)`` of a forum question: its first line and the rest."""
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


VARIANTS: dict[str, Callable[[str], str]] = {
    "title+body": lambda t: t,
    "title": lambda t: split_title(t)[0] or t,
    "body": lambda t: split_title(t)[1] or t,
    "title x2": lambda t: "\n".join([split_title(t)[0], t]),
}


def run_variants(index: Path, queries: Sequence[tuple[str, str]], qrels: dict,
                 modes: Sequence[str], variants: Sequence[str] = tuple(VARIANTS)) -> dict:
    """``{mode: {variant: {split: metrics}}}`` over *queries* (ids and texts)."""
    split_ids = halves(queries)
    out: dict = {}
    for mode in modes:
        config = MatchConfig(mode=mode, k=100, device="cpu")
        with Pipeline(index, config) as pipeline:
            out[mode] = {}
            for name in variants:
                change = VARIANTS[name]
                run = pipeline.search([(q, change(t)) for q, t in queries], config.k)
                out[mode][name] = {
                    split: evaluate_run({q: qrels[q] for q in ids}, run, METRICS)
                    for split, ids in split_ids.items()}
                row = out[mode][name]["all"]
                print(f"{mode:<8}{name:<12}" + "".join(f"{row[m]:10.4f}" for m in METRICS),
                      flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.forum_questions",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, required=True, help="an index of the whole dev corpus")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--modes", default="dense,bm25,hybrid")
    ap.add_argument("--out", type=Path, default=Path("build/bench/forum_questions.json"))
    args = ap.parse_args(argv)
    queries, qrels = dev_task(args.data, "match_mse")
    empty = {"title": sum(not split_title(t)[0] for _, t in queries),
             "body": sum(not split_title(t)[1] for _, t in queries)}
    print(f"{len(queries)} MSE dev questions; empty titles {empty['title']}, empty bodies "
          f"{empty['body']}")
    print(f"{'mode':<8}{'variant':<12}" + "".join(f"{m:>10}" for m in METRICS))
    figures = run_variants(args.index, queries, qrels, args.modes.split(","))
    save_result(args.out, {"benchmark": "forum_questions", "index": str(args.index),
                           "queries": len(queries), "empty": empty, "figures": figures,
                           "machine": machine(), "machine_description": describe()})
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
