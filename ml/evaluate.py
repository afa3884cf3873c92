"""Evaluate: metrics of a model beside its baselines, on any date range.

Every metric is shown beside the prior rate (the training period's delay rate for every
flight) and the heuristic (the smoothed trailing carrier x origin delay rate).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from ml.config import Settings

EPS = 1e-6


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of binary labels ``y`` under probabilities ``p``."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    y = np.asarray(y, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def prior_log_loss(y: np.ndarray, prior: float) -> float:
    """Log loss of predicting the same rate for every row."""
    return log_loss(y, np.full(len(y), prior))


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, log loss, Brier score and the mean prediction against the observed rate."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    return {
        "auc": auc,
        "log_loss": log_loss(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "mean_prediction": float(p.mean()),
        "observed_rate": float(y.mean()),
        "rows": int(len(y)),
    }


def evaluate(settings: Settings, version: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    """Score ``version`` on the flights of ``start..end`` and compare with the baselines."""
    from ml import registry
    from ml.features import HEURISTIC_COLUMN, LABEL, load_features

    model, metadata = registry.load_model(settings, version)
    as_of = dt.date.fromisoformat(metadata["as_of"])
    if start < as_of:
        raise ValueError(
            f"evaluation starts {start}, before {version}'s as-of date {as_of}: it would score its own training data"
        )
    oracle = bool(metadata.get("uses_oracle_forecast"))
    frame = load_features(settings, start, end, oracle=oracle)
    y = frame[LABEL].astype(int).to_numpy()
    prior = registry.load_metrics(settings, version)["prior_rate"]
    return {
        "version": version,
        **({"oracle_note": metadata["oracle_note"]} if oracle else {}),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "model": binary_metrics(y, model.predict_proba(frame)),
        "baselines": {
            "prior_rate": binary_metrics(y, np.full(len(y), prior)),
            "heuristic": binary_metrics(y, frame[HEURISTIC_COLUMN].to_numpy(dtype=float)),
        },
    }
