"""Drift: a reference profile stored with each model, and each day compared against it.

The profile is computed once at training time (quantile bin edges and bin shares for
numeric features, category shares for categorical ones, and the same for the model's
score), so a daily check never rescans the training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.features import FeatureSpec

N_BINS = 10
MIN_SHARE = 1e-4  # floor for empty bins, so the PSI stays finite
OTHER = "__other__"


def _numeric_profile(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    edges = (
        np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)[1:-1]))
        if finite.size
        else np.array([])
    )
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "shares": _numeric_shares(values, edges).tolist(),
        "missing_share": float(np.mean(~np.isfinite(values))) if values.size else 0.0,
        "mean": float(finite.mean()) if finite.size else None,
    }


def _numeric_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of finite values in the bins cut at ``edges`` (len(edges) + 1 bins)."""
    finite = values[np.isfinite(values)]
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
    return counts / max(finite.size, 1)


def _categorical_shares(values: pd.Series, categories: list[str]) -> np.ndarray:
    counts = values.astype("object").fillna(OTHER).astype(str).value_counts()
    known = np.array([counts.get(c, 0) for c in categories], dtype=float)
    other = counts.sum() - known.sum()
    shares = np.append(known, other)
    return shares / max(shares.sum(), 1)


def reference_profile(
    frame: pd.DataFrame, spec: FeatureSpec, scores: np.ndarray, base_threshold: float = 0.2
) -> dict[str, Any]:
    """Profile the training frame's features and the model's scores on it.

    Each series also gets its own alarm threshold, calibrated on the reference period
    itself: the largest PSI that any single reference day shows against the whole period,
    with a 25% margin, and never below ``base_threshold``. Features that take one value
    per origin and day (yesterday's weather, trailing rates) legitimately move a lot from
    day to day; a fixed threshold would flag them every day. Taking the maximum over all
    reference days (not a per-feature 95th percentile) keeps the false-alarm rate of the
    whole report low, not only that of each feature.
    """
    features: dict[str, Any] = {}
    for column in spec.numeric:
        features[column] = _numeric_profile(
            pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        )
    for column in spec.categorical:
        shares = (
            frame[column].astype("object").fillna(OTHER).astype(str).value_counts(normalize=True)
        )
        categories = sorted(shares.index)
        features[column] = {
            "kind": "categorical",
            "categories": categories,
            "shares": [float(shares[c]) for c in categories] + [0.0],
        }
    score = _numeric_profile(np.asarray(scores, dtype=float))
    days = frame["flight_date"].to_numpy()
    for name, entry in [*features.items(), ("__score__", score)]:
        values = (
            pd.Series(np.asarray(scores, dtype=float))
            if name == "__score__"
            else frame[name].reset_index(drop=True)
        )
        daily = [
            psi(entry["shares"], current_shares(entry, values[days == day]))
            for day in np.unique(days)
        ]
        entry["threshold"] = float(max(base_threshold, 1.25 * max(daily, default=0.0)))
    return {"rows": int(len(frame)), "features": features, "score": score}


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index between two share vectors over the same bins."""
    ref = np.clip(np.asarray(reference, dtype=float), MIN_SHARE, None)
    cur = np.clip(np.asarray(current, dtype=float), MIN_SHARE, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def current_shares(entry: dict[str, Any], values: pd.Series | np.ndarray) -> np.ndarray:
    """Shares of today's values in the reference's bins or categories."""
    if entry["kind"] == "numeric":
        return _numeric_shares(
            pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float),
            np.asarray(entry["edges"]),
        )
    return _categorical_shares(pd.Series(values), entry["categories"])


def compare(
    profile: dict[str, Any], frame: pd.DataFrame, scores: np.ndarray, threshold: float
) -> pd.DataFrame:
    """One row per feature (and the score): the PSI against the reference and the verdict.

    Args:
        profile: The reference profile stored with the model.
        frame: Today's feature rows.
        scores: The model's scores for those rows.
        threshold: PSI above which a feature counts as drifted, for series whose profile
            carries no calibrated threshold of its own.
    """
    rows = []
    entries = {**profile["features"], "__score__": profile["score"]}
    for name, entry in entries.items():
        values = scores if name == "__score__" else frame[name]
        cur = current_shares(entry, values)
        value = psi(entry["shares"], cur)
        limit = float(entry.get("threshold", threshold))
        rows.append(
            {
                "feature": "p_delayed" if name == "__score__" else name,
                "kind": "prediction" if name == "__score__" else entry["kind"],
                "psi": value,
                "threshold": limit,
                "is_drifted": bool(value > limit),
                "reference_shares": [float(x) for x in entry["shares"]],
                "current_shares": [float(x) for x in cur],
                "bins": [f"{e:.3g}" for e in entry["edges"]]
                if entry["kind"] == "numeric"
                else list(entry["categories"]) + [OTHER],
            }
        )
    return pd.DataFrame(rows).sort_values("psi", ascending=False, ignore_index=True)
