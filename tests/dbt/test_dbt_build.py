"""dbt on a real slice: the mart's grain, its point-in-time rates, and failing tests surfacing."""

import datetime as dt
import re
import shutil
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pytest

from ml.errors import TransformError
from ml.pipeline import transform
from tests.conftest import SLICE_END, SLICE_START, make_settings

DAY = dt.date(2013, 3, 5)


def _mart(settings) -> str:
    return settings.paths.mart_glob("flight_features")


def test_the_mart_has_one_row_per_scheduled_flight(built_data):
    settings = make_settings(built_data)
    raw = pl.read_parquet(
        settings.paths.raw / "flights" / "*" / "*.parquet", hive_partitioning=True
    )
    with duckdb.connect() as con:
        rows, ids, first, last = con.execute(
            "select count(*), count(distinct flight_id), min(flight_date), max(flight_date) "
            "from read_parquet(?, hive_partitioning = true)",
            [_mart(settings)],
        ).fetchone()
    assert rows == ids == raw.height
    assert (first, last) == (SLICE_START, SLICE_END)


def _smoothed(events: int, flights: int, prior: float, weight: int = 20) -> float:
    return (events + weight * prior) / (flights + weight)


def _outcomes_known_by_day(settings) -> pl.DataFrame:
    """The raw flights with the New York date by whose end each outcome is known.

    An independent implementation of the rule in int_flight_outcomes_dated: known at the
    scheduled arrival (destination time, next day if it would precede departure) + 15 min.
    """
    raw = pl.read_parquet(
        settings.paths.raw / "flights" / "*" / "*.parquet", hive_partitioning=True
    )
    zones = dict(
        pl.read_parquet(settings.paths.raw_reference("airports")).select("faa", "tzone").iter_rows()
    )
    new_york = ZoneInfo("America/New_York")
    known = []
    for row in raw.iter_rows(named=True):
        day = row["flight_date"]
        departs = dt.datetime.combine(day, dt.time(row["hour"], row["minute"]), tzinfo=new_york)
        hhmm = row["sched_arr_time"]
        zone = ZoneInfo(zones.get(row["dest"]) or "America/New_York")
        # aware + timedelta is wall-clock arithmetic: the scheduled time at the destination
        arrives = dt.datetime.combine(day, dt.time(0), tzinfo=zone) + dt.timedelta(
            hours=hhmm // 100, minutes=hhmm % 100
        )
        if arrives < departs:
            arrives += dt.timedelta(days=1)
        known.append((arrives + dt.timedelta(minutes=15)).astimezone(new_york).date())
    return raw.with_columns(
        pl.Series("known_date", known),
        (pl.col("arr_delay").is_null() | (pl.col("arr_delay") >= 15)).alias("delayed"),
        pl.col("dep_time").is_null().alias("cancelled"),
    )


def test_trailing_rates_count_only_outcomes_known_before_the_cutoff(built_data):
    """Recompute the carrier x origin rates of DAY from the raw files, by hand."""
    settings = make_settings(built_data)
    outcomes = _outcomes_known_by_day(settings)

    def known_within(days: int) -> pl.DataFrame:
        return outcomes.filter(
            pl.col("known_date").is_between(
                DAY - dt.timedelta(days=days), DAY - dt.timedelta(days=1)
            )
        )

    network = known_within(28)
    prior = network["delayed"].sum() / network.height
    cancel_prior = network["cancelled"].sum() / network.height
    ua_ewr = (pl.col("carrier") == "UA") & (pl.col("origin") == "EWR")
    month, yesterday = known_within(28).filter(ua_ewr), known_within(1).filter(ua_ewr)
    with duckdb.connect() as con:
        row = con.execute(
            "select carrier_origin_delay_rate_28d, carrier_origin_delay_rate_1d, network_delay_rate_28d, "
            "carrier_origin_cancel_rate_28d, latest_source_date "
            "from read_parquet(?, hive_partitioning = true) where flight_date = ? and carrier = 'UA' and origin = 'EWR' limit 1",
            [_mart(settings), DAY],
        ).fetchone()
    assert row[2] == pytest.approx(prior)
    assert row[0] == pytest.approx(_smoothed(month["delayed"].sum(), month.height, prior))
    assert row[1] == pytest.approx(_smoothed(yesterday["delayed"].sum(), yesterday.height, prior))
    assert row[3] == pytest.approx(_smoothed(month["cancelled"].sum(), month.height, cancel_prior))
    assert row[4] == DAY - dt.timedelta(days=1)
    # Late-evening flights of the day before are known only after the cutoff.
    assert (
        outcomes.filter(
            (pl.col("flight_date") == DAY - dt.timedelta(days=1)) & (pl.col("known_date") == DAY)
        ).height
        > 0
    )


def test_yesterdays_weather_comes_from_the_day_before(built_data):
    settings = make_settings(built_data)
    weather = pl.read_parquet(settings.paths.raw_partition("weather", DAY - dt.timedelta(days=1)))
    expected = weather.filter(pl.col("origin") == "JFK")["wind_speed"].max()
    with duckdb.connect() as con:
        value = con.execute(
            "select distinct origin_max_wind_speed_mph_1d from read_parquet(?, hive_partitioning = true) "
            "where flight_date = ? and origin = 'JFK'",
            [_mart(settings), DAY],
        ).fetchall()
    assert value == [(pytest.approx(expected),)]


def _duplicate_a_flight(settings) -> None:
    partition = settings.paths.raw_partition("flights", DAY)
    frame = pl.read_parquet(partition)
    pl.concat([frame, frame.head(1)]).write_parquet(partition)


def _drop_a_carrier(settings) -> None:
    path = settings.paths.raw_reference("airlines")
    pl.read_parquet(path).filter(pl.col("carrier") != "UA").write_parquet(path)


@pytest.mark.parametrize(
    ("break_the_data", "failing_test"),
    [
        (_duplicate_a_flight, "unique_stg_nycflights__flights_flight_id"),
        (_drop_a_carrier, "relationships_stg_nycflights__flights_carrier"),
    ],
    ids=["a duplicated flight", "a flight of an unknown carrier"],
)
def test_a_failing_dbt_test_fails_the_transform_and_names_it(
    built_data, tmp_path, break_the_data, failing_test
):
    data = tmp_path / "data"
    shutil.copytree(built_data, data)
    settings = make_settings(data)
    break_the_data(settings)
    with pytest.raises(TransformError, match=failing_test):
        transform(settings)


def test_the_dbt_project_reads_time_in_the_package_time_zone():
    """dbt spells the zone as a project variable; ml.dates is the one the code uses."""
    import yaml

    from ml.dates import TIME_ZONE
    from ml.paths import DBT_PROJECT_DIR

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["local_time_zone"] == TIME_ZONE


def test_a_new_window_keeps_dbts_parse_and_builds_only_its_dates(built_data, tmp_path, caplog):
    """The window is read at run time (macros/build_window.sql): building another day
    does not make dbt parse the project again, and each build holds its own days."""
    import logging

    from ml.transform import build

    data = tmp_path / "data"
    shutil.copytree(built_data, data, symlinks=True)
    settings = make_settings(data)
    reparse = "Unable to do partial parsing"

    def dbt_output(start, end):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ml.transform"):
            folder = build(settings, start, end)
        return folder, [r.getMessage() for r in caplog.records if "dbt |" in r.getMessage()]

    _, first = dbt_output(DAY, DAY)  # the copy's folder is new to dbt's saved parse
    assert any(reparse in line for line in first)
    assert not any("\x1b" in line for line in first)  # dbt's colours left out of the log
    folder, second = dbt_output(DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2))
    assert second and not any(reparse in line for line in second)
    days = pl.read_parquet(folder / "flight_features.parquet")["flight_date"].unique().sort()
    assert days.to_list() == [DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]
    assert sorted(p.name for p in folder.iterdir()) == [
        "flight_features.parquet",
        "flight_oracle_weather.parquet",
        "flights.parquet",
        settings.paths.build_scheduled(folder.name).name,
    ]


def test_the_dbt_project_spells_the_data_folders_files_as_ml_paths_names_them(tmp_path):
    """profiles.yml and the window macros name files of the data folder themselves (dbt
    cannot import ml): the same files as ml.paths, or dbt and ml would not meet."""
    from ml.paths import DBT_PROJECT_DIR, Paths

    paths = Paths(tmp_path)
    spelled = {
        "profiles.yml": [paths.dbt_database, paths.dbt_outputs],
        "macros/build_window.sql": [paths.dbt_window, paths.dbt_outputs],
    }
    for name, files in spelled.items():
        text = (DBT_PROJECT_DIR / name).read_text()
        for path in files:
            relative = path.relative_to(tmp_path).as_posix()
            assert "{{ env_var('ML_DATA_DIR') }}/" + relative in text, (name, relative)


def test_ml_transform_without_dates_rebuilds_every_landed_day(built_data, tmp_path):
    """The README's advice after a change that adds mart columns: `ml transform` with no
    dates rebuilds and republishes every landed day (a day published without a column,
    here the evening before, gets it back)."""
    from tests.reliability.conftest import run_ml

    data_dir = tmp_path / "data"
    shutil.copytree(built_data, data_dir)
    partition = make_settings(data_dir).paths.mart("flight_features") / f"flight_date={DAY}"
    (file,) = partition.glob("*.parquet")
    pl.read_parquet(file).drop("origin_evening_dep_delay_rate_1d").write_parquet(file)

    result = run_ml("transform", data_dir=data_dir)

    assert result.returncode == 0, result.stderr[-1500:]
    rebuilt = pl.read_parquet(str(partition / "*.parquet"))
    assert rebuilt["origin_evening_dep_delay_rate_1d"].null_count() == 0
    published = pl.read_parquet(
        make_settings(data_dir).paths.mart_glob("flight_features"), hive_partitioning=True
    )
    assert published["flight_date"].min() == SLICE_START
    assert published["flight_date"].max() == SLICE_END
    # The default settings write the dbt project's docs after the build.
    docs = make_settings(data_dir).paths.dbt_docs
    assert "int_evening_departures_counted" in docs.read_text()


def test_dbt_docs_are_written_after_a_build_and_again_only_when_the_project_changed(
    built_data, tmp_path
):
    from ml import transform

    data_dir = tmp_path / "data"
    shutil.copytree(built_data, data_dir)
    settings = make_settings(data_dir, dbt_docs=True)
    transform.build(settings, DAY, DAY)
    page = settings.paths.dbt_docs
    text = page.read_text()
    # The manifest and catalog are in the page: models, documented columns, tests.
    for name in ("flight_features", "int_evening_departures_counted", "stg_nycflights__flights"):
        assert f"model.flights.{name}" in text, name
    assert "origin_evening_dep_delay_rate_1d" in text  # a documented column
    assert "test.flights.unique_flight_features_flight_id" in text
    # The app loads dbt's telemetry script from a CDN only when the manifest allows it.
    assert '"send_anonymous_usage_stats": false' in text
    # No URL attribute holds an uncompiled Angular expression, which the browser would
    # fetch as it stands: the app sets them through ng-attr- once they are interpolated.
    assert re.search(r"""\s(xlink:href|src)=\\?["']\{\{""", text) is None
    assert 'ng-attr-href="{{ getIcon(' in text
    assert "${require(" not in text  # the bundler's placeholder for its favicon
    written = page.stat().st_mtime_ns

    transform.build(settings, DAY, DAY)
    assert page.stat().st_mtime_ns == written  # the same project: not written again

    page.with_name("project.sha256").write_text("the digest of an older project")
    with transform.dbt_lock(settings):
        transform._write_docs_if_changed(settings)
    assert page.stat().st_mtime_ns != written
    stamp = page.with_name("project.sha256").read_text()
    assert stamp == transform.project_digest()
