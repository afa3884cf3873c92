"""End to end through Airflow's own test runner: an empty data folder to a prediction table.

Runs the real DAG files with `airflow dags test` (one process, SQLite metadata database)
exactly as `make demo` does, then reads the predictions back from the warehouse.
"""

import contextlib
import datetime as dt
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.e2e.airflow_stack import AIRFLOW, ML, init_metadata, lineage_env, metadata_env
from tests.reliability.conftest import Reader

pytestmark = pytest.mark.e2e

AS_OF = dt.date(2013, 3, 15)
DAY = dt.date(2013, 3, 15)


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("e2e")
    env = dict(os.environ)
    env.update(
        {
            **metadata_env(root / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "ML_DATA_DIR": str(root / "data"),
            "ML_TRAIN_WINDOW_DAYS": "30",
            "ML_VALIDATION_DAYS": "7",
            **lineage_env(root / "data"),
        }
    )
    init_metadata(env)
    return env


def _run(command: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{output[-4000:]}"
    return output


def _failing_daily_run(env: dict[str, str], day: dt.date) -> str:
    """``airflow dags test flights_daily DAY``, which must fail; its output."""
    proc = subprocess.run(
        [AIRFLOW, "dags", "test", "flights_daily", day.isoformat()],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert "state=failed" in output or proc.returncode != 0, output[-4000:]
    return output


def _champion_rows(env: dict[str, str], day: dt.date) -> pd.DataFrame:
    with duckdb.connect(str(Path(env["ML_DATA_DIR"]) / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select * from latest_predictions where flight_date = ? order by flight_id", [day]
        ).df()


def test_training_then_daily_dag_publish_one_prediction_per_flight(airflow_env):
    training = _run([AIRFLOW, "dags", "test", "flights_training", AS_OF.isoformat()], airflow_env)
    assert "state=success" in training
    # A notebook holds the catalog open read-only, and keeps querying, through the whole
    # daily run: the run never waits for it, and it never sees an error.
    catalog = Path(airflow_env["ML_DATA_DIR"]) / "warehouse.duckdb"
    reader = Reader(catalog)
    log = Path(airflow_env["ML_DATA_DIR"]).parent / "daily-with-a-reader.log"
    with log.open("w") as output:
        daily_run = subprocess.Popen(
            [AIRFLOW, "dags", "test", "flights_daily", DAY.isoformat()],
            env=airflow_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        answers = []
        deadline = time.monotonic() + 600
        while daily_run.poll() is None and time.monotonic() < deadline:
            answers.append(reader.query("select count(*) from flight_features"))
            time.sleep(0.2)
        daily_run.kill() if daily_run.poll() is None else None
    daily = log.read_text()
    assert daily_run.returncode == 0 and "state=success" in daily, daily[-4000:]
    assert len(answers) > 10 and all("rows" in a for a in answers), answers[-3:]
    assert "rows" in reader.query(
        "select count(*) from flights where flight_date = DATE '2013-03-15'"
    )
    reader.close()

    data = Path(airflow_env["ML_DATA_DIR"])
    scheduled = pd.read_parquet(data / "raw" / "flights" / f"flight_date={DAY}" / "part-0.parquet")
    rows = _champion_rows(airflow_env, DAY)
    assert len(rows) == len(scheduled) == rows["flight_id"].nunique()
    assert rows["p_delayed"].between(0, 1).all()
    assert rows["model_version"].str.startswith(AS_OF.strftime("%Y%m%d")).all()
    assert (data / "reports" / "drift" / f"drift_{DAY}.html").exists()
    docs = (data / "reports" / "validation" / "index.html").read_text()
    assert "flight_features" in docs and "raw_flights" in docs  # every validation run

    # The predictions' asset event carries the flight date as its partition.
    with contextlib.closing(
        sqlite3.connect(Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db")
    ) as db:
        partitions = db.execute(
            "select e.partition_key from asset_event e join asset a on a.id = e.asset_id "
            "where a.name = 'flight_predictions'"
        ).fetchall()
    assert partitions == [(DAY.isoformat(),)]

    # A second run of the same date replaces the partition: same rows, no duplicates.
    _run([AIRFLOW, "dags", "test", "flights_daily", DAY.isoformat()], airflow_env)
    again = _champion_rows(airflow_env, DAY)
    pd.testing.assert_frame_equal(rows, again)

    _check_lineage(airflow_env, data, set(rows["model_version"]))


def test_a_day_the_champion_learned_from_fails_its_daily_run_and_changes_no_prediction(
    airflow_env,
):
    """The champion trained as of AS_OF learned from the 30 days before it: a daily run of
    one of them (a backfill by mistake) fails at ``predict`` with one line, without a
    retry, and every published prediction, report and model file stays as it was."""
    from tests.reliability.conftest import digests

    data = Path(airflow_env["ML_DATA_DIR"])
    seen = AS_OF - dt.timedelta(days=3)
    tops = ("predictions", "monitoring", "reports/drift", "models")
    before = digests(data, tops)
    assert before, "the first test of this module trains a champion and predicts a day"
    output = _failing_daily_run(airflow_env, seen)
    assert f"learned from flights up to {AS_OF - dt.timedelta(days=1)}" in output, output[-4000:]
    assert f"must not score {seen}" in output
    assert not (data / "predictions" / f"flight_date={seen}").exists()
    assert digests(data, tops) == before


def _check_lineage(env: dict[str, str], data: Path, versions: set[str]) -> None:
    """The OpenLineage events of the runs lead from DAY's predictions back to the model
    version that scored them, the raw partitions the features read, and the source files;
    `ml lineage` prints the same, and dbt's models each have their run."""
    shown = subprocess.run(
        [ML, "lineage", "--date", DAY.isoformat(), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    found = json.loads(shown.stdout)
    assert found["predictions"] == str(data / "predictions" / f"flight_date={DAY}")
    # the newest run that wrote each dataset: the second daily run, then back
    jobs = [run["job"] for run in found["runs"]]
    assert jobs[:3] == [
        "flights_daily.predict",
        "flights_daily.publish",
        "flights_daily.build",
    ], jobs
    # the build read the day, which the daily run landed, and its history, which the
    # training run's ingest_history landed before it: each named by the run that wrote it
    assert set(jobs[3:]) == {"flights_daily.ingest", "flights_training.ingest_history"}, jobs
    writers = {name: run["job"] for run in found["runs"] for name in run["outputs"]}
    assert writers[str(data / "raw" / "flights" / f"flight_date={DAY}")] == "flights_daily.ingest"
    assert set(found["model_versions"]) == versions
    raw = {Path(name).relative_to(data).as_posix() for name in found["raw_partitions"]}
    # the day itself and the trailing history its features read, flights and weather
    for table in ("flights", "weather"):
        assert f"raw/{table}/flight_date={DAY}" in raw
        assert f"raw/{table}/flight_date={DAY - dt.timedelta(days=28)}" in raw
    assert not {name for name in raw if name.endswith(f"flight_date={DAY + dt.timedelta(days=1)}")}
    assert {Path(s).name for s in found["sources"]} >= {"flights.csv.zip", "weather.csv"}
    # each task's events are Airflow's own: a parent run (the DAG run) and a COMPLETE
    files = sorted((data / "lineage").glob("openlineage-*.jsonl"))
    events = [json.loads(line) for path in files for line in path.open()]
    predict = [e for e in events if e["run"]["runId"] == found["runs"][0]["run_id"]]
    assert {e["eventType"] for e in predict} >= {"START", "COMPLETE"}
    assert predict[-1]["run"]["facets"]["parent"]["job"]["name"] == "flights_daily"
    # dbt: one run per model, the staging models reading the raw folders
    dbt_runs = {
        e["job"]["name"]: e
        for e in events
        if e["eventType"] == "COMPLETE" and ".build.run" in e["job"]["name"]
    }
    staging = next(e for name, e in dbt_runs.items() if "stg_nycflights__flights" in name)
    assert [d["name"] for d in staging["inputs"]] == [str(data / "raw" / "flights")]
    features = next(
        e for name, e in dbt_runs.items() if name.endswith(".flight_features.build.run")
    )
    assert any("int_flights_joined_to_weather" in d["name"] for d in features["inputs"])
    assert features["outputs"][0]["name"].endswith("flight_features")


def test_a_day_that_fails_validation_publishes_nothing(airflow_env, tmp_path):
    """Bad raw data for a new day is quarantined at ingest; the run stops; earlier days are untouched."""
    source = tmp_path / "source"
    source.mkdir()
    from ml.ingest import package_source

    for item in package_source().iterdir():
        (source / item.name).symlink_to(item)
    weather = (package_source() / "weather.csv").read_text().splitlines()
    # Humidity of 250% at every observation of 2013-03-16: out of range.
    bad = [weather[0]] + [
        ",".join(parts[:7] + ["250"] + parts[8:]) if parts[1:4] == ["2013", "3", "16"] else line
        for line in weather[1:]
        for parts in [line.split(",")]
    ]
    (source / "weather.csv").unlink()
    (source / "weather.csv").write_text("\n".join(bad) + "\n")
    env = {**airflow_env, "ML_RAW_SOURCE": str(source)}
    before = _champion_rows(env, DAY)
    output = _failing_daily_run(env, dt.date(2013, 3, 16))
    assert "expect_column_values_to_be_between on column 'humid' failed" in output
    data = Path(env["ML_DATA_DIR"])
    assert (data / "quarantine" / "2013-03-16" / "weather.parquet").exists()
    reason = (data / "quarantine" / "2013-03-16" / "reason_raw_weather.json").read_text()
    assert '"column": "humid"' in reason
    assert not (data / "raw" / "weather" / "flight_date=2013-03-16").exists()
    assert not (data / "predictions" / "flight_date=2013-03-16").exists()
    pd.testing.assert_frame_equal(before, _champion_rows(env, DAY))


def test_the_backtest_dag_runs_from_an_empty_data_folder_with_its_params(airflow_env, tmp_path):

    env = {**airflow_env, "ML_DATA_DIR": str(tmp_path / "data")}
    conf = {"start": "2013-03-01", "end": "2013-03-10", "cadence": "weekly", "window_days": 30}
    output = _run([AIRFLOW, "dags", "test", "backtest", "-c", json.dumps(conf)], env)
    assert "state=success" in output
    run_id = "weekly-30d-20130301-20130310-lightgbm"
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as con:
        runs = con.execute("select run_id, folds, scored_rows from backtest_runs").fetchall()
        scored = con.execute(
            "select count(*) from flight_features where flight_date between '2013-03-01' and '2013-03-10'"
        ).fetchone()[0]
    assert runs == [(run_id, 2, scored)]
    assert (tmp_path / "data" / "reports" / "backtest" / f"{run_id}.html").exists()


def test_a_fired_retraining_policy_queues_the_training_dag_through_an_asset_event(airflow_env):
    """With a one-day schedule rule the policy fires; the event carries the as-of date.

    Runs last: its daily run lands the history of its day, which the test above needs absent.
    """

    day = DAY + dt.timedelta(days=2)
    env = {**airflow_env, "ML_RETRAIN_EVERY_DAYS": "1"}
    _run([AIRFLOW, "dags", "reserialize"], env)
    _run([AIRFLOW, "dags", "unpause", "flights_training"], env)  # paused DAGs are not queued
    output = _run([AIRFLOW, "dags", "test", "flights_daily", day.isoformat()], env)
    assert "state=success" in output

    with duckdb.connect(str(Path(env["ML_DATA_DIR"]) / "warehouse.duckdb"), read_only=True) as con:
        decisions = con.execute(
            "select flight_date, retrain, reasons from retraining_decisions order by flight_date"
        ).fetchall()
    assert decisions[0][:2] == (DAY, False)  # trained that day: nothing to do
    assert decisions[-1][:2] == (day, True) and decisions[-1][2][0].startswith("schedule:")

    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        events = db.execute(
            "select e.extra, e.partition_key from asset_event e join asset a on a.id = e.asset_id "
            "where a.name = 'retraining_requested'"
        ).fetchall()
        # the partitioned handoff: a flights_training run waits for partition D
        queued = db.execute(
            "select target_dag_id, partition_key from asset_partition_dag_run"
        ).fetchall()
    assert [(json.loads(extra)["as_of"], key) for extra, key in events] == [
        (day.isoformat(), day.isoformat())
    ]
    assert queued == [("flights_training", day.isoformat())]


def test_reparsing_the_dags_creates_no_new_dag_version(airflow_env):
    """Airflow 3 keeps a new DAG version whenever a DAG serializes differently: a value
    computed at parse time (a clock, a set's order) would fill the UI's version list and
    split the runs' history. Parse three times, under three hash seeds: one version each."""

    database = Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db"

    def versions() -> dict[str, int]:
        with contextlib.closing(sqlite3.connect(database)) as con:
            rows = con.execute("select dag_id, count(*) from dag_version group by dag_id")
            return dict(rows.fetchall())

    for seed in ("1", "2", "3"):
        _run([AIRFLOW, "dags", "reserialize"], {**airflow_env, "PYTHONHASHSEED": seed})
        if seed == "1":
            first = versions()
    assert set(first) == {"flights_daily", "flights_training", "flights_replay", "backtest"}
    assert versions() == first
