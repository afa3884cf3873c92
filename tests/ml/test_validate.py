import datetime as dt

import pandas as pd
import pytest

from ml.validate import ValidationError, run_suite, validate_day
from tests.conftest import make_settings

DAY = dt.date(2013, 2, 12)  # includes the source's 1048 mph wind-speed glitch at EWR


def test_a_real_day_passes_every_suite(built_data):
    outcomes = validate_day(make_settings(built_data), DAY)
    assert [o.suite for o in outcomes] == ["raw_flights", "raw_weather", "flight_features"]
    assert all(o.success and o.evaluated > 10 for o in outcomes)


def test_a_failed_expectation_names_the_expectation_and_column(built_data):
    settings = make_settings(built_data)
    path = settings.paths.raw_partition("flights", DAY)
    frame = pd.read_parquet(path)
    frame.loc[frame.index[:3], "origin"] = "XXX"
    outcome = run_suite(frame, "raw_flights", str(path))
    assert not outcome.success
    assert outcome.failures == [
        {
            "expectation": "expect_column_values_to_be_in_set",
            "column": "origin",
            "detail": "3 unexpected of " + str(len(frame)) + ", e.g. ['XXX', 'XXX', 'XXX']",
        }
    ]
    assert (
        f"{path}: expect_column_values_to_be_in_set on column 'origin' failed" in outcome.describe()
    )


def test_feature_rows_must_match_the_schedule(built_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(built_data, data)
    settings = make_settings(data)
    raw = settings.paths.raw_partition("flights", DAY)
    frame = pd.read_parquet(raw)
    frame.iloc[:-5].to_parquet(raw)  # five flights vanished from the landing zone after transform
    with pytest.raises(ValidationError, match="expect_table_row_count_to_equal failed"):
        validate_day(settings, DAY)
