"""``python -m benchmarks.serve_load`` on the sample index, and the batching of ``/search``
requests that wait for the server's worker together (:meth:`Service.search_queued`)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest

from index.manifest import read_manifest
from mathmatch.server import ServeConfig, create_app

LOCAL = "http://127.0.0.1"


def _queries(sample_dir, n: int) -> list[str]:
    lines = (sample_dir / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[:n]]


def test_the_benchmark_measures_both_phases_and_the_add_is_committed(sample_index, sample_dir,
                                                                     tmp_path):
    from benchmarks.serve_load import main

    add = tmp_path / "add.jsonl"
    lines = (sample_dir / "records.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    add.write_text("".join(json.dumps({**json.loads(line), "id": f"load-{i}"}) + "\n"
                           for i, line in enumerate(lines)), encoding="utf-8")
    records = read_manifest(sample_index)["store"]["records"]
    out = tmp_path / "serve_load.json"
    code = main(["--index", str(sample_index), "--clients", "2", "--seconds", "3",
                 "--queries", str(sample_dir / "queries.jsonl"), "--add", str(add),
                 "--work", str(tmp_path / "work"), "--out", str(out)])
    result = json.loads(out.read_text())
    assert code == 0, result
    assert result["mode"] == "hybrid" and result["clients"] == 2 and result["records"] == records
    for phase in ("idle", "add"):
        s = result[phase]
        assert s["requests"] > 0 and s["errors"] == 0 and s["error_kinds"] == {}
        assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]
        # "seconds" is rounded to 0.1 s: the rate agrees to 1 %
        assert s["requests_per_second"] == pytest.approx(s["requests"] / s["seconds"], rel=0.01)
    a = result["add"]["index_add"]
    assert a["returncode"] == 0 and a["tracebacks"] == 0 and result["server_tracebacks"] == 0
    assert a["records_before"] == records and a["added"] == 3
    assert a["records_after"] == records + 3 and a["seen"] is True
    # the add wrote the benchmark's copy, never the index it was given
    assert read_manifest(tmp_path / "work" / "index")["store"]["records"] == records + 3
    assert read_manifest(sample_index)["store"]["records"] == records
    assert "machine" in result


def _searched(service) -> list[list[tuple]]:
    """The batches *service* searches from now on, each a list of ``(question, k, mode)``."""
    batches: list[list[tuple]] = []
    search_many = service.search_many

    def spy(asked, **kwargs):
        batches.append(list(asked))
        return search_many(asked, **kwargs)

    service.search_many = spy
    return batches


def _same_hits(batched: list[dict], alone: list[dict]) -> None:
    """The same hits and score parts, allowing for float noise (a batch pads the questions
    it encodes together) and for ties ordered either way."""
    assert [h["score"] for h in batched] == pytest.approx([h["score"] for h in alone], abs=1e-4)
    by_id = {h["id"]: h for h in alone}
    for hit, other in zip(batched, alone, strict=True):
        if hit["id"] != other["id"]:  # a tie
            assert hit["score"] == pytest.approx(other["score"], abs=1e-4)
        if hit["id"] in by_id:
            _close(hit["why"], by_id[hit["id"]]["why"])
            assert hit["display"] == by_id[hit["id"]]["display"]


def _close(got, want) -> None:
    """Equal, numbers to 1e-4 (nested dicts and lists)."""
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            _close(got[key], want[key])
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-4)
    else:
        assert got == want


def test_requests_waiting_together_are_searched_as_one_batch_with_the_same_answers(
        sample_index, sample_dir):
    app = create_app(sample_index, ServeConfig())
    service = app.state.service
    batches = _searched(service)
    questions = _queries(sample_dir, 8)
    bodies = [{"question": q, "k": 5} for q in questions] + [
        {"question": questions[0], "k": 3, "mode": "dense"},  # another group of the batch
        {"question": questions[1], "k": 5},  # the same question twice
        {"question": "<math><mi>x</mi>", "k": 5}]  # refused, alone

    async def post(client, body):
        return await client.post("/search", json=body)

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=LOCAL) as client:
            # the encoder thread busy: every request waits, then one turn takes them all
            busy = threading.Event()
            service.queue.ahead.submit(busy.wait)
            sent = [asyncio.create_task(post(client, b)) for b in bodies]
            while len(service.queue._waiting) < len(bodies):
                await asyncio.sleep(0.01)
            busy.set()
            return await asyncio.gather(*sent)

    async def one_at_a_time() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=LOCAL) as client:
            return [await post(client, b) for b in bodies]

    try:
        alone = asyncio.run(one_at_a_time())
        assert [len(b) for b in batches] == [1] * len(bodies)
        batches.clear()
        batched = asyncio.run(together())
    finally:
        service.executor.submit(service.close).result()
    assert [len(b) for b in batches] == [len(bodies)]  # one turn of the worker took them all
    assert [r.status_code for r in batched] == [r.status_code for r in alone] == \
        [200] * (len(bodies) - 1) + [422]
    assert batched[-1].json() == alone[-1].json()
    for got, want, body in zip(batched[:-1], alone[:-1], bodies, strict=False):
        got, want = got.json(), want.json()
        assert {k: v for k, v in got.items() if k != "hits"} == \
            {k: v for k, v in want.items() if k != "hits"}
        assert got["mode"] == body.get("mode", "hybrid") and len(got["hits"]) == body["k"]
        _same_hits(got["hits"], want["hits"])


def test_questions_are_encoded_ahead_and_the_worker_encodes_none(sample_index, sample_dir):
    app = create_app(sample_index, ServeConfig(writer="thread"))
    service = app.state.service
    state = service.executor.submit(service.current).result()  # as the lifespan opens it
    encoder = state.encoders[state.default_mode]
    encoded: list[tuple[str, list[str]]] = []
    encode = encoder.encode

    def spy(texts, *args, **kwargs):
        encoded.append((threading.current_thread().name, list(texts)))
        return encode(texts, *args, **kwargs)

    encoder.encode = spy
    bodies = [{"question": q, "k": 3} for q in _queries(sample_dir, 4)]

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=LOCAL) as client:
            return await asyncio.gather(*(client.post("/search", json=b) for b in bodies))

    try:
        answered = asyncio.run(together())
    finally:
        service.executor.submit(service.close).result()
    assert [r.status_code for r in answered] == [200] * len(bodies)
    assert encoded and {name for name, _ in encoded} == {"mathmatch-encode_0"}
    assert sum(len(texts) for _, texts in encoded) == len(bodies)  # each question once


def test_a_flood_is_searched_in_batches_of_at_most_max_batch(sample_index, sample_dir):
    from mathmatch.batching import MAX_BATCH

    app = create_app(sample_index, ServeConfig(writer="thread"))
    service = app.state.service
    batches = _searched(service)
    questions = _queries(sample_dir, 20)
    bodies = [{"question": questions[i % len(questions)] + f" ({i})", "k": 1}
              for i in range(MAX_BATCH + 8)]

    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=LOCAL) as client:
            encoder, worker = threading.Event(), threading.Event()
            service.queue.ahead.submit(encoder.wait)
            service.executor.submit(worker.wait)
            sent = [asyncio.create_task(client.post("/search", json=b)) for b in bodies]
            while len(service.queue._waiting) < len(bodies):
                await asyncio.sleep(0.01)
            encoder.set()  # encoded in two turns (MAX_BATCH, then the rest) ...
            while service.queue._waiting or len(service.queue._encoded) < 2:
                await asyncio.sleep(0.01)
            worker.set()  # ... both waiting for the worker: still two searches
            return await asyncio.gather(*sent)

    try:
        answered = asyncio.run(flood())
    finally:
        service.executor.submit(service.close).result()
    assert [r.status_code for r in answered] == [200] * len(bodies)
    assert [r.json()["question"] for r in answered] == [b["question"] for b in bodies]
    assert [len(b) for b in batches] == [MAX_BATCH, 8]


@pytest.mark.slow
def test_a_batch_with_a_cross_scorer_gives_each_hit_its_own_score(sample_index, sample_dir,
                                                                   tiny_llama_path, tmp_path):
    from mathmatch.service import Service
    from tests.models import tiny_reranker

    index = shutil.copytree(sample_index, tmp_path / "idx")
    ckpt = tmp_path / "rr"
    tiny_reranker(index, tiny_llama_path, ckpt)
    service = Service(index, ServeConfig(rerank=str(ckpt), symbolic=True))
    questions = _queries(sample_dir, 3)
    try:
        alone = [service.search(q, 5, None) for q in questions]
        batched = service.search_many([(q, 5, None) for q in questions])
    finally:
        service.close()
    for got, want in zip(batched, alone, strict=True):
        assert [h["id"] for h in got["hits"]] == [h["id"] for h in want["hits"]]
        assert [h["why"]["rerank"] for h in got["hits"]] == \
            pytest.approx([h["why"]["rerank"] for h in want["hits"]], abs=1e-3)
        assert all(h["why"]["rerank"] is not None for h in got["hits"])


def test_cpu_per_request_counts_the_server_process_and_the_clients_apart():
    import os
    import signal

    from benchmarks.serve_load import _cpu_per_request, _cpu_seconds, _own_cpu_seconds

    # A server that sleeps while a process it started (as the response writer) is busy.
    busy = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                             "subprocess.Popen([sys.executable, '-c', 'while True: pass']); "
                             "time.sleep(60)"], start_new_session=True)
    try:
        time.sleep(0.3)
        before = (_cpu_seconds(busy.pid), _own_cpu_seconds())
        time.sleep(0.6)
        cpu = _cpu_per_request(before, busy.pid, {"requests": 2})
    finally:
        os.killpg(busy.pid, signal.SIGKILL)
        busy.wait()
    assert cpu["server"] > 100  # its busy child: at least 0.2 s over 2 requests
    assert cpu["clients"] < cpu["server"]  # this process slept
    assert _cpu_seconds(busy.pid) is None  # gone: no figure
    assert _cpu_seconds(os.getpid()) > 0
