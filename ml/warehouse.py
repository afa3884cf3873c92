"""The warehouse catalog: ``warehouse.duckdb`` holds views over the Parquet files.

DuckDB lets one process hold a file for writing and then refuses every other open,
read-only ones included; and while a reader holds it, a writer cannot open it. So the
catalog users open is never opened for writing in place: :func:`refresh_catalog` builds
the new catalog in a temporary file beside it and renames it over the old one. A reader
holding the old file keeps its snapshot, the next connection sees the new views, nobody
waits. The views expand their globs at query time, so a new partition of an existing
dataset shows without a new catalog: the file is rebuilt only when the set of views
changes (a dataset appears), or when it is unreadable (it holds only views, so it is
always safe to rebuild). The table ``catalog_views`` inside it lists every view and its SQL.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ml.config import Settings
from ml.errors import StorageError
from ml.io import (
    atomic_path,
    duckdb_connect,
    file_lock,
    has_files,
    partitions_relation,
    remove_stale_temporaries,
)

log = logging.getLogger(__name__)


def _views(settings: Settings) -> dict[str, str]:
    """View name to SQL, for every dataset that has files."""
    paths = settings.paths
    views: dict[str, str] = {}

    def read(files: str, partition: str = "flight_date") -> str:
        return f"select * from {partitions_relation(files, partition)}"

    for mart in ("flights", "flight_features"):
        if has_files(paths.mart_glob(mart)):
            views[mart] = read(paths.mart_glob(mart))
    if has_files(paths.predictions_glob):
        views["predictions"] = read(paths.predictions_glob)
        views["latest_predictions"] = "select * from predictions where model_role = 'champion'"
    for table, view in (
        ("drift", "monitoring_drift"),
        ("performance", "monitoring_performance"),
        ("retraining", "retraining_decisions"),
    ):
        if has_files(paths.monitoring_glob(table)):
            views[view] = read(paths.monitoring_glob(table))
    # A run is complete once its row is in backtest_runs (written last): the other tables
    # show complete runs only.
    if has_files(paths.backtest_glob("runs")):
        for table in ("runs", "folds", "metrics", "predictions"):
            if has_files(paths.backtest_glob(table)):
                complete = (
                    "" if table == "runs" else " where run_id in (select run_id from backtest_runs)"
                )
                views[f"backtest_{table}"] = read(paths.backtest_glob(table), "run_id") + complete
    return views


CATALOG_TABLE = "catalog_views"
# Waiting longer than this for another refresh means that one is stuck.
LOCK_TIMEOUT_SECONDS = 60


def refresh_catalog(settings: Settings) -> list[str]:
    """Make ``warehouse.duckdb`` hold a view per dataset that has files; returns their names.

    Never opens the published file for writing; see the module docstring.
    """
    views = _views(settings)
    path = settings.paths.warehouse
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(settings.paths.warehouse_lock, timeout=LOCK_TIMEOUT_SECONDS):
        remove_stale_temporaries(path.parent, prefix=f".{path.name}.", recursive=False)
        current = catalog_views(path)
        if current == views:
            log.debug("warehouse %s: views unchanged %s", path, sorted(views))
            return sorted(views)
        if current is None and path.exists():
            log.warning("%s: unreadable catalog, rebuilt (it holds only views)", path)
        _build_catalog(path, views)
    log.info("warehouse %s: views %s", path, sorted(views))
    return sorted(views)


def catalog_views(path: Path) -> dict[str, str] | None:
    """The views a catalog file holds (name to SQL); None if it is missing or unreadable."""
    import duckdb

    if not path.exists():
        return None
    try:
        with duckdb_connect(path, read_only=True) as con:
            rows = con.execute(f"select name, sql from {CATALOG_TABLE}").fetchall()
    except duckdb.Error:
        return None
    return dict(rows)


def _build_catalog(path: Path, views: dict[str, str]) -> None:
    import duckdb

    with atomic_path(path) as tmp:
        tmp.unlink()  # DuckDB creates the file; an empty one is not a database
        try:
            with duckdb_connect(tmp) as con:
                for name, sql in views.items():
                    con.execute(f"create view {name} as {sql}")
                con.execute(f"create table {CATALOG_TABLE} (name varchar primary key, sql varchar)")
                con.executemany(f"insert into {CATALOG_TABLE} values (?, ?)", sorted(views.items()))
        except duckdb.Error as exc:
            tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
            raise StorageError(f"{path}: could not build the catalog ({exc})") from exc


def connect_readonly(settings: Settings):
    """Open the warehouse read-only, as users and reports do."""
    return duckdb_connect(settings.paths.warehouse, read_only=True)
