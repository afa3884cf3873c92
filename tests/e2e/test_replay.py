"""A range replayed in one Airflow run leaves what day-by-day runs leave, byte for byte.

The reference runs the daily DAG's steps for each day of a week in order, with the
training DAG's steps wherever the retraining policy fires (the functions of
``ml.pipeline`` that the tasks of ``flights_daily`` and ``flights_training`` call); the
replay is the real ``flights_replay`` DAG through ``airflow dags test``. The policy
retrains every 3 days here, so trainings fall inside the week.
"""

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, published_files, run_daily_steps, run_training_steps, sha256
from tests.e2e.airflow_stack import AIRFLOW, ML, init_metadata, metadata_env, run_json

pytestmark = pytest.mark.e2e

START, END = dt.date(2013, 3, 15), dt.date(2013, 3, 21)
OVERRIDES = {
    "train_window_days": 30,
    "validation_days": 7,
    "retrain_every_days": 3,
    "candidates": ["heuristic", "lightgbm"],
    # the Airflow run's threads (tests/conftest.py): LightGBM's model file records them
    "threads": os.environ["ML_THREADS"],
}


def _settings(data_dir: Path):
    from ml.config import load_settings

    return load_settings(env={}, data_dir=data_dir, **OVERRIDES)


@pytest.fixture(scope="module")
def day_by_day(tmp_path_factory) -> tuple[Path, list[dt.date]]:
    """The week run day after day: a first model as of START, then each day's steps."""
    from ml.dates import date_range

    data_dir = tmp_path_factory.mktemp("day-by-day") / "data"
    settings = _settings(data_dir)
    run_training_steps(settings, START)
    trained = [START]
    for day in date_range(START, END):
        if run_daily_steps(settings, day):
            run_training_steps(settings, day)
            trained.append(day)
    return data_dir, trained


def published(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every published file: raw and mart partitions, predictions, monitoring
    tables, drift reports and model versions, every file of their folders included (but
    the audit log and the training runs' records beside the versions: when each change
    was made, how long each fit took)."""
    files = published_files(
        data_dir, keep=lambda key: not key.endswith(("audit.jsonl", ".run.json"))
    )
    return {key: sha256(path) for key, path in files.items()}


def test_the_replay_dag_leaves_the_partitions_of_day_by_day_runs(day_by_day, tmp_path):
    from ml.dates import date_range

    reference, trained = day_by_day
    assert len(trained) >= 2, "the policy should retrain inside the week"
    data_dir = tmp_path / "data"
    env = dict(os.environ)
    env.update(
        {
            **metadata_env(tmp_path / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "ML_DATA_DIR": str(data_dir),
            **{
                f"ML_{k.upper()}": ",".join(map(str, v)) if isinstance(v, list) else str(v)
                for k, v in OVERRIDES.items()
            },
        }
    )
    init_metadata(env)
    conf = json.dumps({"start": START.isoformat(), "end": END.isoformat()})
    started = dt.datetime.now(dt.UTC)
    # `make demo`'s form: no logical date, so the run is stamped with the time it ran.
    proc = subprocess.run(
        [AIRFLOW, "dags", "test", "flights_replay", "-c", conf],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "state=success" in output, output[-4000:]
    # Progress: a line per day, and one per training, in the task log.
    for number, day in enumerate(date_range(START, END), 1):
        assert f"replay: {day} ({number}/7): " in output, output[-4000:]
    assert output.count("replay: trained as of ") == len(trained)
    # A line as each training starts and per candidate fitted (`make demo` shows them).
    assert output.count("replay: training as of ") == len(trained)
    assert output.count("replay: candidate 2/2 lightgbm: holdout log loss ") == len(trained)
    # The UI shows the run's true duration: it started now, not on a 2013 date.
    (run,) = run_json([AIRFLOW, "dags", "list-runs", "flights_replay"], env)
    ran = [dt.datetime.fromisoformat(run[k]) for k in ("start_date", "end_date")]
    assert started <= ran[0] <= ran[1] <= dt.datetime.now(dt.UTC), run

    expected, replayed = published(reference), published(data_dir)
    assert any(k.startswith("marts/flight_features/flight_date=") for k in expected)
    assert {k for k in expected if k.startswith("predictions/")} == {
        f"predictions/flight_date={START + dt.timedelta(days=i)}/part-0.parquet" for i in range(7)
    }
    assert sorted(replayed) == sorted(expected)
    differing = sorted(k for k in expected if expected[k] != replayed[k])
    assert not differing, differing


def test_ml_replay_prints_a_line_per_day(trained_copy):
    """`ml replay` (what the DAG does, in one command) over two days of a trained folder."""
    from tests.conftest import make_settings

    settings = make_settings(trained_copy)
    env = dict(os.environ)
    env.update(
        {"ML_DATA_DIR": str(trained_copy), "ML_TRAIN_WINDOW_DAYS": "30", "ML_VALIDATION_DAYS": "7"}
    )
    proc = subprocess.run(
        [ML, "replay", "--start", "2013-03-16", "--end", "2013-03-17"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("2013-03-16 (1/2): ") for line in lines), proc.stdout
    assert any(line.startswith("2013-03-17 (2/2): ") for line in lines), proc.stdout
    assert lines[-1].startswith("replayed 2 day(s)"), proc.stdout
    for day in ("2013-03-16", "2013-03-17"):
        assert settings.paths.drift_report(dt.date.fromisoformat(day), ".json").exists()


def test_ml_replay_resumes_and_refuses_days_a_later_model_would_score(trained_copy):
    """Days already run are skipped; days before the latest model's as-of date are refused
    at once, naming the model, before anything is landed or built."""
    env = dict(os.environ)
    env.update(
        {"ML_DATA_DIR": str(trained_copy), "ML_TRAIN_WINDOW_DAYS": "30", "ML_VALIDATION_DAYS": "7"}
    )

    def replay(start: str, end: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [ML, "replay", "--start", start, "--end", end],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    from ml.pipeline import first_day_to_run
    from tests.conftest import AS_OF, make_settings

    settings = make_settings(trained_copy)
    refused = replay("2013-03-10", "2013-03-12")
    assert refused.returncode != 0
    assert (
        "replay from 2013-03-10:" in refused.stderr and AS_OF.strftime("%Y%m%d") in refused.stderr
    )
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert not settings.paths.predictions_partition(dt.date(2013, 3, 10)).exists()

    from ml import pipeline

    day = AS_OF
    pipeline.predict(settings, day)
    pipeline.monitor(settings, day)
    pipeline.decide_retraining(settings, day)
    assert first_day_to_run(settings, day, day) is None
    assert first_day_to_run(settings, day, day + dt.timedelta(days=1)) == day + dt.timedelta(days=1)
