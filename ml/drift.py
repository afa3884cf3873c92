"""Drift: each day's features and scores against a reference profiled once, at training.

The profile (``reference_profile.json`` in the model's folder) holds, for every feature
and for the model's score: a quantile sketch (for the Kolmogorov-Smirnov and Wasserstein
statistics), decile bins or category shares (for the PSI and the plots), and the
calibration of its tests. A daily check reads the profile and the days it compares; it
never rescans the training data.

**Which test.** Numeric series: the Kolmogorov-Smirnov statistic for a small batch, the
Wasserstein distance normalised by the reference's standard deviation for a large one.
Categorical series: the chi-square statistic for a small batch, the Jensen-Shannon
distance for a large one. A batch is small below ``drift_small_batch_rows`` rows. Each
series is tested at two horizons: the day alone, and the trailing ``drift_window_days``
ending on it, which sees a shift that lasts a few days long before any single day can.

**Why the thresholds are calibrated, not read off p-values.** A day's flights are not
independent draws: every flight leaving EWR shares yesterday's EWR weather, and every
flight shares the network's trailing delay rate. A textbook p-value would count a
thousand observations where a weather feature has three, and flag it almost every day.
So each test is calibrated on the reference period itself: the statistic of every
reference day, and of every trailing window, against the whole reference is that
series' own null distribution, summarised on the log scale by its mean and standard
deviation. (Not by median and MAD: a zero-inflated feature such as precipitation has a
bimodal null, dry days and rainy ones, and a robust spread fitted to the dry days would
call every rainy day extreme.) A new day's statistic becomes a z-score against it.

**Many features.** With some 90 series at two horizons, a 5% alarm rate per test would
raise an alarm nearly every day. One z threshold serves every test: the larger of the
Bonferroni bound for the number of tests at the family-wise rate ``drift_family_alpha``,
and the ``1 - alpha`` quantile, over the reference days, of the largest z any test
reached that day (the max-T approach, which accounts for features that move together).
So on the reference period at most ``alpha`` of the days raise any alarm at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from ml.features import FeatureSpec

PROFILE_FORMAT = 2
PREDICTION = "p_delayed"  # the score's series name, as in the predictions table
N_QUANTILES = 400  # points of the quantile sketch; KS and Wasserstein read it
SKETCH_LEVELS = (np.arange(N_QUANTILES) + 0.5) / N_QUANTILES  # midpoints of equal slices
N_BINS = 10  # decile bins, for the PSI and the plots
MIN_SHARE = 1e-4  # floor for empty bins and unseen categories, so every statistic is finite
MIN_LOG_SCALE = 0.05  # floor of the null's spread on the log scale
OTHER = "__other__"
HORIZON_DAY = "day"


def _round(values) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(values, dtype=float)]


# -- the four statistics -------------------------------------------------------------------


def _as_floats(values) -> np.ndarray:
    """A numeric series as float64; missing values (and any that is not a number): NaN."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _finite(values) -> np.ndarray:
    """The finite values of a numeric series (missing and infinite ones dropped), as floats."""
    floats = values.dtype == np.float64 if isinstance(values, np.ndarray) else False
    array = values if floats else _as_floats(values)
    return array[np.isfinite(array)]


def _sorted_quantiles(ordered: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles (linear interpolation, numpy's default) of an already sorted array."""
    position = levels * (ordered.size - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, ordered.size - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _value_counts(values) -> pd.Series:
    """Rows per category, as strings; missing values count as OTHER."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    counts = series.value_counts(dropna=False)
    labels = [OTHER if pd.isna(k) else str(k) for k in counts.index]
    return pd.Series(counts.to_numpy(dtype=float), index=labels).groupby(level=0).sum()


def _sketch_points(entry: dict[str, Any]) -> np.ndarray:
    return np.asarray(entry["quantiles"], dtype=float)


def ks_statistic(entry: dict[str, Any], values) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of ``values`` against the reference sketch.

    The sketch's quantiles at the midpoints of N equal slices stand for the reference as
    a sample of N points, so the result is the reference's within 1/N. Ties (integer
    features, many equal values) are handled by comparing right-continuous ECDFs on the
    union of both samples' points.
    """
    reference = _sketch_points(entry)
    current = np.sort(_finite(values))
    if current.size == 0:
        return float("nan")
    grid = np.union1d(reference, current)
    f_ref = np.searchsorted(reference, grid, side="right") / reference.size
    f_cur = np.searchsorted(current, grid, side="right") / current.size
    return float(np.max(np.abs(f_ref - f_cur)))


def wasserstein_normed(entry: dict[str, Any], values) -> float:
    """First Wasserstein distance to the reference, in units of the reference's std.

    Computed between quantile functions at the sketch's N points (the area between them),
    and divided by the reference's standard deviation, as Evidently normalises it.
    """
    current = _finite(values)
    if current.size == 0:
        return float("nan")
    quantiles = _sorted_quantiles(np.sort(current), SKETCH_LEVELS)
    distance = np.mean(np.abs(quantiles - _sketch_points(entry)))
    return float(distance / max(entry["std"], 1e-3))


@dataclass(frozen=True)
class CategoryCodes:
    """A categorical series as the index of each value among a profile's categories
    (missing and unseen values: one past the last), to count many batches of it fast."""

    codes: np.ndarray

    @classmethod
    def of(cls, entry: dict[str, Any], values: pd.Series) -> CategoryCodes:
        categories = entry["categories"]
        codes = pd.Index(categories).get_indexer(values.astype("string"))
        return cls(np.where(codes < 0, len(categories), codes))

    def __getitem__(self, mask: np.ndarray) -> CategoryCodes:
        return CategoryCodes(self.codes[mask])


def _category_counts(entry: dict[str, Any], values) -> np.ndarray:
    """Rows per reference category, then the rest (missing or unseen), as floats."""
    if isinstance(values, CategoryCodes):
        return np.bincount(values.codes, minlength=len(entry["categories"]) + 1).astype(float)
    counts = _value_counts(values)
    known = counts.reindex(entry["categories"], fill_value=0.0).to_numpy(dtype=float)
    return np.append(known, counts.sum() - known.sum())


def chi_square(entry: dict[str, Any], values) -> float:
    """Pearson's chi-square statistic of the batch's category counts against the reference."""
    observed = _category_counts(entry, values)
    shares = np.asarray(entry["shares"], dtype=float)
    seen = (shares > 0) | (observed > 0)  # a bin empty on both sides adds nothing
    expected = np.clip(shares, MIN_SHARE, None) * max(observed.sum(), 1.0)
    return float(np.sum((observed[seen] - expected[seen]) ** 2 / expected[seen]))


def jensen_shannon(entry: dict[str, Any], values) -> float:
    """Jensen-Shannon distance (natural log) between category shares, as scipy defines it."""
    counts = _category_counts(entry, values)
    p = counts / max(counts.sum(), 1.0)
    q = np.asarray(entry["shares"], dtype=float)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    return float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


TESTS: dict[str, Callable[[dict[str, Any], Any], float]] = {
    "ks": ks_statistic,
    "wasserstein": wasserstein_normed,
    "chi_square": chi_square,
    "jensen_shannon": jensen_shannon,
}


def choose_test(kind: str, batch_rows: float, small_batch_rows: int) -> str:
    """The test for a series of ``kind`` over batches of about ``batch_rows`` rows."""
    small = batch_rows < small_batch_rows
    if kind == "categorical":
        return "chi_square" if small else "jensen_shannon"
    return "ks" if small else "wasserstein"


def psi(reference, current) -> float:
    """Population stability index between two share vectors over the same bins."""
    ref = np.clip(np.asarray(reference, dtype=float), MIN_SHARE, None)
    cur = np.clip(np.asarray(current, dtype=float), MIN_SHARE, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def current_shares(entry: dict[str, Any], values) -> np.ndarray:
    """Shares of a batch in the reference's decile bins or categories (for PSI and plots)."""
    if entry["kind"] == "numeric":
        finite = _finite(values)
        edges = np.asarray(entry["edges"], dtype=float)
        counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=edges.size + 1)
        return counts / max(finite.size, 1)
    counts = _category_counts(entry, values)
    return counts / max(counts.sum(), 1.0)


# -- the profile ---------------------------------------------------------------------------


def _profile_series(values: pd.Series, kind: str) -> dict[str, Any]:
    if kind == "numeric":
        ordered = np.sort(_finite(values))
        if ordered.size == 0:
            ordered = np.zeros(1)
        edges = np.unique(_sorted_quantiles(ordered, np.linspace(0, 1, N_BINS + 1)[1:-1]))
        entry = {
            "kind": "numeric",
            "quantiles": _round(_sorted_quantiles(ordered, SKETCH_LEVELS)),
            "std": float(ordered.std()),
            "mean": float(ordered.mean()),
            "missing_share": float(1 - ordered.size / max(len(values), 1)),
            "edges": _round(edges),
        }
        entry["shares"] = current_shares(entry, ordered).tolist()
        return entry
    shares = _value_counts(values)
    shares = shares / max(shares.sum(), 1.0)
    categories = sorted(c for c in shares.index if c != OTHER)
    return {
        "kind": "categorical",
        "categories": categories,
        "shares": [*(float(shares[c]) for c in categories), float(shares.get(OTHER, 0.0))],
    }


def _windows(days: np.ndarray, window_days: int) -> dict[str, list[tuple[Any, np.ndarray]]]:
    """Row masks of every reference day and every full trailing window, keyed by horizon."""
    unique = np.unique(days)
    masks = [days == day for day in unique]
    horizons = {HORIZON_DAY: list(zip(unique, masks, strict=True))}
    if window_days > 1:
        horizons[f"{window_days}d"] = [
            (unique[i], np.logical_or.reduce(masks[i - window_days + 1 : i + 1]))
            for i in range(window_days - 1, len(unique))
        ]
    return horizons


def reference_profile(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    scores: np.ndarray,
    *,
    window_days: int = 7,
    small_batch_rows: int = 1000,
    family_alpha: float = 0.05,
) -> dict[str, Any]:
    """Profile the reference rows and calibrate every drift test on them.

    Args:
        frame: The reference rows (the model's training window), with ``flight_date``.
        spec: The model's features.
        scores: The model's scores for those rows.
        window_days: Length of the trailing-window horizon (1: the day only).
        small_batch_rows: Batches below this size use KS and chi-square.
        family_alpha: The share of reference days allowed to raise any alarm.
    """
    frame = frame.reset_index(drop=True)
    series: dict[str, pd.Series] = {c: frame[c] for c in spec.columns}
    series[PREDICTION] = pd.Series(np.asarray(scores, dtype=float))
    kinds = {c: "categorical" for c in spec.categorical}
    days = frame["flight_date"].to_numpy()
    day_rows = float(np.median(pd.Series(days).value_counts().to_numpy()))
    horizons = _windows(days, window_days)

    entries: dict[str, Any] = {}
    z_by_day: dict[Any, list[float]] = {}
    for name, values in series.items():
        entry = _profile_series(values, kinds.get(name, "numeric"))
        # Converted once, then masked for every reference day and window: plain floats,
        # or category codes to count, instead of a pandas series per batch.
        if entry["kind"] == "numeric":
            cheap = _as_floats(values)
        else:
            cheap = CategoryCodes.of(entry, values)
        entry["source"] = "prediction" if name == PREDICTION else "feature"
        entry["tests"] = {}
        for horizon, windows in horizons.items():
            span = 1 if horizon == HORIZON_DAY else window_days
            test = choose_test(entry["kind"], day_rows * span, small_batch_rows)
            stats = np.array([TESTS[test](entry, cheap[mask]) for _, mask in windows])
            logs = np.log(np.clip(stats, 1e-9, None))
            center = float(np.nanmean(logs)) if np.isfinite(logs).any() else 0.0
            scale = float(max(np.nanstd(logs) if np.isfinite(logs).any() else 0.0, MIN_LOG_SCALE))
            entry["tests"][horizon] = {"test": test, "center": center, "scale": scale}
            for (day, _), value in zip(windows, logs, strict=True):
                z_by_day.setdefault(day, []).append((value - center) / scale)
        entries[name] = entry

    n_tests = sum(len(e["tests"]) for e in entries.values())
    bonferroni = NormalDist().inv_cdf(1 - family_alpha / n_tests)
    max_z = np.array([np.nanmax(z) for z in z_by_day.values()])
    z_threshold = float(max(bonferroni, np.quantile(max_z, 1 - family_alpha)))
    for entry in entries.values():
        for calibration in entry["tests"].values():
            calibration["threshold"] = float(
                np.exp(calibration["center"] + z_threshold * calibration["scale"])
            )
    return {
        "format": PROFILE_FORMAT,
        "rows": int(len(frame)),
        "days": int(len(np.unique(days))),
        "day_rows": day_rows,
        "window_days": window_days,
        "small_batch_rows": small_batch_rows,
        "family_alpha": family_alpha,
        "tests": n_tests,
        "z_threshold": z_threshold,
        "z_bonferroni": float(bonferroni),
        "reference_alarm_rate": float(np.mean(max_z > z_threshold)),
        "series": entries,
    }


# -- the daily comparison ------------------------------------------------------------------


def compare(
    profile: dict[str, Any],
    day: pd.DataFrame,
    day_scores: np.ndarray,
    window: pd.DataFrame | None = None,
    window_scores: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per series and horizon: the test, its statistic, z, threshold and verdict.

    Args:
        profile: The reference profile stored with the model.
        day: The day's feature rows; ``day_scores`` the model's scores for them.
        window: The trailing window's rows (ending with the day), for the window horizon;
            ``window_scores`` their scores. Without them only the day is tested.
    """
    batches = {HORIZON_DAY: (day, np.asarray(day_scores, dtype=float))}
    if window is not None and window_scores is not None:
        batches[f"{profile['window_days']}d"] = (window, np.asarray(window_scores, dtype=float))
    z_threshold = profile["z_threshold"]
    rows = []
    for name, entry in profile["series"].items():
        for horizon, calibration in entry["tests"].items():
            if horizon not in batches:
                continue
            frame, scores = batches[horizon]
            values = pd.Series(scores) if name == PREDICTION else frame[name]
            statistic = TESTS[calibration["test"]](entry, values)
            z = (np.log(max(statistic, 1e-9)) - calibration["center"]) / calibration["scale"]
            shares = current_shares(entry, values)
            rows.append(
                {
                    "feature": name,
                    "source": entry["source"],
                    "kind": entry["kind"],
                    "horizon": horizon,
                    # the score series leaves out days the model saw (NaN)
                    "rows": int(np.isfinite(scores).sum() if name == PREDICTION else len(values)),
                    "test": calibration["test"],
                    "statistic": float(statistic),
                    "threshold": float(calibration["threshold"]),
                    "z": float(z),
                    "is_drifted": bool(z > z_threshold),
                    "psi": psi(entry["shares"], shares),
                    "reference_shares": [float(x) for x in entry["shares"]],
                    "current_shares": [float(x) for x in shares],
                    "bins": bin_labels(entry),
                }
            )
    return pd.DataFrame(rows).sort_values(["is_drifted", "z"], ascending=False, ignore_index=True)


def bin_labels(entry: dict[str, Any]) -> list[str]:
    """Readable labels of the bins a series' shares are counted in."""
    if entry["kind"] == "categorical":
        return [*entry["categories"], OTHER]
    edges = [f"{e:.3g}" for e in entry["edges"]]
    if not edges:
        return ["all"]
    return [
        f"<{edges[0]}",
        *(f"{a}-{b}" for a, b in zip(edges, edges[1:], strict=False)),
        f">={edges[-1]}",
    ]
