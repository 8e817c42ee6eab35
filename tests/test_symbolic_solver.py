"""Answer checking: hand-written questions, one real record per mathematics_dataset module,
and the public API through a worker under its time limit.

``verify_cases.jsonl`` holds questions written for these tests (new numbers and wordings,
not copied from the corpus), each with a correct and a wrong answer, plus cases that must stay
``unknown``. ``verify_corpus_sample.jsonl`` holds one corpus record per module, with the
answer of another record of the same module as the wrong candidate. The table tests call the
worker's task in this process (fast); the API tests go through a real worker.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import sympy as sp

from mathcore.symbolic import Check, WorkerPool, verify
from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.exact_arithmetic import nearest_root, round_half_away, sequence_polynomial
from mathcore.symbolic.mathematics_dataset import verify_task

DATA = Path(__file__).parent / "data" / "symbolic"
CASES = [json.loads(line) for line in (DATA / "verify_cases.jsonl").read_text().splitlines()]
SAMPLE = [json.loads(line)
          for line in (DATA / "verify_corpus_sample.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("case", [c for c in CASES if "gold" in c],
                         ids=[c["name"] for c in CASES if "gold" in c])
def test_gold_verified_and_wrong_refuted(case):
    assert verify_task(case["question"], case["gold"]) == "verified"
    assert verify_task(case["question"], case["wrong"]) == "refuted"


@pytest.mark.parametrize("case", [c for c in CASES if "unknown" in c],
                         ids=[c["name"] for c in CASES if "unknown" in c])
def test_undecidable_cases_stay_unknown(case):
    assert verify_task(case["question"], case["unknown"]) == "unknown"


@pytest.mark.parametrize("record", SAMPLE, ids=[r["module"] for r in SAMPLE])
def test_one_record_per_module(record):
    assert verify_task(record["question"], {"mathml": record["gold"]}) == "verified"
    assert verify_task(record["question"], {"mathml": record["wrong"]}) == "refuted"


def test_exact_helpers():
    assert round_half_away(sp.Rational(-123456, 10000), 2) == sp.Rational(-1235, 100)
    with pytest.raises(Unsupported):
        round_half_away(sp.Rational(5, 2), 0)
    assert nearest_root(1454142, 8) == 6
    assert nearest_root(26, 2) == 5  # sqrt(26) = 5.099
    n = sp.Symbol("n")
    assert sequence_polynomial([sp.Integer(v) for v in (2, 5, 10, 17)], n) == n**2 + 1
    with pytest.raises(Unsupported):
        sequence_polynomial([sp.Integer(v) for v in (1, 2, 4)], n)  # rule not fixed


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(size=1) as p:
        p.start()
        yield p


def test_verify_api_with_every_candidate_kind(pool):
    question = "Solve 12*w = -9*w + 21 for w."
    assert verify(question, '<math><cn>1</cn></math>', pool=pool) is Check.VERIFIED
    assert verify(question, "1", pool=pool) is Check.VERIFIED
    assert verify(question, sp.Integer(-1), pool=pool) is Check.REFUTED
    assert verify(question, 1, pool=pool) is Check.VERIFIED
    assert verify("What is the capital of France?", "1", pool=pool) is Check.UNKNOWN
    with pytest.raises(ValueError):
        verify(question, "1", timeout=0, pool=pool)


def test_verify_is_stopped_at_its_time_limit(pool):
    threads = threading.active_count()
    assert verify("Solve 2*x = 4 for x.", "2", pool=pool) is Check.VERIFIED  # worker is up
    start = time.monotonic()
    result = verify("Expand (x + y + z + w)**300.", "x", timeout=1.0, pool=pool)
    elapsed = time.monotonic() - start
    assert result is Check.UNKNOWN
    assert elapsed < 2.0, elapsed
    assert verify("Solve 2*x = 4 for x.", "3", pool=pool) is Check.REFUTED  # a new worker
    assert threading.active_count() == threads
