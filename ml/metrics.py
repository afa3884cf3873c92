"""Metrics of binary probabilities: arrays in, numbers out.

The ground floor: imports nothing from ``ml``. Log loss, calibration, AUC and the
label-free estimates are written here once, with one clipping epsilon; evaluation,
performance monitoring, the backtest and the models' calibration all call them.
"""

from __future__ import annotations

import numpy as np

# Probabilities are clipped to [EPS, 1 - EPS] before a logarithm or a logit.
EPS = 1e-6
CALIBRATION_BINS = 10


def clip(p: np.ndarray) -> np.ndarray:
    """Probabilities as floats clipped to [EPS, 1 - EPS]."""
    return np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of (clipped) probabilities."""
    p = clip(p)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Probabilities of log-odds ``z``."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def log_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-row negative log-likelihood of binary labels ``y`` under probabilities ``p``."""
    p = clip(p)
    y = np.asarray(y, dtype=float)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of binary labels ``y`` under probabilities ``p``."""
    p = clip(p)
    y = np.asarray(y, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def prior_log_loss(y: np.ndarray, prior: float) -> float:
    """Log loss of predicting the same rate for every row."""
    return log_loss(y, np.full(len(y), prior))


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Rows, mean prediction and observed rate per equal-width probability bin."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            out.append(
                {
                    "bin": b,
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "rows": int(mask.sum()),
                    "mean_prediction": float(p[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                }
            )
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE: the row-weighted mean gap between predicted and observed rate, over equal-width bins."""
    n = len(y)
    return float(
        sum(
            b["rows"] / n * abs(b["mean_prediction"] - b["observed_rate"])
            for b in calibration_bins(y, p, bins)
        )
    )


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive row scores above a negative
    one, ties counting half (the Mann-Whitney statistic from average ranks; sklearn's
    ``roc_auc_score`` gives the same number). Needs both classes."""
    y = np.asarray(y) == 1
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="mergesort")
    _, start, counts = np.unique(p[order], return_index=True, return_counts=True)
    ranks = np.repeat(start + (counts + 1) / 2, counts)  # 1-based, ties averaged
    positives = int(y.sum())
    negatives = y.size - positives
    u = ranks[y[order]].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision: the precision at each distinct score, from the highest, weighted
    by the recall it adds (sklearn's ``average_precision_score``). Needs a positive row."""
    y = np.asarray(y) == 1
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="mergesort")[::-1]
    scores = p[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # each score's last row
    true_pos = np.cumsum(y[order])[last]
    precision = true_pos / (last + 1)
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.35) -> dict[str, float]:
    """AUC, PR-AUC, log loss, Brier, ECE, and precision and recall at ``threshold``."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    both = len(np.unique(y)) == 2
    varies = np.ptp(p) > 0 if len(p) else False
    flagged = p >= threshold
    true_pos = int((flagged & (y == 1)).sum())
    return {
        "auc": roc_auc(y, p) if both and varies else float("nan"),
        "pr_auc": average_precision(y, p) if both and varies else float("nan"),
        "log_loss": log_loss(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(y, p),
        "threshold": float(threshold),
        "precision": true_pos / int(flagged.sum()) if flagged.any() else float("nan"),
        "recall": true_pos / int((y == 1).sum()) if (y == 1).any() else float("nan"),
        "flagged_share": float(flagged.mean()) if len(p) else float("nan"),
        "mean_prediction": float(p.mean()),
        "observed_rate": float(y.mean()),
        "rows": int(len(y)),
    }


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
    """The metrics a calibrated model should reach on rows it scored ``p``, before labels.

    If flight i is delayed with probability p_i, the expected log loss is the scores' own
    entropy (``log_loss(p, p)``) and the expected Brier score is the mean of p (1 - p).
    """
    p = clip(p)
    flagged = p >= threshold
    expected_true_pos = float(p[flagged].sum())
    return {
        "auc": expected_auc(p),
        "log_loss": log_loss(p, p),
        "brier": float(np.mean(p * (1 - p))),
        "ece": float("nan"),  # zero by the estimate's own assumption: not estimable
        "precision": expected_true_pos / flagged.sum() if flagged.any() else float("nan"),
        "recall": expected_true_pos / p.sum(),
        "mean_prediction": float(p.mean()),
        "observed_rate": float("nan"),
        "rows": int(p.size),
    }
