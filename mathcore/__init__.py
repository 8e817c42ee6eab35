"""Records, hardened MathML parsing, linear text and BM25 analysis, and the SQLite store."""

__version__ = "0.1.0"  # the mathmatch distribution's version (mathmatch.__version__)

from mathcore.linear import to_linear
from mathcore.loaders import CorpusError, detect_format, iter_corpus, iter_source, read_mathml_file
from mathcore.mathml import (
    DEFAULT_LIMITS,
    Limits,
    MathMLError,
    iter_formulas,
    parse_math,
    split_math,
)
from mathcore.records import Derived, Record, RecordError, Reject, derive, query_text
from mathcore.store import Store, StoredRecord, StoreError
from mathcore.tokens import analyze

__all__ = [
    "DEFAULT_LIMITS", "CorpusError", "Derived", "Limits", "MathMLError", "Record", "RecordError",
    "Reject", "Store", "StoreError", "StoredRecord", "analyze", "derive", "detect_format",
    "iter_corpus", "iter_formulas", "iter_source", "parse_math", "query_text",
    "read_mathml_file", "split_math", "to_linear",
]

import logging as _logging


class _QuietKernels(_logging.Filter):
    """bitsandbytes (imported by transformers and peft) warns on every CPU-only import that an
    optional package of fused CPU kernels is missing; mathmatch does not use them."""

    def filter(self, record: _logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward")


_logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_QuietKernels())
