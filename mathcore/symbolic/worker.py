"""The worker process of :class:`mathcore.symbolic.runtime.WorkerPool`.

Run as ``python -m mathcore.symbolic.worker MEMORY_MB [MODULE...]``. It limits its memory, imports
each MODULE by name (the modules that registered tasks in the parent, see
:func:`mathcore.symbolic.runtime.handler_modules`; importing them registers their tasks here),
writes ``{"ready": true}``, then answers one JSON request per line on stdin with one JSON reply
per line on the original stdout (anything the task prints goes to stderr). Each request also
carries an ``alarm``: if the parent is gone and nobody kills the worker, SIGALRM (default
action) ends it.

Imports: :mod:`mathcore.symbolic.runtime` only (the handler modules by name, at run time).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys

from mathcore.symbolic.runtime import TASKS


def _limit_memory(memory_mb: int) -> None:
    if memory_mb <= 0:
        return
    import resource

    limit = memory_mb * 1024 * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):  # a hard limit already lower, or not permitted
        pass


def _import_handlers(modules: list[str]) -> None:
    """Import the modules that register tasks; one that fails leaves its tasks unknown."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # its tasks answer KeyError, the others still work
            print(f"worker: cannot import {name}: {exc!r}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Serve tasks until stdin closes."""
    argv = sys.argv[1:] if argv is None else argv
    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # stray prints must not corrupt the protocol
    _limit_memory(int(argv[0]) if argv else 0)
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    _import_handlers(argv[1:])

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
