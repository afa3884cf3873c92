"""The production topology, for real: CeleryExecutor on Redis, PostgreSQL metadata.

Starts the API server, scheduler, DAG processor and two Celery workers as separate
processes against the local PostgreSQL (127.0.0.1:5432, user postgres, a database of
this test's own) and Redis (127.0.0.1:6379, a queue of this test's own), triggers the
daily DAG from the CLI, follows it through the REST API, and reads the predictions. Then
two daily runs go at once: the tasks that write ``warehouse.duckdb`` share the one-slot
``warehouse`` pool, so they never overlap, and the warehouse comes out whole.

Skips, saying what is missing, where PostgreSQL or Redis is not reachable.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.e2e.airflow_stack import AIRFLOW, ML, Stack, base_env, free_port, run, run_json

pytestmark = pytest.mark.e2e

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
DAG = "flights_daily"
FIRST = dt.date(2013, 3, 16)
AT_ONCE = [dt.date(2013, 3, 17), dt.date(2013, 3, 18)]


def _require_services() -> None:
    """Skip with a clear message unless PostgreSQL and Redis answer on 127.0.0.1."""
    import psycopg2
    import redis

    try:
        psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres").close()
    except psycopg2.OperationalError as exc:
        pytest.skip(
            f"the production-topology test needs PostgreSQL on {PG_HOST}:{PG_PORT} "
            f"(user {PG_USER}, trust auth): {str(exc).strip()}"
        )
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3).ping()
    except (redis.ConnectionError, OSError) as exc:
        pytest.skip(f"the production-topology test needs Redis on {REDIS_HOST}:{REDIS_PORT}: {exc}")


def _postgres(sql: str) -> None:
    import psycopg2

    con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    con.autocommit = True
    try:
        con.cursor().execute(sql)
    finally:
        con.close()


@pytest.fixture(scope="module")
def topology(trained_data, tmp_path_factory):
    _require_services()
    root = tmp_path_factory.mktemp("topology")
    data = root / "data"
    shutil.copytree(trained_data, data)
    tag = f"ml_e2e_{os.getpid()}_{socket.gethostname()}".replace("-", "_").lower()[:60]
    _postgres(f"drop database if exists {tag} with (force)")
    _postgres(f"create database {tag}")

    env = base_env(root, data, free_port())
    database = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{tag}"
    env.update(
        {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{tag}",
            # A queue of this test's own: other users of the Redis server are left alone.
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": tag,
        }
    )
    stack = Stack(root, env)
    try:
        run([AIRFLOW, "db", "migrate"], env)
        run([AIRFLOW, "pools", "set", "warehouse", "1", "DuckDB single writer"], env)
        stack.start("api-server", "api-server")
        stack.start("scheduler", "scheduler")
        stack.start("dag-processor", "dag-processor")
        for worker in ("worker-1", "worker-2"):
            stack.start(
                worker,
                "celery", "worker", "--queues", tag, "--concurrency", "1",
                "--celery-hostname", f"{worker}@%h",
                AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            )  # fmt: skip
        stack.wait_for(
            "the API server, scheduler and DAG processor",
            lambda: stack.healthy("metadatabase", "scheduler", "dag_processor"),
            timeout=300,
        )
        for worker in ("worker-1", "worker-2"):
            stack.wait_for(
                f"{worker} to join", lambda w=worker: stack.log_contains(w, " ready."), timeout=180
            )
        stack.wait_for(f"{DAG} to be parsed", lambda: stack.api(f"dags/{DAG}"), timeout=300)
        yield stack
    finally:
        stack.stop()
        _postgres(f"drop database if exists {tag} with (force)")


def _warehouse(stack: Stack, sql: str, params: list | None = None) -> pd.DataFrame:
    path = Path(stack.env["ML_DATA_DIR"]) / "warehouse.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).df()


def _scheduled(stack: Stack, day: dt.date) -> int:
    part = Path(stack.env["ML_DATA_DIR"]) / "raw" / "flights" / f"flight_date={day}"
    return len(pd.read_parquet(part / "part-0.parquet"))


def _moment(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_daily_run_triggered_from_the_cli_runs_on_celery_workers(topology):
    run([AIRFLOW, "dags", "unpause", DAG], topology.env)
    triggered = run_json(
        [AIRFLOW, "dags", "trigger", DAG, "--logical-date", f"{FIRST}T00:00:00-04:00"],
        topology.env,
    )
    run_id = triggered[0]["dag_run_id"]
    (finished,) = topology.wait_for_runs(DAG, count=1, timeout=900)
    assert finished["dag_run_id"] == run_id and finished["state"] == "success"

    tasks = topology.task_instances(DAG, run_id)
    ran = [t for t in tasks if t["state"] == "success"]
    assert {t["queue"] for t in ran} == {topology.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]}
    assert {t["task_id"] for t in ran} >= {"ingest", "transform", "validate", "publish", "predict"}

    rows = _warehouse(
        topology,
        "select count(*) as n, count(distinct flight_id) as ids, min(p_delayed) as lo, "
        "max(p_delayed) as hi from latest_predictions where flight_date = ?",
        [FIRST],
    )
    assert rows["n"][0] == rows["ids"][0] == _scheduled(topology, FIRST)
    assert 0 <= rows["lo"][0] <= rows["hi"][0] <= 1
    shown = json.loads(
        run([ML, "predictions", "show", "--date", FIRST.isoformat(), "--json"], topology.env)
    )
    assert shown and shown[0]["p_delayed"] == pytest.approx(rows["hi"][0])


def test_two_daily_runs_at_once_share_the_warehouse_pool_and_leave_it_whole(topology):
    run(
        [AIRFLOW, "backfill", "create", "--dag-id", DAG, "--max-active-runs", "2",
         "--from-date", f"{AT_ONCE[0]}T00:00:00-04:00",
         "--to-date", f"{AT_ONCE[-1]}T00:00:00-04:00"],
        topology.env,
    )  # fmt: skip
    runs = topology.wait_for_runs(DAG, count=3, timeout=1200)
    backfilled = [r for r in runs if r["run_type"] == "backfill"]
    assert sorted(r["logical_date"][:10] for r in backfilled) == [d.isoformat() for d in AT_ONCE]

    # The two runs were in flight at the same time, on both workers ...
    (a_start, a_end), (b_start, b_end) = [
        (_moment(r["start_date"]), _moment(r["end_date"])) for r in backfilled
    ]
    assert a_start < b_end and b_start < a_end, "the two runs did not overlap"
    for worker in ("worker-1", "worker-2"):
        assert topology.log_contains(worker, "Executing workload in Celery"), worker

    # ... and the tasks that write the warehouse ran one at a time.
    writers = sorted(
        (_moment(t["start_date"]), _moment(t["end_date"]), t["dag_run_id"], t["task_id"])
        for r in runs
        for t in topology.task_instances(DAG, r["dag_run_id"])
        if t["pool"] == "warehouse" and t["start_date"] and t["end_date"]
    )
    assert len(writers) >= 3 * 3, writers
    for earlier, later in zip(writers, writers[1:], strict=False):
        assert later[0] >= earlier[1], f"{earlier[2:]} and {later[2:]} wrote the warehouse at once"

    # The warehouse is whole: every view opens, each day has one row per flight and role.
    views = set(
        _warehouse(topology, "select view_name from duckdb_views() where not internal")["view_name"]
    )
    assert {
        "predictions",
        "latest_predictions",
        "flights",
        "flight_features",
        "monitoring_drift",
    } <= views
    per_day = _warehouse(
        topology,
        "select cast(flight_date as varchar) as day, count(*) as n, "
        "count(distinct flight_id) as ids from latest_predictions group by 1 order by 1",
    )
    assert list(per_day["day"]) == [d.isoformat() for d in (FIRST, *AT_ONCE)]
    for day, n, ids in per_day.itertuples(index=False):
        assert n == ids == _scheduled(topology, dt.date.fromisoformat(day))
    drift_days = _warehouse(
        topology, "select distinct cast(flight_date as varchar) as day from monitoring_drift"
    )
    assert set(drift_days["day"]) >= {d.isoformat() for d in (FIRST, *AT_ONCE)}
