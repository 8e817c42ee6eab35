"""How many ``final`` answers of the corpora convert from MathML to SymPy, and why the rest do not.

Usage::

    python -m benchmarks.symbolic_coverage [--corpus-dir DIR] [--out FILE.json] [--examples N]
                                           [--verify] [--choice FILE] [--timeout S]

Prints one line per corpus file (records, converted, share, milliseconds per formula), the most
frequent reasons for failures (specifics such as the offending text are folded into ``…``) and
saves the same figures as JSON with the machine they were measured on.

With ``--verify`` it also measures the answer checker (:func:`mathcore.symbolic.verify`, through
a worker process, each call under ``--timeout``): the VERIFIED share on the gold ``final`` of
every mathematics_dataset and MATH record, the REFUTED share on the wrong options of the
multiple-choice file, and every gold answer REFUTED (which should never happen).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.machine import DEFAULT_DATA, machine, save_result

DEFAULT_CORPUS = DEFAULT_DATA / "corpus"
FILES = ("gsm8k.jsonl", "math.jsonl", "mathematics_dataset.jsonl")


def reason_class(reason: str) -> str:
    """Fold the specifics of a reason: ``unexpected text 'odd'`` -> ``unexpected text …``."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|\b\d+\b", "…", reason)


def measure(path: Path, examples: int = 2) -> dict:
    """Convert every ``final`` field of one JSONL corpus file."""
    from mathcore.symbolic import to_sympy

    total = converted = 0
    reasons: Counter = Counter()
    samples: dict[str, list[str]] = {}
    start = time.perf_counter()
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            final = record.get("final")
            if not final:
                continue
            total += 1
            result = to_sympy(final)
            if result.ok:
                converted += 1
                continue
            cls = reason_class(result.reason)
            reasons[cls] += 1
            if len(samples.setdefault(cls, [])) < examples:
                samples[cls].append(f"{record.get('id', line_no)}: {result.reason}")
    seconds = time.perf_counter() - start
    return {
        "file": path.name, "records": total, "converted": converted,
        "share": converted / total if total else 0.0,
        "ms_per_formula": 1000 * seconds / total if total else 0.0,
        "reasons": dict(reasons.most_common()),
        "examples": {k: samples[k] for k, _ in reasons.most_common()},
    }


def measure_verify(corpus_dir: Path, choice: Path, timeout: float) -> dict:
    """Answer-checker figures: gold answers of the corpora and wrong options of *choice*."""
    from mathcore.symbolic import Check, WorkerPool, verify

    figures: dict = {}
    with WorkerPool(size=1) as pool:
        pool.start()
        for name in ("mathematics_dataset.jsonl", "math.jsonl"):
            path = corpus_dir / name
            if not path.exists():
                continue
            counts: Counter = Counter()
            refuted = []
            start = time.perf_counter()
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                verdict = verify(record["question"], record["final"], timeout, pool=pool)
                counts[verdict.value] += 1
                if verdict is Check.REFUTED:
                    refuted.append(record["id"])
            total = sum(counts.values())
            figures[f"gold:{name}"] = {
                "records": total, "counts": dict(counts),
                "verified_share": counts["verified"] / total, "refuted_gold": refuted,
                "ms_per_check": 1000 * (time.perf_counter() - start) / total}
        if choice.exists():
            gold_counts: Counter = Counter()
            wrong_counts: Counter = Counter()
            refuted_gold = []
            start = time.perf_counter()
            for line in choice.read_text(encoding="utf-8").splitlines():
                item = json.loads(line)
                for k, option in enumerate(item["options"]):
                    verdict = verify(item["question"], option, timeout, pool=pool)
                    if k == item["correct"]:
                        gold_counts[verdict.value] += 1
                        if verdict is Check.REFUTED:
                            refuted_gold.append(item["id"])
                    else:
                        wrong_counts[verdict.value] += 1
            n_wrong = sum(wrong_counts.values())
            n_gold = sum(gold_counts.values())
            figures[f"choice:{choice.name}"] = {
                "items": n_gold, "gold_counts": dict(gold_counts),
                "wrong_counts": dict(wrong_counts),
                "verified_share_gold": gold_counts["verified"] / n_gold,
                "refuted_share_wrong": wrong_counts["refuted"] / n_wrong,
                "refuted_gold": refuted_gold,
                "ms_per_check": 1000 * (time.perf_counter() - start) / (n_gold + n_wrong)}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.symbolic_coverage",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-dir", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/symbolic_coverage.json"))
    parser.add_argument("--top", type=int, default=10, help="reasons shown per file")
    parser.add_argument("--examples", type=int, default=2, help="examples kept per reason")
    parser.add_argument("--verify", action="store_true", help="also measure the answer checker")
    parser.add_argument("--choice", type=Path, default=None,
                        help="multiple-choice JSONL (default: <corpus-dir>/../tasks/choice/"
                             "mathematics_dataset.jsonl)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per check")
    args = parser.parse_args(argv)

    import sympy

    results = []
    for name in FILES:
        path = args.corpus_dir / name
        if not path.exists():
            print(f"{path}: missing, skipped", file=sys.stderr)
            continue
        results.append(measure(path, args.examples))
    if not results:
        print(f"no corpus files under {args.corpus_dir}", file=sys.stderr)
        return 1
    total = sum(r["records"] for r in results)
    converted = sum(r["converted"] for r in results)
    overall: Counter = Counter()
    for r in results:
        overall.update(r["reasons"])

    info = machine()
    print(f"MathML -> SymPy coverage of `final` answers (sympy {sympy.__version__}, "
          f"python {info['python']}, {info['cores']} cores, {info['platform']})")
    print(f"{'file':28s} {'records':>8s} {'converted':>10s} {'share':>7s} {'ms/formula':>11s}")
    for r in results:
        print(f"{r['file']:28s} {r['records']:8d} {r['converted']:10d} {r['share']:7.2%} "
              f"{r['ms_per_formula']:11.2f}")
    print(f"{'all':28s} {total:8d} {converted:10d} {converted / total:7.2%}")
    for r in results:
        if r["reasons"]:
            print(f"\n{r['file']}: top reasons for the {r['records'] - r['converted']} failures")
            for reason, count in list(r["reasons"].items())[: args.top]:
                print(f"  {count:6d}  {reason}   e.g. {r['examples'][reason][0]}")
    report = {"benchmark": "symbolic_coverage", "sympy": sympy.__version__, "machine": info,
              "corpus_dir": str(args.corpus_dir), "files": results,
              "all": {"records": total, "converted": converted, "share": converted / total,
                      "reasons": dict(overall.most_common())}}
    if args.verify:
        choice = args.choice or args.corpus_dir.parent / "tasks" / "choice" / \
            "mathematics_dataset.jsonl"
        report["verify"] = figures = measure_verify(args.corpus_dir, choice, args.timeout)
        print(f"\nAnswer checker (verify, {args.timeout:g} s limit per check, one worker)")
        for key, f in figures.items():
            if key.startswith("gold:"):
                print(f"  {key:34s} VERIFIED {f['verified_share']:7.2%} of {f['records']} gold "
                      f"answers  {f['counts']}  refuted gold: {len(f['refuted_gold'])} "
                      f"{f['refuted_gold'][:5]}  {f['ms_per_check']:.1f} ms/check")
            else:
                print(f"  {key:34s} VERIFIED {f['verified_share_gold']:7.2%} of {f['items']} "
                      f"correct options {f['gold_counts']}; REFUTED "
                      f"{f['refuted_share_wrong']:7.2%} of wrong options {f['wrong_counts']}; "
                      f"refuted gold: {len(f['refuted_gold'])}  {f['ms_per_check']:.1f} ms/check")
    save_result(args.out, report, sort_keys=True)
    print(f"\nsaved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
