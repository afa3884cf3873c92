"""Which day a DAG run is for: the trigger form, an asset event's as-of date, the logical date."""

import datetime as dt
from types import SimpleNamespace

import pytest

from ml.errors import ConfigError
from ml.orchestration import run_day, run_range

LOGICAL = dt.datetime(2013, 7, 1, 4, tzinfo=dt.UTC)  # 00:00 in New York


def _event(**extra):
    return SimpleNamespace(extra=extra)


def test_a_run_started_by_the_retraining_policy_trains_as_of_the_requested_day():
    events = {"retraining_requested": [_event(as_of="2013-07-08"), _event(as_of="2013-07-09")]}
    context = {
        "triggering_asset_events": events,
        "run_after": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    }
    assert run_day(context, param="as_of") == dt.date(2013, 7, 9)  # the latest request


def test_a_partitioned_run_trains_as_of_its_partition_key_unless_the_form_says_otherwise():
    context = {
        "dag_run": SimpleNamespace(partition_key="2013-07-09"),
        "triggering_asset_events": {"retraining_requested": [_event(as_of="2013-07-08")]},
        "logical_date": None,
        "run_after": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    }
    assert run_day(context, param="as_of") == dt.date(2013, 7, 9)
    assert run_day({**context, "params": {"as_of": "2013-05-01"}}, "as_of") == dt.date(2013, 5, 1)
    unpartitioned = {**context, "dag_run": SimpleNamespace(partition_key=None)}
    assert run_day(unpartitioned, param="as_of") == dt.date(2013, 7, 8)


def test_the_trigger_form_wins_then_the_logical_date():
    events = {"retraining_requested": [_event(as_of="2013-07-08")]}
    context = {"params": {"as_of": "2013-05-01"}, "triggering_asset_events": events}
    assert run_day(context, param="as_of") == dt.date(2013, 5, 1)
    assert run_day({"logical_date": LOGICAL, "triggering_asset_events": {}}) == dt.date(2013, 7, 1)
    assert run_day({"logical_date": LOGICAL, "triggering_asset_events": {"x": [_event()]}}) == (
        dt.date(2013, 7, 1)
    )
    with pytest.raises(ValueError, match="say which day"):
        run_day({})


def test_a_replay_runs_from_its_start_to_its_end_param_each_defaulting_to_the_run_day():
    params = {"start": "2013-07-01", "end": "2013-07-31"}
    assert run_range({"params": params}) == (dt.date(2013, 7, 1), dt.date(2013, 7, 31))
    assert run_range({"params": {"start": None, "end": None}, "logical_date": LOGICAL}) == (
        dt.date(2013, 7, 1),
        dt.date(2013, 7, 1),
    )
    with pytest.raises(ConfigError, match="the end is before the start"):
        run_range({"params": {"start": "2013-07-31", "end": "2013-07-01"}})
