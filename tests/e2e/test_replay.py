"""A range replayed in one Airflow run leaves what day-by-day runs leave, byte for byte.

The reference runs the daily DAG's steps for each day of a week in order, with the
training DAG's steps wherever the retraining policy fires (the functions of
``ml.pipeline`` that the tasks of ``flights_daily`` and ``flights_training`` call); the
replay is the real ``flights_replay`` DAG through ``airflow dags test``. The policy
retrains every 3 days here, so trainings fall inside the week.
"""

import datetime as dt
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.airflow_stack import AIRFLOW, ML, init_metadata

pytestmark = pytest.mark.e2e

START, END = dt.date(2013, 3, 15), dt.date(2013, 3, 21)
OVERRIDES = {
    "train_window_days": 30,
    "validation_days": 7,
    "retrain_every_days": 3,
    "candidates": ["heuristic", "lightgbm"],
}
# Wall-clock seconds each candidate's fit took: in metrics.json and the model card,
# the only bytes a run's own timing decides.
TIMINGS = ("metrics.json", "model_card.md", "model_card.html")


def _settings(data_dir: Path):
    from ml.config import load_settings

    return load_settings(env={}, data_dir=data_dir, **OVERRIDES)


@pytest.fixture(scope="module")
def day_by_day(tmp_path_factory) -> tuple[Path, list[dt.date]]:
    """The week run day after day: a first model as of START, then each day's steps."""
    from ml import pipeline
    from ml.dates import date_range

    data_dir = tmp_path_factory.mktemp("day-by-day") / "data"
    settings = _settings(data_dir)

    def training(as_of: dt.date) -> None:  # flights_training's three tasks
        pipeline.ingest_history(settings, as_of)
        pipeline.transform(settings, *pipeline.training_window(settings, as_of))
        pipeline.train(settings, as_of)

    training(START)
    trained = [START]
    for day in date_range(START, END):  # flights_daily's tasks
        pipeline.ingest(settings, day)
        pipeline.build(settings, day, day)
        pipeline.validate_build(settings, day, day)
        pipeline.publish(settings, day, day)
        pipeline.predict(settings, day)
        pipeline.monitor(settings, day)
        if pipeline.decide_retraining(settings, day)["retrain"]:
            training(day)
            trained.append(day)
    return data_dir, trained


def published(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every published file: raw and mart partitions (through the marts'
    links), predictions, monitoring tables, drift reports and model versions."""
    digests = {}
    for top in ("raw", "marts", "predictions", "monitoring", "reports/drift", "models"):
        for folder, dirs, files in os.walk(data_dir / top, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith("_")]  # builds and generations
            for name in files:
                path = Path(folder) / name
                key = str(path.relative_to(data_dir))
                if name in TIMINGS:
                    digests[key] = _without_timings(path)
                elif name != "audit.jsonl":  # when each change was made
                    digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _without_timings(path: Path) -> str:
    if path.name != "metrics.json":
        return "(holds training seconds)"
    metrics = json.loads(path.read_text())
    for candidate in metrics["candidates"].values():
        candidate.pop("seconds")
    return hashlib.sha256(json.dumps(metrics, sort_keys=True).encode()).hexdigest()


def test_the_replay_dag_leaves_the_partitions_of_day_by_day_runs(day_by_day, tmp_path):
    reference, trained = day_by_day
    assert len(trained) >= 2, "the policy should retrain inside the week"
    data_dir = tmp_path / "data"
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
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
    proc = subprocess.run(
        [AIRFLOW, "dags", "test", "flights_replay", END.isoformat(), "-c", conf],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "state=success" in output, output[-4000:]
    # Progress: a line per day, and one per training, in the task log.
    for number, day in enumerate(sorted({START + dt.timedelta(days=i) for i in range(7)}), 1):
        assert f"replay: {day} ({number}/7): " in output, output[-4000:]
    assert output.count("replay: trained as of ") == len(trained)

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
