"""Fault injection: random kills of index writers and concurrent writer pairs.

Usage::

    python -m benchmarks.faults [--kills N] [--pairs N] [--encoder NAME|PATH] [--seed S]
                                [--work DIR] [--out FILE.json]

The bundled sample (``data/sample/records.jsonl``, 300 records) is split into three corpora
a, b, c of 100.  Each **kill** round starts `mathmatch index build a b` into a new folder, or
`mathmatch index add` of b and c to an index of a (alternately), sends it SIGKILL at a moment
drawn uniformly over an uninterrupted run's duration, then runs the same command to its end.
Each **pair** round starts two `index add` processes (b and c) on one index of a at the same
moment -- with ``--wait`` in even rounds, without in odd ones, where the refused writer is run
again afterwards -- while `mathmatch match` reads the folder.

After every round the folder is checked: every expected record is in the store exactly once
(lost and duplicated records are counted), the committed vectors and BM25 hold every stored
record once, and ``index verify`` passes.  Every process's standard error is searched for a
Python traceback.  Targets: 0 lost, 0 duplicated, 0 tracebacks, 0 failed verifications.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.machine import machine, save_result

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "records.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
FAST = ["--workers", "0", "--device", "cpu", "--batch-size", "8", "--save-every", "16"]


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "mathmatch.cli", "-q", *map(str, args)]


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), env=ENV, capture_output=True, text=True, timeout=900)


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def check(index: Path, expected: list[str]) -> dict:
    """Lost and duplicated records, and whether the parts and ``index verify`` agree."""
    from index import VectorIndex
    from index.layout import part_dir
    from index.manifest import read_manifest
    from index.verify import verify_index
    from mathcore import Store

    m = read_manifest(index)
    with Store(index / "records.sqlite", readonly=True) as store:
        rows = store.rowids()
        stored = Counter(store.ids_of(rows).values())
    vectors = VectorIndex.load(part_dir(index, m, "dense")).ids().tolist()
    report = verify_index(index)
    return {
        "lost": len(set(expected) - set(stored)),
        "duplicated": sum(n - 1 for n in stored.values() if n > 1)
        + (len(vectors) - len(set(vectors))),
        "unexpected": len(set(stored) - set(expected)),
        "parts_agree": sorted(vectors) == sorted(rows)
        and m["lexical"]["count"] == m["dense"]["count"] == len(rows),
        "verify_ok": report.ok,
        "verify": report.status,
    }


def _tracebacks(*stderrs: str) -> int:
    return sum("Traceback (most recent call last)" in (e or "") for e in stderrs)


def kill_round(work: Path, parts: dict[str, Path], encoder: str, add: bool, delay: float) -> dict:
    out = work / "idx"
    shutil.rmtree(out, ignore_errors=True)
    errs = []
    if add:
        first = _run("index", "build", parts["a"], "--out", out, "--encoder", encoder, *FAST)
        errs.append(first.stderr)
        args = ["index", "add", out, parts["b"], parts["c"], *FAST]
        expected = _ids(parts["a"]) + _ids(parts["b"]) + _ids(parts["c"])
    else:
        args = ["index", "build", parts["a"], parts["b"], "--out", out, "--encoder", encoder,
                *FAST]
        expected = _ids(parts["a"]) + _ids(parts["b"])
    proc = subprocess.Popen(_cmd(*args), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    errs.append(proc.communicate()[1])
    again = _run(*args)
    errs.append(again.stderr)
    result = check(out, expected) if again.returncode == 0 else \
        {"lost": len(expected), "duplicated": 0, "parts_agree": False, "verify_ok": False,
         "verify": f"exit {again.returncode}: {again.stderr.strip()[-300:]}"}
    return {"command": "add" if add else "build", "delay": round(delay, 2), "killed": killed,
            "tracebacks": _tracebacks(*errs), **result}


def pair_round(work: Path, parts: dict[str, Path], encoder: str, wait: bool) -> dict:
    out = work / "idx"
    shutil.rmtree(out, ignore_errors=True)
    errs = [_run("index", "build", parts["a"], "--out", out, "--encoder", encoder,
                 *FAST).stderr]
    extra = ["--wait", "600"] if wait else []
    procs = {n: subprocess.Popen(_cmd("index", "add", out, parts[n], *FAST, *extra), env=ENV,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for n in ("b", "c")}
    reads = reader_failures = 0
    queries = ROOT / "data" / "sample" / "queries.jsonl"
    while any(p.poll() is None for p in procs.values()):
        r = _run("match", out, "--queries", queries, "--k", "5", "--out", work / "run.jsonl")
        reads += 1
        reader_failures += r.returncode != 0
        errs.append(r.stderr)
    refused = []
    for name, p in procs.items():
        err = p.communicate()[1]
        errs.append(err)
        if p.returncode != 0:
            refused.append(name if "being written by" in err else f"{name}: {err[-200:]}")
    for name in refused:  # the refused writer, run again once the other is done
        if len(name) == 1:
            errs.append(_run("index", "add", out, parts[name], *FAST).stderr)
    expected = _ids(parts["a"]) + _ids(parts["b"]) + _ids(parts["c"])
    return {"wait": wait, "refused": refused, "reads": reads,
            "reader_failures": reader_failures, "tracebacks": _tracebacks(*errs),
            **check(out, expected)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=10, help="kill rounds (default: 10)")
    ap.add_argument("--pairs", type=int, default=10, help="concurrent pair rounds (default: 10)")
    ap.add_argument("--encoder", default="mathmatch-minilm-math",
                    help="encoder of the indexes (default: the shipped one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "faults.json")
    args = ap.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="mathmatch-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    parts = {}
    for i, name in enumerate("abc"):
        parts[name] = work / f"{name}.jsonl"
        parts[name].write_text("\n".join(lines[100 * i:100 * (i + 1)]) + "\n", encoding="utf-8")
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    # How long an uninterrupted run takes: the kills are drawn over it.
    t = time.perf_counter()
    first = _run("index", "build", parts["a"], parts["b"], "--out", work / "idx", "--encoder",
                 args.encoder, *FAST)
    durations = {"build": time.perf_counter() - t}
    if first.returncode != 0:
        print(first.stderr, file=sys.stderr)
        return 2
    clean = check(work / "idx", _ids(parts["a"]) + _ids(parts["b"]))
    kills = []
    for i in range(args.kills):
        add = i % 2 == 1
        delay = rng.uniform(0.3, max(0.6, durations["build"]))
        r = kill_round(work, parts, args.encoder, add=add, delay=delay)
        kills.append(r)
        print(f"kill {i + 1}/{args.kills}: {r['command']} killed at {r['delay']} s "
              f"(running: {r['killed']}); lost {r['lost']}, duplicated {r['duplicated']}, "
              f"tracebacks {r['tracebacks']}, {r['verify']}", flush=True)
    pairs = []
    for i in range(args.pairs):
        r = pair_round(work, parts, args.encoder, wait=i % 2 == 0)
        pairs.append(r)
        print(f"pair {i + 1}/{args.pairs}: wait {r['wait']}, refused {r['refused']}, "
              f"{r['reads']} reads ({r['reader_failures']} failed); lost {r['lost']}, "
              f"duplicated {r['duplicated']}, tracebacks {r['tracebacks']}, {r['verify']}",
              flush=True)
    rounds = kills + pairs
    totals = {
        "kill_rounds": len(kills), "killed_while_running": sum(r["killed"] for r in kills),
        "pair_rounds": len(pairs), "reads_during_writes": sum(r["reads"] for r in pairs),
        "reader_failures": sum(r["reader_failures"] for r in pairs),
        "lost": sum(r["lost"] for r in rounds),
        "duplicated": sum(r["duplicated"] for r in rounds),
        "tracebacks": sum(r["tracebacks"] for r in rounds),
        "verify_failures": sum(not r["verify_ok"] for r in rounds),
        "parts_disagree": sum(not r["parts_agree"] for r in rounds),
    }
    result = {"benchmark": "faults", "encoder": args.encoder, "seed": args.seed,
              "uninterrupted": {"seconds": round(durations["build"], 1), **clean},
              "totals": totals, "kills": kills, "pairs": pairs,
              "seconds": round(time.perf_counter() - t0, 1), "machine": machine()}
    save_result(args.out, result)
    print(json.dumps(totals, indent=1))
    print(f"wrote {args.out}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    bad = totals["lost"] + totals["duplicated"] + totals["tracebacks"] + \
        totals["verify_failures"] + totals["reader_failures"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
