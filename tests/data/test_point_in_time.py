"""Point-in-time correctness, proved on real data.

Two copies of the raw source: the real one, and one where every outcome (departure and
arrival times and delays, cancellations) and every weather observation from day X on is
rewritten, and so are the departure delays of X-1's flights that left after midnight,
when X's cutoff had passed. Features of flights on or before X must be identical in both:
nothing a flight's features read may come from after its cutoff.
"""

import datetime as dt
import io
import zipfile
from pathlib import Path

import polars as pl
import pytest

from ml.ingest import ingest
from ml.pipeline import transform
from tests.conftest import make_settings

START = dt.date(2013, 1, 1)
X = dt.date(2013, 2, 12)  # 02-11 has 14 departures after midnight, the most of Jan-Feb
END = dt.date(2013, 2, 20)
OUTCOME_COLUMNS = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]
# The date of a row of the raw flights or weather file, and a flight's departure delay
# ("NA" for a cancelled flight: null).
DAY = pl.date(pl.col("year").cast(pl.Int32), pl.col("month").cast(pl.Int32), pl.col("day").cast(pl.Int32))
DEP_DELAY = pl.col("dep_delay").cast(pl.Float64, strict=False)


def _package_flights(package_source: Path) -> pl.DataFrame:
    with zipfile.ZipFile(package_source / "flights.csv.zip") as archive:
        return pl.read_csv(io.BytesIO(archive.read("flights.csv")), infer_schema=False)


def _left_after_xs_cutoff() -> pl.Expr:
    """Flights of X-1 that departed at or after midnight, the cutoff of X's flights."""
    scheduled = pl.col("hour").cast(pl.Int64) * 60 + pl.col("minute").cast(pl.Int64)
    return (DAY == X - dt.timedelta(days=1)) & (scheduled + DEP_DELAY >= 24 * 60)


def _rewritten_source(package_source: Path, folder: Path) -> Path:
    folder.mkdir()
    flights = _package_flights(package_source)
    # X-1's departures after the cutoff: five hours later still (the label is untouched)
    flights = flights.with_columns(
        pl.when(_left_after_xs_cutoff())
        .then((DEP_DELAY + 300).cast(pl.Int64).cast(pl.String))
        .otherwise(pl.col("dep_delay"))
        .alias("dep_delay")
    )
    late = DAY >= X
    odd = pl.col("flight").cast(pl.Int64) % 2 == 1
    flights = flights.with_columns(
        # odd flight numbers from X on: cancelled; even ones: three hours late
        *[pl.when(late & odd).then(pl.lit("NA")).otherwise(pl.col(c)).alias(c) for c in OUTCOME_COLUMNS],
    ).with_columns(
        pl.when(late & ~odd).then(pl.lit("180")).otherwise(pl.col("arr_delay")).alias("arr_delay"),
        pl.when(late & ~odd).then(pl.lit("175")).otherwise(pl.col("dep_delay")).alias("dep_delay"),
    )
    flights.write_csv(folder / "flights.csv", null_value="NA")
    weather = pl.read_csv(package_source / "weather.csv", infer_schema=False)
    weather = weather.with_columns(
        pl.when(DAY >= X).then(pl.lit("45.0")).otherwise(pl.col("wind_speed")).alias("wind_speed"),
        pl.when(DAY >= X).then(pl.lit("0.5")).otherwise(pl.col("visib")).alias("visib"),
        pl.when(DAY >= X).then(pl.lit("0.4")).otherwise(pl.col("precip")).alias("precip"),
        pl.when(DAY >= X).then(pl.lit("-10")).otherwise(pl.col("temp")).alias("temp"),
        # a dew point never above the temperature (the feature contract checks it)
        pl.when(DAY >= X).then(pl.lit("-12")).otherwise(pl.col("dewp")).alias("dewp"),
    )
    weather.write_csv(folder / "weather.csv", null_value="NA")
    for name in ("planes", "airports", "airlines"):
        (folder / f"{name}.csv").symlink_to(package_source / f"{name}.csv")
    return folder


def _features(source: Path | None, data_dir: Path) -> pl.DataFrame:
    settings = make_settings(data_dir, raw_source=str(source) if source else "")
    ingest(settings, START, END)
    transform(settings)
    return pl.read_parquet(settings.paths.mart_glob("flight_features"), hive_partitioning=True).sort("flight_id")


@pytest.fixture(scope="module")
def both(package_source, tmp_path_factory):
    root = tmp_path_factory.mktemp("pit")
    real = _features(None, root / "real")
    rewritten = _features(_rewritten_source(package_source, root / "source"), root / "rewritten")
    return real, rewritten


def test_features_up_to_x_ignore_everything_from_x_on(both):
    real, rewritten = both
    before = pl.col("flight_date") <= X
    label = "is_delayed"
    features_real = real.filter(before).drop(label)
    features_rewritten = rewritten.filter(before).drop(label)
    assert features_real.height > 35_000  # 43 days of flights
    assert features_real.equals(features_rewritten)


def test_the_rewrite_moves_departures_that_left_after_xs_cutoff(package_source):
    """The evening before (int_evening_departures_counted) reads X-1's late flights as they
    stood at midnight: the rewrite must have such flights to move, or it proves nothing."""
    assert _package_flights(package_source).filter(_left_after_xs_cutoff()).height >= 10


def test_labels_before_x_are_untouched_and_the_rewrite_did_change_later_days(both):
    real, rewritten = both
    assert real.filter(pl.col("flight_date") < X)["is_delayed"].equals(
        rewritten.filter(pl.col("flight_date") < X)["is_delayed"]
    )
    after = pl.col("flight_date") > X
    changed = [
        column for column in ("carrier_origin_delay_rate_1d", "origin_cancel_rate_1d", "origin_max_wind_speed_mph_1d")
        if not real.filter(after)[column].equals(rewritten.filter(after)[column])
    ]
    assert changed == ["carrier_origin_delay_rate_1d", "origin_cancel_rate_1d", "origin_max_wind_speed_mph_1d"]
    assert rewritten.filter(after)["origin_max_wind_speed_mph_1d"].unique().to_list() == [45.0]
