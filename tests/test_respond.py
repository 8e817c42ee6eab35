"""The server's response writer (mathmatch.respond): a process of its own or a thread, the same
bodies either way, a job that fails failing alone, a writer process that dies replaced."""

from __future__ import annotations

import json
import os
from concurrent.futures import Future

import pytest

from mathcore.mathml import DEFAULT_LIMITS
from mathmatch.respond import Hit, Job, ResponseWriter, response

ANSWER = ("Quagga has <math><mn>17</mn><mo>+</mo><mn>18</mn><mo>=</mo><mn>35</mn></math> "
          "stripes.")


def _job(i: int, why: dict | None = None) -> Job:
    hit = Hit(id=f"zebra-{i}", score=1.5 - i / 10, source="extra",
              question=f"A zebra has 17 black and 18 white stripes ({i}). How many?",
              answer=ANSWER, final="<math><mn>35</mn></math>",
              answer_text="Quagga has 17 + 18 = 35 stripes.",
              why=why if why is not None else {"first_stage": 1.5, "dense": None, "bm25": None,
                                                "givens": None, "formulas": None,
                                                "rerank": None})
    return Job(question="How many stripes, 17 black and 18 white?", text="How many stripes?",
               mode="hybrid", k=1, numbers=frozenset({"17", "18"}), hits=(hit,),
               limits=DEFAULT_LIMITS, current_linear=True,
               state={"updated": None, "checksum": None, "records": 1})


def _write(writer: ResponseWriter, jobs: list[Job]) -> list[Future]:
    waiting = [Future() for _ in jobs]
    for f in waiting:
        f.set_running_or_notify_cancel()
    writer.write(jobs, waiting)
    for f in waiting:
        f.exception(timeout=120)  # wait for each
    return waiting


@pytest.fixture
def writer():
    w = ResponseWriter("process")
    yield w
    w.close()


def test_the_writer_process_writes_the_bodies_the_thread_writes(writer):
    jobs = [_job(i) for i in range(3)]
    by_process = [f.result() for f in _write(writer, jobs)]
    here = ResponseWriter("thread")
    by_thread = [f.result() for f in _write(here, jobs)]
    assert writer.process and not here.process
    assert by_process == by_thread
    body = json.loads(by_process[0])
    assert body == json.loads(json.dumps(response(jobs[0])))
    shown = body["hits"][0]
    assert shown["highlight"]["numbers"] == ["17", "18"]
    assert '<mn class="given">17</mn>' in shown["display"]["answer"]


def test_a_job_that_cannot_be_written_fails_alone(writer, caplog):
    jobs = [_job(0), _job(1, why={"not json": {1, 2}}), _job(2)]
    done = _write(writer, jobs)
    assert [f.exception() is None for f in done] == [True, False, True]
    assert "writing a /search response failed" in caplog.text
    assert "TypeError" in caplog.text  # the writer process's traceback, logged here


class _Fatal(Hit):
    """A hit that kills the process that unpickles it: the writer process dies while it
    holds the batch."""

    def __reduce__(self):
        return os._exit, (3,)


def test_a_batch_whose_writer_process_dies_is_written_here(writer, caplog):
    assert _write(writer, [_job(0)])[0].result()
    pool = writer._pool
    fatal = _job(1)
    fatal = Job(**{**fatal.__dict__, "hits": (_Fatal(**fatal.hits[0].__dict__),)})
    done = _write(writer, [fatal, _job(2)])
    assert [json.loads(f.result())["hits"][0]["id"] for f in done] == ["zebra-1", "zebra-2"]
    assert "the process writing responses died" in caplog.text
    assert writer._pool is None  # the next batch starts another
    assert json.loads(_write(writer, [_job(3)])[0].result())["hits"][0]["id"] == "zebra-3"
    assert writer._pool is not None and writer._pool is not pool


def test_a_writer_process_that_dies_is_replaced(writer, caplog):
    assert [f.result() for f in _write(writer, [_job(0)])]
    pool = writer._pool
    for process in list(pool._processes.values()):
        process.kill()
        process.join()
    # The batch after the death is written here or by a new process; either way, answered.
    again = _write(writer, [_job(1), _job(2)])
    assert all(json.loads(f.result())["hits"][0]["id"].startswith("zebra-") for f in again)
    later = _write(writer, [_job(3)])
    assert json.loads(later[0].result())["hits"][0]["id"] == "zebra-3"
    assert writer._pool is not None and writer._pool is not pool
