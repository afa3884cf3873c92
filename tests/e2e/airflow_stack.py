"""Run real Airflow components as subprocesses, and talk to them as a user does.

Used by the end-to-end tests of the CLI flows (``airflow standalone``) and of the
production topology (scheduler, DAG processor, API server and Celery workers on
PostgreSQL and Redis), and by ``benchmarks/topology_throughput.py``. Every component
logs to its own file; a failed wait shows the tail of each log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
ML = str(Path(sys.executable).parent / "ml")
ADMIN_PASSWORD = "e2e-admin-password"
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/0"
CELERY_TASK_LINE = "Executing workload in Celery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def metadata_env(airflow_home: Path) -> dict[str, str]:
    """Airflow's home and its embedded SQLite metadata database, with the 60 s wait for the
    writer's lock that `make` configures."""
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db?timeout=60",
    }


def lineage_env(data_dir: Path) -> dict[str, str]:
    """Airflow's OpenLineage provider writing to the data folder's events files, as `make`
    configures it."""
    folder = data_dir / "lineage"
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "flights",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "ml.lineage.DailyFiles", "folder": str(folder)}
        ),
    }


def base_env(root: Path, data_dir: Path, api_port: int) -> dict[str, str]:
    """The environment every component and CLI call of one stack shares."""
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({"admin": ADMIN_PASSWORD}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ML_"))}
    env.update(
        {
            **metadata_env(root / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            # Every component must sign and check task tokens with the same key.
            "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-only-jwt-secret",
            "AIRFLOW__API__SECRET_KEY": "e2e-only-secret-key",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "ML_DATA_DIR": str(data_dir),
            "ML_TRAIN_WINDOW_DAYS": "30",
            "ML_VALIDATION_DAYS": "7",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "GX_ANALYTICS_ENABLED": "false",
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            **lineage_env(data_dir),
        }
    )
    return env


def run(command: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run a CLI command to completion; its output, or a failure that shows it."""
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, (
        f"{' '.join(command)} failed ({proc.returncode}):\n{output[-4000:]}"
    )
    return proc.stdout


def run_json(
    command: list[str], env: dict[str, str], timeout: float = 300, logs_first: bool = False
) -> Any:
    """Run a CLI command with ``--output json``; its parsed output.

    Its stdout must be JSON and nothing else, as the README's ``| python -m json.tool``
    needs. ``logs_first``: the command logs to stdout before its JSON, on its last line
    (``dags trigger`` logs "creating dag run" at info, as Airflow's own logging does).
    """
    output = run([*command, "--output", "json"], env, timeout)
    return json.loads(output.splitlines()[-1] if logs_first else output)


def init_metadata(env: dict[str, str]) -> None:
    """Create or upgrade the metadata database and the one-slot pool of warehouse writers."""
    run([AIRFLOW, "db", "migrate"], env)
    run([AIRFLOW, "pools", "set", "warehouse", "1", "DuckDB single writer"], env)


def postgres(sql: str) -> None:
    """Run one statement on the local PostgreSQL's ``postgres`` database (autocommit)."""
    import psycopg2

    con = psycopg2.connect(dbname="postgres", **POSTGRES)
    con.autocommit = True
    try:
        con.cursor().execute(sql)
    finally:
        con.close()


@contextlib.contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one stack; dropped afterwards."""
    postgres(f"drop database if exists {name} with (force)")
    postgres(f"create database {name}")
    try:
        yield name
    finally:
        postgres(f"drop database if exists {name} with (force)")


def celery_env(database: str) -> dict[str, str]:
    """CeleryExecutor on the local Redis, metadata and results in the local PostgreSQL's
    ``database``, and a Celery queue of the same name (other users of Redis are left alone)."""
    url = f"postgresql://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{database}"
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url.replace(
            "postgresql://", "postgresql+psycopg2://"
        ),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{url}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": database,
    }


@contextlib.contextmanager
def standalone_stack(root: Path, data: Path, ready_for: str, **env: str) -> Iterator[Stack]:
    """`airflow standalone` over the data folder ``data``, as `make airflow` starts it,
    with ``env`` added, ready once ``ready_for`` is parsed; stopped, children and all,
    afterwards."""
    env = {
        **base_env(root, data, free_port()),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        **env,
    }
    init_metadata(env)
    stack = Stack(root, env)
    stack.start("standalone", "standalone")
    try:
        stack.wait_until_ready(ready_for)
        yield stack
    finally:
        stack.stop()


class Stack:
    """Long-running Airflow components, their logs, and the REST API of their API server."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env
        self.base_url = env["AIRFLOW__API__BASE_URL"]
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self._token: str | None = None

    def start(self, name: str, *args: str, **env: str) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(
            [AIRFLOW, *args],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends its children too
        )

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def start_celery(self, workers: int) -> None:
        """The production topology: API server, scheduler, DAG processor, and ``workers``
        Celery workers (``worker-1``...; concurrency 1 each) on the stack's queue."""
        for component in ("api-server", "scheduler", "dag-processor"):
            self.start(component, component)
        queue = self.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
        for n in range(1, workers + 1):
            self.start(
                f"worker-{n}",
                "celery", "worker", "--queues", queue, "--concurrency", "1",
                "--celery-hostname", f"worker-{n}@%h",
                AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            )  # fmt: skip

    def wait_until_ready(self, dag_id: str) -> None:
        """Until the metadata database, scheduler and DAG processor report healthy, every
        Celery worker started has joined, and ``dag_id`` is parsed."""
        self.wait_for(
            "the metadata database, scheduler and DAG processor",
            lambda: self.healthy("metadatabase", "scheduler", "dag_processor"),
            timeout=300,
        )
        for name in (n for n in self.processes if n.startswith("worker-")):
            self.wait_for(f"{name} to join", lambda n=name: self.log_contains(n, " ready."), 180)
        self.wait_for(f"{dag_id} to be parsed", lambda: self.api(f"dags/{dag_id}"), timeout=300)

    def tasks_run_by(self, worker: str) -> int:
        """How many task workloads a Celery worker has taken so far."""
        return (self.logs / f"{worker}.log").read_text(errors="replace").count(CELERY_TASK_LINE)

    # -- the pipeline's tables, as a user reads them ------------------------------------
    @property
    def data(self) -> Path:
        return Path(self.env["ML_DATA_DIR"])

    def warehouse(self, sql: str, params: list | None = None):
        """A query on ``warehouse.duckdb``, opened read-only as users do; a DataFrame."""
        import duckdb

        with duckdb.connect(str(self.data / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql, params or []).df()

    def scheduled_flights(self, day: dt.date) -> int:
        """Flights of ``day`` in the landing zone."""
        import pyarrow.parquet as pq

        from ml.paths import Paths

        return pq.read_metadata(Paths(self.data).raw_partition("flights", day)).num_rows

    def log_tails(self, lines: int = 15) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """Poll ``check`` until it returns something truthy; fail with every log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise AssertionError(
                        f"{name} exited ({proc.returncode}) while waiting for {what}\n"
                        + self.log_tails()
                    )
            try:
                result = check()
            except (httpx.HTTPError, OSError):
                result = None
            if result:
                return result
            time.sleep(2)
        raise AssertionError(
            f"timed out after {timeout:.0f} s waiting for {what}\n" + self.log_tails()
        )

    def log_contains(self, name: str, text: str) -> bool:
        return text in (self.logs / f"{name}.log").read_text(errors="replace")

    # -- the REST API, as a user or a tool calls it ---------------------------------------
    def token(self) -> str:
        """A JWT for the admin user, from ``POST /auth/token``."""
        if self._token is None:
            response = httpx.post(
                f"{self.base_url}/auth/token",
                json={"username": "admin", "password": ADMIN_PASSWORD},
                timeout=30,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.base_url}/api/v2/{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def healthy(self, *components: str) -> bool:
        health = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=10).json()
        return all((health.get(c) or {}).get("status") == "healthy" for c in components)

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api(f"dags/{dag_id}/dagRuns", limit=100, order_by="logical_date")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)[
            "task_instances"
        ]

    def wait_for_runs(self, dag_id: str, count: int, timeout: float) -> list[dict[str, Any]]:
        """Wait until ``count`` runs of ``dag_id`` have finished; fail if any did not succeed."""

        def finished():
            runs = self.dag_runs(dag_id)
            done = [r for r in runs if r["state"] in ("success", "failed")]
            return runs if len(runs) >= count and len(done) == len(runs) else None

        runs = self.wait_for(f"{count} finished runs of {dag_id}", finished, timeout)
        failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
        if failed:
            states = {
                run_id: {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}
                for run_id in failed
            }
            raise AssertionError(f"runs failed: {states}\n" + self.log_tails(40))
        return runs
