"""Scale benchmark: build and query an index of N synthetic records on this machine.

    python -m benchmarks.scale --records 1000000 [--encode-sample 10000] \\
        --out build/bench/scale-1m.json

The corpus is :mod:`benchmarks.synth`'s (real dev records, numbers and wording varied),
generated into ``--work`` when missing.  What is measured and what is not:

* **measured**: loading into the SQLite store (the project's loader, ``index.corpora``), the
  BM25 build (``index.parts.update_lexical``), each vector index build (``index.VectorIndex``:
  exact float32, exact float16, HNSW, IVF-PQ) with its save, the size on disk of every part,
  peak memory per stage (RSS of the process and its workers, sampled every 0.2 s), and query
  latency p50/p95 for one query and for batches of 64: dense exact (float32, float16),
  HNSW and IVF-PQ with their recall@10 against exact float32, BM25, and hybrid (z-score
  fusion, depth 100, :class:`retriever.HybridRetriever`).
* **encoded for real on a sample**: the first ``--encode-sample`` synthetic records (a random
  sample of the sources: see synth) and the answers of all source records, with
  ``--backend`` (default onnx-int8) on CPU.  That gives the encode rate and the cosine between
  a variant and its source record.
* **derived**: the vectors of every other record: its source record's real vector turned by
  an isotropic random direction so that the cosine to the source follows the measured
  distribution (drawn from the measured cosines of the same dataset and the same kind of
  variant: numbers scaled or wording only), renormalised.  The encode stage at N is
  **projected** from the measured rate.

Query vectors are the match task's real questions, encoded for real; the query encoding
latency is reported on its own row (dense and hybrid rows are search time after encoding).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result

logger = logging.getLogger(__name__)

K = 10
BATCH = 64


@dataclass
class ScaleConfig:
    """What to build and measure.

    Args:
        records: corpus size N.
        encode_sample: synthetic records encoded for real (the rest derived).
        data: the dev data folder (sources and match queries).
        work: where the corpus, the index folder and the encoding cache go.
        corpus: the synthetic corpus (default: ``work/synth-<N>.jsonl.gz``, generated).
        backend: the encoder backend of the sample and the queries.
        single_queries: one-query searches timed per system.
        batches: batches of 64 queries timed per system.
        recall_queries: queries for recall@10 against exact search.
        hnsw: HNSW parameters.
        ivfpq: IVF-PQ parameters.
        kinds: the vector indexes to build.
        seed: seed of the corpus and of the derived vectors.
    """

    records: int
    encode_sample: int = 10_000
    data: Path = DEFAULT_DATA
    work: Path = Path("build/bench/scale")
    corpus: Path | None = None
    backend: str = "onnx-int8"
    single_queries: int = 100
    batches: int = 8
    recall_queries: int = 1000
    hnsw: dict = field(default_factory=lambda: {"M": 32, "efConstruction": 80,
                                                "efSearch": 128})
    ivfpq: dict = field(default_factory=lambda: {"nlist": None, "nprobe": 32, "pq_m": 48,
                                                 "pq_bits": 8})
    kinds: tuple[str, ...] = ("exact", "exact-f16", "hnsw", "ivfpq")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.records < 1 or self.encode_sample < 1:
            raise ValueError("records and encode_sample must be at least 1")
        self.encode_sample = min(self.encode_sample, self.records)
        self.work = Path(self.work)
        if self.corpus is None:
            self.corpus = self.work / f"synth-{label(self.records)}.jsonl.gz"
        unknown = set(self.kinds) - {"exact", "exact-f16", "hnsw", "ivfpq"}
        if unknown or "exact" not in self.kinds:
            raise ValueError(f"kinds must include exact and come from exact, exact-f16, hnsw, "
                             f"ivfpq; got {self.kinds}")


def label(n: int) -> str:
    """1000000 -> '1m', 100000 -> '100k'."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


# --- memory -----------------------------------------------------------------------------------

class RssSampler:
    """Peak resident memory of this process and its children, sampled in a thread."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self._proc, self._every = psutil.Process(), every
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            with contextlib.suppress(Exception):  # a worker may exit while being read
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._peak = max(self._peak, self.rss())

    def reset(self) -> int:
        now = self.rss()
        self._peak = now
        return now

    @property
    def peak(self) -> int:
        return max(self._peak, self.rss())

    def close(self) -> None:
        self._stop.set()


MIB = 2**20


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) and its finished workers: on a
    shared machine a stage's CPU time says more about its cost than its wall time."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Stages:
    """Seconds and memory of each stage, in order."""

    def __init__(self) -> None:
        self.sampler = RssSampler()
        self.rows: dict[str, dict[str, Any]] = {}

    @contextlib.contextmanager
    def stage(self, name: str, **facts: Any) -> Iterator[dict[str, Any]]:
        start_rss = self.sampler.reset()
        row: dict[str, Any] = dict(facts)
        logger.info("stage %s ...", name)
        t0, c0 = time.perf_counter(), cpu_seconds()
        yield row
        row["seconds"] = round(time.perf_counter() - t0, 2)
        row["cpu_seconds"] = round(cpu_seconds() - c0, 2)
        row["peak_rss_mib"] = round(self.sampler.peak / MIB)
        row["rss_before_mib"] = round(start_rss / MIB)
        row.setdefault("status", "measured")
        self.rows[name] = row
        logger.info("stage %s: %.1f s, peak %d MiB", name, row["seconds"], row["peak_rss_mib"])


def disk_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- vectors ----------------------------------------------------------------------------------

def parse_synth_id(rid: str) -> tuple[int, str]:
    """``synth-<n>-<source id>`` -> ``(n, source id)``."""
    _, n, source = rid.split("-", 2)
    return int(n), source


def source_vectors(cfg: ScaleConfig, encoder: Any, sources: list[dict]) -> tuple[dict, dict]:
    """Real vectors of every source record's answer (cached in ``work``), and the facts of
    their encoding."""
    from mathcore.records import Record, derive

    cache = cfg.work / f"sources-{encoder.spec.checksum[:12]}-{encoder.backend}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        ids = [str(i) for i in data["ids"]]
        facts = json.loads(str(data["facts"]))
        facts["cached"] = str(cache)
        return dict(zip(ids, data["vectors"], strict=True)), facts
    texts = [derive(Record(id=s["id"], question=s.get("question") or "", answer=s["answer"],
                           final=s.get("final"))).answer_text for s in sources]
    t0 = time.perf_counter()
    vectors = encoder.encode(texts, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    facts = {"records": len(texts), "seconds": round(seconds, 2),
             "records_per_second": round(len(texts) / seconds, 1)}
    cfg.work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, ids=np.array([s["id"] for s in sources]), vectors=vectors,
             facts=json.dumps(facts))
    return dict(zip([s["id"] for s in sources], vectors, strict=True)), facts


def calibrated_directions(base: np.ndarray, cosines: np.ndarray,
                          rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at the given cosines from the unit rows of *base*, each turned towards an
    isotropic random direction (orthogonal to its base row)."""
    noise = rng.standard_normal(base.shape, dtype=np.float32)
    noise -= np.einsum("ij,ij->i", noise, base)[:, None] * base
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    c = cosines.astype(np.float32)[:, None]
    out = c * base + np.sqrt(np.clip(1 - c * c, 0, None)) * noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def quantiles(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {}
    q = np.quantile(x, [0.05, 0.5, 0.95])
    return {"mean": round(float(x.mean()), 4), "p05": round(float(q[0]), 4),
            "p50": round(float(q[1]), 4), "p95": round(float(q[2]), 4), "n": int(x.size)}


# --- latency ----------------------------------------------------------------------------------

def latency(fn: Any, items: list, warmup: int = 1) -> dict[str, float]:
    """p50/p95 wall milliseconds of ``fn(item)`` over *items* (after *warmup* untimed calls),
    and the p50 of the process's CPU milliseconds (all threads) per call."""
    for item in items[:warmup]:
        fn(item)
    times, cpu = [], []
    for item in items:
        t0, c0 = time.perf_counter(), time.process_time()
        fn(item)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    t = np.array(times)
    return {"p50_ms": round(float(np.percentile(t, 50)), 2),
            "p95_ms": round(float(np.percentile(t, 95)), 2),
            "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 2), "n": len(times)}


class LookupEncoder:
    """Hands the dense retriever the query vectors encoded beforehand (so its latency is the
    search's; the encoding is timed on its own)."""

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        self._rows = {t: i for i, t in enumerate(texts)}
        self._vectors = vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._vectors[[self._rows[t] for t in texts]]


def source_recall(ids: np.ndarray, rowid_source: np.ndarray, relevant: np.ndarray) -> float:
    """Share of queries whose top-k holds a variant of their relevant source record."""
    hit = [(rowid_source[r[r >= 0]] == rel).any() for r, rel in zip(ids, relevant, strict=True)]
    return round(float(np.mean(hit)), 4)


# --- the benchmark ----------------------------------------------------------------------------

def run(cfg: ScaleConfig) -> dict[str, Any]:
    """Builds and measures everything (see the module's docstring); returns the result."""
    from benchmarks.synth import SynthConfig, generate, read_sources, scalable
    from index import LexicalIndex, VectorIndex, recall_against_exact
    from index.corpora import LoadConfig, load_corpora
    from index.parts import update_lexical
    from index.vectors import choose_kind
    from mathcore.records import query_text
    from mathcore.store import Store
    from retriever import DenseRetriever, Encoder, HybridRetriever, LexicalRetriever

    n = cfg.records
    cfg.work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"benchmark": "scale", "records": n,
                              "config": json.loads(json.dumps(asdict(cfg), default=str))}
    sources = read_sources(cfg.data)
    if not cfg.corpus.is_file():
        result["corpus"] = generate(SynthConfig(cfg.data, n, cfg.corpus, cfg.seed))
    else:
        result["corpus"] = {"file": str(cfg.corpus), "reused": True}
    result["corpus"]["bytes"] = cfg.corpus.stat().st_size
    index_dir = cfg.work / f"index-{label(n)}"
    if index_dir.exists():
        shutil.rmtree(index_dir)
    st = Stages()

    # 1. The store, through the project's loader.
    with st.stage("load", what="parse + linearise + SQLite (index.corpora, 2 workers)") as row:
        report = load_corpora(LoadConfig([cfg.corpus], index_dir, workers=2, progress=False,
                                         batch_size=2000))
        row.update(records=report.added, rejects=report.rejected,
                   records_per_second=round(report.rate))
    store = Store(index_dir / "records.sqlite")

    # 2. BM25, through the index's own stage.
    with st.stage("bm25", what="analyze + bm25s build + save (index.parts.update_lexical)"):
        lexical_section = update_lexical(index_dir, store, None, progress=False)

    # 3. Ids -> source records (which source each row is a variant of).
    rowids, row_source_ids, row_n = [], [], []
    for batch in store.iter_column("id", batch=50_000):
        for rowid, rid in batch:
            s_n, s_id = parse_synth_id(rid)
            rowids.append(rowid)
            row_n.append(s_n)
            row_source_ids.append(s_id)
    rowids_a = np.asarray(rowids, dtype=np.int64)
    source_pos = {s["id"]: i for i, s in enumerate(sources)}
    row_source = np.asarray([source_pos[s] for s in row_source_ids], dtype=np.int64)
    del row_source_ids
    # Search results are rowids: the source of each rowid (-1 for none).
    rowid_source = np.full(int(rowids_a.max()) + 1, -1, dtype=np.int64)
    rowid_source[rowids_a] = row_source
    # Derived cosines are drawn per bucket: the dataset, and numbers scaled or wording only.
    bucket_names: dict[tuple[str, bool], int] = {}
    bucket_of_source = np.asarray(
        [bucket_names.setdefault((s.get("source", ""), scalable(s)), len(bucket_names))
         for s in sources], dtype=np.int64)

    # 4. Encoding: sources and a sample for real, the rest derived.
    encoder = Encoder(device="cpu", backend=cfg.backend)
    with st.stage("encode_sources", what=f"{len(sources)} source answers, {cfg.backend}") as row:
        src_vec, src_facts = source_vectors(cfg, encoder, sources)
        row.update(src_facts)
        if "cached" in src_facts:
            row["status"] = "measured earlier (cached)"
    base = np.stack([src_vec[s["id"]] for s in sources]).astype(np.float32)
    sample_rows = np.flatnonzero(np.asarray(row_n) < cfg.encode_sample)
    with st.stage("encode_sample", what=f"first {sample_rows.size} synthetic records, "
                                        f"{cfg.backend}") as row:
        texts = store.texts(rowids_a[sample_rows].tolist(), "answer_text")
        t0 = time.perf_counter()
        sample_vec = encoder.encode(texts, progress=sys.stderr.isatty())
        enc_seconds = time.perf_counter() - t0
        rate = sample_rows.size / enc_seconds
        row.update(records=int(sample_rows.size), records_per_second=round(rate, 1))
    del texts
    cos = np.einsum("ij,ij->i", sample_vec, base[row_source[sample_rows]])
    sample_bucket = bucket_of_source[row_source[sample_rows]]
    st.rows["encode_projected"] = {
        "what": f"all {n} records at the measured {rate:.1f} records/s",
        "seconds": round(n / rate, 1), "status": "projected"}

    with st.stage("derive_vectors", what="the rest from their source's real vector") as row:
        rng = np.random.default_rng(cfg.seed)
        vectors = np.empty((n, base.shape[1]), dtype=np.float32)
        is_sample = np.zeros(n, dtype=bool)
        is_sample[sample_rows] = True
        vectors[sample_rows] = sample_vec
        pools = {b: cos[sample_bucket == b] for b in np.unique(sample_bucket)}
        derived_cos = []
        for r0 in range(0, n, 100_000):
            rows = np.arange(r0, min(n, r0 + 100_000))
            rows = rows[~is_sample[rows]]
            if not rows.size:
                continue
            buckets = bucket_of_source[row_source[rows]]
            c = np.empty(rows.size, dtype=np.float32)
            for b in np.unique(buckets):
                where = buckets == b
                pool = pools.get(b, cos)  # a bucket the sample missed: all measured cosines
                c[where] = rng.choice(pool, size=int(where.sum()))
            vectors[rows] = calibrated_directions(base[row_source[rows]], c, rng)
            derived_cos.append(np.einsum("ij,ij->i", vectors[rows], base[row_source[rows]]))
        derived_cos_a = np.concatenate(derived_cos) if derived_cos else np.zeros(0)
        row.update(derived=int(n - sample_rows.size))
    result["vectors"] = {
        "encoded": int(sample_rows.size), "derived": int(n - sample_rows.size),
        "source_answers_encoded": len(sources), "backend": cfg.backend,
        "encoder": encoder.spec.name,
        "note": "vectors: the first encode_sample records encoded for real, the rest derived "
                "from their source record's real vector plus isotropic noise calibrated to the "
                "measured variant-source cosines (per dataset and variant kind), renormalised",
        "cosine_to_source_measured": quantiles(cos),
        "cosine_to_source_derived": quantiles(derived_cos_a)}
    del derived_cos, derived_cos_a

    # 5. Queries: the match task's questions, encoded for real.
    queries, relevant_src = [], []
    qrels = {}
    with open(cfg.data / "tasks" / "match" / "qrels.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            q, d, _ = line.rstrip("\n").split("\t")
            qrels[q] = d
    with open(cfg.data / "tasks" / "match" / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            queries.append(query_text(obj["text"]))
            relevant_src.append(source_pos.get(qrels.get(obj["_id"], ""), -1))
    relevant = np.asarray(relevant_src)
    with st.stage("encode_queries", what=f"{len(queries)} match-task questions") as row:
        qvec = encoder.encode(queries)
    one = latency(lambda t: encoder.encode([t]), queries[:cfg.single_queries])
    st.rows["encode_queries"]["single_query"] = one

    # 6. Vector indexes: build, save, size.
    ids = rowids_a
    built: dict[str, Path] = {}
    nlist = cfg.ivfpq.get("nlist") or int(max(1, min(round(np.sqrt(n)), n // 39)))
    specs = {"exact": {}, "exact-f16": {"dtype": "float16"}, "hnsw": dict(cfg.hnsw),
             "ivfpq": {**cfg.ivfpq, "nlist": nlist}}
    kinds = {"exact": "exact", "exact-f16": "exact", "hnsw": "hnsw", "ivfpq": "ivfpq"}
    for name in cfg.kinds:
        folder = index_dir / f"vectors-{name}"
        with st.stage(f"vectors_{name}", what=f"VectorIndex(kind={kinds[name]!r}, "
                                              f"{specs[name]}) add + save") as row:
            index = VectorIndex(vectors.shape[1], kind=kinds[name], **specs[name])
            step = 100_000 if kinds[name] == "hnsw" else n
            for r0 in range(0, n, step):
                index.add(ids[r0:r0 + step], vectors[r0:r0 + step])
                if step < n:
                    logger.info("  %s: %d / %d", name, min(n, r0 + step), n)
            t_save = time.perf_counter()
            meta = index.save(folder)
            row.update(save_seconds=round(time.perf_counter() - t_save, 2),
                       params=meta["params"])
        built[name] = folder
        del index
    del vectors

    # 7. Latency and recall, on indexes loaded as a server would (exact ones memory-mapped).
    qsingle = [qvec[i:i + 1] for i in range(min(cfg.single_queries, len(qvec)))]
    qbatches = [qvec[i:i + BATCH] for i in range(0, min(cfg.batches * BATCH, len(qvec)), BATCH)]
    rq = qvec[:cfg.recall_queries]
    lat: dict[str, dict[str, Any]] = {}
    loaded = {name: VectorIndex.load(folder, mmap=True) for name, folder in built.items()}
    _, truth = loaded["exact"].search(rq, K)
    for name, index in loaded.items():
        row = {"single": latency(lambda q, ix=index: ix.search(q, K), qsingle),
               "batch64": latency(lambda q, ix=index: ix.search(q, K), qbatches)}
        if name != "exact":
            row["recall_at_10"] = round(recall_against_exact(index, loaded["exact"], rq, K), 4)
        _, got = index.search(rq, K)
        row["source_recall_at_10"] = source_recall(got, rowid_source, relevant[:len(rq)])
        lat[f"dense {name}"] = row
        logger.info("dense %s: %s", name, row)
    lexical = LexicalIndex.load(index_dir / lexical_section["dir"], mmap=True)
    bm25 = LexicalRetriever(lexical)
    tsingle = [[t] for t in queries[:cfg.single_queries]]
    tbatches = [queries[i:i + BATCH] for i in range(0, min(cfg.batches * BATCH, len(queries)),
                                                     BATCH)]
    lat["bm25"] = {"single": latency(lambda t: bm25.search_texts(t, K), tsingle),
                   "batch64": latency(lambda t: bm25.search_texts(t, K), tbatches)}
    _, got = bm25.search_texts(queries[:cfg.recall_queries], K)
    lat["bm25"]["source_recall_at_10"] = source_recall(got, rowid_source, relevant[:len(rq)])
    lookup = LookupEncoder(queries, qvec)
    auto = choose_kind(n)
    auto_name = auto if auto in loaded else "exact"
    for name in dict.fromkeys(("exact", auto_name)):
        hybrid = HybridRetriever(DenseRetriever(loaded[name], lookup), bm25, depth=100)
        row = {"single": latency(lambda t, h=hybrid: h.search_texts(t, K), tsingle),
               "batch64": latency(lambda t, h=hybrid: h.search_texts(t, K), tbatches)}
        _, got = hybrid.search_texts(queries[:cfg.recall_queries], K)
        row["source_recall_at_10"] = source_recall(got, rowid_source, relevant[:len(rq)])
        lat[f"hybrid ({name})"] = row
    lat["query encoding"] = {"single": one, "backend": cfg.backend}
    result["latency"] = lat
    store.close()

    # 8. Disk.
    result["disk_bytes"] = {
        "corpus (jsonl.gz)": cfg.corpus.stat().st_size,
        "store (records.sqlite)": sum(disk_bytes(p) for p in index_dir.glob("records.sqlite*")),
        "bm25": disk_bytes(index_dir / lexical_section["dir"]),
        **{f"vectors {name}": disk_bytes(folder) for name, folder in built.items()}}
    result["stages"] = st.rows
    result["approximate_choice"] = {"chosen": auto, "rule": "index.vectors.choose_kind"}
    result["machine"] = machine()
    st.sampler.close()
    result["table"] = table(result)
    return result


# --- the table --------------------------------------------------------------------------------

def _mib(b: float) -> str:
    return f"{b / MIB:,.0f} MiB" if b < 2**30 else f"{b / 2**30:,.2f} GiB"


def table(result: dict[str, Any]) -> str:
    """The result as Markdown tables: build, disk, queries."""
    v = result["vectors"]
    lines = [f"Scale benchmark: {result['records']:,} synthetic records "
             f"(vectors: {v['encoded']:,} encoded, the rest derived: {v['derived']:,})", "",
             "| stage | wall s | CPU s | peak RSS | status |", "|---|---:|---:|---:|---|"]
    for name, row in result["stages"].items():
        rss = f"{row['peak_rss_mib']:,} MiB" if "peak_rss_mib" in row else ""
        cpu = f"{row['cpu_seconds']:,.1f}" if "cpu_seconds" in row else ""
        lines.append(f"| {name} | {row['seconds']:,.1f} | {cpu} | {rss} | {row['status']} |")
    lines += ["", "| part | on disk |", "|---|---:|"]
    lines += [f"| {k} | {_mib(b)} |" for k, b in result["disk_bytes"].items()]
    lines += ["", "| system | 1 query p50 / p95 ms (CPU p50) | 64 queries p50 / p95 ms | "
              "recall@10 vs exact | source found @10 |", "|---|---:|---:|---:|---:|"]
    for name, row in result["latency"].items():
        s = row["single"]
        b = row.get("batch64")
        lines.append(f"| {name} | {s['p50_ms']:,.1f} / {s['p95_ms']:,.1f} "
                     f"({s['cpu_p50_ms']:,.1f}) | "
                     + (f"{b['p50_ms']:,.1f} / {b['p95_ms']:,.1f}" if b else "") + " | "
                     + (f"{row['recall_at_10']:.3f}" if "recall_at_10" in row else "") + " | "
                     + (f"{row['source_recall_at_10']:.3f}" if "source_recall_at_10" in row
                        else "") + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--encode-sample", type=int, default=10_000)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--work", type=Path, default=Path("build/bench/scale"))
    p.add_argument("--corpus", type=Path, default=None,
                   help="a synthetic corpus of exactly --records records (default: generated)")
    p.add_argument("--backend", default="onnx-int8")
    p.add_argument("--kinds", default="exact,exact-f16,hnsw,ivfpq")
    p.add_argument("--hnsw-ef-construction", type=int, default=80)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--copy-to", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = ScaleConfig(records=args.records, encode_sample=args.encode_sample, data=args.data,
                      work=args.work, corpus=args.corpus, backend=args.backend,
                      kinds=tuple(args.kinds.split(",")),
                      hnsw={"M": 32, "efConstruction": args.hnsw_ef_construction,
                            "efSearch": 128})
    result = run(cfg)
    print(result["table"])
    print(describe(result["machine"]))
    save_result(args.out, result)
    if args.copy_to:
        save_result(args.copy_to, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
