import subprocess
import sys
from pathlib import Path

ML = str(Path(sys.executable).parent / "ml")


def _ml(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": str(Path(sys.executable).parent),
        "ML_DATA_DIR": str(data_dir),
        "HOME": str(data_dir),
    }
    return subprocess.run([ML, *args], capture_output=True, text=True, env=env, check=False)


def test_help_lists_every_command(tmp_path):
    out = _ml("--help", data_dir=tmp_path).stdout
    for command in (
        "ingest",
        "transform",
        "validate",
        "train",
        "evaluate",
        "predict",
        "monitor",
        "decide-retraining",
        "models",
        "predictions",
    ):
        assert command in out


def test_errors_exit_non_zero_with_one_line_that_says_where(tmp_path):
    proc = _ml("predict", "--date", "2013-03-01", data_dir=tmp_path)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ml ")]
    assert lines == [
        f"ml predict: error: {tmp_path}/marts/flight_features: feature mart not found "
        "(run `ml ingest` and `ml transform` first)"
    ]


def test_bad_dates_are_refused(tmp_path):
    proc = _ml("ingest", "--start", "2013-02-30", "--end", "2013-03-01", data_dir=tmp_path)
    assert proc.returncode == 2
    assert "'2013-02-30' is not an ISO date" in proc.stderr


def test_models_and_predictions_read_the_registry_and_table(trained_copy):
    import datetime as dt

    from ml.predict import predict
    from tests.conftest import make_settings

    predict(make_settings(trained_copy), dt.date(2013, 3, 20))
    listing = _ml("models", "list", data_dir=trained_copy)
    assert listing.returncode == 0 and "champion" in listing.stdout
    shown = _ml(
        "predictions",
        "show",
        "--date",
        "2013-03-20",
        "--limit",
        "5",
        "--json",
        data_dir=trained_copy,
    )
    import json

    rows = json.loads(shown.stdout)
    assert len(rows) == 5 and all(0 <= r["p_delayed"] <= 1 for r in rows)
    assert rows == sorted(rows, key=lambda r: -r["p_delayed"])
