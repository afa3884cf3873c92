"""The one read API for what people look at: a day's predictions (`ml predictions show`,
the ML view, the demo summary) and the registered models with their holdout metrics
beside the heuristic's (`ml models list`, the ML view). Predictions are read once per
day straight from Parquet (no catalog, no lock); the caller formats what it gets.
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


# What a registry file that lacks an expected key, or is unreadable, raises.
UNREADABLE = (LookupError, OSError, ValueError, TypeError)


def model_versions(settings: Settings) -> list[dict]:
    """Every registered version, newest first: its metadata and aliases, and ``holdout``
    (log loss and AUC of the model and of the heuristic on the same flights), or, where
    its metrics cannot be read, ``error`` (the exception) and no ``holdout``."""
    from ml import registry

    rows = []
    for meta in registry.list_versions(settings):
        row = {**meta, "holdout": None, "error": None}
        try:
            holdout = registry.load_metrics(settings, meta["version"])["holdout"]
            model, heuristic = holdout["model"], holdout["baselines"].get("heuristic", {})
            row["holdout"] = {
                "log_loss": metric_value(model, "log_loss"),
                "heuristic_log_loss": metric_value(heuristic, "log_loss"),
                "auc": metric_value(model, "auc"),
                "heuristic_auc": metric_value(heuristic, "auc"),
            }
        except UNREADABLE as exc:
            row["error"] = exc
        rows.append(row)
    return rows


def metric_value(metrics: dict, name: str) -> float | None:
    """``metrics[name]`` as a float, or None where it is missing or not a number."""
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None
