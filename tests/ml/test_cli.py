import subprocess
import sys
from pathlib import Path

ML = str(Path(sys.executable).parent / "ml")


def _ml(*args: str, data_dir: Path, **settings: str) -> subprocess.CompletedProcess:
    """``ml *args`` over ``data_dir``, with ``settings`` as ``ML_<NAME>`` variables."""
    env = {
        "PATH": str(Path(sys.executable).parent),
        "ML_DATA_DIR": str(data_dir),
        "HOME": str(data_dir),
        **{f"ML_{name.upper()}": value for name, value in settings.items()},
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
        "recalibrate",
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
        f"(run `ml ingest` and `ml transform` first) [data folder {tmp_path}, from ML_DATA_DIR]"
    ]


def test_an_error_about_missing_data_says_which_data_folder_and_why(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}  # no ML_DATA_DIR
    proc = subprocess.run(
        [ML, "predictions", "show", "--date", "2013-03-01"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith(
        f"[data folder {tmp_path / 'data'}: ML_DATA_DIR is not set, so ./data under the "
        "working directory]"
    ), proc.stderr


def test_predict_on_a_day_without_features_says_what_is_published_and_what_to_run(trained_copy):
    from ml.paths import Paths

    published = Paths(trained_copy).mart_days("flight_features")
    for day in ("2013-04-10", "2014-07-01"):  # after the landed slice; after the data's year
        proc = _ml("predict", "--date", day, data_dir=trained_copy)
        assert proc.returncode == 1
        assert (
            f"no flights with flight_date on {day} (check: rows in range); published: "
            f"{published[0]}..{published[-1]}; run `ml ingest --start {day} --end {day}` and "
            f"`ml transform --start {day} --end {day}` first [data folder {trained_copy}, "
            "from ML_DATA_DIR]"
        ) in proc.stderr, proc.stderr


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


# The windows of the session's trained folder (tests.conftest.make_settings).
SMALL_WINDOWS = {"train_window_days": "30", "validation_days": "7"}


def test_the_readmes_model_commands_run_as_shown(trained_copy):
    """`ml train`, `ml validate`, `ml evaluate` (text, --json, --learning-curve) and every
    `ml models` action, as the README's CLI section writes them."""
    import json

    champion = json.loads((trained_copy / "models" / "aliases.json").read_text())["champion"]

    checked = _ml("validate", "--date", "2013-03-14", data_dir=trained_copy)
    assert checked.returncode == 0, checked.stderr
    assert "flight_features: " in checked.stdout and "expectations passed" in checked.stdout

    period = ("--model", champion, "--start", "2013-03-15", "--end", "2013-03-21")
    text = _ml("evaluate", *period, data_dir=trained_copy, **SMALL_WINDOWS)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"{champion} on 2013-03-15..2013-03-21 (")
    for part in ("heuristic", "prior_rate", "slices (log loss, AUC):", "behavioural tests:"):
        assert part in text.stdout
    report = json.loads(_ml("evaluate", *period, "--json", data_dir=trained_copy).stdout)
    assert report["version"] == champion and 0.5 < report["model"]["auc"] < 1

    curve = _ml(
        "evaluate", *period, "--learning-curve", "30,21", data_dir=trained_copy, **SMALL_WINDOWS
    )
    assert curve.returncode == 0, curve.stderr
    rows = [line.split() for line in curve.stdout.splitlines()[2:]]
    assert [r[0] for r in rows] == ["21", "30"] and all(0.5 < float(r[3]) < 1 for r in rows)
    bad = _ml("evaluate", *period, "--learning-curve", "30,x", data_dir=trained_copy)
    assert bad.returncode == 1
    assert "--learning-curve '30,x': expected days" in bad.stderr

    trained = _ml(
        "train",
        "--as-of",
        "2013-03-22",
        data_dir=trained_copy,
        candidates="heuristic",
        **SMALL_WINDOWS,
    )
    assert trained.returncode == 0, trained.stderr
    card = Path(trained.stdout.split("model card: ")[1].split()[0])
    assert card.is_file() and card.parent.parent == trained_copy / "models"
    new = card.parent.name

    recalibrated = _ml("recalibrate", "--date", "2013-03-25", data_dir=trained_copy)
    assert recalibrated.returncode == 0, recalibrated.stderr
    assert recalibrated.stdout.startswith(f"calibration revision 2013-03-25 of {champion}: ")
    assert "on the held-back day; " in recalibrated.stdout

    shown = json.loads(_ml("models", "show", champion, data_dir=trained_copy).stdout)
    assert shown["metadata"]["version"] == champion and "holdout" in shown["metrics"]
    (revision,) = shown["calibration_revisions"]
    assert revision["as_of"] == "2013-03-25" and revision["held_back"]["day"] == "2013-03-23"
    promoted = _ml("models", "promote", new, data_dir=trained_copy)
    assert promoted.stdout.strip() == f"{new} is now champion"
    back = _ml("models", "rollback", "--reason", "test", data_dir=trained_copy)
    assert back.returncode == 0, back.stderr
    audit = [
        line.split("  ", 1)[1]
        for line in _ml("models", "audit", data_dir=trained_copy).stdout.splitlines()
    ]
    (recalibration,) = [line for line in audit if "recalibration" in line]
    assert recalibration.startswith(
        f"champion recalibration {champion} calibration training -> "
        f"{champion} calibration 2013-03-25  (Platt refitted on 2013-03-08..2013-03-22"
    )
    promotion = audit.index(f"champion   {champion} -> {new}  (promoted by hand)")
    assert audit.index(f"champion   {new} -> {champion}  (rollback: test)") > promotion
    listing = _ml("models", "list", "--json", data_dir=trained_copy).stdout
    assert "champion" in {v["version"]: v["aliases"] for v in json.loads(listing)}[champion]
