"""Hard negatives mined with the current model, with a margin against false negatives.

Duplicate problems share answers: a near neighbour of the gold answer may be just as correct, and
training against it teaches the wrong thing.  A candidate is therefore skipped when its score is
within ``margin`` of the gold answer's score, when its final answer is the gold's, or when its
question is the same problem text.  The pool is the training records only (see tuning.data: the
excluded benchmark records never get here).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tuning.data import TrainRecord, same_problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MiningStats:
    queries: int
    mined: int
    random_fallback: int
    skipped_margin: int
    skipped_same_final: int

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def mine_hard_negatives(records: Sequence[TrainRecord], q_vecs: np.ndarray, a_vecs: np.ndarray,
                        count: int = 1, margin: float = 0.05, depth: int = 30, seed: int = 0,
                        chunk: int = 1024) -> tuple[list[list[int]], MiningStats]:
    """For each record, the positions of *count* hard-negative answers among *records*.

    ``q_vecs`` and ``a_vecs`` are normalised vectors of the records' questions and answers, in
    the same order.  A candidate must score below ``gold - margin`` and differ from the gold in
    final answer and question; when fewer than *count* of the top *depth* qualify, the rest are
    random answers of the same source with another final answer.
    """
    n = len(records)
    rng = random.Random(seed)
    by_source: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_source.setdefault(r.source, []).append(i)
    depth = min(depth + 1, n)
    out: list[list[int]] = []
    mined = fallback = skip_margin = skip_final = 0
    for start in range(0, n, chunk):
        scores = q_vecs[start:start + chunk] @ a_vecs.T
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth] if depth < n else \
            np.tile(np.arange(n), (scores.shape[0], 1))
        for row in range(scores.shape[0]):
            i = start + row
            gold = scores[row, i]
            order = top[row][np.argsort(-scores[row, top[row]])]
            picked: list[int] = []
            for j in order:
                j = int(j)
                if j == i:
                    continue
                if scores[row, j] > gold - margin:
                    skip_margin += 1
                    continue
                if same_problem(records[i], records[j]):
                    skip_final += 1
                    continue
                picked.append(j)
                if len(picked) == count:
                    break
            mined += len(picked)
            pool = by_source[records[i].source]
            tries = 0
            while len(picked) < count and tries < 50:
                tries += 1
                j = rng.choice(pool) if len(pool) > 1 else rng.randrange(n)
                if j != i and j not in picked and not same_problem(records[i], records[j]):
                    picked.append(j)
                    fallback += 1
            out.append(picked)
    stats = MiningStats(n, mined, fallback, skip_margin, skip_final)
    logger.info("hard negatives: %d mined, %d random fallbacks; skipped %d within the margin "
                "and %d with the gold's final answer or question", mined, fallback,
                skip_margin, skip_final)
    return out, stats
