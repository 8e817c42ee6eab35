"""Speed of the retrieval stage: build throughput, single-query latency, peak memory.

    python -m benchmarks.retrieval_speed [--records 2000] [--queries 200] [--out FILE.json]

* **build throughput**: ``mathmatch index build`` (store, encoding in saved chunks, BM25) over
  a slice of the dev corpus (the same share of each source), against a plain
  ``SentenceTransformer.encode`` of the same linear texts with the same model, batch size and
  device, in the same run (target: ours >= 0.9x plain);
* **single-query latency** of ``match`` in each mode (one query at a time through the first
  stage of the match :class:`mathmatch.pipeline.Pipeline`, ``k`` hits, p50 / p95), on dev
  queries;
* **peak memory** of the process.

Batch search against the numpy baseline at 10k / 100k / 1M vectors is
``python -m benchmarks.search_speed``.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import DEFAULT_DATA, describe, machine, peak_rss_mib, save_result


def _slice_corpus(data: Path, n: int, out: Path) -> Path:
    """The first n records of the dev corpus, taken in proportion to each source."""
    files = sorted((data / "corpus").glob("*.jsonl"))
    lines = {f: f.read_text(encoding="utf-8").splitlines() for f in files}
    total = sum(len(v) for v in lines.values())
    with open(out, "w", encoding="utf-8") as fh:
        for f in files:
            take = max(1, round(n * len(lines[f]) / total))
            fh.write("\n".join(lines[f][:take]) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("build/bench/retrieval_speed.json"))
    args = p.parse_args(argv)
    from index.build import IndexConfig, build_index
    from index.corpora import LoadConfig
    from mathcore.runs import iter_queries
    from mathmatch.pipeline import MatchConfig, Pipeline
    from retriever.encoder import ENCODERS, Encoder

    tmp = Path(tempfile.mkdtemp(prefix="mm-speed-"))
    try:
        corpus = _slice_corpus(args.data, args.records, tmp / "slice.jsonl")
        enc = Encoder(device="cpu", batch_size=args.batch_size)
        enc.encode(["warm up the model"] * args.batch_size)
        t0 = time.perf_counter()
        _, manifest = build_index(IndexConfig(LoadConfig([corpus], tmp / "idx", progress=False),
                                              device="cpu", batch_size=args.batch_size), ENCODERS)
        build_s = time.perf_counter() - t0
        n = manifest["store"]["records"]
        encode = manifest["dense"]["encode"]
        config = MatchConfig(device="cpu")
        with Pipeline(tmp / "idx", config, mode="dense") as pipeline:
            store = pipeline.store
            texts = store.texts(store.rowids(), "answer_text")
        model = enc.model  # the plain baseline: the same SentenceTransformer object
        t0 = time.perf_counter()
        model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                     convert_to_numpy=True)
        plain_s = time.perf_counter() - t0
        # And a bare SentenceTransformer of the off-the-shelf folder: the shipped encoder is
        # that model with a LoRA adapter merged into its weights at load, so no slower.
        from sentence_transformers import SentenceTransformer

        from retriever.encoder import default_model_path

        bare = SentenceTransformer(str(default_model_path()), device="cpu",
                                   local_files_only=True)
        bare.encode(["warm up the model"] * args.batch_size)
        t0 = time.perf_counter()
        bare.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True)
        bare_s = time.perf_counter() - t0
        del bare
        latency = {}
        queries = list(itertools.islice(iter_queries(args.data / "tasks" / "match" /
                                                     "queries.jsonl"), args.queries))
        for mode in ("bm25", "dense", "hybrid"):
            with Pipeline(tmp / "idx", config, mode=mode) as pipeline:
                pipeline.search(queries[:2], config.k)  # warm-up
                times = []
                for q in queries:
                    t = time.perf_counter()
                    pipeline.search([q], config.k)
                    times.append(time.perf_counter() - t)
            latency[mode] = {"p50_ms": round(1000 * float(np.percentile(times, 50)), 2),
                             "p95_ms": round(1000 * float(np.percentile(times, 95)), 2)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours_rate = encode["records"] / encode["seconds"]
    plain_rate = n / plain_s
    result = {"benchmark": "retrieval_speed", "records": n,
              "build": {"seconds": round(build_s, 2), "records_per_second": round(n / build_s, 1),
                        "encode_records_per_second": round(ours_rate, 1),
                        "plain_encode_records_per_second": round(plain_rate, 1),
                        "ratio_to_plain": round(ours_rate / plain_rate, 3),
                        "encoder": enc.spec.name,
                        "bare_base_encode_records_per_second": round(n / bare_s, 1),
                        "ratio_to_bare_base": round(ours_rate / (n / bare_s), 3),
                        "whole_build_ratio_to_plain": round((n / build_s) / plain_rate, 3)},
              "latency": latency, "peak_rss_mib": round(peak_rss_mib(), 1), "machine": machine()}
    b = result["build"]
    print(f"machine: {describe(result['machine'])}")
    print(f"build of {n} records: {b['seconds']} s in all ({b['records_per_second']} records/s)")
    print(f"encoding in the build: {b['encode_records_per_second']} records/s; plain "
          f"SentenceTransformer.encode of the same texts: {b['plain_encode_records_per_second']} "
          f"records/s; ratio {b['ratio_to_plain']} (target >= 0.9); a bare SentenceTransformer "
          f"of the off-the-shelf folder: {b['bare_base_encode_records_per_second']} records/s, "
          f"ratio {b['ratio_to_bare_base']}; whole build (load + encode "
          f"+ BM25) / plain encode: {b['whole_build_ratio_to_plain']}")
    for mode, lat in latency.items():
        print(f"single-query latency, {mode:<7} p50 {lat['p50_ms']:7.2f} ms  p95 "
              f"{lat['p95_ms']:7.2f} ms  ({len(queries)} queries, {n} records)")
    print(f"peak memory: {result['peak_rss_mib']} MiB")
    save_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
