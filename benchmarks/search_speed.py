"""Vector search speed: our exact index against a plain numpy baseline, FAISS flat, HNSW and IVF.

Usage::

    python -m benchmarks.search_speed [--sizes 10000,100000,1000000] [--queries 1000] \\
        [--dim 384] [--k 10] [--out FILE.json] [--quick]

Data: seeded synthetic L2-normalised vectors from a gaussian mixture (1000 unit centres, noise
of norm ~1.5), queries from the same mixture, so that approximate indexes meet realistic
neighbourhoods (typical top-1 cosine ~0.4). The baseline is ``scores = Q @ X.T`` then
``np.argpartition(-scores, k)[:, :k]`` and a sort of those k, for all queries at once unless the
score, negation and index matrices would pass ``--baseline-mem-gb`` (then in query blocks; the
table says so). Timings are the best of ``--repeats`` runs, baseline and ours interleaved, so
load from other processes hits both alike. Prints a table and the machine; writes JSON.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine, save_result

N_CENTERS, NOISE = 1000, 1.5
CHUNK_SWEEP = (4096, 16384, 65536, 262144)


def mixture(n: int, dim: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    """``n`` normalised float32 vectors from the mixture, generated in chunks."""
    centers = np.random.default_rng(12345).standard_normal((N_CENTERS, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for r0 in range(0, n, chunk):
        m = min(chunk, n - r0)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        x *= np.float32(NOISE / np.sqrt(dim))
        x += centers[rng.integers(0, N_CENTERS, m)]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[r0 : r0 + m] = x
    return out


def numpy_baseline(q: np.ndarray, x: np.ndarray, k: int, q_block: int) -> tuple[np.ndarray, ...]:
    """The reference: full score matrix, argpartition of its negation, sort of the k."""
    out_s = np.empty((q.shape[0], k), dtype=np.float32)
    out_i = np.empty((q.shape[0], k), dtype=np.int64)
    for q0 in range(0, q.shape[0], q_block):
        scores = q[q0 : q0 + q_block] @ x.T
        idx = np.argpartition(-scores, k, axis=1)[:, :k]
        top = np.take_along_axis(scores, idx, axis=1)
        order = np.argsort(-top, axis=1)
        out_s[q0 : q0 + q_block] = np.take_along_axis(top, order, axis=1)
        out_i[q0 : q0 + q_block] = np.take_along_axis(idx, order, axis=1)
    return out_s, out_i


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(np.intersect1d(g[g >= 0], t).size for g, t in zip(got, truth, strict=True))
    return hits / truth.size


def bench_size(n: int, x_all: np.ndarray, q: np.ndarray, args: argparse.Namespace) -> dict:
    """All methods on the first ``n`` corpus vectors."""
    from index import VectorIndex

    x, ids = x_all[:n], np.arange(n, dtype=np.int64)
    nq, k = q.shape[0], args.k
    repeats = args.repeats if n <= 200_000 else max(1, args.repeats - 1)
    rows: list[dict[str, Any]] = []
    res: dict[str, Any] = {"size": n, "repeats": repeats, "methods": rows}

    ours = VectorIndex(x.shape[1])
    t0 = time.perf_counter()
    ours.add(ids, x)
    build_ours = time.perf_counter() - t0
    per_query = 16 * n  # float32 scores + their negation + int64 argpartition indices
    q_block = max(1, min(nq, int(args.baseline_mem_gb * 2**30 // per_query)))
    res["baseline_query_block"] = q_block
    t_base, t_ours = float("inf"), float("inf")
    for _ in range(repeats):  # interleaved so background load hits both alike
        t, (base_s, base_i) = best_of(lambda: numpy_baseline(q, x, k, q_block), 1)
        t_base = min(t_base, t)
        t, (our_s, our_i) = best_of(lambda: ours.search(q, k), 1)
        t_ours = min(t_ours, t)
    res["exact_equal"] = bool(np.allclose(our_s, base_s, atol=1e-5))
    res["peak_rss_mb_after_exact"] = peak_rss_mb()
    note = "all queries at once" if q_block >= nq else f"chunked: {q_block} queries per block"
    rows.append({"method": "numpy baseline", "search_s": t_base, "note": note})
    rows.append({"method": "ours exact", "build_s": build_ours, "search_s": t_ours, "recall": 1.0})

    if args.chunk_sweep and n == args.chunk_sweep:
        sweep = {}
        for chunk in CHUNK_SWEEP:
            index = VectorIndex(x.shape[1], chunk_size=chunk)
            index.add(ids, x)
            sweep[chunk] = best_of(lambda index=index: index.search(q, k), repeats)[0]
        res["chunk_sweep_s"] = sweep

    lat = []
    for i in range(args.latency_queries):
        t0 = time.perf_counter()
        ours.search(q[i % nq], k)
        lat.append(time.perf_counter() - t0)
    res["single_query_ms"] = {
        "p50": float(np.percentile(lat, 50) * 1e3),
        "p95": float(np.percentile(lat, 95) * 1e3),
        "n": args.latency_queries,
    }

    import faiss

    flat = faiss.IndexFlatIP(x.shape[1])
    t0 = time.perf_counter()
    flat.add(x)
    build = time.perf_counter() - t0
    t, (_, flat_i) = best_of(lambda: flat.search(q, k), 1)
    rows.append(
        {
            "method": "faiss IndexFlatIP",
            "build_s": build,
            "search_s": t,
            "recall": recall(flat_i, base_i),
        }
    )
    flat.reset()  # free its copy of the vectors

    approx = []
    if n <= args.hnsw_max_size:
        hnsw = {
            "M": args.hnsw_m,
            "efConstruction": args.hnsw_ef_construction,
            "efSearch": args.hnsw_ef_search,
        }
        approx.append(("hnsw", hnsw))
    else:
        rows.append(
            {"method": "faiss HNSW", "note": f"skipped: n > --hnsw-max-size {args.hnsw_max_size}"}
        )
    nlist = max(1, round(args.ivf_nlist_factor * np.sqrt(n)))
    approx.append(("ivf", {"nlist": nlist, "nprobe": args.ivf_nprobe}))
    for kind, params in approx:
        index = VectorIndex(x.shape[1], kind=kind, **params)
        t0 = time.perf_counter()
        index.add(ids, x)
        build = time.perf_counter() - t0
        t, (_, got) = best_of(lambda index=index: index.search(q, k), repeats)
        label = "faiss HNSW" if kind == "hnsw" else "faiss IVF"
        note = ", ".join(f"{a}={b}" for a, b in params.items())
        rows.append(
            {
                "method": label,
                "build_s": build,
                "search_s": t,
                "recall": recall(got, base_i),
                "note": note,
            }
        )
        del index

    from mathcore.device import cuda_available

    if cuda_available():
        gpu = VectorIndex(x.shape[1], device="cuda")
        gpu.add(ids, x)
        t_first, _ = best_of(lambda: gpu.search(q, k), 1)  # includes the copy to the device
        t, (_, got) = best_of(lambda: gpu.search(q, k), repeats)
        rows.append(
            {
                "method": "ours exact cuda",
                "search_s": t,
                "recall": recall(got, base_i),
                "note": f"first call {t_first:.3f} s incl. upload",
            }
        )
    for row in rows:
        if "search_s" in row:
            row["qps"] = nq / row["search_s"]
            row["speedup_vs_baseline"] = t_base / row["search_s"]
    res["peak_rss_mb"] = peak_rss_mb()
    return res


def print_table(result: dict) -> None:
    m = result["machine"]
    print(
        f"\nmachine: {m.get('cpu')}, {m['cores']} cores ({m.get('cores_usable')} usable); "
        f"numpy {m['packages'].get('numpy')}, faiss {m['packages'].get('faiss-cpu')}, "
        f"torch {m['packages'].get('torch')}, GPU {m['gpu']}"
    )
    if m.get("blas"):
        print(f"blas: {'; '.join(m['blas'])}")
    s = result["settings"]
    print(
        f"{s['queries']} queries, dim {s['dim']}, k {s['k']}, gaussian mixture "
        f"({N_CENTERS} centres, noise {NOISE}), seed {s['seed']}"
    )
    for res in result["sizes"]:
        print(
            f"\n== {res['size']:,} vectors (best of {res['repeats']}; exact == baseline: "
            f"{res['exact_equal']}; peak RSS {res['peak_rss_mb']:.0f} MB, "
            f"{res['peak_rss_mb_after_exact']:.0f} MB after exact/baseline)"
        )
        print(
            f"{'method':<20}{'build s':>9}{'search s':>10}{'QPS':>9}{'x baseline':>11}"
            f"{'recall@' + str(s['k']):>11}  note"
        )
        for r in res["methods"]:

            def f(key: str, fmt: str, r: dict = r) -> str:
                return format(r[key], fmt) if key in r else "-"

            print(
                f"{r['method']:<20}{f('build_s', '.2f'):>9}{f('search_s', '.3f'):>10}"
                f"{f('qps', '.0f'):>9}{f('speedup_vs_baseline', '.2f'):>11}{f('recall', '.3f'):>11}"
                f"  {r.get('note', '')}"
            )
        lat = res["single_query_ms"]
        print(
            f"ours exact, single query: p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms "
            f"({lat['n']} queries)"
        )
        if "chunk_sweep_s" in res:
            sweep = ", ".join(f"{c}: {t:.3f}s" for c, t in res["chunk_sweep_s"].items())
            print(f"chunk-size sweep (rows per product, {s['queries']} queries): {sweep}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.search_speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="corpus sizes, comma-separated"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 10000,100000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of N (N-1 above 200k vectors)")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument(
        "--baseline-mem-gb",
        type=float,
        default=4.0,
        help="block the baseline's queries above this much working memory",
    )
    parser.add_argument(
        "--chunk-sweep",
        type=int,
        default=100_000,
        help="corpus size at which to time several chunk sizes (0: none)",
    )
    parser.add_argument(
        "--hnsw-max-size",
        type=int,
        default=100_000,
        help="skip HNSW above this size (its build is ~1 s per 1000 vectors on 2 cores)",
    )
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--hnsw-ef-construction", type=int, default=80)
    parser.add_argument("--hnsw-ef-search", type=int, default=64)
    parser.add_argument(
        "--ivf-nlist-factor", type=float, default=1.0, help="nlist = factor * sqrt(n)"
    )
    parser.add_argument("--ivf-nprobe", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the figures")
    args = parser.parse_args(argv)
    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    if not sizes or min(sizes) <= args.k:
        parser.error("--sizes must be corpus sizes larger than --k")

    t_start = time.perf_counter()
    x_all = mixture(max(sizes), args.dim, seed=args.seed)
    q = mixture(args.queries, args.dim, seed=args.seed + 1)
    result: dict[str, Any] = {
        "benchmark": "search_speed",
        "machine": machine(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "sizes": [],
    }
    result["settings"]["sizes"] = sizes
    for n in sorted(sizes):
        result["sizes"].append(bench_size(n, x_all, q, args))
        print(f"[{n:,} vectors done, {time.perf_counter() - t_start:.0f} s elapsed]", flush=True)
    result["total_s"] = time.perf_counter() - t_start
    print_table(result)
    if args.out:
        save_result(args.out, result)
        plot_times(result, args.out.with_suffix(".png"))
        print(f"\nsaved {args.out} and {args.out.with_suffix('.png')}")
    return result


def plot_times(result: dict[str, Any], path: Path) -> None:
    """Search time of each method against corpus size (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = {}
    for size in result["sizes"]:
        for m in size["methods"]:
            if m.get("search_s"):
                series.setdefault(m["method"], []).append((size["size"], m["search_s"]))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, points in series.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("vectors in the index")
    ax.set_ylabel(f"seconds for {result['settings']['queries']} queries")
    ax.set_title("Batch search time against corpus size")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
