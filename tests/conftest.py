"""Shared fixtures of the test suite.

Fixtures are grouped by the part of mathmatch they serve; add new groups below the existing ones.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

REPO = Path(__file__).resolve().parents[1]

# --- foundation: data folders, the command line run in-process -------------------------------

# Loggers whose level `mathmatch.cli.main` sets (see cli._configure_logging).
_CLI_LOGGERS = ("", "mathmatch", "mathcore", "index", "retriever", "reranker", "tuning",
                "benchmarks")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The bundled sample corpus (``data/sample``: records.jsonl, mathml/, queries, qrels)."""
    return REPO / "data" / "sample"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Small fixture files of the tests (``tests/data``; see its README.md)."""
    return Path(__file__).resolve().parent / "data"


@pytest.fixture
def run_cli() -> Iterator[Callable[[Sequence[str]], int]]:
    """``run_cli(["index", "info", DIR])``: run ``mathmatch`` in this process, return its status.

    argparse's own exits (``--help``, ``--version``, usage errors) are returned as statuses too.
    The logging configuration the command installs is undone afterwards, so one test's
    handlers never write into another test's captured streams.
    """
    from mathmatch.cli import main

    saved = [(name, logging.getLogger(name).level, list(logging.getLogger(name).handlers))
             for name in _CLI_LOGGERS]

    def run(argv: Sequence[str]) -> int:
        try:
            return main([str(a) for a in argv])
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2

    yield run
    for name, level, handlers in saved:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers


# --- models: loaded or built once per session ---------------------------------------------------

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Iterator[Path]:
    """The ONNX exports of the encoder backends (retriever/backends.py) go to a folder of the
    session, not the user's cache (commands run as subprocesses inherit it)."""
    saved = os.environ.get("MATHMATCH_CACHE")
    folder = tmp_path_factory.mktemp("mathmatch-cache")
    os.environ["MATHMATCH_CACHE"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("MATHMATCH_CACHE", None)
    else:
        os.environ["MATHMATCH_CACHE"] = saved


@pytest.fixture(scope="session")
def tiny_encoder_path(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide sentence-transformers encoder (random weights, MiniLM's tokenizer)."""
    from tests.models import tiny_encoder

    return tiny_encoder(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide LlamaForCausalLM (random weights, MiniLM's tokenizer)."""
    from tests.models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> Path:
    """The sample (300 records + 6 MathML files) indexed with the packaged MiniLM."""
    from mathmatch.cli import main

    out = tmp_path_factory.mktemp("idx") / "sample"
    sample = REPO / "data" / "sample"
    code = main(["-q", "index", "build", str(sample / "records.jsonl"), str(sample / "mathml"),
                 "--out", str(out), "--workers", "0", "--device", "cpu"])
    assert code == 0
    return out
