"""Synthetic corpus for scale benchmarks: real dev records, their numbers and wording varied.

    python -m benchmarks.synth --data ../shared/data --records 1000000 \\
        --out build/bench/synth-1m.jsonl.gz [--seed 0]

Record ``n`` is a variant of one real record of ``DATA/corpus/*.jsonl`` (sources taken in a
seeded shuffled order, round after round, so any prefix of the output is a random sample of
them), written as our records JSONL with a new id ``synth-<n>-<source id>`` and a ``meta``
object holding ``source_id``, the number ``scale`` and the ``wording`` variant.

* **Numbers**: where it is safe, every integer of the question, the answer (text and MathML
  ``<mn>``/``<cn>``) and the final answer is multiplied by one factor (2 to 9).  Safe means the
  arithmetic stays true when scaled: the answer's formulas only add, subtract and compare
  integers (``<math>``, ``<mrow>``, ``<mn>``, ``<mo>`` of ``+ - = ( )``), each number a formula
  uses comes from the question or an earlier result, and each number of the question is used.
  Other records (most of them: products, fractions, powers) keep their numbers.
* **Wording**: a question opening and closing, an answer opening and closing, and one of
  three sets of phrase swaps applied to text outside formulas; the combination is a function of
  the variant number, so the variants of one record differ in wording (up to
  :data:`WORDINGS` of them) before numbers are even counted.

Deterministic given the seed; streams its output (only the ~15k sources are held).  The output
is read by the project's loader like any corpus (``index build``).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import html
import json
import logging
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from benchmarks.machine import DEFAULT_DATA

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SCALES = tuple(range(2, 10))
Q_OPEN = ("", "Question: ", "Problem: ", "Solve the following. ", "Here is a problem. ",
          "Try this one: ", "Exercise: ", "Consider this. ")
Q_CLOSE = ("", " Show your work.", " Explain your reasoning.", " Give the final answer.",
           " Answer briefly.", " Justify each step.")
A_OPEN = ("", "Solution: ", "Answer: ", "Here is how to solve it. ", "Let us work it out. ",
          "Step by step: ", "We proceed as follows. ", "Working: ")
A_CLOSE = ("", " That completes the solution.", " This is the result.", " Done.",
           " Each step above checks out.", " Hence the result above.")
# Phrase swaps on text outside formulas (whole words, case as written); set 0 changes nothing.
SWAPS: tuple[dict[str, str], ...] = (
    {},
    {"How many": "What number of", "How much": "What amount", "altogether": "in all",
     "The answer is": "So the answer is", "Therefore": "Thus", "Find": "Determine",
     "Calculate": "Compute", "What is": "What's"},
    {"How much": "What amount", "altogether": "in total", "The answer is": "The final answer is",
     "Therefore": "Hence", "Find": "Work out", "Compute": "Calculate", "Show that": "Prove that",
     "total": "sum"},
)
WORDINGS = len(Q_OPEN) * len(Q_CLOSE) * len(A_OPEN) * len(A_CLOSE) * len(SWAPS)
_SWAP_RE = tuple(re.compile(r"\b(" + "|".join(map(re.escape, sorted(s, key=len, reverse=True)))
                            + r")\b") if s else None for s in SWAPS)

_TAG_RE = re.compile(r"<\s*([A-Za-z][\w:.-]*)")
_NUM_ELEM_RE = re.compile(r"(<(mn|cn)(?:\s[^>]*)?>)\s*(-?\d+)\s*(</\2>)")
_NUM_ELEM_ANY_RE = re.compile(r"<(mn|cn)(?:\s[^>]*)?>(.*?)</\1>", re.DOTALL)
_MO_RE = re.compile(r"<mo(?:\s[^>]*)?>(.*?)</mo>", re.DOTALL)
_ELEM_RE = re.compile(r"<(mn|mo)(?:\s[^>]*)?>(.*?)</\1>", re.DOTALL)
# An integer in running text: not part of a word, a decimal, a time, a fraction or a percent.
_TEXT_INT_RE = re.compile(r"(?<![\w.,:/])(\d+)(?![\w%]|[.,:/]\d)")
_DIGITS_RE = re.compile(r"\d+")
SAFE_TAGS = frozenset({"math", "mrow", "mn", "mo"})
SAFE_OPS = frozenset({"+", "-", "\u2212", "=", "(", ")"})


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.

    Args:
        data: the dev data folder (its ``corpus/*.jsonl`` are the sources).
        records: how many records to write.
        out: the output file (``.jsonl`` or ``.jsonl.gz``).
        seed: the seed of the source order, scales and wordings.
    """

    data: Path
    records: int
    out: Path
    seed: int = 0

    def __post_init__(self) -> None:
        if self.records < 1:
            raise ValueError(f"records must be at least 1, got {self.records}")


@dataclass(frozen=True)
class _Source:
    record: dict
    scalable: bool


@functools.lru_cache(maxsize=65536)
def _split(text: str) -> tuple[tuple[bool, str], ...]:
    """``(is_math, piece)`` pieces of a text field, formulas whole (cached: every source
    field is split once however many variants it has)."""
    out, pos = [], 0
    while True:
        start = text.find("<math", pos)
        end = text.find("</math>", start) if start >= 0 else -1
        if end < 0:
            break
        if start > pos:
            out.append((False, text[pos:start]))
        out.append((True, text[start:end + 7]))
        pos = end + 7
    if pos < len(text):
        out.append((False, text[pos:]))
    return tuple(out)


def _mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): record *n*'s choices depend on the seed
    and *n* alone, with no generator state carried from record to record."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h


def _text_ints(text: str) -> list[int] | None:
    """The integers of running text, or None when some digits are not a plain integer."""
    found = [int(m.group(1)) for m in _TEXT_INT_RE.finditer(text)]
    return found if len(found) == len(_DIGITS_RE.findall(text)) else None


def _formula_safe(formula: str) -> bool:
    if any(t.split(":")[-1] not in SAFE_TAGS for t in _TAG_RE.findall(formula)):
        return False
    if any(html.unescape(o).strip() not in SAFE_OPS for o in _MO_RE.findall(formula)):
        return False
    return all(re.fullmatch(r"\s*-?\d+\s*", html.unescape(v)) for _, v in
               _NUM_ELEM_ANY_RE.findall(formula))


def scalable(record: dict) -> bool:
    """Whether multiplying every integer of *record* by one factor keeps it true (see the
    module's docstring)."""
    given: set[int] = set()
    for is_math, piece in _split(record.get("question") or ""):
        if is_math:
            if not _formula_safe(piece):
                return False
            given.update(abs(int(html.unescape(v))) for _, v in _NUM_ELEM_ANY_RE.findall(piece))
        else:
            ints = _text_ints(piece)
            if ints is None:
                return False
            given.update(ints)
    if not given:
        return False
    known, used = set(given), set()
    formulas = 0
    for is_math, piece in _split(record.get("answer") or ""):
        if not is_math:
            if _text_ints(piece) is None:
                return False
            continue
        if not _formula_safe(piece):
            return False
        formulas += 1
        after_equals, results = False, []
        for tag, value in _ELEM_RE.findall(piece):
            value = html.unescape(value).strip()
            if tag == "mo":
                after_equals = after_equals or value == "="
                continue
            number = abs(int(value))
            if after_equals:
                results.append(number)
            elif number not in known:
                return False  # a number that comes from nowhere (a word, a constant)
            else:
                used.add(number)
        known.update(results)
    final = record.get("final") or ""
    if final and not all(_formula_safe(p) for m, p in _split(final) if m):
        return False
    return formulas > 0 and given <= used


def _scale_text(text: str, factor: int) -> str:
    return _TEXT_INT_RE.sub(lambda m: str(int(m.group(1)) * factor), text)


def _scale_formula(formula: str, factor: int) -> str:
    return _NUM_ELEM_RE.sub(lambda m: f"{m.group(1)}{int(m.group(3)) * factor}{m.group(4)}",
                            formula)


def _vary(text: str, factor: int, swaps: int) -> str:
    pieces = []
    for is_math, piece in _split(text):
        if is_math:
            pieces.append(_scale_formula(piece, factor) if factor != 1 else piece)
            continue
        if factor != 1:
            piece = _scale_text(piece, factor)
        if _SWAP_RE[swaps] is not None:
            piece = _SWAP_RE[swaps].sub(lambda m: SWAPS[swaps][m.group(1)], piece)
        pieces.append(piece)
    return "".join(pieces)


def wording(index: int) -> tuple[int, int, int, int, int]:
    """The wording variant *index* (0 <= index < WORDINGS) as ``(question opening, question
    closing, answer opening, answer closing, phrase swaps)``."""
    out = []
    for size in (len(Q_OPEN), len(Q_CLOSE), len(A_OPEN), len(A_CLOSE), len(SWAPS)):
        index, digit = divmod(index, size)
        out.append(digit)
    return tuple(out)  # type: ignore[return-value]


@functools.lru_cache(maxsize=65536)
def _start(seed: int, source_id: str) -> int:
    return random.Random(f"{seed}:{source_id}").randrange(WORDINGS)


def variant(source: dict, n: int, round_: int, seed: int, can_scale: bool) -> dict:
    """Record *n* of the synthetic corpus: round *round_*'s variant of *source*."""
    # Rounds step through the wordings by a stride coprime with WORDINGS from a per-source
    # start: the variants of one source never repeat a wording before WORDINGS rounds.
    start = _start(seed, source["id"])
    qo, qc, ao, ac, sw = wording((start + round_ * 1009) % WORDINGS)
    factor = SCALES[_mix(seed, n) % len(SCALES)] if can_scale else 1
    question = source.get("question") or ""
    if question:
        question = Q_OPEN[qo] + _vary(question, factor, sw) + Q_CLOSE[qc]
    answer = A_OPEN[ao] + _vary(source["answer"], factor, sw) + A_CLOSE[ac]
    out = {"id": f"synth-{n}-{source['id']}", "source": source.get("source", "synth"),
           "split": "synthetic", "question": question, "answer": answer}
    if source.get("final"):
        out["final"] = _vary(source["final"], factor, 0)
    out["meta"] = {"source_id": source["id"], "scale": factor,
                   "wording": [qo, qc, ao, ac, sw]}
    return out


def read_sources(data: Path) -> list[dict]:
    """The dev records of ``data/corpus/*.jsonl``, in file order."""
    files = sorted((Path(data) / "corpus").glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no corpus/*.jsonl under {data}")
    out = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                rec = json.loads(line)
                if not isinstance(rec.get("id"), str) or not isinstance(rec.get("answer"), str):
                    raise ValueError(f"{path}:{lineno}: expected a record with id and answer")
                out.append(rec)
    return out


def iter_synthetic(sources: list[dict], records: int, seed: int = 0) -> Iterator[dict]:
    """The first *records* synthetic records over *sources* (see the module's docstring)."""
    order = list(range(len(sources)))
    random.Random(seed).shuffle(order)
    flags = [None] * len(sources)
    for n in range(records):
        round_, i = divmod(n, len(order))
        s = order[i]
        if flags[s] is None:
            flags[s] = scalable(sources[s])
        yield variant(sources[s], n, round_, seed, bool(flags[s]))


def _open_out(path: Path, compress: bool) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=4)
    return open(path, "w", encoding="utf-8")


def generate(cfg: SynthConfig, progress: bool = False) -> dict:
    """Writes the synthetic corpus of *cfg* (through a temporary name); returns its facts:
    records, how many had their numbers scaled, seconds, bytes."""
    sources = read_sources(cfg.data)
    t0 = time.perf_counter()
    scaled = 0
    tmp = cfg.out.with_name(f".{cfg.out.name}.tmp")
    from tqdm.auto import tqdm

    with _open_out(tmp, cfg.out.suffix == ".gz") as fh:
        for rec in tqdm(iter_synthetic(sources, cfg.records, cfg.seed), total=cfg.records,
                        unit="rec", desc="synth", disable=not progress):
            scaled += rec["meta"]["scale"] != 1
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(cfg.out)
    facts = {"records": cfg.records, "sources": len(sources), "seed": cfg.seed,
             "numbers_scaled": scaled, "wording_only": cfg.records - scaled,
             "generator_version": GENERATOR_VERSION,
             "seconds": round(time.perf_counter() - t0, 3), "bytes": cfg.out.stat().st_size}
    logger.info("wrote %s: %s", cfg.out, facts)
    return facts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help=".jsonl or .jsonl.gz")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    facts = generate(SynthConfig(args.data, args.records, args.out, args.seed),
                     progress=sys.stderr.isatty())
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
