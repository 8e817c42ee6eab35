"""The ``mathmatch`` command.

Each subcommand builds a config and calls the library function the Python API exposes; heavy
imports happen inside the handlers, so ``mathmatch --help`` answers at once.

Exit status: 0 on success; 1 when nothing could be loaded, on any reject with ``--strict``, or
when ``index verify`` / ``index info`` find the folder damaged or unfinished; 2 on a usage error,
an input that cannot be read at all, or an index folder held by another writer; 3 on an internal
error (a bug: ``-v`` shows its traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from mathcore import __version__
from mathcore.options import add_options, from_args
from mathcore.outputs import atomic_output
from mathcore.runs import FORMATS, QUERY_FORMATS
from mathmatch.pipeline import MatchConfig
from retriever.retrievers import MODES

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

    return from_args(Limits, args)


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _load_config(args: argparse.Namespace, out: Path):
    from index.corpora import LoadConfig

    return from_args(LoadConfig, args, corpora=args.corpus, out=out, limits=_limits(args),
                     progress=_progress(args))


def _report_build(cfg, report, manifest: dict, out: Path) -> int:
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
    if cfg.load.strict and store["rejects"]:
        logger.error("--strict: %d records were rejected", store["rejects"])
        return 1
    return 0


def cmd_index_build(args: argparse.Namespace) -> int:
    from index.build import IndexConfig, build_index
    from retriever.encoder import ENCODERS

    load = _load_config(args, args.out)
    load.replace = False  # on build, --replace means a new index over the old one
    cfg = from_args(IndexConfig, args, load=load)
    with _ray_encoders(args, ENCODERS) as encoders:
        report, manifest = build_index(cfg, encoders, wait=args.wait, replace=args.replace,
                                       new=True)
    return _report_build(cfg, report, manifest, args.out)


def cmd_index_add(args: argparse.Namespace) -> int:
    from index.build import IndexConfig, build_index
    from index.manifest import read_manifest
    from retriever.encoder import ENCODERS

    manifest = read_manifest(args.dir)  # an existing index: its encoder and kind are kept
    cfg = from_args(IndexConfig, args, load=_load_config(args, args.dir),
                    vectors="dense" in manifest)
    with _ray_encoders(args, ENCODERS) as encoders:
        report, manifest = build_index(cfg, encoders, wait=args.wait)
    return _report_build(cfg, report, manifest, args.dir)


def cmd_index_remove(args: argparse.Namespace) -> int:
    from index.build import read_ids, remove_records
    from retriever.encoder import ENCODERS

    ids = list(dict.fromkeys(read_ids(args.ids)))
    absent, manifest = remove_records(args.dir, ids, ENCODERS, progress=_progress(args),
                                      wait=args.wait)
    logger.info("removed %d of %d ids; the index holds %d records", len(ids) - len(absent),
                len(ids), manifest["store"]["records"])
    if absent:
        shown = ", ".join(absent[:20]) + (f", ... ({len(absent) - 20} more)"
                                          if len(absent) > 20 else "")
        logger.warning("%d ids were not in the index: %s", len(absent), shown)
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from mathcore.options import from_args
    from mathcore.runs import iter_queries, write_run
    from mathmatch.pipeline import MatchConfig, Pipeline

    cfg = from_args(MatchConfig, args, progress=_progress(args))
    n = 0
    with atomic_output(args.out, inputs=[args.queries]) as out, \
            Pipeline(args.dir, cfg) as pipeline, \
            tqdm(unit="q", desc="matching", disable=not cfg.progress) as bar:
        queries = iter_queries(args.queries, args.queries_format)
        for batch, run in _ray_stream(args, cfg, queries) if args.ray else \
                pipeline.stream(queries):
            write_run(out, run, args.format, tag=f"mathmatch-{cfg.mode}")
            if out is sys.stdout:
                out.flush()
            n += len(batch)
            bar.update(len(batch))
    logger.info("matched %d queries (%s, k=%d)%s", n, cfg.mode, cfg.k,
                "" if str(args.out) == "-" else f" into {args.out}")
    return 0


def cmd_tune_reranker(args: argparse.Namespace) -> int:
    from tuning.reranker import RerankTuneConfig, RerankTuneError, tune_reranker

    cfg = from_args(RerankTuneConfig, args, index=args.dir, out=args.out,
                    progress=_progress(args))
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


def cmd_tune_embedder(args: argparse.Namespace) -> int:
    from tuning.embedder import TuneConfig, TuneError, tune_embedder

    cfg = from_args(TuneConfig, args, corpora=args.corpus, out=args.out,
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

    cfg = from_args(ChooseConfig, args, items=args.items, index=args.index)
    try:
        with atomic_output(args.out, inputs=[args.items]) as out, \
                tqdm(unit="item", desc="choosing", disable=not _progress(args)) as bar:
            result = run_choose(cfg, out, progress=bar.update)
    finally:
        from mathcore.symbolic import close_default_pool

        close_default_pool()  # no worker outlives the command (main may run in-process)
    if "accuracy" in result:
        print(f"accuracy {result['accuracy']:.4f} ({result['right']} of {result['items']} "
              "items with a correct answer)", file=sys.stderr if str(args.out) == "-" else
              sys.stdout)
    logger.info("chose for %d items%s", result["chosen"],
                "" if str(args.out) == "-" else f" into {args.out}")
    return 0


def cmd_dedup(args: argparse.Namespace) -> int:
    from dedup.finder import DedupConfig, run_dedup

    cfg = from_args(DedupConfig, args, index=args.dir, queries=args.queries,
                    queries_format=args.queries_format)
    with atomic_output(args.out, inputs=[args.queries]) as out:
        result = run_dedup(cfg, out, progress=_progress(args))
    if "groups" in result:
        logger.info("%d duplicate groups holding %d records", result["groups"],
                    result["records"])
    else:
        logger.info("%d questions checked, %d duplicate candidates", result["questions"],
                    result["duplicates"])
    return 0


def _system(spec: str, match):
    """``NAME=DIR[:MODE]`` of --compare (the other settings as for every system)."""
    from dataclasses import replace

    from mathmatch.bench import System

    name, sep, rest = spec.partition("=")
    if not sep or not name:
        raise CliError(f"--compare {spec!r}: expected NAME=DIR or NAME=DIR:MODE")
    path, _, mode = rest.rpartition(":") if rest.rsplit(":", 1)[-1] in MODES else \
        (rest, "", "dense")
    return System(name, Path(path), replace(match, mode=mode, symbolic=False, rerank=None))


def cmd_bench(args: argparse.Namespace) -> int:
    from mathcore.options import from_args
    from mathmatch.bench import BenchConfig, run_bench

    try:
        ks = [int(k) for k in args.k.split(",")]
    except ValueError:
        raise CliError(f"--k {args.k!r}: expected comma-separated integers, e.g. 1,10,100") \
            from None
    match = from_args(MatchConfig, args, progress=False)
    cfg = BenchConfig(index=args.dir, queries=Path(args.queries), qrels=Path(args.qrels),
                      queries_format=args.queries_format,
                      modes=args.mode.split(","), ks=ks, match=match, rerank=args.rerank,
                      symbolic=args.symbolic, extra=[_system(s, match) for s in args.compare],
                      stride=args.stride, limit=args.limit, out=Path(args.out))
    results = run_bench(cfg)
    metrics = results["metrics"]
    print(f"{'system':<24}{'group':<22}" + "".join(f"{m:>12}" for m in metrics) + f"{'q/s':>9}")
    for name, sysres in results["systems"].items():
        for group, scores in sysres["metrics"].items():
            qps = f"{sysres['queries_per_second']:9.1f}" if group == "all" else ""
            print(f"{name:<24}{group:<22}" + "".join(f"{scores[m]:12.4f}" for m in metrics) + qps)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from mathmatch.server import ServeConfig, serve

    try:
        serve(args.dir, from_args(ServeConfig, args))
    except ImportError as exc:  # the serve extra is not installed
        raise CliError(str(exc)) from None
    return 0


def cmd_index_verify(args: argparse.Namespace) -> int:
    from index.verify import format_report, verify_index

    report = verify_index(args.dir)
    print(format_report(report))
    return 0 if report.ok else 1


def cmd_index_info(args: argparse.Namespace) -> int:
    from index.build import index_info
    from index.verify import verify_index

    info = index_info(args.dir)  # no index, or a damaged manifest: said here (exit 2)
    report = verify_index(args.dir)
    info["status"] = report.status
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0 if report.ok else 1
    m = info["manifest"]
    store = m.get("store", {})
    print(f"index      {info['index']}  (format {m['format_version']}, mathmatch "
          f"{m['mathmatch_version']}, updated {m['updated']})")
    print(f"status     {report.status}")
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
    return 0 if report.ok else 1


def _add_queries_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queries-format", choices=QUERY_FORMATS, default="auto",
                   help="auto: a .jsonl/.json file is BEIR (_id, text) or records (id, "
                        "question) JSON, never read as text; another name is JSON when its "
                        "first line starts with '{', else text, one question a line "
                        "(default: auto)")


def _require_ray() -> None:
    from retriever.ray_encode import require_ray

    try:
        require_ray()
    except ImportError as exc:
        raise CliError(str(exc)) from None


@contextlib.contextmanager
def _ray_encoders(args: argparse.Namespace, encoders):
    """*encoders* as they are, or with --ray the same models encoding on Ray workers (the
    Ray started here is shut down after)."""
    if getattr(args, "ray", None) is None:
        yield encoders
        return
    from retriever.ray_encode import RayConfig, RayEncoders

    _require_ray()
    on_ray = RayEncoders(RayConfig(address=args.ray), progress=_progress(args))
    try:
        yield on_ray
    finally:
        on_ray.close()


def _ray_stream(args: argparse.Namespace, cfg: MatchConfig, queries):
    from mathmatch.ray_match import ray_stream
    from retriever.ray_encode import RayConfig

    _require_ray()
    return ray_stream(args.dir, cfg, queries, RayConfig(address=args.ray))


def _add_ray(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help=f"{what} on Ray (the `ray` extra): without ADDRESS a local Ray sized to "
                        "this machine; 'auto' joins the cluster of this node (ray start), "
                        "ray://HEAD:10001 a cluster's head (docs/scale.md)")


def _add_wait(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="when another command is writing the index folder, wait up to this "
                        "long for it (default: 0, refuse at once, naming it)")


def _add_verbosity(p: argparse.ArgumentParser, default) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="log details (debug)")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="log warnings and errors only; no progress bars")


def build_parser() -> argparse.ArgumentParser:
    from dedup.finder import DedupConfig
    from index.build import IndexConfig
    from index.corpora import LoadConfig
    from mathcore.mathml import Limits
    from mathmatch.choose import ChooseConfig
    from mathmatch.server import ServeConfig
    from tuning.embedder import TuneConfig
    from tuning.reranker import RerankTuneConfig

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
    build.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="index folder: new, empty, or an index to resume or grow (a folder "
                            "holding other files is refused)")
    build.add_argument("--replace", action="store_true",
                       help="DIR is an index: remove it (its files are listed) and build a new "
                            "one in its place")
    _add_wait(build)
    _add_ray(build, "encode the records")
    add_options(build, LoadConfig, skip=("replace",))
    add_options(build, IndexConfig)
    add_options(build, Limits)
    build.set_defaults(handler=cmd_index_build)

    add = isub.add_parser(
        "add", help="add corpora to an index", parents=[common],
        description="Load more corpora into an existing index folder: new records are encoded "
                    "with the index's own encoder and BM25 is rebuilt.")
    add.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    add.add_argument("corpus", nargs="+", type=Path, metavar="CORPUS", help="corpus file or folder")
    add_options(add, LoadConfig)
    _add_wait(add)
    _add_ray(add, "encode the new records")
    add_options(add, IndexConfig, only=("device", "backend", "batch_size", "chunk_rows"))
    add_options(add, Limits)
    add.set_defaults(handler=cmd_index_add)

    remove = isub.add_parser(
        "remove", help="remove records from an index", parents=[common],
        description="Remove records by id from the store, the vectors and BM25.")
    remove.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    remove.add_argument("--ids", type=Path, required=True, metavar="FILE",
                        help="record ids, one per line (or JSONL with an id field)")
    _add_wait(remove)
    remove.set_defaults(handler=cmd_index_remove)

    verify = isub.add_parser(
        "verify", help="check an index folder's parts against each other", parents=[common],
        description="Check the manifest, the record store, the vectors, the question vectors "
                    "and BM25 against each other (counts, ids, checksums, file sizes), read-only. "
                    "Exit status 1 when something is damaged or unfinished, with what and how to "
                    "repair it.")
    verify.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    verify.set_defaults(handler=cmd_index_verify)

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
    _add_queries_format(match)
    match.add_argument("--out", default="-", metavar="FILE",
                       help="output file ('-', the default, writes to standard output); "
                            "written whole when the run succeeds")
    match.add_argument("--format", choices=FORMATS, default="jsonl",
                       help="jsonl rows {query_id, hits: [{doc_id, score, rank}]} or TREC run "
                            "lines (default: jsonl)")
    add_options(match, MatchConfig)
    _add_ray(match, "spread the query batches over actors that each open the index read-only")
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
    add_options(choose, ChooseConfig)
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
    _add_queries_format(dedup)
    dedup.add_argument("--out", default="-", metavar="FILE",
                       help="output JSONL ('-', the default, writes to standard output)")
    add_options(dedup, DedupConfig)
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
    add_options(emb, TuneConfig)
    add_options(emb, Limits)
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
    add_options(rr, RerankTuneConfig)
    rr.set_defaults(handler=cmd_tune_reranker)

    srv = sub.add_parser(
        "serve", help="serve an index over HTTP: a JSON API and a search page",
        parents=[common],
        description="Serve an index folder: POST /search, POST /duplicates, GET /records/ID, "
                    "GET /healthz (OpenAPI schema at /docs) and a search page at /, with the "
                    "MathML rendered by the browser. Read-only: while `index add` runs on the "
                    "folder, answers come from its last committed state, and new records appear "
                    "once committed. Binds to 127.0.0.1 unless --host says otherwise.")
    srv.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    add_options(srv, ServeConfig)
    srv.set_defaults(handler=cmd_serve)

    bench = sub.add_parser(
        "bench", help="measure recall@k, MRR and nDCG of several systems", parents=[common],
        description="Match judged queries with each system (an index searched in one mode, "
                    "optionally reranked) and report R@k, MRR@10 and nDCG@10 overall and per "
                    "corpus source (metrics by ranx), with queries/s. Writes results.json "
                    "(figures, configuration, versions, machine, date, git revision), "
                    "results.md and results.png (recall@k curves).")
    bench.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    bench.add_argument("--queries", required=True, metavar="FILE", help="queries file")
    _add_queries_format(bench)
    bench.add_argument("--qrels", required=True, metavar="FILE",
                       help="BEIR qrels.tsv or TREC qrels")
    bench.add_argument("--mode", default="bm25,dense,hybrid", metavar="M[,M...]",
                       help="modes to compare (default: bm25,dense,hybrid)")
    bench.add_argument("--k", default="1,10,100", metavar="K[,K...]",
                       help="recall cut-offs (default: 1,10,100)")
    bench.add_argument("--rerank", default=None, metavar="CKPT",
                       help="also measure each mode followed by this cross-scorer ('default': "
                            "the one shipped with mathmatch)")
    bench.add_argument("--symbolic", action="store_true",
                       help="also measure each system followed by the symbolic tie-break (a "
                            "query's judged records are never counted as its duplicates)")
    add_options(bench, MatchConfig, only=BENCH_OPTIONS)
    bench.add_argument("--compare", action="append", default=[], metavar="NAME=DIR[:MODE]",
                       help="another system in the same run, e.g. tuned=idx-tuned:dense "
                            "(repeatable)")
    bench.add_argument("--stride", type=int, default=1, metavar="N",
                       help="only every N-th judged query: a subset spread over all sources "
                            "(default: 1, all)")
    bench.add_argument("--limit", type=int, default=None, metavar="N",
                       help="only the first N judged queries (a subset)")
    bench.add_argument("--out", default="results.json", metavar="FILE",
                       help="results JSON; .md and .png are written beside it")
    bench.set_defaults(handler=cmd_bench)
    return parser


# The match settings that bench takes for every system (mode and cut-offs are its own).
BENCH_OPTIONS = ("givens_weight", "formula_weight", "rerank_depth", "rerank_weight", "margin",
                 "symbolic_timeout", "duplicates", "device", "backend")

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
    from index.corpora import BuildError
    from index.lock import LockError
    from index.manifest import ManifestError
    from index.parts import StageError
    from mathcore.loaders import CorpusError
    from mathcore.store import StoreError
    from reranker.scorer import RerankerError

    try:
        return args.handler(args)
    except CliError as exc:
        logger.error("%s", exc)
        return exc.status
    except (CorpusError, StoreError, ManifestError, BuildError, StageError, RerankerError,
            LockError,
            FileNotFoundError, ValueError, RuntimeError) as exc:
        logger.debug("where it was raised:", exc_info=True)
        logger.error("%s", exc)
        return 2
    except OSError as exc:  # a file the system would not let us read or write
        logger.debug("where it was raised:", exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        logger.error("%s%s", where, exc.strerror or exc)
        return 2
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        logger.error("interrupted; run the same command again to resume")
        return 130
    except Exception as exc:  # a bug: one line, or with -v the traceback
        if args.verbose:
            raise
        logger.error("internal error (%s: %s): this is a bug in mathmatch; please report it "
                     "with the output of the same command run with -v", type(exc).__name__, exc)
        return 3


if __name__ == "__main__":
    sys.exit(main())
