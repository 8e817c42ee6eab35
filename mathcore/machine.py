"""The machine a figure was measured on: CPU, cores, memory, GPU, Python, package versions,
date and git revision (``mathmatch bench`` and every benchmark state it)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("mathmatch", "numpy", "torch", "faiss-cpu", "faiss-gpu-cu12", "sentence-transformers",
            "transformers", "bm25s", "lxml", "sympy", "peft", "bitsandbytes", "ranx")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_name() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return None


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).resolve().parent, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict:
    """CPU, cores, memory, GPU, Python, package versions, date and git revision."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cores_usable": usable,
            "memory_gib": round(mem, 1),
            "gpu": gpu_name(), "python": platform.python_version(), "platform": platform.platform(),
            "packages": versions(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(
                timespec="seconds"), "git": git_revision()}


def blas() -> list[str]:
    """The BLAS libraries numpy and torch use, with their thread counts (when threadpoolctl is
    installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
            for p in threadpool_info()]


def describe(m: dict | None = None) -> str:
    m = m or machine()
    gpu = m["gpu"] or "no GPU"
    return f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {gpu}, Python {m['python']}"


def peak_rss_mib() -> float:
    """Peak resident memory of this process (and of waited-for children) in MiB."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024
