"""Slices: the groups of flights every evaluation breaks its metrics down by (carrier,
origin, departure-hour band, distance band), the same at training (the holdout's slices
and the promotion gate), in the backtest and in daily monitoring. A fork adds its own
dimension here, once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

HOUR_BANDS = ((0, 10, "00-09"), (10, 14, "10-13"), (14, 18, "14-17"), (18, 24, "18-23"))
DISTANCE_BANDS = ((0, 500, "<500 mi"), (500, 1000, "500-999 mi"), (1000, 2000, "1000-1999 mi"))
LONG_HAUL = ">=2000 mi"


def _band(values: pd.Series, bands, top_label: str | None = None) -> pd.Series:
    out = pd.Series(top_label, index=values.index, dtype="object")
    for low, high, label in bands:
        out[(values >= low) & (values < high)] = label
    return out


def slice_columns(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The slice each row belongs to, per dimension."""
    return {
        "carrier": frame["carrier"].astype(str),
        "origin": frame["origin"].astype(str),
        "dep_hour_band": _band(frame["sched_dep_hour"], HOUR_BANDS),
        "distance_band": _band(frame["distance_miles"], DISTANCE_BANDS, LONG_HAUL),
    }


def slice_masks(frame: pd.DataFrame) -> Iterator[tuple[str, str, np.ndarray]]:
    """Every slice as (dimension, value, row mask), dimension by dimension."""
    for dimension, labels in slice_columns(frame).items():
        labels = labels.to_numpy()
        for value in sorted(set(labels)):
            yield dimension, str(value), labels == value
