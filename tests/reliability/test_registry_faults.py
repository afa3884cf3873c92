"""Corrupt, truncated and missing registry files: prediction falls back to the heuristic,
every error names its file, and no native parser ever sees an unverified artifact."""

from __future__ import annotations

import datetime as dt
import json
import os

import pandas as pd
import pytest

from ml import registry
from ml.errors import RegistryError
from ml.predict import FALLBACK_VERSION
from tests.conftest import make_settings
from tests.reliability.conftest import error_lines, run_ml

DAY = dt.date(2013, 3, 20)
ALGORITHMS = ("heuristic", "logistic", "lightgbm", "xgboost")


def _champion(data_dir, version: str) -> None:
    settings = make_settings(data_dir)
    registry.promote(settings, version, reason="reliability test")


def _predict(data_dir) -> tuple[pd.DataFrame, str]:
    """``ml predict`` in a child process (a crash of a native library must not take the
    test runner with it); returns the day's rows and stderr."""
    proc = run_ml("predict", "--date", DAY.isoformat(), data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    path = make_settings(data_dir).paths.predictions_partition(DAY)
    return pd.read_parquet(path), proc.stderr


def test_every_algorithms_version_records_a_checksum_of_each_file_it_loads(every_algorithm):
    data_dir, versions = every_algorithm
    settings = make_settings(data_dir)
    assert set(versions) == set(ALGORITHMS)
    for algorithm, version in versions.items():
        folder = registry.version_dir(settings, version)
        artifacts = registry.load_metadata(settings, version)["artifacts"]
        assert {"preprocessing.json", "calibration.json"} <= set(artifacts), algorithm
        for name, digest in artifacts.items():
            assert registry.file_sha256(folder / name) == digest
        registry.load_model(settings, version)  # verifies and loads


def _artifact(algorithm: str) -> str:
    return {
        "lightgbm": "model.txt",
        "xgboost": "model.json",
    }.get(algorithm, "preprocessing.json")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kept", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_a_truncated_model_file_falls_back_to_the_heuristic_and_names_the_file(
    algorithms_copy, algorithm, kept, caplog
):
    from ml.predict import predict

    data_dir, versions = algorithms_copy
    settings = make_settings(data_dir)
    _champion(data_dir, versions[algorithm])
    path = registry.version_dir(settings, versions[algorithm]) / _artifact(algorithm)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * kept)])
    rows = pd.read_parquet(predict(settings, DAY).path)
    assert set(rows[rows.model_role == "champion"].model_version) == {FALLBACK_VERSION}
    assert f"{path}: SHA-256" in caplog.text


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_file_of_a_version_is_checked_and_the_cli_survives(algorithms_copy, algorithm):
    data_dir, versions = algorithms_copy
    version = versions[algorithm]
    _champion(data_dir, version)
    folder = registry.version_dir(make_settings(data_dir), version)
    artifacts = registry.load_metadata(make_settings(data_dir), version)["artifacts"]
    for name in artifacts:  # one file at a time, in a child process: no crash may escape
        path = folder / name
        original = path.read_bytes()
        path.write_bytes(original[: len(original) * 9 // 10])
        rows, stderr = _predict(data_dir)
        assert set(rows[rows.model_role == "champion"].model_version) == {FALLBACK_VERSION}, name
        assert f"{path}: SHA-256" in stderr, name
        path.write_bytes(original)
    rows, _ = _predict(data_dir)
    assert set(rows[rows.model_role == "champion"].model_version) == {version}


def test_an_altered_byte_of_a_booster_is_caught_before_the_library_parses_it(algorithms_copy):
    data_dir, versions = algorithms_copy
    settings = make_settings(data_dir)
    for algorithm in ("lightgbm", "xgboost"):
        version = versions[algorithm]
        folder = registry.version_dir(settings, version)
        name = "model.txt" if algorithm == "lightgbm" else "model.json"
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (folder / name).write_bytes(bytes(data))
        with pytest.raises(RegistryError, match=rf"{name}: SHA-256 .* does not match"):
            registry.load_model(settings, version)


def test_a_version_registered_without_checksums_is_refused_not_parsed(trained_copy):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    path = registry.version_dir(settings, champion) / "metadata.json"
    metadata = json.loads(path.read_text())
    del metadata["artifacts"]
    path.write_text(json.dumps(metadata))
    with pytest.raises(RegistryError, match="no artifact checksums recorded"):
        registry.load_model(settings, champion)
    rows, stderr = _predict(trained_copy)
    assert set(rows[rows.model_role == "champion"].model_version) == {FALLBACK_VERSION}
    assert "no artifact checksums" in stderr


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbage", "empty", "not an object", "wrong types"],
)
def test_unreadable_aliases_fall_back_to_the_heuristic_with_the_file_named(trained_copy, damage):
    settings = make_settings(trained_copy)
    path = settings.paths.models / "aliases.json"
    text = path.read_text()
    path.write_text(
        {
            "truncated": text[: len(text) // 2],
            "garbage": "\x00\x01garbage",
            "empty": "",
            "not an object": "[1, 2]",
            "wrong types": '{"champion": 7}',
        }[damage]
    )
    rows, stderr = _predict(trained_copy)
    assert set(rows.model_version) == {FALLBACK_VERSION}
    assert str(path) in stderr
    listing = run_ml("models", "list", data_dir=trained_copy)
    assert listing.returncode == 0 and str(path) in listing.stderr


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing keys"])
def test_unreadable_champion_metadata_falls_back_and_is_named(trained_copy, damage):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    path = registry.version_dir(settings, champion) / "metadata.json"
    text = path.read_text()
    path.write_text(
        {"garbage": "<<garbage>>", "truncated": text[:100], "missing keys": "{}"}[damage]
    )
    rows, stderr = _predict(trained_copy)
    assert set(rows.model_version) == {FALLBACK_VERSION}
    assert str(path) in stderr
    shown = run_ml("models", "show", champion, data_dir=trained_copy)
    assert shown.returncode == 1
    assert error_lines(shown) and str(path) in error_lines(shown)[0]


def _second_version(settings) -> str:
    """A copy of the champion under another name (same files, so the same checksums)."""
    import shutil

    champion = registry.get_alias(settings, "champion")
    other = f"{champion}-copy"
    shutil.copytree(registry.version_dir(settings, champion), settings.paths.models / other)
    path = settings.paths.models / other / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": other}))
    return other


def test_a_garbage_audit_line_is_skipped_by_audit_and_rollback_with_its_line_named(trained_copy):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    registry.promote(settings, _second_version(settings), reason="test")
    audit = settings.paths.models / "audit.jsonl"
    with audit.open("a") as handle:
        handle.write('{"at": "2013-03-20T00:00:00+00:00", "alias": "champ')  # a kill mid-write
    number = len(audit.read_text().splitlines())
    shown = run_ml("models", "audit", data_dir=trained_copy)
    assert shown.returncode == 0
    assert f"{audit} line {number}: unreadable audit entry skipped" in shown.stderr
    back = run_ml("models", "rollback", "--reason", "test", data_dir=trained_copy)
    assert back.returncode == 0, back.stderr
    assert registry.get_alias(settings, "champion") == champion
    # the entry after the cut line starts on a line of its own
    assert json.loads(audit.read_text().splitlines()[-1])["to"] == champion


def test_rollback_refuses_when_the_audit_log_lost_the_last_change(trained_copy):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    registry.promote(settings, _second_version(settings), reason="test")
    registry.promote(settings, champion, reason="back")
    audit = settings.paths.models / "audit.jsonl"
    lines = audit.read_text().splitlines()
    audit.write_text("\n".join(lines[:-2]) + "\n")  # the last promotion's entries lost
    with pytest.raises(RegistryError, match="pick the version with `ml models promote"):
        registry.rollback(settings, reason="test")


def test_aliases_rebuilt_from_the_audit_log_when_promoting_over_a_corrupt_file(trained_copy):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    other = _second_version(settings)
    (settings.paths.models / "aliases.json").write_text("{trunc")
    registry.promote(settings, other, reason="repair")
    assert registry.read_aliases(settings) == {"champion": other, "challenger": champion}


REREGISTER = """
import os, sys
from ml import registry
from ml import io as ml_io
from tests.conftest import make_settings

settings = make_settings(sys.argv[1])
version = registry.get_alias(settings, "champion")
model, metadata = registry.load_model(settings, version)
metrics = registry.load_metrics(settings, version)
profile = registry.load_profile(settings, version)
moment = sys.argv[2]
real_write, real_exchange = registry._write_version, ml_io.exchange_dirs

def write_then_die(folder, *args):
    real_write(folder, *args)
    if moment == "before the swap":
        os._exit(137)

def swap_then_die(new, current):
    real_exchange(new, current)
    os._exit(137)

registry._write_version = write_then_die
if moment == "after the swap":
    registry.exchange_dirs = swap_then_die
from ml.model_card import card_files
registry.register(settings, model, metadata, metrics, profile, documents=card_files)
"""


@pytest.mark.parametrize("moment", ["before the swap", "after the swap"])
def test_a_killed_re_registration_never_loses_the_version(trained_copy, moment):
    """A kill -9 (``os._exit``: no cleanup runs) at each boundary of a re-registration."""
    import subprocess
    import sys

    from tests.conftest import REPO

    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    folder = registry.version_dir(settings, champion)
    before = sorted(p.name for p in folder.iterdir())
    proc = subprocess.run(
        [sys.executable, "-c", REREGISTER, str(trained_copy), moment], cwd=REPO, check=False
    )
    assert proc.returncode == 137
    assert sorted(p.name for p in folder.iterdir()) == before  # never a moment without it
    leftovers = [
        p for p in settings.paths.models.iterdir() if p.name.endswith(registry.STAGING_SUFFIX)
    ]
    assert len(leftovers) == 1
    listing = run_ml("models", "list", data_dir=trained_copy)
    assert champion in listing.stdout and "removed the unfinished registration" in listing.stderr
    assert not [
        p for p in settings.paths.models.iterdir() if p.name.endswith(registry.STAGING_SUFFIX)
    ]
    registry.load_model(settings, champion)  # whichever copy is in place, it verifies


def test_leftovers_of_an_older_two_rename_registration_are_restored(trained_copy):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    folder = registry.version_dir(settings, champion)
    os.replace(folder, folder.with_name(f".{champion}.old"))  # killed between the renames
    staging = settings.paths.models / f".{champion}.abc{registry.STAGING_SUFFIX}"
    staging.mkdir()
    listing = run_ml("models", "list", data_dir=trained_copy)
    assert listing.returncode == 0 and champion in listing.stdout
    assert folder.is_dir() and not staging.exists()
    assert f"restored {folder}" in listing.stderr
    rows, _ = _predict(trained_copy)
    assert set(rows[rows.model_role == "champion"].model_version) == {champion}


@pytest.mark.parametrize("field", ["risk_bands", "window"])
def test_an_edited_metadata_file_falls_back_to_the_heuristic_and_names_it(
    trained_copy, caplog, field
):
    """metadata.json holds what scores the day besides the artifacts (the risk bands, the
    window the point-in-time rule reads): edited after registration, it fails its
    recorded checksum and the day is scored by the heuristic."""
    from ml.predict import predict

    settings = make_settings(trained_copy)
    version = registry.get_alias(settings, "champion")
    path = registry.version_dir(settings, version) / "metadata.json"
    metadata = json.loads(path.read_text())
    if field == "risk_bands":
        metadata["risk_bands"]["high_min"] = 0.01
    else:
        metadata["window"]["validation_end"] = "2013-01-01"
    path.write_text(json.dumps(metadata, indent=2))
    rows = pd.read_parquet(predict(settings, DAY).path)
    assert set(rows["model_version"]) == {FALLBACK_VERSION}
    assert f"{path}: does not match its recorded SHA-256" in caplog.text
    with pytest.raises(RegistryError, match="recorded checksum"):
        registry.load_model(settings, version)


def test_an_approvers_terminal_escapes_are_printed_as_text_by_models_audit(trained_copy):
    """A name or reason from a person (the approval form, the REST API) reaches a
    terminal only as text: an escape that would retitle the window, move the cursor or
    start a new line is shown as its escape sequence."""
    settings = make_settings(trained_copy)
    other = _second_version(settings)
    registry.set_alias(settings, "challenger", other, reason="awaits approval")
    hostile = "\x1b]0;owned\x07ana\x1b[2J"
    registry.record_approval(settings, other, False, by=hostile, reason="no\nnewline\x9b")
    shown = run_ml("models", "audit", data_dir=trained_copy)
    assert shown.returncode == 0, shown.stderr
    assert not any(c in shown.stdout for c in "\x1b\x07\x9b")
    (line,) = [line for line in shown.stdout.splitlines() if "rejected as champion" in line]
    assert "\\x1b]0;owned\\x07ana\\x1b[2J" in line and "no\\nnewline\\x9b" in line
