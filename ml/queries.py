"""The one read API for a day's predictions: what the CLI (`ml predictions show`), the ML
view and the demo summary show. Each reads the day's partition once, straight from
Parquet (no catalog, no lock), and formats what it gets.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ml.config import Settings
from ml.dates import LOCAL_TZ
from ml.errors import DataError
from ml.io import reading

# What a person looks at first, in this order; `departs_local` is sched_dep_at in New York.
SHOWN_COLUMNS = (
    "flight_id",
    "carrier",
    "flight",
    "origin",
    "dest",
    "sched_dep_at",
    "p_delayed",
    "risk_band",
    "model_version",
    "model_role",
    "top_reasons",
)


def _partition(settings: Settings, day: dt.date):
    path = settings.paths.predictions_partition(day)
    if not path.exists():
        raise DataError(f"{path}: no predictions for {day} (run `ml predict --date {day}`)")
    return path, f"predict the day again with `ml predict --date {day}`"


def riskiest_flights(
    settings: Settings, day: dt.date, *, role: str | None = "champion", limit: int = 20
) -> pd.DataFrame:
    """The day's predictions, riskiest first (ties by flight_id), of one model role or of
    both (``role=None``); the columns of :data:`SHOWN_COLUMNS` and ``departs_local``.

    Raises:
        DataError: No partition for the day, or an unreadable one (the file is named).
    """
    import duckdb

    path, hint = _partition(settings, day)
    where, params = ("where model_role = ?", [role]) if role else ("", [])
    with reading(path, hint), duckdb.connect() as con:
        frame = con.execute(
            f"select {', '.join(SHOWN_COLUMNS)} from read_parquet(?) {where} "
            "order by p_delayed desc, flight_id limit ?",
            [str(path), *params, limit],
        ).df()
    frame["departs_local"] = frame["sched_dep_at"].dt.tz_convert(LOCAL_TZ).dt.strftime("%H:%M")
    return frame


def risk_bands(settings: Settings, day: dt.date, *, role: str = "champion") -> pd.DataFrame:
    """Flights and mean ``p_delayed`` per risk band of one model role, riskiest band first."""
    import duckdb

    path, hint = _partition(settings, day)
    with reading(path, hint), duckdb.connect() as con:
        return con.execute(
            "select risk_band, count(*) as flights, avg(p_delayed) as mean_p_delayed "
            "from read_parquet(?) where model_role = ? group by 1 order by 3 desc",
            [str(path), role],
        ).df()
