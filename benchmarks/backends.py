"""The encoder's backends side by side: answers/s and dense MRR@10 on dev match and MSE dev.

    python -m benchmarks.backends [--index build/bench/idx-tuned-window] [--data ../shared/data]
        [--backends torch,torch-bf16,onnx,onnx-int8] [--speed-answers 1024] [--record]
        [--out build/bench/backends.json]

* **speed**: the same dev answers (a fixed random sample of the index's stored linear answer
  texts) encoded by each backend in turn, in rounds (each round gives every backend the same
  chunk, so load from other processes falls on all of them alike); answers/s and the speed-up
  over ``torch``, the bare sentence-transformers encode of the same texts in mathmatch's
  batches of 64 (target: onnx-int8 >= 2.5x), and over torch in batches of 16 (``torch@16``,
  the ONNX backends' batch). The ONNX export (once per model, cached) is timed apart.
* **quality**: every stored answer of the index encoded by each backend, the dev match and
  MSE dev queries too; dense exact search (inner product); MRR@10 and recall@10 against the
  qrels, and each backend's difference from torch (target: within 0.005 on both tasks). The
  cosine of each backend's answer vectors to torch's (mean, min) says how far they are.

With ``--record``, the backends within 0.005 of torch on both tasks and faster than it are
written, fastest first, to ``retriever/models/backends.json`` under the encoder's checksum:
``--backend auto`` takes the first of them that runs on the machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import DEFAULT_DATA, describe, machine, peak_rss_mib, save_result

TASKS = {"match": "match", "mse": "match_mse"}
TOLERANCE = 0.005


def _encoders(names: list[str], encoder: str | None) -> dict:
    from retriever.encoder import Encoder

    return {b: Encoder(encoder, device="cpu", backend=b) for b in names}


def speed(encoders: dict, texts: list[str], chunk: int = 256) -> dict:
    """Answers/s of each encoder over *texts*, encoded chunk by chunk, every encoder taking
    each chunk in turn; ``torch@16`` is torch in batches of 16 texts (the ONNX backends'
    batch) beside its default 64, so the speed-up of a backend is not that of a batch size."""
    runs = {name: (enc, None) for name, enc in encoders.items()}
    if "torch" in encoders:
        runs["torch@16"] = (encoders["torch"], 16)
    seconds = dict.fromkeys(runs, 0.0)
    for enc in encoders.values():
        enc.encode(texts[:8])  # loaded (exported) and warm before timing
    for start in range(0, len(texts), chunk):
        part = texts[start:start + chunk]
        for name, (enc, batch) in runs.items():
            t = time.perf_counter()
            enc.encode(part, batch_size=batch)
            seconds[name] += time.perf_counter() - t
    out = {name: {"answers": len(texts), "seconds": round(s, 2),
                  "answers_per_second": round(len(texts) / s, 1)}
           for name, s in seconds.items()}
    if "torch" in out:
        for row in out.values():
            row["speedup"] = round(row["answers_per_second"] /
                                   out["torch"]["answers_per_second"], 2)
            if "torch@16" in out:
                row["speedup_vs_torch_at_16"] = round(
                    row["answers_per_second"] / out["torch@16"]["answers_per_second"], 2)
    return out


def _mrr(vectors: np.ndarray, rows: np.ndarray, ids: dict, queries: list[tuple[str, str]],
         qvecs: np.ndarray, qrels: dict) -> dict:
    from mathcore.evaluate import evaluate_run

    scores = qvecs @ vectors.T
    top = np.argsort(-scores, axis=1)[:, :10]
    run = {qid: {ids[int(rows[j])]: float(scores[i, j]) for j in top[i]}
           for i, (qid, _) in enumerate(queries)}
    return evaluate_run(qrels, run, ["mrr@10", "recall@10"])


def quality(encoders: dict, index: Path, data: Path, work: Path) -> dict:
    """Dense MRR@10 / recall@10 of each backend on the dev tasks, and its answer vectors'
    cosine to torch's."""
    from mathcore.runs import iter_queries, linear_query, read_qrels
    from mathcore.store import Store

    with Store(index / "records.sqlite", readonly=True) as store:
        rows = np.array(store.rowids(), dtype=np.int64)
        texts = store.texts(rows.tolist())
        ids = store.ids_of(rows.tolist())
        corpus = store.checksum()
    tasks = {}
    for name, folder in TASKS.items():
        queries = [(q, linear_query(q, t)) for q, t in
                   iter_queries(data / "tasks" / folder / "queries.jsonl")]
        tasks[name] = (queries, read_qrels(data / "tasks" / folder / "qrels.tsv"))
    out, reference = {}, None
    for name, enc in encoders.items():
        # kept between runs: the same model, backend and stored texts give the same vectors
        cached = work / f"answers-{name}-{enc.spec.checksum[:12]}-{corpus[:12]}.npy"
        t = time.perf_counter()
        if cached.is_file():
            vectors, seconds = np.load(cached), None
        else:
            vectors = enc.encode(texts, progress=sys.stderr.isatty())
            seconds = round(time.perf_counter() - t, 1)
            work.mkdir(parents=True, exist_ok=True)
            np.save(cached, vectors)
        row = {"corpus_seconds": seconds}
        if reference is None:
            reference = vectors
        cos = (vectors * reference).sum(axis=1)
        row["cosine_to_first"] = {"mean": round(float(cos.mean()), 5),
                                  "min": round(float(cos.min()), 5)}
        for task, (queries, qrels) in tasks.items():
            qvecs = enc.encode([t for _, t in queries])
            row[task] = _mrr(vectors, rows, ids, queries, qvecs, qrels)
        out[name] = row
        print(f"  {name:<11} match mrr@10 {row['match']['mrr@10']:.4f}   mse mrr@10 "
              f"{row['mse']['mrr@10']:.4f}   cosine to {next(iter(encoders))} "
              f"{row['cosine_to_first']['mean']:.4f} (min {row['cosine_to_first']['min']:.4f})",
              flush=True)
    if "torch" in out:
        for row in out.values():
            row["delta"] = {t: round(row[t]["mrr@10"] - out["torch"][t]["mrr@10"], 4)
                            for t in TASKS}
            row["equal"] = all(abs(d) <= TOLERANCE for d in row["delta"].values())
    return out


def record(checksum: str, result: dict, path: Path) -> list[str]:
    """Write the backends shown equal to torch and faster, fastest first, for *checksum*."""
    speeds = result["speed"]
    equal = sorted((b for b, row in result["quality"].items()
                    if row.get("equal") and b != "torch" and speeds[b]["speedup"] > 1.0),
                   key=lambda b: -speeds[b]["speedup"])
    shown = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    shown[checksum] = {"encoder": result["encoder"], "equal": equal,
                       "measured": {b: {"speedup": speeds[b]["speedup"],
                                        "delta_mrr@10": result["quality"][b]["delta"]}
                                    for b in result["quality"]},
                       "machine": result["machine"]["cpu"], "date": result["date"],
                       "command": "python -m benchmarks.backends --record"}
    path.write_text(json.dumps(shown, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return equal


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, default=Path("build/bench/idx-tuned-window"),
                   help="an index of the dev corpus (its stored answers are encoded)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--encoder", default=None, help="default: the index's encoder")
    p.add_argument("--backends", default="torch,torch-bf16,onnx,onnx-int8")
    p.add_argument("--speed-answers", type=int, default=1024)
    p.add_argument("--no-quality", action="store_true", help="speed only")
    p.add_argument("--record", action="store_true",
                   help="write the backends shown equal to retriever/models/backends.json")
    p.add_argument("--work", type=Path, default=Path("build/bench/backends"))
    p.add_argument("--out", type=Path, default=Path("build/bench/backends.json"))
    args = p.parse_args(argv)
    from mathcore.store import Store
    from retriever.backends import SHOWN, runnable

    manifest = json.loads((args.index / "manifest.json").read_text(encoding="utf-8"))
    encoder = args.encoder or manifest["dense"]["encoder"]
    names = [b for b in args.backends.split(",") if b]
    skipped = {b: runnable(b, "cpu") for b in names if runnable(b, "cpu")}
    names = [b for b in names if b not in skipped]
    for b, why in skipped.items():
        print(f"  {b}: skipped ({why})")
    print(describe())
    t = time.perf_counter()
    encoders = _encoders(names, encoder)
    export = {}
    for name, enc in encoders.items():
        t = time.perf_counter()
        _ = enc.onnx if name.startswith("onnx") else enc.model
        export[name] = round(time.perf_counter() - t, 1)
    with Store(args.index / "records.sqlite", readonly=True) as store:
        rows = store.rowids()
        random.Random(0).shuffle(rows)
        sample = store.texts(rows[:args.speed_answers])
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "encoder": encoder,
              "checksum": encoders[names[0]].spec.checksum, "index": str(args.index),
              "skipped": skipped, "load_or_export_seconds": export}
    print(f"speed: {len(sample)} dev answers, each backend in turn, chunks of 256")
    result["speed"] = speed(encoders, sample)
    for name, row in result["speed"].items():
        print(f"  {name:<11} {row['answers_per_second']:7.1f} answers/s   "
              f"{row.get('speedup', 1.0):.2f}x torch (batch 64)   "
              f"{row.get('speedup_vs_torch_at_16', 1.0):.2f}x torch in batches of 16")
    if not args.no_quality:
        print(f"quality: dense MRR@10 over the {manifest['store']['records']} answers of "
              f"{args.index}")
        result["quality"] = quality(encoders, args.index, args.data, args.work)
    result["peak_rss_mib"] = peak_rss_mib()
    save_result(args.out, result)
    if args.record and "quality" in result:
        equal = record(result["checksum"], result, SHOWN)
        print(f"recorded in {SHOWN}: auto takes {', '.join(equal) or 'torch'} "
              f"(first that runs)")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
