"""The worker runtime: a registry of named tasks and a pool of worker processes that can be killed.

SymPy's ``simplify`` can run for minutes (``sin((2x-y)**3)`` against its exponential form) and a
Python thread cannot be stopped, so the work runs in a separate process that is terminated,
then killed, when its time is up. Starting a process costs a second or two (importing SymPy),
so workers are kept and reused; a killed worker is replaced at once (its start overlaps with
the caller's next steps) and :meth:`WorkerPool.close` -- also run at exit -- ends them all.

The protocol is one JSON object per line over the worker's stdin/stdout: no pickle. Tasks are
functions registered by name with :func:`task`; expressions travel as ``sympy.srepr`` strings
made by the parent, never as user text. The pool uses ``subprocess`` rather than
``multiprocessing``: no resource-tracker process, no fork of a threaded parent, and no thread
is ever started, so nothing outlives :meth:`~WorkerPool.close`.

How a worker finds its tasks: the modules that define tasks register them here when they are
imported (``@task("equal")``); this module imports none of them. Each worker is started as
``python -m mathcore.symbolic.worker MEMORY_MB MODULE...`` with the names of the modules that
have registered tasks in the parent (:func:`handler_modules`), and imports them by name before
it says it is ready -- the way ``spawn`` re-imports modules, so a task defined in ``__main__``
cannot run in a worker.

Imports: nothing of :mod:`mathcore.symbolic` (the bottom of the package; standard library only).

Example:
    >>> with WorkerPool(size=1) as pool:
    ...     pool.run("ping", [], timeout=5.0).value
    'pong'
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

OK, TIMEOUT, ERROR = "ok", "timeout", "error"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding mathcore/

# --- the task registry ----------------------------------------------------------------------

TASKS: dict[str, Callable] = {}


def task(name: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as the task *name* (JSON arguments, a JSON result).

    The registering module must be importable by name in a worker (not ``__main__``).
    """
    def register(fn: Callable) -> Callable:
        old = TASKS.get(name)
        if old is not None and (_module_of(old), getattr(old, "__qualname__", None)) != (
            _module_of(fn), getattr(fn, "__qualname__", None)
        ):
            raise ValueError(f"task {name!r} is already registered by {_module_of(old)}")
        TASKS[name] = fn
        return fn
    return register


def _module_of(fn: Callable) -> str | None:
    return getattr(fn, "__module__", None)


def handler_modules() -> list[str]:
    """Names of the modules that registered tasks (a worker imports them when it starts)."""
    return sorted({m for m in map(_module_of, TASKS.values()) if m}
                  - {__name__, "__main__"})


@task("ping")
def ping() -> str:
    """Answer ``pong`` (checks that a worker is up)."""
    return "pong"


@task("spin")
def spin(seconds: float) -> str:
    """Busy-loop in Python for *seconds* (a task to test the time limit with)."""
    end = time.monotonic() + float(seconds)
    n = 0
    while time.monotonic() < end:
        n += 1
    return "done"


# --- the pool -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskResult:
    """What a task returned: ``status`` is ``ok``, ``timeout`` or ``error``."""

    status: str
    value: Any = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the task finished and returned ``value``."""
        return self.status == OK


class _Worker:
    """One worker process and the parent's end of its pipes."""

    def __init__(self, memory_mb: int) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH"))
                                            if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mathcore.symbolic.worker", str(memory_mb),
             *handler_modules()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, close_fds=True,
        )
        self.ready = False
        self._buf = b""
        self._next_id = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _readline(self, deadline: float) -> bytes | None:
        """One line from the worker, or None at the deadline. Raises EOFError if it died."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("worker exited")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def wait_ready(self, timeout: float) -> bool:
        if self.ready:
            return True
        line = self._readline(time.monotonic() + timeout)
        self.ready = line is not None and json.loads(line).get("ready") is True
        return self.ready

    def request(self, task: str, args: Sequence, timeout: float) -> dict | None:
        """Send one task and wait for its answer; None when *timeout* passed first."""
        self._next_id += 1
        message = {"id": self._next_id, "task": task, "args": list(args),
                   "alarm": int(timeout) + 10}
        self.proc.stdin.write(json.dumps(message).encode("utf-8") + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line is None:
                return None
            reply = json.loads(line)
            if reply.get("id") == self._next_id:
                return reply

    def kill(self) -> None:
        """Terminate, then kill if it does not exit within half a second; reap it."""
        proc = self.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(0.5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


def _kill_all(workers: list[_Worker]) -> None:
    for w in list(workers):
        w.kill()
    workers.clear()


class WorkerPool:
    """Worker processes that run named tasks under a hard time limit.

    Args:
        size: most workers alive at once (and most tasks running at once).
        memory_mb: address-space limit of each worker (0: none), so that a blow-up fails
            with MemoryError instead of swapping.
        start_timeout: how long a fresh worker may take to import SymPy; not counted in a
            task's timeout.

    Example:
        >>> pool = WorkerPool(size=1); pool.run("ping", [], timeout=5.0).status; pool.close()
        'ok'
    """

    def __init__(self, size: int = 2, memory_mb: int = 3072, start_timeout: float = 60.0) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if memory_mb < 0 or start_timeout <= 0:
            raise ValueError("memory_mb must be >= 0 and start_timeout > 0")
        self.size = size
        self.memory_mb = memory_mb
        self.start_timeout = start_timeout
        self._workers: list[_Worker] = []  # every live worker
        self._idle: list[_Worker] = []
        self._cond = threading.Condition()
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._workers)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._cond:
            return [w.pid for w in self._workers]

    def start(self) -> None:
        """Start every worker now (they import SymPy while the caller goes on)."""
        with self._cond:
            while len(self._workers) < self.size and not self._closed:
                self._spawn()

    def _spawn(self) -> _Worker:
        worker = _Worker(self.memory_mb)
        self._workers.append(worker)
        self._idle.append(worker)
        return worker

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("WorkerPool is closed")
                if self._idle:
                    # Prefer a worker that is already up.
                    ready = [w for w in self._idle if w.ready]
                    worker = ready[0] if ready else self._idle[0]
                    self._idle.remove(worker)
                    return worker
                if len(self._workers) < self.size:
                    worker = self._spawn()
                    self._idle.remove(worker)
                    return worker
                self._cond.wait()

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)
            self._cond.notify()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._cond:
            if worker in self._workers:
                self._workers.remove(worker)
            if not self._closed:
                self._spawn()  # the replacement imports SymPy while the caller goes on
            self._cond.notify()

    def run(self, task: str, args: Sequence, timeout: float) -> TaskResult:
        """Run *task* with JSON-serialisable *args*, killing the worker after *timeout* seconds.

        Returns:
            A :class:`TaskResult`; ``timeout`` when the limit was reached, ``error`` when the
            task raised, the worker died or could not start.
        """
        if timeout <= 0:
            return TaskResult(TIMEOUT)  # no time: do not start (and then kill) a task
        worker = self._acquire()
        started = time.monotonic()
        try:
            if not worker.wait_ready(self.start_timeout):
                self._discard(worker)
                return TaskResult(ERROR, error="worker did not start")
            started = time.monotonic()
            reply = worker.request(task, args, timeout)
        except (EOFError, OSError, ValueError) as exc:
            self._discard(worker)
            return TaskResult(ERROR, error=f"worker failed: {exc!r}",
                              seconds=time.monotonic() - started)
        seconds = time.monotonic() - started
        if reply is None:
            logger.debug("task %s timed out after %.2f s; killing worker %d", task, seconds,
                         worker.pid)
            self._discard(worker)
            return TaskResult(TIMEOUT, seconds=seconds)
        self._release(worker)
        if reply.get("ok"):
            return TaskResult(OK, value=reply.get("value"), seconds=seconds)
        return TaskResult(ERROR, error=reply.get("error"), seconds=seconds)

    def close(self) -> None:
        """End every worker (terminate, then kill) and refuse further tasks."""
        with self._cond:
            self._closed = True
            self._idle.clear()
            _kill_all(self._workers)
            self._cond.notify_all()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: WorkerPool | None = None
_default_lock = threading.Lock()


def default_pool() -> WorkerPool:
    """The process-wide pool (created on first use, closed at exit)."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = WorkerPool(size=max(1, min(2, os.cpu_count() or 1)))
        return _default


def close_default_pool() -> None:
    """Close the process-wide pool now; the next :func:`default_pool` makes a new one."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
            _default = None


atexit.register(close_default_pool)
