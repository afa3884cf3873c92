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
import itertools
import json
import os
import re
import shutil
import socket

import pytest

from tests.e2e.airflow_stack import (
    AIRFLOW,
    ML,
    POSTGRES,
    REDIS_URL,
    Stack,
    base_env,
    celery_env,
    free_port,
    init_metadata,
    run,
    run_json,
    scratch_database,
)

pytestmark = pytest.mark.e2e

DAG = "flights_daily"
FIRST = dt.date(2013, 3, 16)
AT_ONCE = [dt.date(2013, 3, 17), dt.date(2013, 3, 18)]
WAREHOUSE_WRITERS = {"build", "publish", "predict", "monitor", "decide_retraining"}


def _require_services() -> None:
    """Skip with a clear message unless PostgreSQL and Redis answer on 127.0.0.1."""
    import psycopg2
    import redis

    where = f"{POSTGRES['host']}:{POSTGRES['port']}"
    try:
        psycopg2.connect(dbname="postgres", connect_timeout=5, **POSTGRES).close()
    except psycopg2.OperationalError as exc:
        pytest.skip(
            f"the production-topology test needs PostgreSQL on {where} "
            f"(user {POSTGRES['user']}, trust auth): {str(exc).strip()}"
        )
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except (redis.ConnectionError, OSError) as exc:
        pytest.skip(f"the production-topology test needs Redis at {REDIS_URL}: {exc}")


@pytest.fixture(scope="module")
def topology(trained_data, tmp_path_factory):
    """API server, scheduler, DAG processor and two Celery workers; the tests run in order
    and build on each other (the second adds two days to the first one's)."""
    _require_services()
    root = tmp_path_factory.mktemp("topology")
    data = root / "data"
    shutil.copytree(trained_data, data)
    database = re.sub(r"\W", "_", f"ml_e2e_{socket.gethostname()}_{os.getpid()}").lower()[:60]
    with scratch_database(database):
        env = {**base_env(root, data, free_port()), **celery_env(database)}
        init_metadata(env)
        stack = Stack(root, env)
        stack.start_celery(workers=2)
        try:
            stack.wait_until_ready(DAG)
            yield stack
        finally:
            stack.stop()


def _moment(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_daily_run_triggered_from_the_cli_runs_on_celery_workers(topology):
    run([AIRFLOW, "dags", "unpause", DAG], topology.env)
    triggered = run_json(
        [AIRFLOW, "dags", "trigger", DAG, "--logical-date", f"{FIRST}T00:00:00-04:00"],
        topology.env,
        logs_first=True,
    )
    run_id = triggered[0]["dag_run_id"]
    (finished,) = topology.wait_for_runs(DAG, count=1, timeout=900)
    assert finished["dag_run_id"] == run_id and finished["state"] == "success"

    tasks = topology.task_instances(DAG, run_id)
    ran = [t for t in tasks if t["state"] == "success"]
    assert {t["queue"] for t in ran} == {topology.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]}
    assert {t["task_id"] for t in ran} >= {
        "ingest",
        "build",
        "validate_build",
        "publish",
        "predict",
    }

    rows = topology.warehouse(
        "select count(*) as n, count(distinct flight_id) as ids, min(p_delayed) as lo, "
        "max(p_delayed) as hi from latest_predictions where flight_date = ?",
        [FIRST],
    )
    assert rows["n"][0] == rows["ids"][0] == topology.scheduled_flights(FIRST)
    assert 0 <= rows["lo"][0] <= rows["hi"][0] <= 1
    shown = json.loads(
        run([ML, "predictions", "show", "--date", FIRST.isoformat(), "--json"], topology.env)
    )
    assert shown and shown[0]["p_delayed"] == pytest.approx(rows["hi"][0])


def test_two_daily_runs_at_once_share_the_warehouse_pool_and_leave_it_whole(topology):
    taken_before = {w: topology.tasks_run_by(w) for w in ("worker-1", "worker-2")}
    run(
        [AIRFLOW, "backfill", "create", "--dag-id", DAG, "--max-active-runs", "2",
         "--from-date", f"{AT_ONCE[0]}T00:00:00-04:00",
         "--to-date", f"{AT_ONCE[-1]}T00:00:00-04:00"],
        topology.env,
    )  # fmt: skip
    runs = topology.wait_for_runs(DAG, count=3, timeout=1200)
    backfilled = [r for r in runs if r["run_type"] == "backfill"]
    assert sorted(r["logical_date"][:10] for r in backfilled) == [d.isoformat() for d in AT_ONCE]
    tasks = [
        (_moment(t["start_date"]), _moment(t["end_date"]), r["dag_run_id"], t["task_id"], t["pool"])
        for r in runs
        for t in topology.task_instances(DAG, r["dag_run_id"])
        if t["start_date"] and t["end_date"]
    ]

    # The two days really ran at once: both workers took tasks, and two tasks outside the
    # pool, one of each run, were running at the same moment ...
    for worker, before in taken_before.items():
        assert topology.tasks_run_by(worker) > before, f"{worker} took no task of the backfill"
    a, b = (r["dag_run_id"] for r in backfilled)
    free = [t for t in tasks if t[4] != "warehouse"]
    assert any(
        s1 < e2 and s2 < e1
        for s1, e1, run1, *_ in free
        for s2, e2, run2, *_ in free
        if (run1, run2) == (a, b)
    ), "no two tasks of the two runs overlapped"

    # ... while the tasks that write the warehouse ran one at a time.
    writers = sorted(t for t in tasks if t[4] == "warehouse")
    assert sorted(t[3] for t in writers) == sorted(list(WAREHOUSE_WRITERS) * 3)
    for earlier, later in itertools.pairwise(writers):
        assert later[0] >= earlier[1], (
            f"{earlier[2:4]} and {later[2:4]} wrote the warehouse at once"
        )

    # The warehouse is whole: every view opens, each day has one row per flight.
    views = set(
        topology.warehouse("select view_name from duckdb_views() where not internal")["view_name"]
    )
    assert {
        "predictions",
        "latest_predictions",
        "flights",
        "flight_features",
        "monitoring_drift",
    } <= views
    for view in views:
        topology.warehouse(f"select count(*) from {view}")
    per_day = topology.warehouse(
        "select cast(flight_date as varchar) as day, count(*) as n, "
        "count(distinct flight_id) as ids from latest_predictions group by 1 order by 1"
    )
    assert list(per_day["day"]) == [d.isoformat() for d in (FIRST, *AT_ONCE)]
    for day, n, ids in per_day.itertuples(index=False):
        assert n == ids == topology.scheduled_flights(dt.date.fromisoformat(day))
    drift_days = topology.warehouse(
        "select distinct cast(flight_date as varchar) as day from monitoring_drift"
    )
    assert set(drift_days["day"]) >= {d.isoformat() for d in (FIRST, *AT_ONCE)}
