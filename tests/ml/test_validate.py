import datetime as dt
import json
import shutil

import pandas as pd
import pytest

from ml.errors import ValidationError
from ml.transform import build, publish
from ml.validate import check_raw, validate_day, validate_features
from tests.conftest import make_settings

DAY = dt.date(2013, 2, 12)  # includes the source's 1048 mph wind-speed glitch at EWR


def test_a_real_day_passes_every_suite(built_data):
    outcomes = validate_day(make_settings(built_data), DAY)
    assert [o.suite for o in outcomes] == ["raw_flights", "raw_weather", "flight_features"]
    assert all(o.success and o.evaluated > 10 for o in outcomes)


def test_a_failed_expectation_names_the_expectation_column_and_days(built_data):
    settings = make_settings(built_data)
    path = settings.paths.raw_partition("flights", DAY)
    frame = pd.read_parquet(path).assign(flight_date=DAY)
    frame.loc[frame.index[:3], "origin"] = "XXX"
    outcome = check_raw(settings, "flights", frame, str(path))
    assert not outcome.success
    detail = f"3 unexpected of {len(frame)}, e.g. ['XXX', 'XXX', 'XXX']"
    in_set = {"expectation": "expect_column_values_to_be_in_set", "column": "origin"}
    # not one of New York's airports, nor an airport of the landed airports table
    assert outcome.failures == [
        {**in_set, "detail": f"{detail}; New York's airports"},
        {**in_set, "detail": f"{detail}; a row of airports (faa)"},
    ]
    assert outcome.bad_days == [DAY.isoformat()]
    assert (
        f"{path}: expect_column_values_to_be_in_set on column 'origin' failed" in outcome.describe()
    )


@pytest.fixture
def built_copy(built_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(built_data, data)
    return make_settings(data)


def test_a_build_that_does_not_match_the_schedule_is_quarantined_and_not_published(built_copy):
    settings = built_copy
    published = pd.read_parquet(settings.paths.mart_partition("flight_features", DAY))
    build(settings, DAY, DAY)
    built = settings.paths.mart_build("flight_features", DAY.isoformat())
    pd.read_parquet(built).iloc[:-5].to_parquet(built)  # the build lost five of the flights
    with pytest.raises(ValidationError, match="expect_table_row_count_to_equal failed"):
        validate_features(settings, DAY, DAY, built=True)
    folder = settings.paths.quarantine / DAY.isoformat()
    reason = json.loads((folder / "reason_flight_features.json").read_text())
    assert reason["failures"][0]["expectation"] == "expect_table_row_count_to_equal"
    assert (folder / "flight_features.parquet").exists()
    assert (
        not settings.paths.mart_build_dir(DAY.isoformat())
        .joinpath("flight_features.parquet")
        .exists()
    )
    pd.testing.assert_frame_equal(
        published, pd.read_parquet(settings.paths.mart_partition("flight_features", DAY))
    )


def test_a_daily_build_gives_the_same_rows_as_the_full_build(built_copy):
    settings = built_copy
    day = dt.date(2013, 3, 20)
    full = pd.read_parquet(settings.paths.mart_partition("flight_features", day))
    build(settings, day, day)
    validate_features(settings, day, day, built=True)
    assert publish(settings, day, day) == {
        "flights": [day.isoformat()],
        "flight_features": [day.isoformat()],
        "flight_oracle_weather": [day.isoformat()],
    }
    pd.testing.assert_frame_equal(
        full, pd.read_parquet(settings.paths.mart_partition("flight_features", day))
    )
