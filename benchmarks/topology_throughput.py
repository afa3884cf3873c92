"""Daily runs per executor: the cost of orchestration, and what a second worker buys.

Prepares one data folder (2013-02-01..2013-03-15 landed and built, a champion trained as
of 2013-03-15 on a 30-day window) and copies it for each configuration, which then runs
``flights_daily`` for the same days (default 2013-03-16..2013-03-19):

- ``dags test``: ``airflow dags test`` day after day, one process, no scheduler (what
  ``make demo`` does): the reference;
- ``standalone``: ``airflow standalone`` (SQLite, LocalExecutor, parallelism 2), the days
  handed over by ``airflow backfill create --max-active-runs 2``;
- ``celery-1`` and ``celery-2``: API server, scheduler and DAG processor on PostgreSQL,
  with one or two Celery workers (concurrency 1 each) on Redis, the same backfill.

Time is counted from the first trigger to the last run's success (start-up excluded).
Also reported: the sum of the task instances' durations (the work plus each task's own
start-up in its process) and the share of the wall time it covers.

Usage (needs PostgreSQL on 127.0.0.1:5432, user postgres, and Redis on 127.0.0.1:6379
for the Celery configurations):
    .venv/bin/python benchmarks/topology_throughput.py [--days 4] [--only dags-test,celery-2]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.airflow_stack import (  # noqa: E402
    AIRFLOW,
    Stack,
    base_env,
    celery_env,
    free_port,
    init_metadata,
    run,
    scratch_database,
)

DAG = "flights_daily"
FIRST_DAY = dt.date(2013, 3, 16)
CONFIGURATIONS = ("dags-test", "standalone", "celery-1", "celery-2")


def prepare(folder: Path) -> Path:
    """Land and build the history and train a champion: the state every configuration starts from."""
    from ml.config import load_settings
    from ml.ingest import ingest
    from ml.pipeline import transform
    from ml.registry import get_alias
    from ml.train import train

    data = folder / "data"
    settings = load_settings(env={}, data_dir=data, train_window_days=30, validation_days=7)
    ingest(settings, dt.date(2013, 2, 1), dt.date(2013, 3, 15))
    transform(settings, dt.date(2013, 2, 1), dt.date(2013, 3, 15))
    train(settings, dt.date(2013, 3, 15))
    assert get_alias(settings, "champion"), "no champion: the daily runs would use the fallback"
    return data


def _task_seconds(stack: Stack) -> float:
    total = 0.0
    for dag_run in stack.dag_runs(DAG):
        for ti in stack.task_instances(DAG, dag_run["dag_run_id"]):
            total += ti.get("duration") or 0.0
    return total


def time_dags_test(root: Path, data: Path, days: list[dt.date]) -> dict:
    env = {**base_env(root, data, free_port()), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    init_metadata(env)
    start = time.perf_counter()
    for day in days:
        run([AIRFLOW, "dags", "test", DAG, day.isoformat()], env, timeout=900)
    return {"wall_s": time.perf_counter() - start, "task_s": None}


def time_stack(root: Path, data: Path, days: list[dt.date], workers: int | None) -> dict:
    """``workers`` None: airflow standalone; otherwise that many Celery workers."""
    env = {**base_env(root, data, free_port()), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    with contextlib.ExitStack() as cleanup:
        if workers is not None:
            database = cleanup.enter_context(scratch_database(f"ml_bench_{os.getpid()}"))
            env.update(celery_env(database))
        init_metadata(env)
        stack = Stack(root, env)
        cleanup.callback(stack.stop)
        if workers is None:
            stack.start("standalone", "standalone")
        else:
            stack.start_celery(workers)
        stack.wait_until_ready(DAG)
        return _time_backfill(stack, days)


def _time_backfill(stack: Stack, days: list[dt.date]) -> dict:
    """Wall time of a backfill of ``days``, two at a time, and the summed task time."""
    run([AIRFLOW, "dags", "unpause", DAG], stack.env)
    start = time.perf_counter()
    run(
        [AIRFLOW, "backfill", "create", "--dag-id", DAG, "--max-active-runs", "2",
         "--from-date", f"{days[0]}T00:00:00-04:00", "--to-date", f"{days[-1]}T00:00:00-04:00"],
        stack.env,
    )  # fmt: skip
    stack.wait_for_runs(DAG, count=len(days), timeout=3600)
    return {"wall_s": time.perf_counter() - start, "task_s": _task_seconds(stack)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--only", default=",".join(CONFIGURATIONS))
    args = parser.parse_args()
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(args.days)]
    chosen = [c for c in args.only.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="ml-topology-") as tmp:
        base = Path(tmp)
        prepared = prepare(base / "prepared")
        results = {}
        for name in chosen:
            root = base / name
            data = root / "data"
            shutil.copytree(prepared, data)
            if name == "dags-test":
                results[name] = time_dags_test(root, data, days)
            else:
                workers = None if name == "standalone" else int(name.split("-")[1])
                results[name] = time_stack(root, data, days, workers)
            print(name, json.dumps(results[name]), flush=True)
    reference = results.get("dags-test", {}).get("wall_s")
    print(f"\n{len(days)} days of {DAG} ({days[0]}..{days[-1]}), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(
        "| configuration | wall (s) | per day (s) | vs dags test | task time (s) | task time / wall |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = f"{r['wall_s'] / reference:.2f}" if reference else "-"
        task = f"{r['task_s']:.1f}" if r["task_s"] else "-"
        share = f"{r['task_s'] / r['wall_s']:.2f}" if r["task_s"] else "-"
        print(
            f"| {name} | {r['wall_s']:.1f} | {r['wall_s'] / len(days):.1f} | {ratio} | {task} | {share} |"
        )
    subprocess.run(
        [sys.executable, "-c", "import airflow; print('airflow', airflow.__version__)"], check=False
    )


if __name__ == "__main__":
    main()
