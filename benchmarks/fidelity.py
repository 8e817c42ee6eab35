"""How faithfully does the linear text render MathML written by other producers?

Usage::

    python -m benchmarks.fidelity [--suite DIR] [--before DIR] [--out FILE.json] [--show N]

The suite is ``tests/data/fidelity/*.jsonl``: snippets from public producers (the MathML 4
specification, MathJax, LaTeXML, latex2mathml, MDN), each with the linear text a careful reader
would write (see ``tests/test_fidelity.py`` for the rules).  A snippet is *faithful* when the
linearizer's output equals its expected text once runs of white space are one space; a snippet
the parser refuses is a *rejected* valid input, and not faithful.

``--before DIR`` scores another copy of the linearizer in the same run, e.g. the code before a
change::

    mkdir -p /tmp/before/mathcore && for f in $(git ls-files mathcore); do
        mkdir -p /tmp/before/$(dirname $f); git show HEAD:$f > /tmp/before/$f; done
    python -m benchmarks.fidelity --before /tmp/before

Each copy runs in its own process with only its folder on ``sys.path`` before the rest, so the
two never share a module.  Figures per producer are printed and saved as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.machine import describe, machine, save_result

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "data" / "fidelity"
OUT = ROOT / "benchmarks" / "results" / "fidelity.json"

# Run in a child process whose sys.path starts with the copy to score: reads the snippets as
# JSON on stdin, writes {id: [output or null, error or null]} on stdout.
_CHILD = r"""
import json, re, sys
from mathcore.linear import to_linear
from mathcore.mathml import MathMLError, parse_math
out = {}
for rid, mathml in json.load(sys.stdin):
    try:
        out[rid] = [re.sub(r"\s+", " ", to_linear(parse_math(mathml))).strip(), None]
    except MathMLError as exc:
        out[rid] = [None, str(exc)]
json.dump(out, sys.stdout, ensure_ascii=False)
"""


def load_suite(folder: Path = SUITE) -> list[dict]:
    """Every snippet of the suite, in file then line order."""
    rows = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows


def run_copy(code_root: Path, rows: list[dict]) -> dict[str, list]:
    """Outputs of the linearizer found under *code_root* (a folder holding ``mathcore/``)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(code_root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    done = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(
        [[r["id"], r["mathml"]] for r in rows]), capture_output=True, text=True, env=env,
        cwd=str(code_root), check=True)
    return json.loads(done.stdout)


def score(rows: list[dict], outputs: dict[str, list]) -> dict:
    """Snippets, faithful count and share, rejected count: overall and per producer."""
    def figures(group: list[dict]) -> dict:
        faithful = sum(outputs[r["id"]][0] == " ".join(r["expected"].split()) for r in group)
        rejected = sum(outputs[r["id"]][0] is None for r in group)
        return {"snippets": len(group), "faithful": faithful,
                "share": round(faithful / len(group), 4) if group else 0.0, "rejected": rejected}

    producers = sorted({r["producer"] for r in rows})
    return {"all": figures(rows),
            "producers": {p: figures([r for r in rows if r["producer"] == p]) for p in producers}}


def _print(name: str, result: dict) -> None:
    a = result["all"]
    print(f"{name}: {a['faithful']}/{a['snippets']} faithful ({a['share']:.1%}), "
          f"{a['rejected']} rejected")
    for producer, f in result["producers"].items():
        print(f"  {producer:45s} {f['faithful']:4d}/{f['snippets']:<4d} {f['share']:7.1%}"
              f"  rejected {f['rejected']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fidelity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=SUITE, help="folder of snippet JSONL files")
    parser.add_argument("--before", type=Path, help="a folder holding another copy of mathcore/")
    parser.add_argument("--out", type=Path, default=OUT, help="where to save the figures (JSON)")
    parser.add_argument("--show", type=int, default=0, metavar="N",
                        help="print N snippets that are not faithful, with both texts")
    args = parser.parse_args(argv)

    rows = load_suite(args.suite)
    copies = {"after": ROOT}
    if args.before:
        copies = {"before": args.before.resolve(), "after": ROOT}
    report = {"benchmark": "fidelity", "suite": str(args.suite), "snippets": len(rows),
              "producers": len({r["producer"] for r in rows}), "machine": machine()}
    print(f"{len(rows)} snippets from {report['producers']} producers ({describe()})")
    for name, root in copies.items():
        outputs = run_copy(root, rows)
        result = score(rows, outputs)
        result["code"] = str(root)
        report[name] = result
        _print(name, result)
        misses = [r for r in rows if outputs[r["id"]][0] != " ".join(r["expected"].split())]
        for r in misses[:args.show]:
            got = outputs[r["id"]]
            print(f"    {r['id']}: expected {r['expected']!r}, got "
                  f"{got[0]!r}" if got[0] is not None else f"    {r['id']}: rejected: {got[1]}")
    save_result(args.out, report)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
