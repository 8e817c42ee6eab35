"""The reproduction matrix: run each condition's commands, check its figures.

    python -m benchmarks.matrix [NAME ...] [--data ../shared/data] [--work build/bench]

A condition (``benchmarks/conditions/*.yaml``) names the commands that produce a results JSON
on the dev data and the figures expected in it::

    name: match-dev
    description: ...
    commands:
      - mathmatch index build {data}/corpus/gsm8k.jsonl ... --out {work}/dev-index
      - mathmatch bench {work}/dev-index ... --out {work}/match-dev.json
    results: {work}/match-dev.json
    expected:
      - {figure: systems.dense.metrics.all.mrr@10, value: 0.880, tolerance: 0.01}
      - {figure: best_records_per_second, min: 5000}

Each figure is **OK** when equal to the expected value at three decimals (or at least ``min``,
or at most ``max``), **OKish** when within ``tolerance`` (or within ``tolerance`` of ``min`` /
``max``, as a fraction), and **FAIL** otherwise.  ``extra_results: {name: path}`` adds results
files whose figures are named ``name:a.b.c``.  ``{data}``, ``{work}`` and ``{python}`` are
filled in; ``mathmatch`` runs as ``{python} -m mathmatch.cli``.  Index folders under ``{work}``
are kept between runs (a build over unchanged sources does nothing, nor does a ``tune`` whose
folder holds a model of the same recipe), so a second ``make bench`` is fast.

After each condition its results JSON (and each extra results file) is copied to
``benchmarks/results/NAME[.EXTRA].json``, which is committed, with ``NAME.verdicts.json``: the
rows (figure, expected, got, verdict) and, where the results state it, the machine and date.
``python -m benchmarks.report results`` renders ``docs/results.md`` from them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.machine import DEFAULT_DATA

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = ROOT / "benchmarks" / "conditions"
RESULTS = ROOT / "benchmarks" / "results"


def figure(results: dict, path: str):
    """``a.b.c`` looked up in nested dicts (keys may contain ``@``); a number indexes a list."""
    node = results
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]  # runs.0.records: an item of a list
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


def judge(got: float, exp: dict) -> str:
    """OK, OKish or FAIL for one figure."""
    tol = float(exp.get("tolerance", 0.0))
    if "min" in exp:
        floor = float(exp["min"])
        if got >= floor:
            return "OK"
        return "OKish" if got >= floor * (1 - tol) else "FAIL"
    if "max" in exp:
        ceiling = float(exp["max"])
        if got <= ceiling:
            return "OK"
        return "OKish" if got <= ceiling * (1 + tol) else "FAIL"
    value = float(exp["value"])
    if round(got, 3) == round(value, 3):
        return "OK"
    return "OKish" if abs(got - value) <= tol else "FAIL"


def run_condition(cond: dict, data: Path, work: Path, python: str,
                  run: bool = True) -> list[tuple]:
    """Run one condition (with *run* False: judge the results its commands left under
    *work*); rows of (figure, expected, got, verdict)."""
    fill = {"data": str(data), "work": str(work), "python": python}
    for cmd in cond["commands"] if run else []:
        argv = shlex.split(cmd.format(**fill))
        if argv[0] == "mathmatch":
            argv = [python, "-m", "mathmatch.cli", *argv[1:]]
        elif argv[0] == "python":
            argv = [python, *argv[1:]]
        print(f"  $ {' '.join(argv)}", flush=True)
        proc = subprocess.run(argv, cwd=ROOT)
        if proc.returncode != 0:
            return [("(command)", cmd, f"exit {proc.returncode}", "FAIL")]
    results = {"": json.loads(Path(cond["results"].format(**fill)).read_text())}
    for name, path in cond.get("extra_results", {}).items():
        results[name] = json.loads(Path(path.format(**fill)).read_text())
    rows = []
    for exp in cond["expected"]:
        name, _, path = exp["figure"].rpartition(":")
        try:
            got = float(figure(results[name], path))
        except KeyError:
            rows.append((exp["figure"], exp.get("value", exp.get("min", exp.get("max"))),
                         "missing", "FAIL"))
            continue
        want = exp["value"] if "value" in exp else f">= {exp['min']}" if "min" in exp \
            else f"<= {exp['max']}"
        rows.append((exp["figure"], want, got, judge(got, exp)))
    return rows


def keep_results(cond: dict, rows: list[tuple], data: Path, work: Path, python: str,
                 dest: Path = RESULTS) -> None:
    """Copy a condition's results files to ``dest`` and write its verdicts beside them.

    The results are copied only when every command succeeded (otherwise they are a previous
    run's); the verdicts are written either way.
    """
    fill = {"data": str(data), "work": str(work), "python": python}
    dest.mkdir(parents=True, exist_ok=True)
    name = cond["name"]
    failed = any(fig == "(command)" for fig, *_ in rows)
    machine = None
    sources = {"": cond["results"], **cond.get("extra_results", {})}
    for extra, path in sources.items():
        src = Path(path.format(**fill))
        if failed or not src.is_file():
            continue
        shutil.copyfile(src, dest / (f"{name}.{extra}.json" if extra else f"{name}.json"))
        if machine is None:
            machine = json.loads(src.read_text()).get("machine")
    verdicts: dict = {"condition": name, "rows": [
        {"figure": fig, "expected": want, "got": got, "verdict": verdict}
        for fig, want, got, verdict in rows]}
    if isinstance(machine, dict):
        verdicts["date"] = machine.get("date")
        verdicts["machine"] = machine
    (dest / f"{name}.verdicts.json").write_text(json.dumps(verdicts, indent=2) + "\n",
                                                encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="conditions to run (default: all)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--work", type=Path, default=ROOT / "build" / "bench")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--judge-only", action="store_true",
                   help="run no command: judge (and keep) the results already under --work")
    args = p.parse_args(argv)
    if not args.data.is_dir():
        p.error(f"no dev data at {args.data} (give --data)")
    conds = [yaml.safe_load(f.read_text()) for f in sorted(CONDITIONS.glob("*.yaml"))]
    if args.names:
        conds = [c for c in conds if c["name"] in args.names]
    args.work.mkdir(parents=True, exist_ok=True)
    summary = []
    t0 = time.perf_counter()
    for cond in conds:
        print(f"== {cond['name']}: {cond['description'].strip()}", flush=True)
        t = time.perf_counter()
        rows = run_condition(cond, args.data.resolve(), args.work.resolve(), args.python,
                             run=not args.judge_only)
        keep_results(cond, rows, args.data.resolve(), args.work.resolve(), args.python)
        for fig, want, got, verdict in rows:
            shown = f"{got:.4f}" if isinstance(got, float) else got
            print(f"  {verdict:<6} {fig:<48} expected {want!s:<10} got {shown}")
            summary.append((cond["name"], verdict))
        print(f"  ({time.perf_counter() - t:.0f} s)", flush=True)
    counts = {v: sum(1 for _, x in summary if x == v) for v in ("OK", "OKish", "FAIL")}
    print(f"== {counts['OK']} OK, {counts['OKish']} OKish, {counts['FAIL']} FAIL "
          f"in {time.perf_counter() - t0:.0f} s")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
