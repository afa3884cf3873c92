"""The warehouse catalog: ``warehouse.duckdb`` holds views over the Parquet files.

DuckDB lets one process hold a file for writing and then locks every other open, readers
included. So the file is opened for writing only to (re)create views, which takes
milliseconds; data never flows through it. In Airflow, tasks that call
:func:`refresh_catalog` share the one-slot ``warehouse`` pool.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ml.config import Settings

log = logging.getLogger(__name__)


def _views(settings: Settings) -> dict[str, str]:
    """View name to SQL, for every dataset that has files."""
    paths = settings.paths
    views: dict[str, str] = {}

    def glob_exists(pattern: str, base: Path) -> bool:
        return base.exists() and any(base.glob(pattern))

    for mart in ("flights", "flight_features"):
        if glob_exists("flight_date=*/*.parquet", paths.mart(mart)):
            views[mart] = (
                f"select * from read_parquet('{paths.mart_glob(mart)}', hive_partitioning = true, "
                "hive_types = {'flight_date': date})"
            )
    if glob_exists("flight_date=*/*.parquet", paths.predictions):
        views["predictions"] = (
            f"select * from read_parquet('{paths.predictions}/*/*.parquet', "
            "hive_partitioning = true, hive_types = {'flight_date': date})"
        )
        views["latest_predictions"] = "select * from predictions where model_role = 'champion'"
    if glob_exists("drift/*/*.parquet", paths.monitoring):
        views["monitoring_drift"] = (
            f"select * from read_parquet('{paths.monitoring}/drift/*/*.parquet', "
            "hive_partitioning = true, hive_types = {'flight_date': date})"
        )
    if glob_exists("performance/kind=*/flight_date=*/*.parquet", paths.monitoring):
        views["monitoring_performance"] = (
            f"select * from read_parquet('{paths.monitoring}/performance/*/*/*.parquet', "
            "hive_partitioning = true, hive_types = {'flight_date': date})"
        )
    if glob_exists("retraining/flight_date=*/*.parquet", paths.monitoring):
        views["retraining_decisions"] = (
            f"select * from read_parquet('{paths.monitoring}/retraining/*/*.parquet', "
            "hive_partitioning = true, hive_types = {'flight_date': date})"
        )
    # A run is complete once its row is in backtest_runs (written last): the other tables
    # show complete runs only.
    if glob_exists("runs/run_id=*/*.parquet", paths.backtests):
        for table in ("runs", "folds", "metrics", "predictions"):
            if glob_exists(f"{table}/run_id=*/*.parquet", paths.backtests):
                complete = (
                    "" if table == "runs" else " where run_id in (select run_id from backtest_runs)"
                )
                views[f"backtest_{table}"] = (
                    f"select * from read_parquet('{paths.backtests}/{table}/*/*.parquet', "
                    "hive_partitioning = true, hive_types = {'run_id': varchar}, "
                    f"union_by_name = true){complete}"
                )
    return views


def refresh_catalog(settings: Settings) -> list[str]:
    """Create or replace the warehouse's views; returns their names."""
    import duckdb

    views = _views(settings)
    settings.paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.paths.warehouse)) as con:
        for name, sql in views.items():
            con.execute(f"create or replace view {name} as {sql}")
    log.info("warehouse %s: views %s", settings.paths.warehouse, sorted(views))
    return sorted(views)


PARTITION_TYPES = {"flight_date": "date", "run_id": "varchar"}


def query_partitions(
    files: Path | str, sql: str, params: list, partition: str = "flight_date"
) -> pd.DataFrame | None:
    """Run ``sql`` over hive-partitioned Parquet files; None when no file matches.

    ``{files}`` in ``sql`` stands for the files, read with their partition column
    (``flight_date`` as a date, or ``run_id``). Reads the Parquet directly, not the
    warehouse file, so it never waits for the catalog's writer.
    """
    import glob

    import duckdb

    if not glob.glob(str(files)):
        return None
    relation = (
        f"read_parquet('{files}', hive_partitioning = true, union_by_name = true, "
        f"hive_types = {{'{partition}': {PARTITION_TYPES[partition]}}})"
    )
    with duckdb.connect() as con:
        return con.execute(sql.replace("{files}", relation), params).df()


def connect_readonly(settings: Settings):
    """Open the warehouse read-only, as users and reports do."""
    import duckdb

    return duckdb.connect(str(settings.paths.warehouse), read_only=True)
