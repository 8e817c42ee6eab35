"""Multiple choice: pick the option that answers a question, by checking it symbolically.

Each option gets a score built from three kinds of evidence, strongest first:

1. the answer checker (:func:`mathcore.symbolic.verify`, in a worker killed after
   ``timeout``): ``VERIFIED`` 2, ``UNKNOWN`` 1, ``REFUTED`` 0 -- times 10;
2. with an index: agreement with the final answers of the question's duplicates in the corpus
   (:class:`dedup.finder.DuplicateFinder`; a record whose id is the item's own id is never
   used, so an item copied from the corpus cannot look up its own answer): the share of
   duplicate answers equivalent to the option, weighted by duplicate score -- times 3;
3. the cosine between the embeddings of the question and the option (all-MiniLM-L6-v2), only
   computed when the first two leave a tie at the top.

``score = 10 * check + 3 * agreement + cosine``; the chosen option has the highest score
(the first one on a full tie).

Example:
    >>> chooser = Chooser()  # doctest: +SKIP
    >>> chooser.choose(Item("i1", "Solve 2*x = 4 for x.", ["<math><cn>3</cn></math>", "2"]))
    ... # doctest: +SKIP
    Choice(id='i1', choice=1, scores=[0.0, 20.0])
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mathcore.device import device_option
from mathcore.options import option
from mathcore.runs import linear_query

logger = logging.getLogger(__name__)

# Points of the checker's verdicts (Check values); SymPy is imported when checking starts, so
# that the CLI, which reads ChooseConfig for its flags, starts without it.
_POINTS = {"verified": 2, "unknown": 1, "refuted": 0}
CHECK_WEIGHT, AGREEMENT_WEIGHT = 10.0, 3.0


class ItemError(ValueError):
    """An items file line that is not a multiple-choice item; names the file and line."""


@dataclass(frozen=True)
class Item:
    """A multiple-choice question; ``correct`` is the index of the right option, if known."""

    id: str
    question: str
    options: list[str]
    correct: int | None = None


@dataclass(frozen=True)
class Choice:
    """The option chosen for an item, with every option's score."""

    id: str
    choice: int
    scores: list[float]
    evidence: dict = field(default_factory=dict, compare=False)


def read_items(path: Path | str) -> Iterator[Item]:
    """Items of a JSONL file ``{"id", "question", "options": [...], "correct"?}``.

    Raises:
        ItemError: on a line that is not an item (names the file and line).
    """
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                item = Item(str(obj["id"]), obj["question"], list(obj["options"]),
                            obj.get("correct"))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ItemError(f"{path}:{lineno}: expected {{\"id\", \"question\", "
                                f"\"options\": [...]}} ({exc})") from None
            if not isinstance(item.question, str) or not item.options or \
                    not all(isinstance(o, str) for o in item.options):
                raise ItemError(f"{path}:{lineno}: question must be text and options a "
                                "non-empty list of texts")
            if item.correct is not None and not (
                    isinstance(item.correct, int) and 0 <= item.correct < len(item.options)):
                raise ItemError(f"{path}:{lineno}: correct must be an option index, "
                                f"got {item.correct!r}")
            yield item


class Chooser:
    """Score the options of multiple-choice items (see the module docstring).

    Args:
        timeout: seconds for one symbolic call.
        pool: worker pool (default: the shared one).
        finder: a :class:`dedup.finder.DuplicateFinder` (None: no duplicate evidence).
        duplicates: duplicate candidates looked at per item.
        encoder: a :class:`retriever.encoder.Encoder` for the last resort (default: the
            packaged MiniLM, loaded when first needed).
    """

    def __init__(self, timeout: float = 5.0, pool: Any = None, finder: Any = None,
                 duplicates: int = 5, encoder: Any = None) -> None:
        if timeout <= 0 or duplicates < 1:
            raise ValueError("timeout and duplicates must be positive")
        self.timeout, self.pool, self.finder = timeout, pool, finder
        self.duplicates, self._encoder = duplicates, encoder

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from retriever.encoder import BASE_ENCODER, Encoder

            # The off-the-shelf MiniLM: the choice figures (docs/symbolic.md) were measured
            # with it; the shipped tuned encoder has not been measured on multiple choice.
            self._encoder = Encoder(BASE_ENCODER, device="cpu")
        return self._encoder

    def _duplicate_finals(self, item: Item) -> list[tuple[str, float]]:
        if self.finder is None:
            return []
        cands = self.finder.find([(item.id, item.question)], k=self.duplicates,
                                 exclude={item.id: {item.id}})[0]
        out = []
        for c in cands:
            rec = self.finder.store.by_id(c.doc_id) if c.duplicate else None
            if rec is not None and rec.record.final:
                out.append((rec.record.final, c.score))
        return out

    def choose(self, item: Item) -> Choice:
        """The best option of one item."""
        from mathcore.symbolic import Check, Verdict, equivalent, verify

        checks = [verify(item.question, opt, timeout=self.timeout, pool=self.pool)
                  for opt in item.options]
        scores = [CHECK_WEIGHT * _POINTS[c.value] for c in checks]
        evidence: dict = {"checks": [c.value for c in checks]}
        if sum(c is Check.VERIFIED for c in checks) != 1:
            dups = self._duplicate_finals(item)
            if dups:
                total = sum(s for _, s in dups)
                agree = [sum(s for final, s in dups
                             if equivalent(opt, final, timeout=self.timeout, pool=self.pool)
                             is Verdict.EQUIVALENT) / total for opt in item.options]
                scores = [s + AGREEMENT_WEIGHT * a for s, a in zip(scores, agree, strict=True)]
                evidence["agreement"] = [round(a, 4) for a in agree]
                evidence["duplicates"] = len(dups)
        top = max(scores)
        if sum(s == top for s in scores) > 1:
            cos = self._cosines(item)
            scores = [s + c for s, c in zip(scores, cos, strict=True)]
            evidence["cosine"] = [round(c, 4) for c in cos]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        return Choice(item.id, best, [round(s, 4) for s in scores], evidence)

    def _cosines(self, item: Item) -> list[float]:

        texts = [linear_query(item.id, item.question)] + \
            [linear_query(item.id, o) for o in item.options]
        vecs = self.encoder.encode(texts)
        return [float(v @ vecs[0]) for v in vecs[1:]]


@dataclass(frozen=True)
class ChooseConfig:
    """Settings of ``mathmatch choose``.

    Args:
        items: the items JSONL file.
        index: an index folder for the duplicate evidence (None: without it).
        timeout: seconds per symbolic call.
        duplicates: duplicate candidates looked at per item.
        device: ``auto``, ``cpu`` or ``cuda`` for encoding.

    The command-line fields own their flags and help (``mathmatch choose``:
    :func:`mathcore.options.add_options`); ``items`` and ``index`` are the command's own.
    """

    items: Path
    index: Path | None = None
    timeout: float = option(5.0, "seconds per symbolic call", metavar="S")
    duplicates: int = option(5, "duplicate candidates looked at per item", metavar="N")
    device: str = device_option()

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if self.duplicates < 1:
            raise ValueError(f"duplicates must be at least 1, got {self.duplicates}")


def run_choose(cfg: ChooseConfig, out: Any, progress: Any = None) -> dict:
    """``mathmatch choose``: write ``{"id", "choice", "scores"}`` per item to *out*.

    Args:
        cfg: the settings.
        out: a text stream for the JSONL rows.
        progress: called with 1 after each item (a progress bar's ``update``), or None.

    Returns:
        ``chosen`` (items), and ``accuracy``/``right``/``items`` over the items that give
        ``correct``.
    """
    finder = None
    if cfg.index is not None:
        from dedup.finder import DuplicateFinder
        from retriever.questions import QuestionIndex

        # only duplicates count (their final answers, weighted by their scores)
        finder = DuplicateFinder(QuestionIndex.open(cfg.index, device=cfg.device),
                                 judge_all=False)
    chooser = Chooser(timeout=cfg.timeout, finder=finder, duplicates=cfg.duplicates,
                      encoder=finder.questions.encoder if finder else None)
    chosen = right = judged = 0
    try:
        for item in read_items(cfg.items):
            choice = chooser.choose(item)
            out.write(json.dumps({"id": choice.id, "choice": choice.choice,
                                  "scores": choice.scores}, ensure_ascii=False) + "\n")
            chosen += 1
            if item.correct is not None:
                judged += 1
                right += choice.choice == item.correct
            if progress is not None:
                progress(1)
    finally:
        if finder is not None:
            finder.questions.close()
    result: dict = {"chosen": chosen}
    if judged:
        result.update(accuracy=round(right / judged, 6), right=right, items=judged)
    return result
