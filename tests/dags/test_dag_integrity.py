"""Every DAG file imports cleanly, is documented, tagged, owned and retried, and parses light."""

import itertools
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

EXPECTED_DAGS = {"backtest", "flights_daily", "flights_replay", "flights_training"}
HEAVY_MODULES = [
    "pandas",
    "polars",
    "duckdb",
    "lightgbm",
    "xgboost",
    "great_expectations",
    "dbt",
    "sklearn",
    "ml",
    "vl_convert",
]


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import BundleDagBag

    # As the DAG processor parses a bundle: its folder is importable (dags/pipeline_defaults.py).
    return BundleDagBag(
        dag_folder=str(REPO / "dags"),
        bundle_path=REPO / "dags",
        known_pools={"default_pool", "warehouse"},
    )


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert set(dag_bag.dag_ids) == EXPECTED_DAGS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dags_are_documented_tagged_owned_and_retried(dag_bag, dag_id):
    dag = dag_bag.dags[dag_id]
    assert dag.doc_md and len(dag.doc_md) > 200
    assert dag.description and "ml" in dag.tags and dag.owner == "ml-platform"
    # The trigger form: every param typed, titled and described.
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema.get("type") and param.schema.get("title"), f"{dag_id}.{name}"
        assert param.description and len(param.description) > 20, f"{dag_id}.{name}"
    for task in dag.tasks:
        assert task.owner == "ml-platform", task.task_id
        assert task.retries >= 2, task.task_id
        assert task.doc_md or task.doc, f"{dag_id}.{task.task_id} has no docstring"


def test_the_daily_dag_runs_the_stages_in_order(dag_bag):
    dag = dag_bag.dags["flights_daily"]
    order = [
        "ingest",
        "build",
        "validate_build",
        "publish",
        "recalibrate",
        "predict",
        "monitor",
        "decide_retraining",
        "request_retraining",
    ]
    for upstream, downstream in itertools.pairwise(order):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    writers = {t.task_id for t in dag.tasks if t.pool == "warehouse"}
    assert writers == {"build", "publish", "predict", "monitor", "decide_retraining"}


def test_the_retraining_request_is_the_asset_the_training_dag_is_scheduled_on(dag_bag):
    request = dag_bag.dags["flights_daily"].get_task("request_retraining")
    assert [a.name for a in request.outlets] == ["retraining_requested"]
    training = dag_bag.dags["flights_training"]
    # partition-driven: one training run per flight date the daily runs request
    assert type(training.timetable).__name__ == "PartitionedAssetTimetable"
    assert training.timetable.asset_condition.name == "retraining_requested"


def test_the_replay_dag_is_manual_and_trains_in_line(dag_bag):
    dag = dag_bag.dags["flights_replay"]
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert set(dag.params) == {"start", "end"} and dag.max_active_runs == 1
    order = ["ingest_range", "build", "validate_build", "publish", "replay_days"]
    for upstream, downstream in itertools.pairwise(order):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    writers = {t.task_id for t in dag.tasks if t.pool == "warehouse"}
    assert writers == {"build", "publish", "replay_days"}
    # It trains in line: an event on retraining_requested would train a second time.
    assert not any(task.outlets for task in dag.tasks)


def test_the_backtest_dag_is_manual_with_typed_described_params(dag_bag):
    from ml.config import CADENCES
    from ml.models import ALGORITHMS

    dag = dag_bag.dags["backtest"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # triggered by hand only
    params = dag.params
    schemas = {name: params.get_param(name).schema for name in params}
    assert set(schemas) == {
        "start",
        "end",
        "cadence",
        "window_days",
        "candidates",
        "oracle",
        "gate",
        "recalibration",
    }
    for name, schema in schemas.items():
        assert schema.get("type") and schema.get("title"), name
        assert len(params.get_param(name).description) > 20, name
    assert schemas["start"]["format"] == schemas["end"]["format"] == "date"
    assert schemas["cadence"]["enum"] == list(CADENCES)
    assert schemas["candidates"]["items"]["enum"] == list(ALGORITHMS)
    # What makes the UI's trigger form draw a multi-select of the allowed values.
    assert schemas["candidates"]["examples"] == list(ALGORITHMS)
    assert schemas["window_days"]["type"] == "integer"
    assert schemas["oracle"]["type"] == "boolean" and params["oracle"] is False
    order = ["prepare", "run", "report"]
    for upstream, downstream in itertools.pairwise(order):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert {t.task_id for t in dag.tasks if t.pool == "warehouse"} == {"prepare", "report"}


def test_loading_the_ui_plugin_imports_nothing_heavy():
    """Every Airflow component loads plugins: the ML view imports its libraries per request."""
    script = textwrap.dedent(f"""
        import sys
        import airflow.plugins_manager, airflow.api_fastapi.core_api.security, fastapi
        sys.path.insert(0, {str(REPO / "plugins")!r})
        before = set(sys.modules)
        import ml_view
        added = {{m.split(".")[0] for m in set(sys.modules) - before}}
        print(sorted(added & set({HEAVY_MODULES!r})), ml_view.MLViewPlugin.name)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[] ml_view"


# Airflow resolves a deadline alert's callback path when the DAG is parsed: of ml, only
# the module holding the callback and its two dependencies, none of which imports more.
PARSE_TIME_ML = ["ml", "ml.dates", "ml.errors", "ml.orchestration"]


def test_parsing_a_dag_file_imports_nothing_heavy():
    """Only what airflow.sdk itself loads may be imported when a DAG file is parsed, and of
    ml only the deadline alert's callback module (Airflow imports it to check the path)."""
    script = textwrap.dedent(f"""
        import importlib.util, sys
        import airflow.sdk, pendulum
        sys.path.insert(0, {str(REPO / "dags")!r})
        before = set(sys.modules)
        for path in {[str(p) for p in sorted((REPO / "dags").glob("*.py"))]!r}:
            spec = importlib.util.spec_from_file_location("dagfile", path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        new = set(sys.modules) - before
        added = {{m.split(".")[0] for m in new}}
        print(sorted(m for m in new if m == "ml" or m.startswith("ml.")))
        print(sorted(added & set({HEAVY_MODULES!r}) - {{"ml"}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    ml_modules, heavy = out.stdout.strip().splitlines()[-2:]
    assert heavy == "[]"
    assert ml_modules == str(PARSE_TIME_ML)


def test_the_dags_schedule_in_the_time_zone_of_the_package():
    """pipeline_defaults spells the zone again (a DAG file must not import ml at parse)."""
    sys.path.insert(0, str(REPO / "dags"))
    try:
        import pipeline_defaults
    finally:
        sys.path.remove(str(REPO / "dags"))
    from ml.dates import TIME_ZONE

    assert pipeline_defaults.LOCAL_TZ == TIME_ZONE
    assert pipeline_defaults.REPLAY_START.timezone_name == TIME_ZONE


def test_a_daily_run_has_a_deadline_from_the_time_it_was_queued(dag_bag):
    """A deadline alert on the daily DAG; its interval is ml's daily_deadline_minutes,
    spelled again in pipeline_defaults (a DAG file must not import ml at parse)."""
    import datetime as dt

    from airflow.sdk import DeadlineReference

    from ml.config import load_defaults

    (alert,) = dag_bag.dags["flights_daily"].deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == dt.timedelta(minutes=load_defaults()["daily_deadline_minutes"])
    assert alert.callback.path == "ml.orchestration.deadline_missed"
    for dag_id in EXPECTED_DAGS - {"flights_daily"}:
        assert not dag_bag.dags[dag_id].deadline, dag_id
