"""The hard time limit: SymPy work that would run for minutes is killed, nothing is left behind.

Children are found through ``/proc`` (psutil is not installed) and through
``multiprocessing.active_children()``; threads through ``threading.active_count()``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
import sympy as sp

from mathcore.symbolic import Verdict, WorkerPool, cache_clear, equivalent
from mathcore.symbolic import runtime as limits_mod

x, y = sp.symbols("x y")


def child_pids() -> set[int]:
    """Live (non-zombie) processes whose parent is this one, read from /proc."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid == me and state != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def baseline():
    return threading.active_count(), child_pids()


def test_blow_up_returns_unknown_within_the_limit_and_leaves_nothing(baseline):
    threads, children = baseline
    expr = sp.sin((2 * x - y) ** 3)
    pool = WorkerPool(size=1)
    pool.start()
    assert pool.run("ping", [], timeout=30).value == "pong"  # the worker is up: time the work
    first_pid = pool.pids[0]
    cache_clear()
    timeout = 1.0
    start = time.monotonic()
    verdict = equivalent(expr, expr.rewrite(sp.exp), timeout=timeout, trust_numeric=False,
                         pool=pool)
    elapsed = time.monotonic() - start
    assert verdict is Verdict.UNKNOWN
    assert elapsed < timeout + 1.0, elapsed
    assert not alive(first_pid)  # the worker that ran simplify was killed and reaped
    # The pool replaced it and goes on working.
    assert pool.pids and pool.pids[0] != first_pid
    assert pool.run("ping", [], timeout=30).value == "pong"
    pool.close()
    assert multiprocessing.active_children() == []
    assert child_pids() == children
    assert threading.active_count() == threads


def test_python_loop_is_killed_and_pool_is_reused(baseline):
    threads, children = baseline
    with WorkerPool(size=2) as pool:
        pool.start()
        assert pool.run("ping", [], timeout=30).ok
        pids = set(pool.pids)
        assert len(pids) == 2 and pids <= child_pids()
        # Quick tasks reuse the same processes.
        for _ in range(5):
            assert pool.run("ping", [], timeout=30).value == "pong"
        assert set(pool.pids) == pids
        result = pool.run("spin", [60], timeout=0.5)
        assert result.status == limits_mod.TIMEOUT and result.seconds < 1.5
        assert len(pool.pids) == 2 and set(pool.pids) != pids
        failed = pool.run("no_such_task", [], timeout=30)
        assert failed.status == limits_mod.ERROR and "KeyError" in failed.error
    with pytest.raises(RuntimeError):
        pool.run("ping", [], timeout=1)
    assert child_pids() == children
    assert threading.active_count() == threads


def test_default_pool_is_closed_and_recreated(baseline):
    threads, children = baseline
    cache_clear()
    assert equivalent("sqrt(x**2)", "x", timeout=30) is Verdict.UNKNOWN  # uses the worker
    pool = limits_mod.default_pool()
    assert pool.pids
    limits_mod.close_default_pool()
    assert child_pids() == children
    assert limits_mod.default_pool() is not pool
    limits_mod.close_default_pool()
    assert threading.active_count() == threads


def test_pool_arguments_are_checked():
    with pytest.raises(ValueError):
        WorkerPool(size=0)
    with pytest.raises(ValueError):
        WorkerPool(memory_mb=-1)
