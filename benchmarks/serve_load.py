"""Serving under load: concurrent clients against ``mathmatch serve``, idle and while an
``index add`` runs on the folder it serves.

Usage::

    python -m benchmarks.serve_load --index DIR [--clients 8] [--seconds 30] [--data DIR]
                                    [--queries FILE] [--add CORPUS | --add-records 500]
                                    [--port 0] [--writer auto|process|thread] [--work DIR]
                                    [--out FILE.json]

DIR is copied into a scratch folder (the add phase writes the copy, never DIR), and the copy is
served by ``python -m mathmatch.cli serve COPY --port P``, the command users run. Once
``/healthz`` answers and a few warm-up searches are done, each of ``--clients`` threads posts
``/search`` (``k`` = 10, the server's default mode -- hybrid on a dev index -- no cross-scorer)
back to back over its own keep-alive connection, cycling through the queries, for
``--seconds``; a request's latency is from sending it to having read the whole answer, and an
error is an answer other than 2xx or a request that failed. Two phases:

* **idle**: nothing else runs;
* **add**: ``mathmatch index add COPY CORPUS`` is started as the phase starts; reported are
  whether it finished within the phase, the records ``/healthz`` counted before and after, and
  whether the server answered from the new commit afterwards (the add is waited for when it
  outlives the phase). Latencies of the requests sent while it ran are given apart.

Default add corpus: the first ``--add-records`` records of the dev corpus's gsm8k.jsonl with
their ids prefixed ``load-`` (new records). Target (issue): p95 <= 150 ms idle at 8 clients on
2 cores, and no error in either phase; the exit status is 1 when a request failed, the add
failed or the server logged a traceback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.machine import DEFAULT_DATA, describe, machine, save_result

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
HOST = "127.0.0.1"
K = 10
TARGET_P95_MS = 150.0
WARMUP = 5  # searches before the first phase, not counted
STARTUP_S = 600  # how long the server may take to answer /healthz
ADD_WAIT_S = 1800  # how long an add that outlives its phase is waited for
TRACEBACK = "Traceback (most recent call last)"


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "mathmatch.cli", *map(str, args)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def read_queries(path: Path) -> list[str]:
    """The ``text`` of each line of a queries JSONL (``{"_id", "text"}``)."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line)["text"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{n}: expected a JSON object with a 'text' field") from None
    if not out:
        raise ValueError(f"{path}: no queries")
    return out


def add_corpus(source: Path, n: int, out: Path, prefix: str = "load-") -> Path:
    """The first *n* records of *source* with their ids prefixed (records new to an index)."""
    with open(source, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        written = 0
        for line in src:
            if written == n:
                break
            if line.strip():
                rec = json.loads(line)
                rec["id"] = prefix + rec["id"]
                dst.write(json.dumps(rec, ensure_ascii=False) + "\n")
                written += 1
    return out


class Client:
    """One client: a keep-alive connection posting ``/search`` for queries ``start``,
    ``start + step``, ... (cycling), each request's send time, latency and outcome kept."""

    def __init__(self, port: int, queries: list[str], start: int, step: int) -> None:
        self.port, self.queries, self.next, self.step = port, queries, start, step
        self.conn: http.client.HTTPConnection | None = None
        self.log: list[tuple[float, float, str]] = []  # (sent, seconds, "200" or the error)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        try:
            data = None if body is None else json.dumps(body).encode()
            self.conn.request(method, path, body=data,
                              headers={"Content-Type": "application/json"} if data else {})
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except BaseException:
            self.close()
            raise

    def search(self) -> tuple[int, bytes]:
        question = self.queries[self.next % len(self.queries)]
        self.next += self.step
        return self.request("POST", "/search", {"question": question, "k": K})

    def run(self, start: threading.Barrier, until: list[float]) -> None:
        start.wait()
        while (sent := time.perf_counter()) < until[0]:
            try:
                status, _ = self.search()
                outcome = str(status)
            except Exception as exc:  # counted as an error, never fatal
                outcome = type(exc).__name__
            self.log.append((sent, time.perf_counter() - sent, outcome))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def summary(log: list[tuple[float, float, str]], seconds: float) -> dict:
    """Requests, requests/s over *seconds*, latency percentiles (ms) and errors."""
    ms = np.array([lat for _, lat, _ in log]) * 1000
    errors = Counter(o for _, _, o in log if not o.startswith("2"))

    def pct(q: float) -> float | None:
        return round(float(np.percentile(ms, q)), 1) if ms.size else None

    return {"requests": len(log), "seconds": round(seconds, 2),
            "requests_per_second": round(len(log) / seconds, 2) if seconds > 0 else None,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "max_ms": round(float(ms.max()), 1) if ms.size else None,
            "errors": sum(errors.values()), "error_kinds": dict(errors)}


def run_phase(clients: list[Client], seconds: float) -> tuple[dict, list]:
    """Every client searching back to back for *seconds*; the phase's summary and log."""
    for c in clients:
        c.log = []
    start = threading.Barrier(len(clients) + 1)
    until = [0.0]
    threads = [threading.Thread(target=c.run, args=(start, until), daemon=True) for c in clients]
    for t in threads:
        t.start()
    until[0] = time.perf_counter() + seconds
    t0 = until[0] - seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0  # to the last answer of a request sent in time
    for c in clients:  # the server closes a connection left idle: the next phase opens anew
        c.close()
    log = sorted(entry for c in clients for entry in c.log)
    return summary(log, elapsed), log


def _cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) a process and the processes it started (the server's
    response writer) have used so far, those living (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    total = int(fields[11]) + int(fields[12])
    for child in _children(pid):
        try:
            f = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12])
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The processes below *pid* (children, theirs, ...), from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _cpu_per_request(before: tuple, pid: int, phase: dict) -> dict | None:
    """Milliseconds of CPU per request the phase cost the server and the load generator (the
    clients, this process): both share the machine's cores."""
    server = _cpu_seconds(pid)
    if server is None or before[0] is None or not phase["requests"]:
        return None
    n = phase["requests"]
    return {"server": round((server - before[0]) * 1000 / n, 1),
            "clients": round((_own_cpu_seconds() - before[1]) * 1000 / n, 1)}


class Server:
    """``mathmatch serve DIR --port P`` as a subprocess, its log in a file."""

    def __init__(self, index: Path, port: int, log: Path, writer: str = "auto") -> None:
        self.port, self.log = port, log
        self._err = open(log, "w", encoding="utf-8")
        self.proc = subprocess.Popen(_cli("serve", index, "--port", port, "--writer", writer),
                                     env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=self._err)
        self.probe = Client(port, [], 0, 1)

    def health(self) -> dict:
        try:  # a fresh connection each time: the server closes one left idle
            status, body = self.probe.request("GET", "/healthz")
        finally:
            self.probe.close()
        if status != 200:
            raise RuntimeError(f"/healthz answered {status}: {body[:300]!r}")
        return json.loads(body)

    def wait_ready(self, timeout: float = STARTUP_S) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n"
                                   f"{self.log.read_text(encoding='utf-8')[-2000:]}")
            try:
                return self.health()
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer within {timeout:.0f} s: "
                                       f"see {self.log}") from None
                time.sleep(0.5)

    def tracebacks(self) -> int:
        return self.log.read_text(encoding="utf-8").count(TRACEBACK)

    def stop(self) -> None:
        self.probe.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly (lifespan)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()


def add_phase(server: Server, clients: list[Client], seconds: float, index: Path,
              corpus: Path, log: Path) -> dict:
    """The add phase: ``index add`` started at its start, the clients searching meanwhile."""
    before = server.health()["committed"]["records"]
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(_cli("-q", "index", "add", index, corpus, "--device", "cpu"),
                                env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        started = time.perf_counter()
        finished: list[float] = []
        watcher = threading.Thread(target=lambda: (proc.wait(),
                                                   finished.append(time.perf_counter())),
                                   daemon=True)
        watcher.start()
        phase, entries = run_phase(clients, seconds)
        in_phase = bool(finished)
        at_end = server.health()
        watcher.join(ADD_WAIT_S)  # an add that outlives the phase is waited for
        if watcher.is_alive():
            proc.kill()
            watcher.join()
    add_s = finished[0] - started
    during = [e for e in entries if e[0] < finished[0]]
    # The next request after the commit opens the new state: ask one, then look.
    searched_after = clients[0].search()[0]
    clients[0].close()
    after = server.health()
    added = after["committed"]["records"] - before
    phase["while_adding"] = summary(during, min(add_s, phase["seconds"]))
    phase["index_add"] = {
        "corpus": str(corpus), "returncode": proc.returncode, "seconds": round(add_s, 1),
        "finished_in_phase": in_phase, "records_before": before,
        "records_at_phase_end": at_end["committed"]["records"],
        "served_at_phase_end": (at_end["serving"] or {}).get("records"),
        "records_after": after["committed"]["records"], "added": added,
        "seen": added > 0 and searched_after == 200
        and (after["serving"] or {}).get("records") == after["committed"]["records"],
        "tracebacks": log.read_text(encoding="utf-8").count(TRACEBACK)}
    return phase


def _row(name: str, s: dict) -> str:
    def f(v: object) -> str:
        return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)

    return (f"{name:<13}{s['requests']:>9}{f(s['requests_per_second']):>8}{f(s['p50_ms']):>9}"
            f"{f(s['p95_ms']):>9}{f(s['p99_ms']):>9}{f(s['max_ms']):>9}{s['errors']:>8}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, required=True, help="index folder (copied, not written)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds per phase (default: 30)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="the dev data, for the default queries and add corpus")
    p.add_argument("--queries", type=Path, default=None,
                   help="queries JSONL, cycled (default: the dev match queries)")
    p.add_argument("--add", type=Path, default=None, metavar="CORPUS",
                   help="what `index add` adds in the second phase (its ids must be new; "
                        "default: --add-records of the dev gsm8k corpus, ids prefixed load-)")
    p.add_argument("--add-records", type=int, default=500,
                   help="records of the default add corpus (default: 500)")
    p.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    p.add_argument("--writer", choices=("auto", "process", "thread"), default="auto",
                   help="the server's --writer: where it writes the responses (default: auto)")
    p.add_argument("--work", type=Path, default=None,
                   help="scratch folder, kept (default: a temporary one, removed)")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "serve_load.json")
    args = p.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        p.error("--clients and --seconds must be positive")
    if not (args.index / "manifest.json").is_file():
        p.error(f"{args.index} is not an index folder (no manifest.json): build one with "
                "`mathmatch index build CORPUS... --out DIR`")
    args.queries = args.queries or args.data / "tasks" / "match" / "queries.jsonl"
    queries = read_queries(args.queries)

    work = args.work or Path(tempfile.mkdtemp(prefix="mathmatch-serve-load-"))
    work.mkdir(parents=True, exist_ok=True)
    index = work / "index"
    shutil.rmtree(index, ignore_errors=True)
    t0 = time.perf_counter()
    shutil.copytree(args.index, index)
    corpus = args.add or add_corpus(args.data / "corpus" / "gsm8k.jsonl", args.add_records,
                                    work / "add.jsonl")
    port = args.port or free_port()
    server = Server(index, port, work / "server.log", args.writer)
    clients = [Client(port, queries, i, args.clients) for i in range(args.clients)]
    try:
        started = time.perf_counter()
        health = server.wait_ready()
        startup_s = time.perf_counter() - started
        warm = Client(port, queries[::-1], 0, 1)
        for _ in range(WARMUP):
            status, body = warm.search()
            if status != 200:
                raise RuntimeError(f"a warm-up search answered {status}: {body[:300]!r}")
        mode = json.loads(body)["mode"]
        warm.close()
        print(f"serving {health['records']} records ({mode}) on port {port}; "
              f"{args.clients} clients, {args.seconds:g} s per phase", flush=True)
        before = (_cpu_seconds(server.proc.pid), _own_cpu_seconds())
        idle, _ = run_phase(clients, args.seconds)
        idle["cpu_ms_per_request"] = _cpu_per_request(before, server.proc.pid, idle)
        print(_row("idle", idle), flush=True)
        add = add_phase(server, clients, args.seconds, index, corpus, work / "add.log")
        print(_row("add", add), flush=True)
    finally:
        for c in clients:
            c.close()
        server.stop()
    tracebacks = server.tracebacks()
    result = {
        "benchmark": "serve_load", "index": str(args.index), "records": health["records"],
        "encoder": health["encoder"], "mode": mode, "k": K, "clients": args.clients,
        "writer": args.writer,
        "seconds_per_phase": args.seconds, "queries": str(args.queries),
        "server_startup_s": round(startup_s, 1), "idle": idle, "add": add,
        "server_tracebacks": tracebacks, "target_p95_ms": TARGET_P95_MS,
        "meets_target": idle["p95_ms"] is not None and idle["p95_ms"] <= TARGET_P95_MS
        and idle["errors"] == 0 and add["errors"] == 0,
        "seconds": round(time.perf_counter() - t0, 1), "machine": machine()}
    a = add["index_add"]
    print(f"machine: {describe(result['machine'])}")
    print(f"{'phase':<13}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}{'errors':>8}")
    for name, s in (("idle", idle), ("add", add), ("  while add", add["while_adding"])):
        print(_row(name, s))
    print(f"index add: exit {a['returncode']} after {a['seconds']} s "
          f"({'within' if a['finished_in_phase'] else 'after'} the phase); records "
          f"{a['records_before']} -> {a['records_after']}, served after: {a['seen']}")
    if idle.get("cpu_ms_per_request"):
        cpu = idle["cpu_ms_per_request"]
        print(f"idle CPU per request: server {cpu['server']} ms, clients {cpu['clients']} ms")
    print(f"idle p95 {idle['p95_ms']} ms at {args.clients} clients (target <= "
          f"{TARGET_P95_MS:.0f} ms: {'met' if result['meets_target'] else 'NOT met'}); "
          f"server tracebacks: {tracebacks}")
    save_result(args.out, result)
    print(f"wrote {args.out}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    failed = idle["errors"] + add["errors"] + tracebacks + a["tracebacks"] + \
        (a["returncode"] != 0) + (not a["seen"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
