"""Off-the-shelf baselines of the duplicate-pair and multiple-choice tasks, through our evaluators.

    python -m benchmarks.task_baselines [--data ../shared/data] [--out FILE.json]

* duplicates (``tasks/duplicates/pairs.jsonl``): cosine of all-MiniLM-L6-v2 between the seed
  question and its variant; average precision, and P/R/F1 at the threshold maximising F1;
* multiple choice (``tasks/choice/*.jsonl``): the option whose embedding is nearest the question.

The data README reports AP 0.160 and accuracy 0.472 (mathematics_dataset) for these baselines;
reproducing them checks the evaluators the symbolic stage is measured with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def duplicates_baseline(data: Path, encoder) -> dict:
    from mathcore.evaluate import duplicate_scores
    from mathcore.records import query_text

    pairs = _read(data / "tasks" / "duplicates" / "pairs.jsonl")
    seeds = {}
    for line in _read(data / "corpus" / "gsm8k.jsonl"):
        seeds[line["id"]] = line["question"]
    a = encoder.encode([query_text(seeds[p["seed_id"]]) for p in pairs])
    b = encoder.encode([query_text(p["variant"]) for p in pairs])
    cos = (a * b).sum(axis=1)
    labels = {p["variant_id"]: int(p["duplicate"]) for p in pairs}
    scores = {p["variant_id"]: float(c) for p, c in zip(pairs, cos, strict=True)}
    best = max((duplicate_scores(labels, scores, float(t)) for t in np.unique(cos)),
               key=lambda r: r["f1"])
    return best


def choice_baseline(path: Path, encoder) -> dict:
    from mathcore.evaluate import choice_accuracy
    from mathcore.records import query_text
    from mathcore.runs import linear_query

    items = _read(path)
    q = encoder.encode([query_text(it["question"]) for it in items])
    chosen = {}
    for it, qv in zip(items, q, strict=True):
        opts = encoder.encode([linear_query(it["id"], o) for o in it["options"]])
        chosen[it["id"]] = int(np.argmax(opts @ qv))
    return choice_accuracy({it["id"]: it["correct"] for it in items}, chosen)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=Path("build/bench/task_baselines.json"))
    args = p.parse_args(argv)
    from retriever.encoder import BASE_ENCODER, Encoder

    enc = Encoder(BASE_ENCODER, device="cpu")  # the off-the-shelf baselines
    result = {"duplicates": duplicates_baseline(args.data, enc),
              "choice": {f.stem: choice_baseline(f, enc)
                         for f in sorted((args.data / "tasks" / "choice").glob("*.jsonl"))},
              "machine": machine()}
    d = result["duplicates"]
    print(f"machine: {describe(result['machine'])}")
    print(f"duplicates, MiniLM cosine: AP {d['average_precision']:.3f} (README: 0.160, chance "
          f"{d['chance_average_precision']:.3f}); best F1 {d['f1']:.3f} at {d['threshold']:.3f}")
    for name, r in result["choice"].items():
        ref = " (README: 0.472)" if name == "mathematics_dataset" else ""
        print(f"choice {name}, nearest option: accuracy {r['accuracy']:.3f}{ref}")
    save_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
