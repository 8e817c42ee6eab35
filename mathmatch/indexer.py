"""Index folders: build one from corpora, describe one.

An index folder holds ``records.sqlite`` (the store), ``rejects.jsonl`` and ``manifest.json``;
the retrieval stages add their own files beside them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mathcore.store import Store
from mathmatch.build import REJECTS_FILE, STORE_FILE, LoadConfig, LoadReport, load_corpora
from mathmatch.manifest import load_or_new, read_manifest, write_manifest

logger = logging.getLogger(__name__)


def store_section(store: Store, report: LoadReport | None, previous: dict) -> dict[str, Any]:
    """The manifest's description of the store, with the timings of the latest load."""
    section = {
        "file": STORE_FILE,
        "records": store.count(),
        "rejects": store.reject_count(),
        "by_source": store.count_by_source(),
        "checksum": store.checksum(),
        "sources": store.sources(),
    }
    timings = dict(previous.get("timings", {}))
    if report is not None and (report.added or report.rejected):
        timings["load"] = {"seconds": round(report.seconds, 3),
                           "records": report.added + report.rejected,
                           "records_per_second": round(report.rate, 1)}
    section["timings"] = timings
    return section


def build_store(cfg: LoadConfig) -> tuple[LoadReport, dict]:
    """Load corpora into the index folder's store and update its manifest."""
    report = load_corpora(cfg)
    manifest = load_or_new(cfg.out)
    with Store(cfg.out / STORE_FILE) as store:
        manifest["store"] = store_section(store, report, manifest.get("store", {}))
    manifest["limits"] = asdict(cfg.limits)
    write_manifest(cfg.out, manifest)
    return report, manifest


def index_info(index_dir: Path) -> dict[str, Any]:
    """Counts, sources, rejects and file sizes of an index folder."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    files = {p.name: p.stat().st_size for p in sorted(index_dir.rglob("*")) if p.is_file()}
    info: dict[str, Any] = {"index": str(index_dir), "manifest": manifest, "files": files,
                            "total_bytes": sum(files.values())}
    rejects = index_dir / REJECTS_FILE
    if rejects.is_file():
        reasons: dict[str, int] = {}
        import json

        with open(rejects, encoding="utf-8") as fh:
            for line in fh:
                reason = json.loads(line)["reason"]
                kind = reason.split(":")[0] if ":" in reason else reason
                reasons[kind] = reasons.get(kind, 0) + 1
        info["reject_reasons"] = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    return info
