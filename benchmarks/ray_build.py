"""``index build --ray`` against the single-process build: time, overhead and identical vectors.

    python -m benchmarks.ray_build [--data ../shared/data] [--limit N] [--workers 2]
        [--chunk-rows 256] [--out build/bench/ray_build.json]

Builds an index of (the first --limit records, taken in turn from each file of) the dev corpus
twice from the same records: once in this process, once with a local Ray of --workers CPU
workers.  Reports the wall time of each (Ray's start apart), the overhead, whether the ids
are identical and the largest difference between their vectors, the encode rate of one Ray
worker (records per busy second) and of the single process (all its threads), and the
projected time of 10M answers on N workers (linear in N for the encoding; the store load,
BM25 and the vector index are made by one process and stay as they are).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

from benchmarks.machine import DEFAULT_DATA, describe, machine, peak_rss_mib, save_result

PROJECTED_ANSWERS = 10_000_000
PROJECTED_WORKERS = (1, 8, 32, 128)


def subset(corpus_dir: Path, limit: int | None, out: Path) -> Path:
    """The first *limit* records of the corpus files, one from each file in turn (every
    source is represented), as one JSONL file."""
    files = sorted(corpus_dir.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"no corpus files in {corpus_dir}")
    handles = [open(f, encoding="utf-8") for f in files]
    n = 0
    try:
        with open(out, "w", encoding="utf-8") as fh:
            for lines in zip_longest(*handles):
                for line in lines:
                    if line and line.strip() and (limit is None or n < limit):
                        fh.write(line if line.endswith("\n") else line + "\n")
                        n += 1
                if limit is not None and n >= limit:
                    break
    finally:
        for h in handles:
            h.close()
    return out


def _vectors(index_dir: Path):
    from index import VectorIndex
    from index.layout import part_dir

    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    index = VectorIndex.load(part_dir(index_dir, manifest, "dense"), mmap=False)
    ids = index.ids()
    order = ids.argsort()
    return ids[order], index.vectors_of(ids[order]), manifest


def _build(corpus: Path, out: Path, encoders, encoder: str | None, chunk_rows: int) -> float:
    from index.build import IndexConfig, build_index
    from index.corpora import LoadConfig

    cfg = IndexConfig(LoadConfig([corpus], out, workers=0, progress=False), encoder=encoder,
                      device="cpu", chunk_rows=chunk_rows)
    t = time.perf_counter()
    build_index(cfg, encoders, new=True)
    return time.perf_counter() - t


def projection(rate: float, serial_per_record: float) -> list[dict]:
    """Hours for :data:`PROJECTED_ANSWERS` on N workers: encoding at N x *rate* (linear), plus
    the single-writer part (load, BM25, vector index) at *serial_per_record* seconds each."""
    rows = []
    serial = PROJECTED_ANSWERS * serial_per_record
    for n in PROJECTED_WORKERS:
        encode = PROJECTED_ANSWERS / (rate * n)
        rows.append({"workers": n, "encode_hours": round(encode / 3600, 2),
                     "single_writer_hours": round(serial / 3600, 2),
                     "total_hours": round((encode + serial) / 3600, 2)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the dev data folder")
    p.add_argument("--limit", type=int, default=None, help="records (default: all)")
    p.add_argument("--workers", type=int, default=2, help="CPU workers of the local Ray")
    p.add_argument("--chunk-rows", type=int, default=256,
                   help="records per chunk (the unit spread over the workers)")
    p.add_argument("--encoder", default=None, help="default: the shipped encoder")
    p.add_argument("--out", type=Path, default=Path("build/bench/ray_build.json"))
    args = p.parse_args(argv)
    import numpy as np

    from retriever.encoder import ENCODERS
    from retriever.ray_encode import RayConfig, RayEncoders, start_ray, stop_ray

    tmp = Path(tempfile.mkdtemp(prefix="mm-ray-build-"))
    try:
        corpus = subset(args.data / "corpus", args.limit, tmp / "subset.jsonl")
        single_s = _build(corpus, tmp / "single", ENCODERS, args.encoder, args.chunk_rows)
        t = time.perf_counter()
        started = start_ray(RayConfig(num_cpus=args.workers))
        ray_start_s = time.perf_counter() - t
        encoders = RayEncoders(RayConfig(workers=args.workers))
        try:
            ray_s = _build(corpus, tmp / "ray", encoders, args.encoder, args.chunk_rows)
        finally:
            stop_ray(started)
        ids, vecs, manifest = _vectors(tmp / "single")
        ray_ids, ray_vecs, ray_manifest = _vectors(tmp / "ray")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    same_ids = bool(np.array_equal(ids, ray_ids))
    diff = float(np.abs(vecs - ray_vecs).max()) if same_ids else None
    stats = encoders.loaded[0].stats
    per_worker = {w: {"chunks": s.chunks, "records": s.texts, "busy_seconds": round(s.seconds, 2),
                      "records_per_second": round(s.rate, 2)} for w, s in stats.items()}
    rate = float(np.mean([s.rate for s in stats.values()]))
    store, lexical, dense = manifest["store"], manifest["lexical"], manifest["dense"]
    records = store["records"]
    # What one process does whatever the workers: load the store, build BM25, fill and save
    # the vector index (the dense stage's time less its encoding).
    serial_s = store["timings"]["load"]["seconds"] + lexical["seconds"] + \
        dense["seconds"] - dense["encode"]["seconds"]
    result = {
        "benchmark": "ray_build", "records": records, "limit": args.limit,
        "encoder": dense["encoder"], "chunk_rows": args.chunk_rows, "ray_workers": args.workers,
        "single_process": {"seconds": round(single_s, 2),
                           "encode_seconds": dense["encode"]["seconds"],
                           "encode_records_per_second": dense["encode"]["records_per_second"]},
        "ray": {"start_seconds": round(ray_start_s, 2), "seconds": round(ray_s, 2),
                "encode_seconds": ray_manifest["dense"]["encode"]["seconds"],
                "workers": per_worker},
        "overhead_seconds": round(ray_s + ray_start_s - single_s, 2),
        "overhead_ratio": round((ray_s + ray_start_s) / single_s, 3),
        "identical_ids": same_ids, "max_abs_vector_difference": diff,
        "identical_vectors": diff == 0.0,
        "single_worker_records_per_second": round(rate, 2),
        "single_writer_seconds_per_record": serial_s / records,
        "projection_10m": projection(rate, serial_s / records),
        "peak_rss_mib": round(peak_rss_mib(), 1), "machine": machine(),
    }
    print(f"machine: {describe(result['machine'])}")
    print(f"corpus:  {records} records of {args.data / 'corpus'} (limit {args.limit}), "
          f"encoder {dense['encoder']}, chunks of {args.chunk_rows}")
    print(f"single process: {single_s:7.1f} s  (encoding {dense['encode']['seconds']:.1f} s, "
          f"{dense['encode']['records_per_second']} records/s)")
    print(f"local Ray:      {ray_s:7.1f} s  + {ray_start_s:.1f} s to start Ray, "
          f"{args.workers} workers")
    for w, s in per_worker.items():
        print(f"  worker {w}: {s['chunks']} chunks, {s['records']} records, "
              f"{s['records_per_second']} records/busy s")
    print(f"overhead:       {result['overhead_seconds']:+.1f} s "
          f"(x{result['overhead_ratio']:.2f} the single process, Ray's start included)")
    print(f"ids identical:  {same_ids}; max abs vector difference: {diff}")
    print(f"one worker:     {rate:.1f} records/s; single-writer part "
          f"{serial_s / records * 1e3:.2f} ms/record")
    print(f"{'workers':>8} {'encode h':>10} {'1 writer h':>11} {'total h':>9}  "
          f"(10M answers, linear scaling)")
    for row in result["projection_10m"]:
        print(f"{row['workers']:>8} {row['encode_hours']:>10} {row['single_writer_hours']:>11} "
              f"{row['total_hours']:>9}")
    save_result(args.out, result)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
