"""Paths and atomic writes: the one place that knows where files live and how they land.

Every write goes to a temporary file in the destination's folder and is then renamed
over the destination, so a reader sees the old file or the new one, never half of one.
A date partition is a folder holding one ``part-0.parquet``; replacing it is one rename.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

LOCAL_TZ = ZoneInfo("America/New_York")
PART_FILE = "part-0.parquet"


class DataError(ValueError):
    """Input data is missing or malformed; the message names the file, column and check."""


@dataclass(frozen=True)
class Paths:
    """Layout of the data folder (``ML_DATA_DIR``)."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    def raw_table(self, table: str) -> Path:
        return self.raw / table

    def raw_partition(self, table: str, day: dt.date) -> Path:
        return self.raw / table / f"flight_date={day.isoformat()}" / PART_FILE

    def raw_reference(self, table: str) -> Path:
        return self.raw / table / PART_FILE

    @property
    def marts(self) -> Path:
        return self.root / "marts"

    def mart(self, name: str) -> Path:
        """The published mart: ``marts/<name>/flight_date=D/part-0.parquet``."""
        return self.marts / name

    def mart_partition(self, name: str, day: dt.date) -> Path:
        return self.marts / name / f"flight_date={day.isoformat()}" / PART_FILE

    def mart_glob(self, name: str) -> str:
        return str(self.marts / name / "*" / "*.parquet")

    @property
    def mart_builds(self) -> Path:
        return self.marts / "_build"

    def mart_build_dir(self, label: str) -> Path:
        """Where dbt writes one run's window of each mart, before validation and publication."""
        return self.mart_builds / label

    def mart_build(self, name: str, label: str) -> Path:
        return self.mart_build_dir(label) / f"{name}.parquet"

    @property
    def dbt(self) -> Path:
        """dbt's own DuckDB file (``transform.duckdb``, see profiles.yml), target and logs."""
        return self.root / "dbt"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    def predictions_partition(self, day: dt.date) -> Path:
        return self.predictions / f"flight_date={day.isoformat()}" / PART_FILE

    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def backtests(self) -> Path:
        return self.root / "backtests"

    def backtest_table(self, table: str, run_id: str) -> Path:
        """One run's part of a backtest table: ``backtests/<table>/run_id=<id>/part-0.parquet``."""
        return self.backtests / table / f"run_id={run_id}" / PART_FILE

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"


def parse_date(value: str | dt.date) -> dt.date:
    """Parse an ISO date, with an error that says what was expected."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from exc


def window_label(start: dt.date | None, end: dt.date | None) -> str:
    """A date window's name in folders: ``2013-07-01``, ``2013-04-02_2013-06-30`` or ``all``."""
    if start is None or end is None:
        return "all"
    return start.isoformat() if start == end else f"{start.isoformat()}_{end.isoformat()}"


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end``, both included."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def cutoff_at(day: dt.date) -> dt.datetime:
    """The prediction cutoff for flights scheduled on ``day``: 00:00 America/New_York."""
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=LOCAL_TZ)


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it over ``dest`` if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(table: pa.Table, dest: Path) -> Path:
    """Write ``table`` to ``dest`` atomically (zstd-compressed Parquet)."""
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return dest


def write_text(text: str, dest: Path) -> Path:
    """Write ``text`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return dest


def write_json(obj: Any, dest: Path) -> Path:
    """Write ``obj`` as indented JSON to ``dest`` atomically."""
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", dest)


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))
