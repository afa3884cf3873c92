"""Performance: realized once a day's labels have matured, estimated before they have.

**Realized.** A flight's label is known once it has landed, or once its scheduled arrival
plus 15 minutes has passed; a late-evening flight lands after midnight, so the labels of
day M are all known at the cutoff of M + ``label_maturity_days`` (2). Then the stored
prediction rows of M (champion and challenger) are joined to those labels on
``flight_id``: AUC, log loss, Brier, ECE, precision and recall at the operating threshold,
overall and per slice.

**Estimated** (confidence-based performance estimation, after NannyML's CBPE). If the
probabilities are calibrated, flight i is delayed with probability p_i, so the expected
confusion matrix, and with it the expected AUC, log loss, Brier score, precision and
recall, follow from the scores alone, on the day they are made. The estimate is only as
good as the calibration; under concept drift (the same features now meaning a different
risk) it stays blind, which is why the realized value is set beside it once it exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.metrics import binary_metrics, estimated_metrics, prior_log_loss
from ml.slices import slice_masks

METRICS = ("auc", "log_loss", "brier", "ece", "precision", "recall")


def _rows(
    frame: pd.DataFrame,
    p: np.ndarray,
    y: np.ndarray | None,
    threshold: float,
    prior: float | None,
) -> list[dict[str, Any]]:
    """Overall and per-slice metrics; estimated when ``y`` is None, realized otherwise.

    Realized rows also get ``prior_log_loss``: the log loss of predicting ``prior`` (the
    model's training delay rate) for every flight of the slice, the baseline beside it.
    """

    def metrics(mask: np.ndarray) -> dict[str, float]:
        if y is None:
            return {**estimated_metrics(p[mask], threshold), "prior_log_loss": float("nan")}
        m = binary_metrics(y[mask], p[mask], threshold)
        baseline = float("nan") if prior is None else prior_log_loss(y[mask], prior)
        return {
            **{k: m[k] for k in (*METRICS, "mean_prediction", "observed_rate", "rows")},
            "prior_log_loss": baseline,
        }

    out = [{"dimension": "all", "value": "all", **metrics(np.ones(len(p), dtype=bool))}]
    for dimension, value, mask in slice_masks(frame):
        out.append({"dimension": dimension, "value": value, **metrics(mask)})
    return out


def performance_table(
    predictions: pd.DataFrame,
    features: pd.DataFrame,
    threshold: float,
    *,
    realized: bool,
    priors: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per model role and slice: realized (labels joined) or estimated metrics.

    Args:
        predictions: A day's stored prediction rows (``flight_id``, ``p_delayed``,
            ``model_version``, ``model_role``).
        features: The day's feature rows (slice columns and, when realized, the label).
        threshold: The operating threshold for precision and recall.
        realized: Join the labels (they must have matured) instead of estimating.
        priors: Per model version, its training delay rate: realized rows get the log loss
            of predicting that rate for every flight beside their own (the baseline).
    """
    keep = ["flight_id", "carrier", "origin", "sched_dep_hour", "distance_miles"]
    if realized:
        keep.append("is_delayed")
    out = []
    for (role, version), rows in predictions.groupby(["model_role", "model_version"], sort=True):
        joined = rows[["flight_id", "p_delayed"]].merge(features[keep], on="flight_id", how="inner")
        if realized:
            joined = joined[joined["is_delayed"].notna()]
        if joined.empty:
            continue
        y = joined["is_delayed"].astype(int).to_numpy() if realized else None
        p = joined["p_delayed"].to_numpy(dtype=float)
        for row in _rows(joined, p, y, threshold, (priors or {}).get(version)):
            out.append({"model_role": role, "model_version": version, **row})
    return pd.DataFrame(out)
