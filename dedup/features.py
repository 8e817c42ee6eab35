"""Duplicate problems: same question, same givens -- found over the question vectors of an index.

Two problems are duplicates when they ask the same thing with the same givens. Embedding
similarity alone cannot tell: a copy with other numbers keeps the wording (and the embedding),
while a paraphrase changes both. So candidates come from the question vectors
(:mod:`index.questions`) and each pair is scored by a logistic model over features of its
givens (:mod:`dedup.quantities`), gated by the embedding cosine (below
:data:`COSINE_FLOOR` a pair is never a duplicate):

* ``missing``: quantities of *each* side absent from the other, the smaller of the two counts
  (a substituted, expanded or converted number leaves one on both sides; a distracting
  sentence leaves extras on one side only);
* ``extra``: the larger of the two counts; ``extra_edited`` / ``extra_new``: the extras that
  stand in a sentence with a close counterpart on the other side (an edited given) or without
  one (an inserted sentence); ``position``: where the first extra stands (0 start, 1 end);
* ``added_words``: words only the larger side has (a word-level diff), log-scaled;
* ``question_changed``: 1 - word overlap of the two question sentences;
* ``aside`` / ``operation``: words marking an aside (``not``, ``but``, ``ignoring``...) or an
  added step (``additionally``, ``after``, ``left``...) among the added words;
* ``vague``: words standing for an unstated given (``several``, ``some``) added on the side
  with fewer quantities;
* ``formulas``: inline formulas of each side absent from the other (the smaller count);
* ``converted``: givens of the same value written as a decimal on one side only (``half``
  against ``0.5``: GSM-Plus counts that conversion as another problem);
* ``no_givens``: neither side has a quantity or formula;
* ``new_words``, ``asked_words``, ``known_words``: the content words (stemmed, stop words left
  out) of the text that only the longer side has -- how many of them never occur on the other
  side (log-scaled), and the share that do occur in the other side's question sentence, or
  anywhere in it. An inserted distraction talks about something else (``and 25 cakes``); an
  added step acts on what is asked (``she also bakes a cake which requires 4 eggs`` for ``how
  many eggs``);
* ``extra_new_thing`` / ``extra_known_thing``: the extra quantities that count something the
  other side never mentions (``2 turkeys`` beside eggs) or something it does (``4 eggs``, a
  sum of money where the other side has money);
* ``judged``: the logit of the insertion judge (:mod:`dedup.judge`, a small cross-encoder)
  on the words only the longer side has against the other side's question sentence: an
  aside (the same problem) or another step (another problem). It is asked only where it
  can matter (:func:`score_pairs`).

Where both questions come with a final answer (a record's ``final``; a query's, when the
queries file gives one), the answers must agree: a duplicate has the same answer, so a pair
whose answers SymPy finds different (:func:`answers_differ`, under a time limit) is scaled
down by :data:`ANSWERS_DIFFER` and never called a duplicate.

The features that only matter when one side has extra givens are multiplied by that
indicator, and the whole vector is symmetric in the two questions.

The weights, bias and threshold are fitted (logistic regression) on the GSM-Plus pairs with an
even ``seed_idx`` by ``python -m benchmarks.duplicates --fit``, which writes them to
``dedup/models/duplicates.json`` (:mod:`dedup.fitted`); they are read from there, never written
in code. ``python -m benchmarks.duplicates`` reports the even half, the odd half and all pairs
(see README, "Symbolic checks").

Example:
    >>> duplicate_score("Ann has 3 apples and 4 pears. How many fruits?",
    ...                 "Ann has 5 apples and 4 pears. How many fruits?", cosine=0.98) < 0.5
    True
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from dedup.fitted import MODEL_FILE, FittedModel, load_fitted
from dedup.judge import CLIP as JUDGE_CLIP
from dedup.quantities import VAGUE, Givens, Quantity, extract, formulas_of, words

logger = logging.getLogger(__name__)

FEATURES = ("missing", "extra", "extra_edited", "added_words", "question_changed",
            "aside", "operation", "vague", "formulas", "converted", "no_givens", "extra_new",
            "position", "new_words", "asked_words", "known_words", "extra_new_thing",
            "extra_known_thing", "judged")
# The weights (one per feature, in this order), bias and threshold are fitted by
# `python -m benchmarks.duplicates --fit` and read from models/duplicates.json (:func:`fitted`);
# WEIGHTS, BIAS and DEFAULT_THRESHOLD below are its values, read on first use.
_FITTED_NAMES = {"WEIGHTS": "weights", "BIAS": "bias", "DEFAULT_THRESHOLD": "threshold"}
# Questions less similar than this are never duplicates, whatever their givens; the score is
# scaled down linearly up to COSINE_FULL. (Within the GSM-Plus pairs, all above 0.75, cosine
# runs *against* duplication -- perturbed copies keep the wording -- so it is not a feature.)
COSINE_FLOOR, COSINE_FULL = 0.7, 0.85
# Two problems sharing fewer than half the givens of the richer one are scaled down linearly
# (2 of the 300 GSM-Plus duplicates are below half; neighbours mined from a corpus that share
# a number or two are not duplicates, which the GSM-Plus pairs cannot teach the model).
SHARED_FULL = 0.5
# Duplicates ask the same thing with the same givens, so they have the same answer: a pair whose
# final answers are both known and differ (:func:`answers_differ`) is not a duplicate. Its score
# is scaled by this factor, which keeps such pairs in their order but below any threshold worth
# setting. A definition, not fitted: every duplicate of the GSM-Plus pairs has its seed's answer.
ANSWERS_DIFFER = 0.05
ANSWER_TIMEOUT = 1.0  # seconds for one comparison of two final answers
_DECIMAL_RE = re.compile(r"[-+]?\d*\.(\d+)")
_WORDS_RE = re.compile(r"[a-z]{2,}(?: [a-z]{2,})*\.?")
_ASIDE_RE = re.compile(r"\b(not|n't|no|never|irrelevant|unrelated|ignor\w*|regardless|despite|"
                       r"although|but|meanwhile|own|only|while|who|which)\b", re.IGNORECASE)
_OPERATION_RE = re.compile(r"\b(additionally|additional|however|another|extra|then|after|"
                           r"decides?|decided|later|now|plus|left|remaining|total|more|less|"
                           r"each|every|per|if)\b", re.IGNORECASE)
_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:[.,/]\d+)*")
_CONTENT_RE = re.compile(r"[a-z]{3,}")
_MONEY_RE = re.compile(r"\$|\s*(dollars?|cents?|usd)\b", re.IGNORECASE)
_STOP_WORDS = frozenset(
    "the and for are was were been has have had she her his him they them their its this that "
    "these those there with from each every how many much what which who does did will would "
    "can could then than more less also all any some one two three she's he's".split())
_QUESTION_START = re.compile(r"^\s*(how|what|which|who|when|where|calculate|find|determine|"
                             r"compute|if)\b", re.IGNORECASE)


def fitted() -> FittedModel:
    """The shipped fitted model (:data:`dedup.fitted.MODEL_FILE`), read once.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: it was fitted for other features than :data:`FEATURES`.
    """
    return load_fitted(MODEL_FILE, FEATURES)


def __getattr__(name: str) -> Any:
    # WEIGHTS, BIAS and DEFAULT_THRESHOLD: the fitted values, read from their file on first use
    # (importing this module never needs the file).
    if name in _FITTED_NAMES:
        return getattr(fitted(), _FITTED_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _model(weights: Sequence[float] | None, bias: float | None) -> tuple[Sequence[float], float]:
    """*weights* and *bias*, the fitted ones where None."""
    if weights is None or bias is None:
        model = fitted()
        return (model.weights if weights is None else weights,
                model.bias if bias is None else bias)
    return weights, bias


@dataclass(frozen=True)
class Side:
    """One question as the scorer sees it: its linear text and givens."""

    text: str
    givens: Givens
    final: str | None = None

    @classmethod
    def of(cls, linear: str, raw: str | None = None, final: str | None = None) -> Side:
        """A side from a question's linear text (and its raw text, for its formulas; its
        final answer, MathML or text, where known)."""
        formulas = formulas_of(raw) if raw and "<math" in raw else []
        return cls(linear, extract(linear, formulas), final or None)


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _question_sentence(side: Side) -> str:
    spans = side.givens.sentences()
    asked = [side.text[s:e] for s, e in spans if "?" in side.text[s:e]]
    if asked:
        return asked[-1]
    told = [side.text[s:e] for s, e in spans if _QUESTION_START.match(side.text[s:e])]
    return told[-1] if told else side.text[spans[-1][0]:spans[-1][1]] if spans else ""


def _added(a_tokens: list[str], b_tokens: list[str]) -> tuple[list[str], list[str]]:
    """Words of each side outside the blocks the two sides share (a word-level diff)."""
    sm = difflib.SequenceMatcher(a=a_tokens, b=b_tokens, autojunk=False)
    only_a, only_b = [], []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag != "equal":
            only_a += a_tokens[i1:i2]
            only_b += b_tokens[j1:j2]
    return only_a, only_b


def _stem(word: str) -> str:
    """A crude stem: ``makes``, ``making``, ``made``... -> ``mak``; enough to match forms."""
    for suffix in ("ies", "es", "s", "ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def _content(text: str) -> set[str]:
    """Stemmed content words of a text (stop words and short words left out)."""
    return {_stem(w) for w in _CONTENT_RE.findall(text.lower()) if w not in _STOP_WORDS}


def _counts_something_known(text: str, q: Quantity, known: set[str], money_known: bool) -> bool:
    """Whether a quantity counts something the other side talks about: its unit (money, or
    the content word after it: ``2 turkeys``) occurs there."""
    if "$" in text[max(0, q.start - 1):q.end] or _MONEY_RE.match(text, q.end):
        return money_known
    unit = next((w for w in words(text[q.end:q.end + 40])
                 if len(w) > 1 and w not in _STOP_WORDS and w != "of"), None)
    return unit is not None and _stem(unit) in known


def _count(regex: re.Pattern, tokens: list[str]) -> int:
    return sum(1 for t in tokens if regex.fullmatch(t))


def _diff(a: Side, b: Side) -> tuple[list[str], list[str]]:
    """The words of each side's text that the other lacks (:func:`_added` of their tokens)."""
    return _added(_TOKEN_RE.findall(a.text.lower()), _TOKEN_RE.findall(b.text.lower()))


def pair_features(a: Side, b: Side,
                  diff: tuple[list[str], list[str]] | None = None) -> np.ndarray:
    """The feature vector (order of :data:`FEATURES`) of a pair of questions; symmetric.

    *diff*: :func:`_diff` of the pair, when the caller already has it.
    """
    va, vb = a.givens.values, b.givens.values
    only_a, only_b = va - vb, vb - va
    na, nb = sum(only_a.values()), sum(only_b.values())
    swap = nb > na or (nb == na and b.text > a.text)  # a tie: the same choice either way
    large, small, extras = (b, a, only_b) if swap else (a, b, only_a)
    small_sentences = [set(words(small.text[s:e])) for s, e in small.givens.sentences()]
    edited = new = new_thing = known_thing = 0
    first = None
    small_words, money_known = _content(small.text), bool(_MONEY_RE.search(small.text))
    for q in large.givens.quantities:
        if extras.get(q.key, 0) <= 0:
            continue
        extras[q.key] -= 1
        first = q.start if first is None else first
        span = next(((s, e) for s, e in large.givens.sentences() if s <= q.start < e),
                    (0, len(large.text)))
        mine = set(words(large.text[span[0]:span[1]]))
        if max((_jaccard(mine, other) for other in small_sentences), default=0.0) >= 0.5:
            edited += 1
        else:
            new += 1
        if _counts_something_known(large.text, q, small_words, money_known):
            known_thing += 1
        else:
            new_thing += 1
    add_a, add_b = diff if diff is not None else _diff(a, b)
    add_large, add_small = (add_b, add_a) if swap else (add_a, add_b)
    has_extra = float(max(na, nb) > 0)
    overlap = _jaccard(set(words(_question_sentence(a))), set(words(_question_sentence(b))))
    aside = _count(_ASIDE_RE, add_large) - _count(_ASIDE_RE, add_small)
    operation = _count(_OPERATION_RE, add_large) - _count(_OPERATION_RE, add_small)
    vague = sum(w in VAGUE for w in add_small) - sum(w in VAGUE for w in add_large)
    fa, fb = a.givens.formulas, b.givens.formulas
    formulas = min(sum((fa - fb).values()), sum((fb - fa).values()))
    dec_a = {q.value for q in a.givens.quantities if q.form == "decimal"}
    dec_b = {q.value for q in b.givens.quantities if q.form == "decimal"}
    converted = len((dec_a ^ dec_b) & set(va & vb))
    none = float(not (va or vb or fa or fb))
    # The wording only the longer side has, against the other side's text and question.
    longer_b = len(add_b) > len(add_a) or (len(add_b) == len(add_a) and b.text > a.text)
    other = a if longer_b else b
    added = _content(" ".join(add_b if longer_b else add_a))
    known = _content(other.text)
    asked = _content(_question_sentence(other))
    # Wording only tells a paraphrase or an aside from an added step when no given changed:
    # between two problems with other numbers, new words are no evidence of anything.
    same = float(min(na, nb) == 0 and formulas == 0)
    return np.array([
        min(na, nb, 3), min(max(na, nb), 4), min(edited, 3),
        has_extra * math.log1p(max(0, len(add_large) - len(add_small))),
        has_extra * (1.0 - overlap), has_extra * max(-3, min(aside, 3)),
        has_extra * max(-3, min(operation, 3)), has_extra * max(-2, min(vague, 2)),
        min(formulas, 3),
        min(converted, 3), none, min(new, 3),
        0.0 if first is None else first / max(1, len(large.text)),
        same * math.log1p(min(len(added - known), 20)),
        same * len(added & asked) / max(1, len(added)),
        same * len(added & known) / max(1, len(added)), min(new_thing, 3), min(known_thing, 3),
        0.0],  # judged: filled in by PairScore.score
        dtype=np.float64)


def score_features(x: np.ndarray, weights: Sequence[float] | None = None,
                   bias: float | None = None) -> float:
    """Logistic score in [0, 1] of a feature vector (cosine not included); *weights* and
    *bias* default to the fitted ones (:func:`fitted`)."""
    weights, bias = _model(weights, bias)
    z = float(np.dot(np.asarray(weights, dtype=np.float64), x) + bias)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def cosine_gate(cosine: float) -> float:
    """0 below :data:`COSINE_FLOOR`, 1 from :data:`COSINE_FULL`, linear in between."""
    return min(1.0, max(0.0, (cosine - COSINE_FLOOR) / (COSINE_FULL - COSINE_FLOOR)))


def restated(a: Side, b: Side, diff: tuple[list[str], list[str]] | None = None) -> bool:
    """Whether two questions are the same problem written again: the same givens and formulas,
    and no content word of one side's changed text missing from the other's (case, spacing,
    punctuation, stop words and word endings may differ: ``makes`` for ``make``).

    The fitted model never saw such pairs (GSM-Plus has none), so they are decided here.
    """
    if a.givens.values != b.givens.values or a.givens.formulas != b.givens.formulas:
        return False
    if {q.form for q in a.givens.quantities} != {q.form for q in b.givens.quantities}:
        return False  # ``2/5`` for ``0.4``: GSM-Plus counts a converted given as a change
    add_a, add_b = diff if diff is not None else _diff(a, b)
    if any(w in VAGUE for w in add_a + add_b):
        return False  # ``one`` -> ``some``: a given withdrawn
    return not (_content(" ".join(add_a)) ^ _content(" ".join(add_b)))


def shared_givens(a: Side, b: Side) -> float:
    """Share of the givens (quantities and formulas) of the side with more of them that the
    other side has too; 1 when neither has any."""
    ga, gb = a.givens.values + a.givens.formulas, b.givens.values + b.givens.formulas
    most = max(sum(ga.values()), sum(gb.values()))
    return sum((ga & gb).values()) / most if most else 1.0


def givens_gate(shared: float) -> float:
    """0 for no shared given, 1 from :data:`SHARED_FULL` of them, linear in between."""
    return min(1.0, shared / SHARED_FULL)


def judge_input(a: Side, b: Side, diff: tuple[list[str], list[str]] | None = None
                ) -> tuple[str, str]:
    """What the insertion judge reads: the words only the longer side has (a word-level diff,
    400 characters at most) and the other side's question sentence."""
    add_a, add_b = diff if diff is not None else _diff(a, b)
    longer_b = len(add_b) > len(add_a) or (len(add_b) == len(add_a) and b.text > a.text)
    added, other = (add_b, a) if longer_b else (add_a, b)
    return " ".join(added)[:400], _question_sentence(other)


def _rounded_to(written: str, value: Any) -> bool:
    """Whether *written* (an answer's text) is a decimal that *value* (a SymPy number)
    rounds or truncates to: ``4.33`` for 13/3 (halfway, either way)."""
    import sympy as sp

    from mathcore.symbolic.builders import Unsupported
    from mathcore.symbolic.exact_arithmetic import round_half_away

    m = _DECIMAL_RE.fullmatch(written.replace(",", "").strip())
    if m is None or not isinstance(value, sp.Expr) or value.is_real is not True:
        return False
    exact = value if value.is_Rational else sp.Rational(str(sp.N(value, 30)))
    digits, shown = len(m.group(1)), sp.Rational(m.group(0))
    scale = sp.Integer(10) ** digits
    try:
        rounded = {round_half_away(exact, digits)}
    except Unsupported:  # exactly halfway
        rounded = {sp.floor(exact * scale) / scale, sp.ceiling(exact * scale) / scale}
    return shown in rounded or shown == sp.Integer(int(exact * scale)) / scale


def answers_differ(a: str, b: str, timeout: float = ANSWER_TIMEOUT) -> bool:
    """Whether two final answers (MathML or text) are known to be different.

    :func:`mathcore.symbolic.equivalent` under *timeout* seconds must say ``DIFFERENT`` --
    an answer it cannot read, or no decision in time, is not a difference, nor is a decimal
    that is the other answer rounded (``4.33`` for ``13/3``) -- or both must be words and
    differ (``even`` against ``odd``; ``none`` against ``72`` is no evidence).
    """
    from mathcore.symbolic import Verdict, answer_text, equivalent, to_expr

    if a.strip() == b.strip():
        return False
    verdict = equivalent(a, b, timeout=timeout)
    ta, tb = answer_text(a), answer_text(b)
    if verdict is Verdict.UNKNOWN:
        words_only = [t is not None and _WORDS_RE.fullmatch(t) is not None for t in (ta, tb)]
        return all(words_only) and ta.strip(" .") != tb.strip(" .")
    if verdict is not Verdict.DIFFERENT:
        return False
    for text, other in ((ta, b), (tb, a)):
        conv = to_expr(other)
        if text is not None and conv.ok and _rounded_to(text, conv.expr):
            return False
    return True


@dataclass
class PairScore:
    """A pair's score before and after the insertion judge.

    The judge's logit enters the logistic model as one feature (:data:`FEATURES`, last), so
    the score is monotone in it and bounded by its clip: :meth:`best` is the most the pair can
    score, known before the judge is asked.
    """

    gate: float
    features: np.ndarray | None  # None: a restated question (scored by its gate alone)
    judge_text: tuple[str, str]

    @classmethod
    def of(cls, a: Side, b: Side, cosine: float) -> PairScore:
        diff = _diff(a, b)
        if restated(a, b, diff):
            return cls(cosine_gate(cosine), None, ("", ""))
        return cls(cosine_gate(cosine) * givens_gate(shared_givens(a, b)),
                   pair_features(a, b, diff), judge_input(a, b, diff))

    @property
    def needs_judge(self) -> bool:
        return self.features is not None and self.gate > 0.0

    def score(self, judged: float = 0.0, weights: Sequence[float] | None = None,
              bias: float | None = None) -> float:
        """The score with the judge's (clipped) logit *judged*; 0 is the judge undecided."""
        if self.features is None:
            return self.gate
        x = self.features.copy()
        x[-1] = max(-JUDGE_CLIP, min(JUDGE_CLIP, judged))
        return self.gate * score_features(x, weights, bias)

    def best(self, weights: Sequence[float] | None = None, bias: float | None = None) -> float:
        """The highest score the judge could give the pair."""
        weights, bias = _model(weights, bias)
        return self.score(JUDGE_CLIP if weights[-1] >= 0 else -JUDGE_CLIP, weights, bias)


def score_pairs(pairs: Sequence[tuple[Side, Side, float]], judge: Any = None,
                floor: float = 0.0, weights: Sequence[float] | None = None,
                bias: float | None = None) -> list[float]:
    """Duplicate scores of ``(a, b, cosine)`` pairs, the insertion judge asked in one batch;
    a pair whose two final answers are known and differ (:func:`answers_differ`) scaled by
    :data:`ANSWERS_DIFFER`.

    Args:
        judge: an :class:`dedup.judge.InsertionJudge`; None loads the shipped one (when
            some pair needs it).
        floor: the judge is asked only about pairs that could reach this score with its most
            favourable answer; the others keep the undecided score (0 logit). With the
            duplicate threshold as floor, no verdict changes and mining a corpus skips most
            pairs.
    """
    prepared = [PairScore.of(a, b, c) for a, b, c in pairs]
    ask = [i for i, p in enumerate(prepared)
           if p.needs_judge and p.best(weights, bias) >= floor]
    judged = np.zeros(len(prepared))
    if ask:
        if judge is None:
            from dedup.judge import InsertionJudge

            judge = InsertionJudge.default()
        judged[ask] = judge.logits([prepared[i].judge_text for i in ask])
    scores = [p.score(float(j), weights, bias) for p, j in zip(prepared, judged, strict=True)]
    # The answers can only lower a score: pairs already below the floor are not compared.
    for i, ((a, b, _), s) in enumerate(zip(pairs, scores, strict=True)):
        if a.final and b.final and s > 0.0 and s >= floor and answers_differ(a.final, b.final):
            scores[i] = s * ANSWERS_DIFFER
    return scores


def score_pair(a: Side, b: Side, cosine: float, judged: float | None = None,
               weights: Sequence[float] | None = None, bias: float | None = None) -> float:
    """Duplicate score of two questions: 1 for a restated question (:func:`restated`), else
    the givens model (*weights*, *bias*: other fitted ones, when refitting) with the
    insertion judge's logit *judged* (None: ask the shipped judge); gated by embedding
    similarity and by the share of shared givens."""
    if judged is None:
        return score_pairs([(a, b, cosine)], weights=weights, bias=bias)[0]
    return PairScore.of(a, b, cosine).score(judged, weights, bias)


def duplicate_score(a: str, b: str, cosine: float, raw_a: str | None = None,
                    raw_b: str | None = None) -> float:
    """Duplicate score of two questions given as linear text (and their embedding cosine)."""
    return score_pair(Side.of(a, raw_a), Side.of(b, raw_b), cosine)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0,
                 iterations: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression (Newton's method).

    Used by ``python -m benchmarks.duplicates --fit``, on a declared split of labelled pairs,
    to fit the weights it writes to ``models/duplicates.json``.
    """
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -50, 50)))
        grad = xb.T @ (p - y) + reg * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


@dataclass(frozen=True)
class Candidate:
    """A corpus record that may duplicate a question."""

    doc_id: str
    score: float
    duplicate: bool
    cosine: float
