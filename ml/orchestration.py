"""What the Airflow DAGs need from ``ml`` beyond the stages: which day a run is for.

Kept free of Airflow imports so the package runs without Airflow installed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ml.dates import parse_date
from ml.errors import ConfigError

if TYPE_CHECKING:
    from ml.config import Settings

log = logging.getLogger(__name__)


def run_day(context: Mapping[str, Any], param: str = "flight_date") -> dt.date:
    """The day a DAG run is for.

    An explicit ``param`` (the trigger form's date) wins; then the run's partition key
    (a partitioned run: the flight date of the asset event that started it); then, for a
    run started by an asset event, the day the event asked for (its ``extra[param]``);
    otherwise the run's logical
    date, or for a manual run without one, the time it was queued for. Scheduled runs
    fire at 00:00 America/New_York, which is 04:00 or 05:00 UTC of the same date, and
    ``airflow dags test <dag> 2013-03-15`` uses 00:00 UTC: the UTC date is D in both.
    """
    params = context.get("params") or {}
    if params.get(param):
        return parse_date(str(params[param]))
    partition = getattr(context.get("dag_run"), "partition_key", None)
    if partition:
        return parse_date(str(partition)[:10])
    requested = requested_day(context, param)
    if requested is not None:
        return requested
    moment = context.get("logical_date") or context.get("run_after")
    if moment is None:
        raise ConfigError(
            f"the run has no logical date and no {param!r} param: say which day to run"
        )
    return moment.astimezone(dt.UTC).date()


def requested_day(context: Mapping[str, Any], key: str) -> dt.date | None:
    """The latest ``extra[key]`` among the asset events that triggered the run, if any."""
    events = context.get("triggering_asset_events") or {}
    days = [
        parse_date(str(event.extra[key]))
        for asset_events in events.values()
        for event in asset_events
        if (getattr(event, "extra", None) or {}).get(key)
    ]
    return max(days, default=None)


def run_range(context: Mapping[str, Any]) -> tuple[dt.date, dt.date]:
    """The days a replay run is for: its ``start`` and ``end`` params, each defaulting to
    the run's day (:func:`run_day`)."""
    start, end = run_day(context, "start"), run_day(context, "end")
    if end < start:
        raise ConfigError(f"replay {start}..{end}: the end is before the start")
    return start, end


async def deadline_missed(context: Mapping[str, Any], **_: Any) -> None:
    """The daily DAG's deadline alert callback, run by the triggerer (which imports it by
    its path: the DAGs folder is not on its path, the installed package is)."""
    import asyncio

    from ml.config import load_settings

    await asyncio.to_thread(record_missed_deadline, load_settings(), context)


def record_missed_deadline(settings: Settings, context: Mapping[str, Any]) -> dict[str, Any]:
    """A run that missed its deadline (the context Airflow's deadline alert passes its
    callback: ``dag_run`` and ``deadline``): logged, and appended to
    ``monitoring/deadline_misses.jsonl`` for the ML view. Returns the row."""
    from ml.io import append_json_line

    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    moment = run.get("logical_date")
    try:  # the day the run is for, as the run's own tasks read it
        day = run_day(
            {
                "params": run.get("conf") or {},
                "logical_date": moment and dt.datetime.fromisoformat(str(moment)),
            }
        ).isoformat()
    except ConfigError:  # a manual run with no date: nothing to name
        day = None
    row = {
        "dag_id": run.get("dag_id"),
        "run_id": run.get("dag_run_id") or run.get("run_id"),
        "run_type": run.get("run_type"),
        "flight_date": day,
        "queued_at": run.get("queued_at"),
        "deadline_at": deadline.get("deadline_time"),
        "state": run.get("state"),
    }
    log.warning(
        "%s run %s missed its deadline (%s): queued at %s, still %s",
        row["dag_id"],
        row["run_id"],
        row["deadline_at"],
        row["queued_at"],
        row["state"],
    )
    append_json_line(row, settings.paths.deadline_misses)
    return row
