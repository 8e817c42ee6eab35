"""Multiple choice: ``mathmatch choose`` with and without an index, against the nearest option.

    python -m benchmarks.choice [--index DIR] [--data ../shared/data] [--limit N]
                                [--out build/bench/choice.json]

For each ``tasks/choice/*.jsonl`` file: accuracy of the symbolic chooser alone, with the
duplicate evidence of ``--index`` (the item's own record, same id, is never used), and of the
baseline that picks the option whose all-MiniLM-L6-v2 embedding is nearest the question.

Read the mathematics_dataset figure with care: its questions are records of the dev corpus,
and the answer checker was developed on corpus records, so it is an in-sample figure for the
checker (the gold answers are not looked up: the chooser never reads a record by the item's
id). AQuA questions are not in the corpus and are word problems the checker does not read.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result

NOTE = ("note: the mathematics_dataset items are records of the dev corpus and the answer "
        "checker was developed on corpus records (an in-sample figure for the checker); the "
        "chooser never looks a record up by the item's id, and --index excludes it")


def _evaluate(path: Path, index: Path | None, limit: int | None) -> dict:
    """Run the chooser over one items file (the first *limit* items)."""
    import itertools
    import tempfile

    from mathmatch.choose import ChooseConfig, read_items, run_choose

    items = path
    if limit:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
        with open(path, encoding="utf-8") as fh:
            tmp.writelines(itertools.islice(fh, limit))
        tmp.close()
        items = Path(tmp.name)
    t0 = time.perf_counter()
    out = io.StringIO()
    result = run_choose(ChooseConfig(items=items, index=index), out)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    gold = {it.id: it.correct for it in read_items(items)}
    # How decisions were made: the top score's band (20+: verified, 10+: unknown...).
    result["decided_by"] = dict(Counter(
        "verification" if max(r["scores"]) >= 20 and sorted(r["scores"])[-2] < 20
        else "fallback" for r in rows))
    result["right_by_decision"] = dict(Counter(
        ("verification" if max(r["scores"]) >= 20 and sorted(r["scores"])[-2] < 20
         else "fallback") for r in rows if gold.get(r["id"]) == r["choice"]))
    if limit:
        Path(items).unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, default=None,
                   help="index folder for the duplicate evidence (also measured without)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--limit", type=int, default=None, help="only the first N items per file")
    p.add_argument("--out", type=Path, default=Path("build/bench/choice.json"))
    args = p.parse_args(argv)
    from benchmarks.task_baselines import choice_baseline
    from retriever.encoder import BASE_ENCODER, Encoder

    enc = Encoder(BASE_ENCODER, device="cpu")  # what mathmatch.choose uses
    result: dict = {"note": NOTE, "files": {}, "machine": machine()}
    for path in sorted((args.data / "tasks" / "choice").glob("*.jsonl")):
        res = {"symbolic": _evaluate(path, None, args.limit)}
        if args.index is not None:
            res["symbolic+index"] = _evaluate(path, args.index, args.limit)
        res["nearest_option"] = choice_baseline(path, enc) if not args.limit else None
        result["files"][path.stem] = res
    print(f"machine: {describe(result['machine'])}")
    print(NOTE)
    print(f"{'file':<22}{'system':<20}{'accuracy':>9}{'items':>7}{'seconds':>9}  decided by")
    for name, res in result["files"].items():
        for system, r in res.items():
            if r is None:
                continue
            print(f"{name:<22}{system:<20}{r['accuracy']:9.4f}{r['items']:7d}"
                  f"{r.get('seconds', float('nan')):9.1f}  {r.get('decided_by', '')}")
    save_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
