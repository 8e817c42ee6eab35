"""The worker process of :class:`mathcore.symbolic.limits.WorkerPool`.

Run as ``python -m mathcore.symbolic.worker MEMORY_MB``. It writes ``{"ready": true}`` once
SymPy is imported, then answers one JSON request per line on stdin with one JSON reply per line
on the original stdout (anything the task prints goes to stderr). Each request also carries an
``alarm``: if the parent is gone and nobody kills the worker, SIGALRM (default action) ends it.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _limit_memory(memory_mb: int) -> None:
    if memory_mb <= 0:
        return
    import resource

    limit = memory_mb * 1024 * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):  # a hard limit already lower, or not permitted
        pass


def main(argv: list[str] | None = None) -> int:
    """Serve tasks until stdin closes."""
    argv = sys.argv[1:] if argv is None else argv
    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # stray prints must not corrupt the protocol
    _limit_memory(int(argv[0]) if argv else 0)
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)

    from mathcore.symbolic.tasks import TASKS

    protocol.write(json.dumps({"ready": True, "pid": os.getpid()}).encode() + b"\n")
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        request = json.loads(line)
        signal.alarm(max(1, int(request.get("alarm", 0))))
        try:
            fn = TASKS[request["task"]]
            reply = {"id": request["id"], "ok": True, "value": fn(*request.get("args", []))}
        except MemoryError:
            reply = {"id": request.get("id"), "ok": False, "error": "out of memory"}
        except Exception as exc:  # any failure of a task is its answer
            reply = {"id": request.get("id"), "ok": False,
                     "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        signal.alarm(0)
        protocol.write(json.dumps(reply).encode("utf-8") + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
