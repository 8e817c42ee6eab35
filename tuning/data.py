"""Training data for tuning: corpus records as (question, answer) pairs, minus the benchmark.

Everything a benchmark judges is kept out of training here, in one place: the queries and gold
records named in ``--exclude-qrels`` files (and any corpus record whose question *is* one of those
queries, when the queries file sits beside the qrels) are named by :class:`Exclusions`.  The
embedder reads its pairs through :func:`load_pairs`, the reranker its groups from an index's
records through ``tuning.reranker.make_groups``; both drop what :meth:`Exclusions.reason` names
before anything is drawn, so neither can see an excluded record, as a pair, a negative or a
validation item.

Example:
    >>> excl = Exclusions.from_qrels([])
    >>> excl.reason(TrainRecord("a", "q", "x", "", "s", "f:1"))  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from mathcore.loaders import derive_unit, iter_units
from mathcore.mathml import DEFAULT_LIMITS, Limits
from mathcore.records import Reject
from mathcore.runs import iter_queries, linear_query, read_qrels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRecord:
    """A corpus record in its linear forms: what the encoders read, at index and at query time."""

    id: str
    question: str
    answer: str
    final: str
    source: str
    origin: str
    # The forum thread a record answers (``question_id`` of Math StackExchange records): the
    # answers of one thread are all positives of its question, never each other's negatives.
    thread: str = ""

    @property
    def group(self) -> str:
        """The id of the record's question: its thread, or the record itself."""
        return f"thread:{self.thread}" if self.thread else self.id


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def same_problem(a: TrainRecord, b: TrainRecord) -> bool:
    """Whether *b* may be a correct answer to *a* (so never its negative): an answer of the same
    thread, the same final answer, or the same question text."""
    if a.thread and a.thread == b.thread:
        return True
    fa = _norm(a.final)
    return bool(fa and _norm(b.final) == fa) or _norm(a.question) == _norm(b.question)


@dataclass
class Exclusions:
    """Ids and question texts that must never be trained on (benchmark queries and gold)."""

    query_ids: set[str] = field(default_factory=set)
    gold_ids: set[str] = field(default_factory=set)
    query_texts: set[str] = field(default_factory=set)
    files: list[str] = field(default_factory=list)
    # Shell-style patterns of record ids never trained on (``gsm8k-test-*``: the GSM8K test
    # split, a benchmark target elsewhere).
    id_patterns: list[str] = field(default_factory=list)

    @classmethod
    def from_qrels(cls, paths: Iterable[Path | str],
                   id_patterns: Iterable[str] = ()) -> Exclusions:
        """Read qrels files; a BEIR ``queries.jsonl`` beside one (or one folder up) adds texts.
        *id_patterns* (shell-style, ``gsm8k-test-*``) exclude records by id as well.

        Raises:
            FileNotFoundError: for a qrels file that does not exist.
        """

        excl = cls(id_patterns=list(id_patterns))
        for path in map(Path, paths):
            if not path.is_file():
                raise FileNotFoundError(f"--exclude-qrels {path}: no such file")
            qrels = read_qrels(path)
            excl.files.append(str(path))
            excl.query_ids.update(qrels)
            for docs in qrels.values():
                excl.gold_ids.update(docs)  # every judged record, relevant or not
            for queries in (path.parent / "queries.jsonl", path.parent.parent / "queries.jsonl"):
                if queries.is_file():
                    for qid, text in iter_queries(queries):
                        if qid in qrels:
                            excl.query_texts.add(_norm(linear_query(qid, text)))
                    excl.files.append(str(queries))
                    break
        return excl

    def reason(self, rec: TrainRecord) -> str | None:
        """Why *rec* is excluded, or None when it may be trained on."""
        if rec.id in self.gold_ids:
            return "gold record of an excluded query"
        if rec.id in self.query_ids:
            return "id of an excluded query"
        if self.query_texts and _norm(rec.question) in self.query_texts:
            return "question text of an excluded query"
        for pattern in self.id_patterns:
            if fnmatch.fnmatchcase(rec.id, pattern):
                return f"id matches {pattern}"
        return None


@dataclass
class PairSet:
    """Records that may be trained on, the validation slice, and what was left out and why."""

    train: list[TrainRecord]
    val: list[TrainRecord]
    excluded: Counter = field(default_factory=Counter)
    rejected: list[Reject] = field(default_factory=list)
    capped: int = 0

    def summary(self) -> dict:
        by_source = Counter(r.source for r in self.train)
        return {"train_pairs": len(self.train), "train_by_source": dict(sorted(by_source.items())),
                "validation": len(self.val), "excluded": dict(self.excluded),
                "rejected": len(self.rejected), "capped": self.capped}


def read_records(corpora: Sequence[Path | str], limits: Limits = DEFAULT_LIMITS,
                 rejected: list[Reject] | None = None) -> list[TrainRecord]:
    """Linear forms of every record of the corpus paths; rejects go to *rejected*."""
    out: list[TrainRecord] = []
    for path in map(Path, corpora):
        for unit in iter_units(path, limits):
            item = derive_unit(unit, limits)
            if isinstance(item, Reject):
                if rejected is not None:
                    rejected.append(item)
                continue
            rec, d = item
            thread = (rec.meta or {}).get("question_id")
            out.append(TrainRecord(rec.id, d.question_text, d.answer_text, d.final_text,
                                   rec.source or path.stem, rec.origin,
                                   "" if thread is None else str(thread)))
    return out


def load_pairs(corpora: Sequence[Path | str], exclusions: Exclusions, val_size: int,
               max_per_source: int | None = None, seed: int = 0,
               limits: Limits = DEFAULT_LIMITS) -> PairSet:
    """The training records and a validation slice drawn from them (never from the benchmark).

    EXCLUSION: every record that ``exclusions`` names (benchmark queries and their gold records)
    is dropped here, before the validation slice is drawn and before any pair or negative is
    made; records without a question cannot form a pair and are dropped too.  Duplicate ids keep
    their first record.  The validation slice is a per-source proportional sample of
    ``val_size`` records, drawn by question (a forum thread's answers all go to validation or
    all to training); ``max_per_source`` then caps each source's training records (a random
    sample of questions, so a large easy source does not take the whole time budget).
    """
    rejected: list[Reject] = []
    excluded: Counter = Counter()
    seen: set[str] = set()
    kept: list[TrainRecord] = []
    for rec in read_records(corpora, limits, rejected):
        why = exclusions.reason(rec)
        if why is None and not rec.question:
            why = "no question"
        if why is None and rec.id in seen:
            why = "duplicate id"
        if why is not None:
            excluded[why] += 1
            continue
        seen.add(rec.id)
        kept.append(rec)

    rng = random.Random(seed)
    by_source: dict[str, dict[str, list[TrainRecord]]] = defaultdict(dict)
    for rec in kept:
        by_source[rec.source].setdefault(rec.group, []).append(rec)
    val: list[TrainRecord] = []
    train: list[TrainRecord] = []
    capped = 0
    total = max(len(kept), 1)
    for source in sorted(by_source):
        groups = list(by_source[source].values())
        rng.shuffle(groups)
        n_recs = sum(map(len, groups))
        want = min(n_recs - 1, round(val_size * n_recs / total)) if val_size else 0
        taken = 0
        while groups and taken < want and len(groups) > 1:
            group = groups.pop(0)
            val.extend(group)
            taken += len(group)
        rest = [rec for group in groups for rec in group]
        if max_per_source and len(rest) > max_per_source:
            capped += len(rest) - max_per_source
            rest = rest[:max_per_source]
        train.extend(rest)
    logger.info("training records: %d (validation %d); excluded %s; rejected %d; capped %d",
                len(train), len(val), dict(excluded) or "none", len(rejected), capped)
    return PairSet(train=train, val=val, excluded=excluded, rejected=rejected, capped=capped)

