"""Evaluate: metrics beside their baselines, slices, calibration, importance, learning curve.

Every metric of a model is shown beside two baselines scored on the same rows: the prior
rate (the training period's delay rate for every flight) and the heuristic (the smoothed
trailing carrier x origin delay rate). :func:`assess` is the one report both training (on
the holdout) and ``ml evaluate`` (on any later range) produce.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.errors import ConfigError
from ml.metrics import binary_metrics, calibration_bins, log_loss
from ml.slices import slice_masks


def slice_metrics(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    """Rows, rates, log loss and AUC per slice value, for every slice dimension."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    out = []
    for dimension, value, mask in slice_masks(frame):
        ys, ps = y[mask], p[mask]
        out.append(
            {
                "dimension": dimension,
                "value": value,
                "rows": int(mask.sum()),
                "observed_rate": float(ys.mean()),
                "mean_prediction": float(ps.mean()),
                "log_loss": log_loss(ys, ps),
                "auc": binary_metrics(ys, ps)["auc"],
            }
        )
    return out


def permutation_importance(
    model, frame: pd.DataFrame, y: np.ndarray, random_state: int
) -> dict[str, float]:
    """Increase in log loss when each feature's values are shuffled across the rows
    (``random_state`` seeds the shuffles: ``settings.random_state``)."""
    rng = np.random.default_rng(random_state)
    base = log_loss(y, model.predict_proba(frame))
    out = {}
    shuffled = frame.copy()  # one copy: each column is shuffled in it, then put back
    for column in model.spec.columns:
        original = shuffled[column]
        shuffled[column] = original.to_numpy()[rng.permutation(len(frame))]
        out[column] = log_loss(y, model.predict_proba(shuffled)) - base
        shuffled[column] = original
    return out


def gain_importance(model) -> dict[str, float]:
    """The boosted library's split-gain shares; empty for models without trees."""
    base = getattr(model, "estimator_", model)
    return base.gain_importance() if hasattr(base, "gain_importance") else {}


def assess(
    settings: Settings, model, frame: pd.DataFrame, prior: float, *, behaviour: bool = True
) -> dict[str, Any]:
    """Metrics of ``model`` on ``frame`` beside the baselines, its slices and calibration."""
    from ml.behaviour import run_behaviour_tests
    from ml.features import HEURISTIC_COLUMN, LABEL
    from ml.models import HeuristicClassifier

    y = frame[LABEL].astype(int).to_numpy()
    p = model.predict_proba(frame)
    threshold = settings.operating_threshold
    # the baseline with the model's fit-period rate where the trailing rate is missing
    heuristic = HeuristicClassifier(random_state=settings.random_state, prior=prior).fit(frame, y)
    report = {
        "rows": int(len(frame)),
        "start": min(frame["flight_date"]).isoformat(),
        "end": max(frame["flight_date"]).isoformat(),
        "model": binary_metrics(y, p, threshold),
        "baselines": {
            "prior_rate": binary_metrics(y, np.full(len(y), prior), threshold),
            "heuristic": binary_metrics(y, heuristic.predict_proba(frame), threshold),
        },
        "slices": slice_metrics(frame, y, p),
        "calibration": calibration_bins(y, p),
        "heuristic_column": HEURISTIC_COLUMN,
    }
    if behaviour:
        report["behaviour"] = run_behaviour_tests(model, frame, settings.random_state)
    return report


def evaluate(settings: Settings, version: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    """Score ``version`` on the flights of ``start..end`` beside the baselines.

    Raises:
        ConfigError: The range starts on or before the last day the model learned from
            (it would score the model on its own training data).
    """
    from ml import registry
    from ml.features import load_features

    model, metadata = registry.load_model(settings, version)
    first = registry.first_unseen_day(metadata)
    if start < first:  # the model would refuse these rows: say so before reading them
        raise ConfigError(
            f"evaluation starts {start}, but {version} learned from days up to "
            f"{first - dt.timedelta(days=1)}: it would score its own training data; "
            f"start on {first} or later"
        )
    oracle = bool(metadata.get("uses_oracle_forecast"))
    frame = load_features(settings, start, end, oracle=oracle)
    metrics = registry.load_metrics(settings, version)
    report = assess(settings, model, frame, metrics["prior_rate"])
    return {
        "version": version,
        **({"oracle_note": metadata["oracle_note"]} if oracle else {}),
        **report,
        "importance": metrics.get("importance", {}),
    }
