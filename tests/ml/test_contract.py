"""The contracts of ml.contract against what they describe and what is made from them:
the source files' columns, the feature mart's columns, the expectation suites and dbt's
tests of keys and references. A column added anywhere without its rules fails here."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections import Counter

import duckdb
import pandas as pd
import polars as pl
import pytest
import yaml

from ml.contract import (
    FLIGHT_FEATURES,
    SOURCE_TABLES,
    TABLES,
    WIND_MPH,
    Column,
    expectations,
)
from ml.errors import ValidationError
from ml.paths import DBT_PROJECT_DIR, EXPECTATIONS_DIR
from ml.transform import build
from ml.validate import load_suite, validate_features
from tests.conftest import SLICE_START, make_settings

STAGING_MODELS = DBT_PROJECT_DIR / "models" / "staging" / "_nycflights__models.yml"
# Source columns that the staging models rename.
RENAMED = {("airports", "faa"): "airport_code", ("weather", "time_hour"): "observed_at"}


# The contract's types as DuckDB names them in the mart's files.
_DUCKDB_TYPES = {
    pl.Int32: "INTEGER",
    pl.Int64: "BIGINT",
    pl.Float64: "DOUBLE",
    pl.String: "VARCHAR",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.Datetime("us", "UTC"): "TIMESTAMP WITH TIME ZONE",
}


def _has_rule(column: Column) -> bool:
    if column.low is not None or column.values is not None or column.pattern is not None:
        return True
    return column.required and column.dtype in (pl.Date, pl.Datetime, pl.Boolean)


def _source_header(package_source, table: str) -> list[str]:
    if table == "flights":
        with zipfile.ZipFile(package_source / "flights.csv.zip") as archive:
            first = archive.open("flights.csv").readline().decode()
    else:
        first = (package_source / f"{table}.csv").read_text().splitlines()[0]
    return [name.strip().strip('"') for name in first.strip().split(",")]


@pytest.mark.parametrize("table", SOURCE_TABLES)
def test_every_column_of_a_source_file_has_a_contract_with_a_rule(table, package_source):
    contract = TABLES[table]
    assert [c.name for c in contract.columns] == _source_header(package_source, table)
    for column in contract.columns:
        assert _has_rule(column), f"{table}.{column.name}: no rule beyond its type"
        if column.low is not None and column.tolerated:
            assert column.why, f"{table}.{column.name}: a tolerance needs its reason"
        if column.low is not None:
            assert column.why, f"{table}.{column.name}: a range needs its reason"


def test_every_column_of_the_feature_mart_has_a_contract_with_a_rule(built_data):
    settings = make_settings(built_data)
    glob = settings.paths.mart_glob("flight_features")
    with duckdb.connect() as con:
        types = dict(
            con.execute(
                f"select column_name, column_type from (describe select * from "
                f"read_parquet('{glob}', hive_partitioning = true))"
            ).fetchall()
        )
    contract = {c.name: c for c in FLIGHT_FEATURES.columns}
    assert sorted(types) == sorted(contract)
    assert {name: _DUCKDB_TYPES[contract[name].dtype] for name in contract} == types
    for column in FLIGHT_FEATURES.columns:
        assert _has_rule(column), f"flight_features.{column.name}: no rule beyond its type"


@pytest.mark.parametrize("suite", ["raw_flights", "raw_weather", "flight_features"])
def test_each_suite_holds_its_contracts_rules_once(suite):
    config = json.loads((EXPECTATIONS_DIR / f"{suite}.json").read_text())
    table = TABLES[config["meta"]["contract"]]
    loaded = load_suite(suite).expectations
    keys = Counter(
        (e.expectation_type, json.dumps(e.configuration.kwargs, sort_keys=True, default=str))
        for e in loaded
    )
    assert [key for key, n in keys.items() if n > 1] == []
    assert len(loaded) == len(config["expectations"]) + len(expectations(table))


def _dbt_tests(model: str) -> dict[str, list]:
    """The data tests of one staging model: per column, and ``None`` for the model's."""
    (config,) = [
        m for m in yaml.safe_load(STAGING_MODELS.read_text())["models"] if m["name"] == model
    ]
    tests = {None: config.get("data_tests", [])}
    for column in config.get("columns", []):
        tests[column["name"]] = column.get("data_tests", [])
    return tests


def _names(tests: list) -> list[str]:
    return [t if isinstance(t, str) else next(iter(t)) for t in tests]


@pytest.mark.parametrize("table", ["weather", "planes", "airports", "airlines"])
def test_dbt_tests_each_key_of_the_contract(table):
    key = [RENAMED.get((table, c), c) for c in TABLES[table].key]
    tests = _dbt_tests(f"stg_nycflights__{table}")
    if len(key) == 1:
        assert {"unique", "not_null"} <= set(_names(tests[key[0]]))
    else:
        (combined,) = [t for t in tests[None] if "unique_combination_of_columns" in t]
        args = combined["unique_combination_of_columns"]["arguments"]
        assert args["combination_of_columns"] == key


def test_dbt_tests_the_flights_key_as_the_flight_id_made_of_it():
    tests = _dbt_tests("stg_nycflights__flights")
    assert {"unique", "not_null"} <= set(_names(tests["flight_id"]))
    sql = (DBT_PROJECT_DIR / "models" / "staging" / "stg_nycflights__flights.sql").read_text()
    (made,) = [line for line in sql.splitlines() if "concat_ws(" in line]
    for column in TABLES["flights"].key:
        assert column in made, column


def test_dbt_tests_each_reference_of_the_flights_contract_and_nothing_else():
    tests = _dbt_tests("stg_nycflights__flights")
    declared = {}
    for column, column_tests in tests.items():
        for test in column_tests:
            if isinstance(test, dict) and "relationships" in test:
                declared[column] = test["relationships"]
    contract = {ref.column: ref for ref in TABLES["flights"].references}
    # tailnum -> planes is a warning in dbt (7 % of tail numbers are not in the registry)
    assert set(declared) - {"tailnum"} == set(contract)
    for column, ref in contract.items():
        arguments = declared[column]["arguments"]
        assert arguments["to"] == f"ref('stg_nycflights__{ref.table}')"
        assert arguments["field"] == RENAMED.get((ref.table, ref.key), ref.key)
        where = declared[column]["config"]["where"]
        for value in ref.unlisted:
            assert f"'{value}'" in where


def test_dbt_reads_a_wind_beyond_the_contracts_limit_as_missing(built_data):
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["max_wind_mph"] == WIND_MPH
    # the real record's faulty reading (1048 mph at EWR on 2013-02-12) is in the raw, and
    # the day's features were made without it
    settings = make_settings(built_data)
    raw = pl.read_parquet(settings.paths.raw_partition("weather", dt.date(2013, 2, 12)))
    assert raw["wind_speed"].max() > WIND_MPH
    features = pl.read_parquet(
        settings.paths.mart_partition("flight_features", dt.date(2013, 2, 13))
    )
    assert 0 < features["origin_max_wind_speed_mph_1d"].max() <= WIND_MPH


def test_the_real_reference_tables_keep_their_contracts(package_source, tmp_path):
    from ml.ingest import read_reference_table, source_file

    settings = make_settings(tmp_path / "data")
    for table in ("planes", "airports", "airlines"):
        assert read_reference_table(source_file(package_source, table), table, settings).height


def test_a_feature_that_is_nan_or_infinite_fails_validation_by_name(built_data, tmp_path):
    """A DataFrame would read NaN as a missing value: the file itself is asked."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(built_data, data)
    settings = make_settings(data)
    day = SLICE_START + dt.timedelta(days=40)
    build(settings, day, day)
    path = settings.paths.mart_build("flight_features", day.isoformat())
    frame = pl.read_parquet(path)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(float("nan"))
        .otherwise(pl.col("origin_last_temp_f"))
        .alias("origin_last_temp_f"),
        pl.when(pl.int_range(pl.len()) == 1)
        .then(float("inf"))
        .otherwise(pl.col("route_delay_rate_7d"))
        .alias("route_delay_rate_7d"),
    )
    frame.write_parquet(path)
    assert pd.read_parquet(path)["origin_last_temp_f"].isna().sum() >= 1  # NaN reads as missing
    with pytest.raises(ValidationError) as raised:
        validate_features(settings, day, day, built=True)
    message = str(raised.value)
    assert "finite on column 'origin_last_temp_f' failed (1 row(s) hold NaN" in message
    assert "on column 'route_delay_rate_7d'" in message
    assert (settings.paths.quarantine / day.isoformat() / "flight_features.parquet").exists()
