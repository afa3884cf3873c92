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

from ml.evaluate import EPS, binary_metrics, prior_log_loss, slice_masks

METRICS = ("auc", "log_loss", "brier", "ece", "precision", "recall")


def expected_auc(p: np.ndarray) -> float:
    """Expected AUC if each row is positive with probability p: P(score+ > score-), ties half.

    Sum over ordered pairs (i, j), i != j, of p_i (1 - p_j) [s_i > s_j], over the sum of
    p_i (1 - p_j) over all pairs, in O(n log n).
    """
    p = np.asarray(p, dtype=float)
    if p.size < 2 or np.ptp(p) == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    neg = 1 - ps
    # mass of negatives strictly below each score, and at the same score (ties count half)
    unique, start, counts = np.unique(ps, return_index=True, return_counts=True)
    neg_cum = np.concatenate([[0.0], np.cumsum(neg)])
    below = neg_cum[start]  # negatives with a smaller score
    tied = neg_cum[start + counts] - below
    pos_in_group = np.add.reduceat(ps, start)
    cross_in_group = np.add.reduceat(ps * neg, start)  # a row is never paired with itself
    numerator = np.sum(pos_in_group * below) + 0.5 * np.sum(pos_in_group * tied - cross_in_group)
    denominator = ps.sum() * neg.sum() - np.sum(ps * neg)
    return float(numerator / denominator) if denominator > 0 else float("nan")


def estimated_metrics(p: np.ndarray, threshold: float) -> dict[str, float]:
    """The metrics a calibrated model should reach on rows it scored ``p``, before labels."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    flagged = p >= threshold
    expected_true_pos = float(p[flagged].sum())
    return {
        "auc": expected_auc(p),
        "log_loss": float(-np.mean(p * np.log(p) + (1 - p) * np.log(1 - p))),
        "brier": float(np.mean(p * (1 - p))),
        "ece": float("nan"),  # zero by the estimate's own assumption: not estimable
        "precision": expected_true_pos / flagged.sum() if flagged.any() else float("nan"),
        "recall": expected_true_pos / p.sum(),
        "mean_prediction": float(p.mean()),
        "observed_rate": float("nan"),
        "rows": int(p.size),
    }


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
