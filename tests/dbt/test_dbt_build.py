"""dbt on a real slice: the mart's grain, its point-in-time rates, and failing tests surfacing."""

import datetime as dt
import shutil

import duckdb
import polars as pl
import pytest

from ml.transform import TransformError, transform
from tests.conftest import SLICE_END, SLICE_START, make_settings

DAY = dt.date(2013, 3, 5)


def _mart(settings) -> str:
    return str(settings.paths.marts / "flight_features.parquet")


def test_the_mart_has_one_row_per_scheduled_flight(built_data):
    settings = make_settings(built_data)
    raw = pl.read_parquet(
        settings.paths.raw / "flights" / "*" / "*.parquet", hive_partitioning=True
    )
    with duckdb.connect() as con:
        rows, ids, first, last = con.execute(
            "select count(*), count(distinct flight_id), min(flight_date), max(flight_date) from read_parquet(?)",
            [_mart(settings)],
        ).fetchone()
    assert rows == ids == raw.height
    assert (first, last) == (SLICE_START, SLICE_END)


def _smoothed(delayed: int, flights: int, prior: float, weight: int = 20) -> float:
    return (delayed + weight * prior) / (flights + weight)


def test_trailing_rates_use_only_days_before_the_flight(built_data):
    """Recompute the carrier x origin rates of DAY from the raw files, by hand."""
    settings = make_settings(built_data)
    raw = pl.read_parquet(
        settings.paths.raw / "flights" / "*" / "*.parquet", hive_partitioning=True
    )
    raw = raw.with_columns(
        pl.col("flight_date").cast(pl.Date),
        (pl.col("arr_delay").is_null() | (pl.col("arr_delay") >= 15)).alias("delayed"),
    )

    def window(days: int) -> pl.DataFrame:
        return raw.filter(
            pl.col("flight_date").is_between(
                DAY - dt.timedelta(days=days), DAY - dt.timedelta(days=1)
            )
        )

    network = window(28)
    prior = network["delayed"].sum() / network.height
    group = window(28).filter((pl.col("carrier") == "UA") & (pl.col("origin") == "EWR"))
    yesterday = window(1).filter((pl.col("carrier") == "UA") & (pl.col("origin") == "EWR"))
    with duckdb.connect() as con:
        row = con.execute(
            "select carrier_origin_delay_rate_28d, carrier_origin_delay_rate_1d, network_delay_rate_28d "
            "from read_parquet(?) where flight_date = ? and carrier = 'UA' and origin = 'EWR' limit 1",
            [_mart(settings), DAY],
        ).fetchone()
    assert row[2] == pytest.approx(prior)
    assert row[0] == pytest.approx(_smoothed(group["delayed"].sum(), group.height, prior))
    assert row[1] == pytest.approx(_smoothed(yesterday["delayed"].sum(), yesterday.height, prior))


def test_yesterdays_weather_comes_from_the_day_before(built_data):
    settings = make_settings(built_data)
    weather = pl.read_parquet(settings.paths.raw_partition("weather", DAY - dt.timedelta(days=1)))
    expected = weather.filter(pl.col("origin") == "JFK")["wind_speed"].max()
    with duckdb.connect() as con:
        value = con.execute(
            "select distinct origin_max_wind_speed_mph_1d from read_parquet(?) where flight_date = ? and origin = 'JFK'",
            [_mart(settings), DAY],
        ).fetchall()
    assert value == [(pytest.approx(expected),)]


def test_a_failing_dbt_test_fails_the_transform_and_names_it(built_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(built_data, data)
    settings = make_settings(data)
    partition = settings.paths.raw_partition("flights", DAY)
    frame = pl.read_parquet(partition)
    pl.concat([frame, frame.head(1)]).write_parquet(partition)  # a duplicated flight
    with pytest.raises(TransformError, match="unique_stg_nycflights__flights_flight_id"):
        transform(settings)
