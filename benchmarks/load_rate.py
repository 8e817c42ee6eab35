"""Load rate of ``mathmatch index build`` without encoding: records/s into the store.

    python -m benchmarks.load_rate [CORPUS ...] [--workers N] [--repeat 3] [--out FILE.json]

Parses, checks and linearises every record and writes the store (what ``index build`` does
before encoding), into a fresh folder each time; reports the best of --repeat runs beside the
target of 5,000 records/s, with the split between reading, parsing and writing measured in
one process (workers=0).  Default corpus: ../shared/data/corpus/*.jsonl.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import DEFAULT_DATA, describe, machine, peak_rss_mib, save_result

TARGET = 5000.0
DEFAULT_CORPUS = DEFAULT_DATA / "corpus"


def _split(corpora: list[Path]) -> dict:
    """Seconds spent reading, parsing+linearising and writing, in one process."""
    from mathcore.loaders import iter_units, parse_unit
    from mathcore.records import derive
    from mathcore.store import Store, record_row

    t0 = time.perf_counter()
    units = [u for c in corpora for u in iter_units(c)]
    t1 = time.perf_counter()
    rows = []
    for u in units:
        rec = parse_unit(u)
        rows.append(record_row(rec, derive(rec)))
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "records.sqlite") as store:
            for i in range(0, len(rows), 1000):
                with store.transaction():
                    store.insert_rows(rows[i:i + 1000])
    t3 = time.perf_counter()
    return {"records": len(units), "read_s": round(t1 - t0, 3), "parse_s": round(t2 - t1, 3),
            "write_s": round(t3 - t2, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", nargs="*", type=Path)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("build/bench/load_rate.json"))
    args = p.parse_args(argv)
    corpora = args.corpus or sorted(DEFAULT_CORPUS.glob("*.jsonl"))
    if not corpora:
        p.error(f"no corpus given and none found in {DEFAULT_CORPUS}")
    from index.corpora import LoadConfig, load_corpora

    runs = []
    for _ in range(args.repeat):
        out = Path(tempfile.mkdtemp(prefix="mm-load-"))
        try:
            report = load_corpora(LoadConfig(corpora, out, workers=args.workers, progress=False))
        finally:
            shutil.rmtree(out, ignore_errors=True)
        runs.append({"records": report.added, "rejects": report.rejected,
                     "seconds": round(report.seconds, 3), "records_per_second": round(report.rate)})
    best = max(runs, key=lambda r: r["records_per_second"])
    split = _split(corpora)
    result = {"benchmark": "load_rate", "corpora": [str(c) for c in corpora],
              "workers": LoadConfig(corpora, Path("."), workers=args.workers).workers,
              "runs": runs, "best_records_per_second": best["records_per_second"],
              "target_records_per_second": TARGET,
              "meets_target": best["records_per_second"] >= TARGET,
              "single_process_split": split, "peak_rss_mib": round(peak_rss_mib(), 1),
              "machine": machine()}
    print(f"machine: {describe(result['machine'])}")
    print(f"corpus:  {best['records']} records, {best['rejects']} rejects, "
          f"{len(corpora)} files; workers={result['workers']}")
    for i, r in enumerate(runs, 1):
        print(f"run {i}:   {r['seconds']:.2f} s  {r['records_per_second']:>6} records/s")
    print(f"best:    {best['records_per_second']} records/s  (target {TARGET:.0f}: "
          f"{'met' if result['meets_target'] else 'NOT met'})")
    s = split
    total = s["read_s"] + s["parse_s"] + s["write_s"]
    print(f"one process, {s['records']} records: read {s['read_s']} s, parse+linearise "
          f"{s['parse_s']} s, write {s['write_s']} s ({s['records'] / total:.0f} records/s)")
    print(f"peak memory: {result['peak_rss_mib']} MiB")
    save_result(args.out, result)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
