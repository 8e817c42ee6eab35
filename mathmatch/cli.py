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


def cmd_index_build(args: argparse.Namespace) -> int:
    from mathmatch.build import LoadConfig
    from mathmatch.indexer import build_store

    cfg = LoadConfig(corpora=args.corpus, out=args.out, replace=args.replace, limits=_limits(args),
                     workers=args.workers, progress=_progress(args))
    report, manifest = build_store(cfg)
    store = manifest["store"]
    logger.info("loaded %d records, rejected %d, in %.1f s (%.0f records/s); the index holds "
                "%d records", report.added, report.rejected, report.seconds, report.rate,
                store["records"])
    if report.rejected:
        logger.warning("%d rejected records: see %s", report.rejected,
                       Path(args.out) / "rejects.jsonl")
    if store["records"] == 0:
        logger.error("nothing could be loaded")
        return 1
    if args.strict and store["rejects"]:
        logger.error("--strict: %d records were rejected", store["rejects"])
        return 1
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
    build.add_argument("--replace", action="store_true",
                       help="a record whose id is already in the index replaces it "
                            "(default: it is rejected as a duplicate)")
    build.add_argument("--strict", action="store_true",
                       help="exit with status 1 if any record is rejected")
    build.add_argument("--workers", type=int, default=None, metavar="N",
                       help="parsing processes (default: CPU count, at most 4; 0: none)")
    _add_limits(build)
    build.set_defaults(handler=cmd_index_build)

    info = isub.add_parser("info", help="describe an index folder", parents=[common],
                           description="Counts, sources, rejects and sizes of an index folder.")
    info.add_argument("dir", type=Path, metavar="DIR", help="index folder")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=cmd_index_info)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("mathmatch: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("mathmatch", "mathcore", "index", "retriever", "reranker", "tuning",
                 "benchmarks"):
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

    try:
        return args.handler(args)
    except CliError as exc:
        logger.error("%s", exc)
        return exc.status
    except (CorpusError, StoreError, ManifestError, BuildError, FileNotFoundError,
            ValueError) as exc:
        logger.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
