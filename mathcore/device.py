"""Where models and searches run: one rule for ``device="auto" | "cpu" | "cuda"``.

``auto`` is CUDA when torch sees a device, else the CPU (with one log line); an explicit
``cuda`` that is not there is an error that says what to do, never a silent fallback.  torch
is imported only when CUDA has to be looked for, and its absence means "no CUDA".

Example:
    >>> resolve_device("cpu")
    'cpu'
"""

from __future__ import annotations

import logging
from typing import Any

from mathcore.options import option

logger = logging.getLogger(__name__)
_SAID_NO_CUDA: list[bool] = []

DEVICES = ("auto", "cpu", "cuda")
DEVICE_HELP = "auto: CUDA when available, else CPU"


def device_option(default: str = "auto") -> Any:
    """A config field ``device`` with the ``--device`` flag (choices :data:`DEVICES`)."""
    return option(default, DEVICE_HELP, choices=DEVICES)


# How the bi-encoder runs (retriever.backends says what each is; the index records it).
ENCODER_BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
# Vectors of one family are interchangeable (cosine 0.9998 or better to each other).
BACKEND_FAMILY = {"torch": "float", "torch-bf16": "float", "onnx": "float", "onnx-int8": "int8"}
BACKEND_HELP = ("how the encoder runs: torch, torch-bf16 (CPUs with bfloat16 units), onnx, "
                "onnx-int8 (ONNX Runtime, int8), or auto: the fastest shown to match torch's "
                "quality for this encoder (an index's queries: the fastest of its vectors' "
                "family)")


def backend_option(default: str = "auto") -> Any:
    """A config field ``backend`` with the ``--backend`` flag (choices
    :data:`ENCODER_BACKENDS`)."""
    return option(default, BACKEND_HELP, choices=ENCODER_BACKENDS)


def cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str, *, numbered: bool = False, purpose: str = "running") -> str:
    """``cpu`` or ``cuda`` (or ``cuda:N``) for a requested device.

    Args:
        device: one of :data:`DEVICES`; with *numbered*, also ``cuda:N``.
        numbered: accept ``cuda:N`` (returned as given) for callers that place work on one
            GPU of several (the vector index); the others take ``cuda`` only.
        purpose: what runs there, for the log line of an ``auto`` that falls back to the CPU
            (``encoding``, ``searching``, ``training``).

    Raises:
        ValueError: a name that is not a device.
        RuntimeError: CUDA asked for explicitly but not available.
    """
    known = isinstance(device, str) and (device in DEVICES or
                                         (numbered and device.startswith("cuda:")))
    if not known:
        also = " or 'cuda:N'" if numbered else ""
        raise ValueError(f"device must be one of {DEVICES}{also}, got {device!r}")
    if device == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda" if device == "auto" else device
    if device == "auto":
        # Said once a process: every model of a command would say it again.
        log = logger.debug if _SAID_NO_CUDA else logger.info
        log("device 'auto': CUDA is not available, %s on the CPU", purpose)
        _SAID_NO_CUDA.append(True)
        return "cpu"
    raise RuntimeError(f"device {device!r} was asked for but CUDA is not available (torch sees "
                       "no CUDA device): use --device cpu or auto (device='cpu' or 'auto' from "
                       "Python), or install a CUDA build of torch")
