"""docker-compose.yaml, Dockerfile and .env.example describe the production-like stack.

No Docker engine runs where these tests run, so the files are parsed and checked: the
services and their commands, one image built from the official Airflow image at the
locked version, the named data volume in every Airflow service, the executor, database
and broker, and that every secret comes from .env and none is committed.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.conftest import REPO

AIRFLOW_SERVICES = {
    "airflow-init": None,
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
DASK_SERVICES = {"dask-scheduler": "scheduler", "dask-worker": "worker"}
MARQUEZ = {"marquez-db", "marquez", "marquez-web"}
DATA_DIR = "/opt/airflow/data"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|_KEY\b")
VARIABLE = re.compile(r"(?<!\$)\$\{(\w+)(:?[-?])?([^}]*)\}")  # $${X} is a literal $X


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def _locked(package: str) -> str:
    match = re.search(rf"^{package}==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert match, f"{package} is not pinned in requirements.txt"
    return match.group(1)


def test_every_component_of_the_stack_is_a_service(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", *AIRFLOW_SERVICES, *DASK_SERVICES, *MARQUEZ}
    for name, command in AIRFLOW_SERVICES.items():
        if command is not None:
            assert services[name]["command"] == command, name
    init = " ".join(services["airflow-init"]["command"])
    assert "airflow db migrate" in init
    assert 'airflow pools set warehouse 1 "' in init  # DuckDB's single writer
    assert services["airflow-worker"]["deploy"]["replicas"] == "${AIRFLOW_WORKERS:-2}"
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert "healthcheck" in services[name], name
    assert services["airflow-init"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_airflow_services_run_one_image_built_on_the_official_airflow_image(compose):
    images = {
        (s["image"], s["build"]["context"], s["build"]["dockerfile"])
        for name, s in compose["services"].items()
        if name in AIRFLOW_SERVICES
    }
    assert len(images) == 1
    (image, context, dockerfile) = images.pop()
    assert context == "."
    text = (REPO / dockerfile).read_text()
    base = re.search(r"^ARG AIRFLOW_IMAGE=(\S+)$", text, re.M).group(1)
    assert base == f"apache/airflow:slim-{_locked('apache-airflow')}-python3.11"
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}$", text, re.M)
    assert "pip install --no-cache-dir -r /opt/ml-project/requirements.txt && pip check" in text
    # The volumes' mount points exist in the image, writable by group 0 (a new named volume
    # takes their ownership; the containers run as ${AIRFLOW_UID}:0).
    assert re.search(r"mkdir -p /opt/airflow/data /opt/airflow/auth", text)
    assert "chmod -R g+rwX /opt/airflow/data /opt/airflow/auth" in text
    for folder in ("ml", "dbt_project", "expectations", "dags", "plugins"):
        assert re.search(rf"^COPY .*\b{folder} /opt/ml-project/{folder}$", text, re.M), folder
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "data", ".airflow", ".env", "test-results"} <= set(ignored)


def test_celery_on_redis_with_postgres_metadata_and_data_on_a_named_volume(compose):
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert set(compose["volumes"]) == {
        "ml-data",
        "airflow-logs",
        "airflow-auth",
        "postgres-db",
        "marquez-db",
    }
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            "http://airflow-apiserver:8080/"
        )
        assert env["ML_DATA_DIR"] == DATA_DIR
        assert f"ml-data:{DATA_DIR}" in services[name]["volumes"], name
        assert "airflow-auth:/opt/airflow/auth" in services[name]["volumes"], name
        assert services[name]["user"] == "${AIRFLOW_UID:-50000}:0", name
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(
            "/opt/airflow/auth/"
        )
    assert services["postgres"]["volumes"] == ["postgres-db:/var/lib/postgresql/data"]


def test_the_dask_profile_is_a_scheduler_and_workers_the_training_dag_can_reach(compose):
    services = compose["services"]
    image = services["airflow-scheduler"]["image"]
    for name, command in DASK_SERVICES.items():
        service = services[name]
        assert service["profiles"] == ["dask"], name  # off unless asked for
        # the project's image: the workers unpickle LightGBM's and XGBoost's training
        # functions, so their versions must be the task's
        assert service["image"] == image and service["build"]["context"] == ".", name
        assert service["entrypoint"][-1] == "dask" and service["command"][0] == command, name
    worker = services["dask-worker"]
    scheduler = "tcp://dask-scheduler:8786"
    assert worker["command"][1] == scheduler
    assert "--port" in services["dask-scheduler"]["command"]
    assert worker["deploy"]["replicas"] == "${DASK_WORKERS:-2}"
    assert worker["depends_on"]["dask-scheduler"] == {"condition": "service_healthy"}
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["ML_DASK_SCHEDULER"] == scheduler, name
        assert env["ML_TRAIN_BACKEND"] == "${ML_TRAIN_BACKEND:-local}", name


def test_lineage_goes_to_the_data_volume_and_the_marquez_profile_can_take_it(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
        assert transport == {"type": "ml.lineage.DailyFiles", "folder": f"{DATA_DIR}/lineage"}, name
        assert env["OPENLINEAGE_URL"] == "${OPENLINEAGE_URL:-}", name
    assert "mkdir -p /opt/airflow/data/lineage" in " ".join(services["airflow-init"]["command"])
    for name in MARQUEZ:
        assert services[name]["profiles"] == ["marquez"], name
    assert services["marquez"]["environment"]["POSTGRES_HOST"] == "marquez-db"
    assert services["marquez"]["environment"]["MARQUEZ_PORT"] == 5000
    assert services["marquez-web"]["environment"]["MARQUEZ_HOST"] == "marquez"


def test_no_secret_is_committed_and_env_example_lists_every_variable(compose, env_example):
    text = (REPO / "docker-compose.yaml").read_text()
    secrets = set()
    for service in compose["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(name) and not name.endswith("_FILE"):  # a path, not a secret
                found = VARIABLE.findall(str(value))
                assert found and all(op == ":?" for _, op, _ in found), (
                    f"{name} must come from .env, required: {value!r}"
                )
                secrets.update(var for var, _, _ in found)
        for value in (service.get("environment") or {}).values():
            for url in re.findall(r"\w+://[^\s]+", str(value)):
                password = re.search(r"://[^:/@]+:([^@]+)@", url)
                assert password is None or password.group(1).startswith("${"), url
    assert secrets == {
        "POSTGRES_PASSWORD",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_FERNET_KEY",
    }
    referenced = {name for name, _, _ in VARIABLE.findall(text)}
    assert referenced == set(env_example), "docker-compose.yaml and .env.example disagree"
    assert all(env_example[name] == "" for name in secrets), "a secret has a value in .env.example"

    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False
    ).returncode
    assert ignored == 0, ".env must be git-ignored"
