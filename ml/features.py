"""Features: read the ``flight_features`` mart and split it into keys, features and label.

The mart (built by dbt) holds only what is known at each flight's cutoff. Every column
that is not a key, a display column or the label is a feature; string columns are
categorical. A fork that adds a column to the mart gets a new feature with no change here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.io import DataError

LABEL = "is_delayed"
# Identify and describe a flight; never fed to a model (flight and tail numbers are
# arbitrary identifiers: a model must not learn from them).
KEY_COLUMNS = ("flight_id", "flight_date", "sched_dep_at", "flight_number", "tailnum")
DISPLAY_COLUMNS = (
    "flight_id",
    "flight_date",
    "carrier",
    "flight_number",
    "tailnum",
    "origin",
    "dest",
    "sched_dep_at",
)
# The heuristic baseline and fallback: the smoothed trailing carrier x origin delay rate.
HEURISTIC_COLUMN = "carrier_origin_delay_rate_28d"


@dataclass(frozen=True)
class FeatureSpec:
    """The features a model was trained on, in order, with their kinds."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, list[str]]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical)}

    @classmethod
    def from_dict(cls, data: dict[str, list[str]]) -> FeatureSpec:
        return cls(numeric=tuple(data["numeric"]), categorical=tuple(data["categorical"]))


def mart_path(settings: Settings) -> Path:
    return settings.paths.marts / "flight_features.parquet"


def load_features(settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Rows of the feature mart with ``start <= flight_date <= end``, ordered by departure.

    Raises:
        DataError: The mart does not exist or has no rows in the range.
    """
    import duckdb

    path = mart_path(settings)
    if not path.exists():
        raise DataError(
            f"{path}: feature mart not found (run `ml ingest` and `ml transform` first)"
        )
    with duckdb.connect() as con:
        frame = con.execute(
            "select * from read_parquet(?) where flight_date between ? and ? "
            "order by flight_date, sched_dep_at, flight_id",
            [str(path), start, end],
        ).df()
    if frame.empty:
        raise DataError(
            f"{path}: no flights with flight_date between {start} and {end} (check: rows in range)"
        )
    frame["flight_date"] = pd.to_datetime(frame["flight_date"]).dt.date
    return frame


def infer_spec(frame: pd.DataFrame) -> FeatureSpec:
    """Every column but keys and label; string columns are categorical."""
    excluded = set(KEY_COLUMNS) | {LABEL}
    numeric, categorical = [], []
    for column in frame.columns:
        if column in excluded:
            continue
        dtype = frame[column].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            numeric.append(column)
        else:
            categorical.append(column)
    return FeatureSpec(numeric=tuple(numeric), categorical=tuple(categorical))


def row_fingerprints(frame: pd.DataFrame, spec: FeatureSpec) -> pd.Series:
    """A short, stable hash of each row's feature values (same inputs, same fingerprint)."""
    hashed = pd.util.hash_pandas_object(frame[spec.columns].astype(str), index=False)
    return hashed.map(lambda value: f"{int(value) & 0xFFFFFFFFFFFFFFFF:016x}")


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A SHA-256 of a whole frame's values, for the registry's lineage."""
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return hashlib.sha256(np.ascontiguousarray(hashed).tobytes()).hexdigest()
