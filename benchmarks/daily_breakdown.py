"""Where a day of ``flights_daily`` spends its time: per task, our code, the libraries and
the fixed costs.

Prepares the data folder of ``topology_throughput.py`` (2013-02-01..2013-03-15 landed and
built, a champion trained as of 2013-03-15 on 30 days), then:

1. **Steps, each in its own process** (as an Airflow task runs it), for one day: every
   task's step (``ml.pipeline``) is run once plainly, for its wall time, and once under
   cProfile, for where that time goes. The profile's own time per function is summed by
   owner: our code (``ml/``), dbt (its child process, waited on), Great Expectations,
   DuckDB, the model libraries (LightGBM, XGBoost, scikit-learn), data frames and arrays
   (pandas, pyarrow, polars, numpy), rendering (Jinja2, vl-convert), and the rest (the
   standard library: files, hashing, JSON). The shares are applied to the plain run's time; the
   process's start (the interpreter's) and the imports (``-X importtime``'s top-level
   imports, ``ml`` and the libraries a step imports when it needs them) are columns of
   their own; the profiled run imports them before it starts.
2. **``airflow dags test``** of the next day: the run's wall time, each task's duration
   as Airflow recorded it, and what is left between them (DAG parsing, task start).
3. **Through the scheduler** (``airflow standalone``, one day backfilled), the same.

Usage: ``.venv/bin/python benchmarks/daily_breakdown.py [--skip-scheduler]``
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STEP_DAY = dt.date(2013, 3, 16)
DAGS_TEST_DAY = dt.date(2013, 3, 17)
SCHEDULER_DAY = dt.date(2013, 3, 18)
STEPS = (
    "ingest",
    "build",
    "validate_build",
    "publish",
    "recalibrate",
    "predict",
    "monitor",
    "decide_retraining",
)
OWNERS = (
    ("dbt (child process)", ("select.poll", "posix.waitpid", "posix.read", "subprocess.py")),
    ("Great Expectations", ("great_expectations",)),
    ("DuckDB", ("duckdb",)),
    ("models", ("lightgbm", "xgboost", "sklearn", "scipy")),
    ("frames", ("pandas", "pyarrow", "polars", "numpy")),
    ("rendering", ("jinja2", "vl_convert", "markupsafe")),
    ("ours", (str(REPO / "ml"),)),
)
COLUMNS = ("start", "imports", *(name for name, _ in OWNERS), "rest")
# Imported before a profiled step starts, so that its profile holds the work, not the
# imports (which the plain run counts with -X importtime).
HEAVY = ("duckdb", "great_expectations", "lightgbm", "xgboost", "sklearn", "polars",
         "pyarrow.parquet", "jinja2", "vl_convert")  # fmt: skip


def owner(key: tuple[str, int, str]) -> str:
    filename, _, function = key
    text = f"{filename} {function}"
    for name, marks in OWNERS:
        if any(mark in text for mark in marks):
            return name
    return "rest"


def run_step(step: str, day: dt.date, profile: Path | None) -> None:
    """The child: one step, optionally profiled; prints its in-process seconds as JSON."""
    started = time.perf_counter()
    from ml import pipeline
    from ml.config import load_settings

    settings = load_settings()
    if profile is not None:
        import importlib
        import pkgutil

        import ml
        from ml.validate import _quiet_gx

        _quiet_gx()
        for module in (*HEAVY, *(f"ml.{m.name}" for m in pkgutil.iter_modules(ml.__path__))):
            importlib.import_module(module)
    imported = time.perf_counter()
    call = {
        "ingest": lambda: pipeline.ingest(settings, day),
        "recalibrate": lambda: pipeline.recalibrate(settings, day),
        "predict": lambda: pipeline.predict(settings, day),
        "monitor": lambda: pipeline.monitor(settings, day),
        "decide_retraining": lambda: pipeline.decide_retraining(settings, day),
    }.get(step, lambda: getattr(pipeline, step)(settings, day, day))
    if profile is None:
        call()
    else:
        profiler = cProfile.Profile()
        profiler.runcall(call)
        profiler.dump_stats(profile)
    done = time.perf_counter()
    print(json.dumps({"in_process": done - started, "work": done - imported}))


def step_breakdown(data: Path, day: dt.date) -> dict[str, dict[str, float]]:
    """Per step: the process's wall time split into start-up and the owners' shares."""
    env = {**os.environ, "ML_DATA_DIR": str(data)}
    rows = {}
    for step in STEPS:
        timings = []
        for profiled in (False, True):
            profile = data.parent / f"{step}.prof" if profiled else None
            command = [sys.executable, __file__, "--step", step, "--day", day.isoformat()]
            if profile is not None:
                command += ["--profile", str(profile)]
            else:
                command[1:1] = ["-X", "importtime"]
            start = time.perf_counter()
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            timings.append((wall, json.loads(out.stdout.strip().splitlines()[-1]), out.stderr))
        (wall, plain, importtime), _ = timings
        imports = _import_seconds(importtime)
        stats = pstats.Stats(str(data.parent / f"{step}.prof")).stats
        owned: dict[str, float] = {}
        for key, (_, _, own, _, _) in stats.items():
            owned[owner(key)] = owned.get(owner(key), 0.0) + own
        total = sum(owned.values()) or 1.0
        work = plain["in_process"] - imports
        row = {"wall": wall, "start": wall - plain["in_process"], "imports": imports}
        row |= {name: work * owned.get(name, 0.0) / total for name in COLUMNS[2:]}
        rows[step] = row
        print(step, json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
    return rows


def _import_seconds(importtime: str) -> float:
    """The time ``-X importtime`` reports for the top-level imports (each one's cumulative
    time includes what it imports)."""
    total = 0
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):
                total += int(cumulative)
    return total / 1e6


def dags_test(root: Path, data: Path, day: dt.date) -> dict:
    """``airflow dags test`` of one day: wall time and each task's recorded duration."""
    from tests.e2e.airflow_stack import AIRFLOW, base_env, free_port, init_metadata, run, run_json

    env = {**base_env(root, data, free_port()), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    init_metadata(env)
    start = time.perf_counter()
    run([AIRFLOW, "dags", "test", "flights_daily", day.isoformat()], env, timeout=900)
    wall = time.perf_counter() - start
    (dag_run,) = run_json([AIRFLOW, "dags", "list-runs", "flights_daily"], env)
    states = run_json(
        [AIRFLOW, "tasks", "states-for-dag-run", "flights_daily", dag_run["run_id"]], env
    )
    return {"wall": wall, "tasks": {s["task_id"]: _seconds(s) for s in states}}


def _seconds(state: dict) -> float:
    if not state.get("start_date") or not state.get("end_date"):
        return 0.0
    start, end = (dt.datetime.fromisoformat(state[k]) for k in ("start_date", "end_date"))
    return (end - start).total_seconds()


def scheduler(root: Path, data: Path, day: dt.date) -> dict:
    """One day backfilled through ``airflow standalone``: wall and task durations."""
    from benchmarks.topology_throughput import DAG
    from tests.e2e.airflow_stack import AIRFLOW, Stack, base_env, free_port, init_metadata, run

    env = {**base_env(root, data, free_port()), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    init_metadata(env)
    stack = Stack(root, env)
    try:
        stack.start("standalone", "standalone")
        stack.wait_until_ready(DAG)
        run([AIRFLOW, "dags", "unpause", DAG], env)
        start = time.perf_counter()
        run(
            [AIRFLOW, "backfill", "create", "--dag-id", DAG, "--from-date",
             f"{day}T00:00:00-04:00", "--to-date", f"{day}T00:00:00-04:00"],
            env,
        )  # fmt: skip
        stack.wait_for_runs(DAG, count=1, timeout=1800)
        wall = time.perf_counter() - start
        (dag_run,) = stack.dag_runs(DAG)
        tasks = {
            ti["task_id"]: ti.get("duration") or 0.0
            for ti in stack.task_instances(DAG, dag_run["dag_run_id"])
        }
    finally:
        stack.stop()
    return {"wall": wall, "tasks": tasks}


def print_tables(steps: dict, runs: dict[str, dict]) -> None:
    print(f"\nsteps of {STEP_DAY}, each in its own process (seconds)")
    print("| step | wall | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for step, row in [*steps.items(), ("total", _total(steps))]:
        cells = " | ".join(f"{row[c]:.2f}" for c in COLUMNS)
        print(f"| {step} | {row['wall']:.2f} | {cells} |")
    for name, result in runs.items():
        tasks = result["tasks"]
        print(f"\n{name}: {result['wall']:.1f} s wall")
        print("| task | seconds |\n|---|---|")
        for task, seconds in tasks.items():
            print(f"| {task} | {seconds:.1f} |")
        between = result["wall"] - sum(tasks.values())
        print(f"| (between and around the tasks) | {between:.1f} |")


def _total(steps: dict) -> dict:
    return {c: sum(r[c] for r in steps.values()) for c in ("wall", *COLUMNS)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--day", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--skip-scheduler", action="store_true")
    args = parser.parse_args()
    if args.step:
        run_step(args.step, args.day, args.profile)
        return
    from benchmarks.topology_throughput import prepare

    with tempfile.TemporaryDirectory(prefix="ml-daily-") as tmp:
        base = Path(tmp)
        prepared = prepare(base / "prepared")
        steps = step_breakdown(prepared, STEP_DAY)
        runs = {}
        data = base / "dags-test" / "data"
        shutil.copytree(prepared, data, symlinks=True)
        runs["airflow dags test"] = dags_test(base / "dags-test", data, DAGS_TEST_DAY)
        if not args.skip_scheduler:
            data = base / "standalone" / "data"
            shutil.copytree(prepared, data, symlinks=True)
            runs["airflow standalone"] = scheduler(base / "standalone", data, SCHEDULER_DAY)
    print_tables(steps, runs)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")  # fmt: skip


if __name__ == "__main__":
    main()
