"""The fitted duplicate model: the logistic weights, bias and threshold of :mod:`dedup.features`.

They are an artifact, not source: ``python -m benchmarks.duplicates --fit`` fits them on the
GSM-Plus pairs with an even ``seed_idx`` and writes them, with the recipe and data that
produced them, to ``models/duplicates.json`` beside the insertion judge they were fitted with
(:data:`MODEL_FILE`); :mod:`dedup.features` reads that file once, on first use.

Example:
    >>> model = load_fitted(MODEL_FILE, FEATURES)  # doctest: +SKIP
    >>> model.threshold  # doctest: +SKIP
    0.38
"""

from __future__ import annotations

import datetime
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mathcore import __version__

MODEL_FILE = Path(__file__).resolve().parent / "models" / "duplicates.json"
REFIT = "python -m benchmarks.duplicates --index DIR --fit"


@dataclass(frozen=True)
class FittedModel:
    """Weights (one per feature, in the order of ``features``), bias and duplicate threshold."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float


@functools.cache
def load_fitted(path: Path, features: tuple[str, ...]) -> FittedModel:
    """The model saved at *path*, checked against the *features* the code computes.

    Raises:
        FileNotFoundError: no such file (it ships with mathmatch; :data:`REFIT` writes it).
        ValueError: a file that is not a fitted model, or one fitted for other features.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the fitted duplicate model is missing (it ships with "
                                f"mathmatch; `{REFIT}` writes it)")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        model = FittedModel(tuple(saved["features"]), tuple(float(w) for w in saved["weights"]),
                            float(saved["bias"]), float(saved["threshold"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a fitted duplicate model ({exc}); expected JSON with "
                         "features, weights, bias and threshold") from None
    if model.features != tuple(features):
        raise ValueError(f"{path} was fitted for the features {list(model.features)}, but this "
                         f"code computes {list(features)}: refit with `{REFIT}`")
    if len(model.weights) != len(model.features):
        raise ValueError(f"{path}: {len(model.weights)} weights for {len(model.features)} "
                         "features")
    return model


def save_fitted(path: Path, features: Sequence[str], weights: Sequence[float], bias: float,
                threshold: float, **facts: Any) -> None:
    """Write a fitted model to *path* (what :func:`load_fitted` reads), with *facts* such as
    ``source``, ``data`` and ``recipe``, the date and the mathmatch version."""

    if len(weights) != len(features):
        raise ValueError(f"{len(weights)} weights for {len(features)} features")
    model = {"features": list(features), "weights": [round(float(w), 6) for w in weights],
             "bias": round(float(bias), 6), "threshold": round(float(threshold), 6), **facts}
    model.setdefault("date", datetime.date.today().isoformat())
    model.setdefault("mathmatch_version", __version__)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    load_fitted.cache_clear()
