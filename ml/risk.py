"""Risk bands that mean the same thing on every day.

A band is defined by what became of the flights a model put in it on its holdout (the
days after its fit, which it never learned from), so that a user can act on it:

- **high**: the largest set of the riskiest holdout flights of which at least
  ``risk_high_precision`` (one half by default) were delayed: "at least half of these
  will be late";
- **low**: the largest set of the safest holdout flights of which at most
  ``risk_low_delay_rate`` (one in ten) were delayed: "at most one in ten of these";
- **medium**: the rest.

Each set must hold at least ``risk_band_min_flights`` holdout flights; where no set meets
its target the band is left empty (a summer holdout may have no flight safe enough to be
low). The two thresholds are probabilities, stored with the version
(``metadata["risk_bands"]``), and applied to the probabilities it publishes. Because the
probabilities stay calibrated (daily recalibration), a band keeps its meaning on days
riskier or calmer than the holdout: a stormy day puts more flights in high, and about half
of them are still delayed. A version trained before bands were fitted, and the heuristic
fallback, use the fixed thresholds of the settings (``risk_band_low_max``,
``risk_band_high_min``) instead, and say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.config import Settings

BANDS = ("low", "medium", "high")
SETTINGS_SOURCE = "settings (risk_band_low_max, risk_band_high_min)"


@dataclass(frozen=True)
class RiskBands:
    """``low`` below ``low_max``, ``high`` from ``high_min``, ``medium`` between; ``source``
    says where the thresholds come from."""

    low_max: float
    high_min: float
    source: str

    def assign(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        return np.where(p < self.low_max, "low", np.where(p >= self.high_min, "high", "medium"))


def _largest_set(p: np.ndarray, y: np.ndarray, descending: bool, ok, min_flights: int) -> int:
    """The size of the largest run of the riskiest (``descending``) or safest flights,
    cut between distinct scores, whose delay rate satisfies ``ok``; 0 if none does."""
    order = np.argsort(-p if descending else p, kind="stable")
    p, y = p[order], y[order]
    sizes = np.arange(1, len(p) + 1)
    rate = np.cumsum(y) / sizes
    cut = np.append(p[1:] != p[:-1], True)  # a band cannot split flights of one score
    valid = cut & ok(rate) & (sizes >= min_flights)
    return int(sizes[valid].max()) if valid.any() else 0


def fit_bands(
    y: np.ndarray, p: np.ndarray, high_precision: float, low_rate: float, min_flights: int
) -> dict[str, Any]:
    """The thresholds that meet the targets on ``(y, p)`` (a model's holdout), and what
    each band held there; a band with no qualifying set has a threshold of None."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    high_n = _largest_set(p, y, True, lambda r: r >= high_precision, min_flights)
    low_n = _largest_set(p, y, False, lambda r: r <= low_rate, min_flights)
    ranked = np.sort(p)
    high_min = float(ranked[::-1][high_n - 1]) if high_n else None
    if not low_n:
        low_max = None
    elif low_n < len(p):
        low_max = float(ranked[low_n])  # the next distinct score: p < low_max is the set
    else:
        low_max = float(np.nextafter(ranked[-1], 1.0))
    if low_max is not None and high_min is not None:
        low_max = min(low_max, high_min)
    bands = from_thresholds(low_max, high_min, "holdout")
    assigned = bands.assign(p)
    holdout = {}
    for band in BANDS:
        rows = assigned == band
        holdout[band] = {
            "flights": int(rows.sum()),
            "share": float(rows.mean()) if len(p) else 0.0,
            "delay_rate": float(y[rows].mean()) if rows.any() else None,
            "mean_p": float(p[rows].mean()) if rows.any() else None,
        }
    return {
        "method": "precision targets on the holdout",
        "targets": {
            "high_precision": high_precision,
            "low_delay_rate": low_rate,
            "min_flights": min_flights,
        },
        "low_max": low_max,
        "high_min": high_min,
        "holdout": holdout,
    }


def from_thresholds(low_max: float | None, high_min: float | None, source: str) -> RiskBands:
    """Bands from stored thresholds; None leaves that band empty."""
    return RiskBands(
        0.0 if low_max is None else float(low_max),
        math.inf if high_min is None else float(high_min),
        source,
    )


def settings_bands(settings: Settings) -> RiskBands:
    return RiskBands(settings.risk_band_low_max, settings.risk_band_high_min, SETTINGS_SOURCE)


def fit_for(settings: Settings, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """:func:`fit_bands` with the settings' targets."""
    return fit_bands(
        y,
        p,
        settings.risk_high_precision,
        settings.risk_low_delay_rate,
        settings.risk_band_min_flights,
    )


def bands_for(settings: Settings, metadata: dict[str, Any] | None) -> RiskBands:
    """A version's bands (``metadata["risk_bands"]``), or the settings' fixed thresholds
    for a version without them (or no version: the heuristic fallback)."""
    stored = (metadata or {}).get("risk_bands")
    if not isinstance(stored, dict) or not {"low_max", "high_min"} <= set(stored):
        return settings_bands(settings)
    try:
        return from_thresholds(
            stored["low_max"], stored["high_min"], f"holdout of {metadata.get('version')}"
        )
    except (TypeError, ValueError):
        return settings_bands(settings)
