"""Features: read the ``flight_features`` mart and split it into keys, features and label.

The mart (built by dbt) holds only what is known at each flight's cutoff. Every column
that is not a key, a display column or the label is a feature; string columns are
categorical. A fork that adds a column to the mart gets a new feature with no change here.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.dates import window_label
from ml.errors import ConfigError, DataError, LeakageError
from ml.io import duckdb_connect, has_files, partitions_relation, reading
from ml.paths import Paths

LABEL = "is_delayed"
# Identify and describe a flight; never fed to a model (flight and tail numbers are
# arbitrary identifiers: a model must not learn from them).
# latest_source_date and label_known_date are lineage for the leakage checks, not features.
KEY_COLUMNS = (
    "flight_id",
    "flight_date",
    "sched_dep_at",
    "flight_number",
    "tailnum",
    "latest_source_date",
    "label_known_date",
)
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
# Columns of the oracle-forecast group (the flight_oracle_weather mart): known only after
# the cutoff, an upper bound on what a perfect weather forecast could add.
ORACLE_PREFIX = "oracle_"
# Domain knowledge every model must respect: the risk never falls when a trailing delay
# rate rises or when the weather before the cutoff gets worse (more precipitation, wind
# or gusts; less visibility). The boosted models enforce it as monotone constraints and
# the behavioural tests check it. Matched on column names; a fork edits these.
DELAY_RATE_MARKERS = ("_delay_rate_",)
WORSE_WHEN_HIGHER = ("precip", "wind_speed", "wind_gust")
WORSE_WHEN_LOWER = ("visibility",)


def weather_direction(column: str) -> int:
    """+1 if ``column`` is weather before the cutoff that is worse when higher, -1 if worse
    when lower, 0 otherwise (the oracle group is weather after the cutoff)."""
    if column.startswith(ORACLE_PREFIX):
        return 0
    if any(m in column for m in WORSE_WHEN_HIGHER):
        return 1
    if any(m in column for m in WORSE_WHEN_LOWER):
        return -1
    return 0


def monotone_direction(column: str) -> int:
    """+1 if the risk must not fall as ``column`` rises, -1 if it must not rise, else 0."""
    if any(m in column for m in DELAY_RATE_MARKERS):
        return 1
    return weather_direction(column)


ORACLE_LABEL = "ORACLE (observed weather at departure: an upper bound, not a deployable model)"


# -- the point-in-time rules: every reader of feature rows for a model applies these ----
def labels_known_before(frame: pd.DataFrame, as_of: dt.date) -> pd.Series:
    """Rows whose label was known before ``as_of`` (the only ones a model trained as of
    ``as_of`` may learn from: a late-evening flight's outcome is known only the next day)."""
    return frame["label_known_date"] < as_of


def check_labels_known_before(frame: pd.DataFrame, as_of: dt.date, what: str) -> None:
    """Raise :class:`LeakageError` if a row of ``frame`` has a label not known before ``as_of``."""
    unknown = frame[~labels_known_before(frame, as_of)]
    if not unknown.empty:
        raise LeakageError(
            f"{len(unknown)} {what} row(s) whose label is known only on or after the as-of "
            f"date {as_of}, e.g. {unknown['flight_id'].iloc[0]} (check: label_known_date < as_of)"
        )


def check_features_read_before_their_date(frame: pd.DataFrame, what: str) -> None:
    """Raise :class:`LeakageError` if a row's features read a day on or after its own date."""
    late = frame[frame["latest_source_date"] >= frame["flight_date"]]
    if not late.empty:
        raise LeakageError(
            f"{len(late)} {what} row(s) with features read on or after their flight date, "
            f"e.g. {late['flight_id'].iloc[0]} (check: latest_source_date < flight_date)"
        )


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


def load_features(
    settings: Settings,
    start: dt.date | None,
    end: dt.date | None,
    *,
    built: bool = False,
    oracle: bool = False,
) -> pd.DataFrame:
    """Rows of the feature mart with ``start <= flight_date <= end``, ordered by departure.

    Args:
        settings: Paths.
        start: First flight date (None: no lower bound).
        end: Last flight date (None: no upper bound).
        built: Read dbt's unpublished build instead of the published partitions.
        oracle: Also join the oracle-forecast group (``oracle_*`` columns); see ORACLE_LABEL.

    Raises:
        DataError: The mart does not exist or has no rows in the range.
    """
    paths = settings.paths
    source, relation = _relation(settings, start, end, built)
    lower = start or dt.date.min
    upper = end or dt.date.max
    join = ""
    if oracle:
        oracle_dir = paths.mart("flight_oracle_weather")
        if not has_files(paths.mart_glob("flight_oracle_weather")):
            raise DataError(
                f"{oracle_dir}: oracle-forecast mart not found (run `ml transform` first)"
            )
        join = (
            "left join (select * exclude (flight_date) from "
            f"{partitions_relation(paths.mart_glob('flight_oracle_weather'))}) as oracle "
            "using (flight_id)"
        )
    hint = "rebuild those days with `ml transform --start D --end D`"
    with reading(source, hint), duckdb_connect() as con:
        frame = con.execute(
            f"select * from {relation} {join} where flight_date between ? and ? "
            "order by flight_date, sched_dep_at, flight_id",
            [lower, upper],
        ).df()
    if frame.empty:
        raise DataError(f"{source}: {_no_rows(paths, start, end, built)}")
    frame["flight_date"] = pd.to_datetime(frame["flight_date"]).dt.date
    for column in ("latest_source_date", "label_known_date"):
        frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame


def _relation(
    settings: Settings, start: dt.date | None, end: dt.date | None, built: bool
) -> tuple[Path, str]:
    """The feature mart's file or folder, and the relation that reads it in DuckDB.

    Raises:
        DataError: The mart does not exist.
    """
    paths = settings.paths
    if built:
        source = paths.mart_build("flight_features", window_label(start, end))
        relation = f"read_parquet('{source}')"
    else:
        source = paths.mart("flight_features")
        relation = partitions_relation(paths.mart_glob("flight_features"))
    if not (source.exists() if built else has_files(paths.mart_glob("flight_features"))):
        raise DataError(
            f"{source}: feature mart not found (run `ml ingest` and `ml transform` first)"
        )
    return source, relation


def non_finite_values(
    settings: Settings,
    start: dt.date | None,
    end: dt.date | None,
    columns: list[str],
    *,
    built: bool = False,
) -> dict[str, tuple[int, dt.date]]:
    """The ``columns`` (floats) of the rows :func:`load_features` reads with the same
    arguments that hold NaN or an infinity, each with how many rows and the first day.

    A DataFrame of pandas reads NaN as a missing value, and DuckDB folds ``isnan`` away
    when a file's statistics (which leave NaN out) say the column has none: the values
    themselves are read, with Polars.
    """
    import polars as pl

    source, _ = _relation(settings, start, end, built)
    glob = str(source) if built else settings.paths.mart_glob("flight_features")
    hint = "rebuild those days with `ml transform --start D --end D`"
    with reading(source, hint):
        rows = (
            pl.scan_parquet(glob, hive_partitioning=not built)
            .select(["flight_date", *columns])
            .filter(pl.col("flight_date").is_between(start or dt.date.min, end or dt.date.max))
            .collect()
        )
    found = {}
    for column in columns:
        bad = rows[column].is_nan() | rows[column].is_infinite()
        if bad.any():
            found[column] = (int(bad.sum()), rows["flight_date"].filter(bad).min())
    return found


def _no_rows(paths: Paths, start: dt.date | None, end: dt.date | None, built: bool) -> str:
    """Why no flight of ``start..end`` is in the mart, and what to run for them."""
    span = f"on {start}" if start == end else f"between {start} and {end}"
    missing = f"no flights with flight_date {span} (check: rows in range)"
    if built or start is None or end is None:
        return missing
    days = paths.mart_days("flight_features")
    published = f"published: {days[0]}..{days[-1]}" if days else "none published"
    dates = f"--start {start} --end {end}"
    return f"{missing}; {published}; run `ml ingest {dates}` and `ml transform {dates}` first"


def rows_between(frame: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The rows of ``frame`` (sorted by flight_date, as :func:`load_features` returns it)
    with ``start <= flight_date <= end``, found by binary search, not a scan."""
    dates = frame["flight_date"]
    return frame.iloc[dates.searchsorted(start, "left") : dates.searchsorted(end, "right")]


def infer_spec(frame: pd.DataFrame, exclude: tuple[str, ...] | list[str] = ()) -> FeatureSpec:
    """Every column but keys, label and those ``exclude`` names (exact names or shell-style
    patterns, the setting ``feature_exclude``); string columns are categorical.

    Raises:
        ConfigError: A pattern of ``exclude`` matches no column of ``frame``.
    """
    matched = {p: [c for c in frame.columns if fnmatch.fnmatchcase(c, p)] for p in exclude}
    unmatched = [p for p, columns in matched.items() if not columns]
    if unmatched:
        raise ConfigError(
            f"feature_exclude {unmatched}: no column of the feature mart matches "
            "(check: each pattern names at least one column)"
        )
    excluded = set(KEY_COLUMNS) | {LABEL}
    excluded |= {c for columns in matched.values() for c in columns}
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
    """A short, stable hash of each row's feature values (same inputs, same fingerprint),
    each column hashed in its own type."""
    hashed = pd.util.hash_pandas_object(frame[list(spec.columns)], index=False)
    return hashed.map(lambda value: f"{int(value) & 0xFFFFFFFFFFFFFFFF:016x}")


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A SHA-256 of a whole frame, for the registry's lineage: its columns, their types
    and every value, through pandas' row hashes (each column read in its own type; no
    value is turned into text, which took seconds on a training window)."""
    digest = hashlib.sha256(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest.update(np.ascontiguousarray(hashed).tobytes())
    return digest.hexdigest()
