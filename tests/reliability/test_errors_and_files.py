"""One clear line for every failure, one error hierarchy, and files others can read."""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
import subprocess

import pandas as pd
import pytest

from ml import errors
from ml.cli import main
from tests.conftest import make_settings
from tests.reliability.conftest import ML, digests, error_lines, run_ml, umask_is

DAY = dt.date(2013, 3, 20)


def test_every_error_of_the_package_is_an_ml_error_with_a_retryable_flag():
    kinds = [
        errors.ConfigError,
        errors.DataError,
        errors.ValidationError,
        errors.LeakageError,
        errors.RegistryError,
        errors.TransformError,
        errors.StorageError,
    ]
    for kind in kinds:
        assert issubclass(kind, errors.MLError)
        assert kind("x").retryable is (kind is errors.StorageError)
    assert errors.DataError("x", retryable=True).retryable


def test_the_text_form_of_predictions_show_works_in_every_form(trained_copy):
    from ml.predict import predict

    predict(make_settings(trained_copy), DAY)
    for extra in ((), ("--limit", "3"), ("--all-roles",), ("--json",)):
        proc = run_ml("predictions", "show", "--date", str(DAY), *extra, data_dir=trained_copy)
        assert proc.returncode == 0, (extra, proc.stderr[-1500:])
        assert "p_delayed" in proc.stdout, extra
    text = run_ml("predictions", "show", "--date", str(DAY), data_dir=trained_copy).stdout
    assert "carrier_origin" in text or "_" in text.splitlines()[1]  # the reasons, as text
    assert len(text.splitlines()) == 21  # header and the default 20 rows
    # Piped into a reader that stops early (`| head -1`): no traceback.
    piped = subprocess.run(
        f"'{ML}' predictions show --date {DAY} --limit 500 | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env={"ML_DATA_DIR": str(trained_copy), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert piped.stdout.split()[0] == "flight_id" and "Traceback" not in piped.stderr, piped.stderr
    assert "error:" not in piped.stderr, piped.stderr  # a reader that leaves is not an error


def test_a_full_disk_is_one_line_naming_the_file_and_nothing_published_changes(
    trained_copy, monkeypatch, capsys
):
    import pyarrow.parquet as pq

    from ml.predict import predict

    settings = make_settings(trained_copy)
    predict(settings, DAY)
    before = digests(trained_copy)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    monkeypatch.setenv("ML_DATA_DIR", str(trained_copy))
    monkeypatch.setenv("ML_TRAIN_WINDOW_DAYS", "30")
    monkeypatch.setenv("ML_VALIDATION_DAYS", "7")
    assert main(["predict", "--date", str(DAY)]) == 1
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ml predict")]
    path = settings.paths.predictions_partition(DAY)
    assert lines == [
        f"ml predict: error: {path}: could not write (No space left on device); "
        "free space on that disk and run the step again (retryable: run it again)"
    ]
    assert digests(trained_copy) == before
    assert not [p for p in path.parent.iterdir() if p.name != path.name]


def test_a_truncated_mart_partition_is_one_line_that_says_how_to_rebuild(trained_copy):
    path = make_settings(trained_copy).paths.mart_partition("flight_features", DAY)
    data = path.read_bytes()
    os.remove(path)  # the generation's file, through the link
    path.write_bytes(data[: len(data) // 2])
    proc = run_ml("predict", "--date", str(DAY), data_dir=trained_copy)
    assert proc.returncode == 1
    (line,) = error_lines(proc)
    assert "unreadable" in line and "ml transform --start D --end D" in line
    assert "Traceback" not in proc.stderr


@pytest.mark.airflow
def test_the_dags_fail_fast_on_what_a_retry_cannot_heal_and_retry_the_rest():
    import sys

    from airflow.sdk.exceptions import AirflowFailException

    from tests.conftest import REPO

    sys.path.insert(0, str(REPO / "dags"))
    try:
        from pipeline_defaults import failing_fast
    finally:
        sys.path.remove(str(REPO / "dags"))

    @failing_fast()
    def task(error):
        raise error

    with pytest.raises(AirflowFailException, match="ValidationError: a bad day"):
        task(errors.ValidationError("a bad day"))
    with pytest.raises(AirflowFailException, match="TransformError"):
        task(errors.TransformError("a dbt test failed"))
    with pytest.raises(errors.StorageError):  # retried by Airflow
        task(errors.StorageError("locked"))
    with pytest.raises(ZeroDivisionError):  # a bug: its traceback, and Airflow's retries
        task(ZeroDivisionError())


@pytest.mark.parametrize(
    ("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)]
)
def test_published_files_honour_the_umask(trained_copy, mask, file_mode, dir_mode):
    from ml import registry
    from ml.model_card import card_files
    from ml.predict import predict
    from ml.warehouse import refresh_catalog

    settings = make_settings(trained_copy)
    with umask_is(mask):
        predict(settings, DAY)
        refresh_catalog(settings)
        champion = registry.get_alias(settings, "champion")
        model, metadata = registry.load_model(settings, champion)
        registry.register(
            settings,
            model,
            {
                k: v
                for k, v in metadata.items()
                if k not in ("artifacts", "libraries", "git_commit")
            },
            registry.load_metrics(settings, champion),
            registry.load_profile(settings, champion),
            documents=card_files,
        )
    paths = settings.paths
    folder = registry.version_dir(settings, champion)
    checked = [paths.predictions_partition(DAY), *folder.iterdir()]
    for path in checked:
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path
    assert stat.S_IMODE(folder.stat().st_mode) == dir_mode
    assert stat.S_IMODE(paths.predictions_partition(DAY).parent.stat().st_mode) == dir_mode


def test_published_marts_and_raw_files_are_readable_by_others(trained_copy):
    settings = make_settings(trained_copy)
    paths = settings.paths
    for path in (
        paths.mart_partition("flight_features", DAY),
        paths.raw_partition("flights", DAY),
        paths.warehouse,
    ):
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path
    assert pd.read_parquet(paths.mart_partition("flight_features", DAY)).shape[0] > 0


def test_only_the_bytes_that_passed_validation_are_published(trained_copy):
    """Two runs of one window (a DAG run and `ml transform` by hand): a build replaced
    after it was validated, or never validated, is refused and nothing published changes."""
    import pyarrow.parquet as pq

    from ml.errors import TransformError
    from ml.transform import build, publish
    from ml.validate import validate_features

    settings = make_settings(trained_copy)
    build(settings, DAY, DAY)
    before = digests(trained_copy, ("marts",))
    with pytest.raises(TransformError, match="the build was not validated"):
        publish(settings, DAY, DAY)
    validate_features(settings, DAY, DAY, built=True)
    # Another run rebuilds the window (here: different bytes for one mart's file).
    path = settings.paths.mart_build("flights", DAY.isoformat())
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)
    with pytest.raises(TransformError, match="not the file that passed validation") as refused:
        publish(settings, DAY, DAY)
    assert str(path) in str(refused.value)
    assert digests(trained_copy, ("marts",)) == before
    build(settings, DAY, DAY)
    validate_features(settings, DAY, DAY, built=True)
    assert publish(settings, DAY, DAY)["flights"] == [DAY.isoformat()]
    after = digests(trained_copy, ("marts",))
    assert publish(settings, DAY, DAY)["flights"] == [DAY.isoformat()]  # again: a no-op
    assert digests(trained_copy, ("marts",)) == after


@pytest.mark.parametrize(
    ("number", "retryable", "hint"),
    [
        (errno.ENOSPC, True, "free space on that disk"),
        (errno.EACCES, False, "check the file's or folder's owner and permissions"),
        (errno.EROFS, False, "the disk is read-only"),
    ],
)
def test_only_errors_a_retry_can_heal_say_retry(
    trained_copy, monkeypatch, capsys, number, retryable, hint
):
    """A full disk can clear; a permission or a read-only disk stays until someone
    changes it, so its line does not tell the user to run it again (nor Airflow to retry)."""
    import pyarrow.parquet as pq

    def refuse(*args, **kwargs):
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(pq, "write_table", refuse)
    monkeypatch.setenv("ML_DATA_DIR", str(trained_copy))
    monkeypatch.setenv("ML_TRAIN_WINDOW_DAYS", "30")
    monkeypatch.setenv("ML_VALIDATION_DAYS", "7")
    assert main(["predict", "--date", str(DAY)]) == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ml predict")]
    assert hint in line and ("(retryable: run it again)" in line) is retryable


def test_a_dbt_build_that_runs_out_of_disk_is_retryable(settings, monkeypatch):
    import subprocess

    from ml.errors import StorageError
    from ml.transform import run_dbt

    def full(*args, **kwargs):
        return subprocess.CompletedProcess(
            args, 1, stdout="Runtime Error\n  IO Error: No space left on device\n", stderr=""
        )

    monkeypatch.setattr(subprocess, "run", full)
    with pytest.raises(StorageError, match="dbt ran out of disk space") as raised:
        run_dbt(settings, ["build"])
    assert raised.value.retryable
