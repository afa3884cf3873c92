"""Before any model passes the gate, the heuristic is the champion: every day is scored,
monitored and decided, and the next model is trained on the policy's schedule.

The gate's calibration limit is set to 0 here, so that every trained model fails it."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd

from ml import pipeline, registry
from ml.predict import FALLBACK_VERSION
from tests.conftest import AS_OF, make_settings

DAYS = [AS_OF + dt.timedelta(days=i) for i in range(3)]


def test_a_replay_on_an_empty_registry_runs_every_day_when_its_first_model_fails(
    built_data, tmp_path
):
    data_dir = tmp_path / "data"
    shutil.copytree(built_data, data_dir)
    settings = make_settings(
        data_dir, gate_max_ece=0.0, retrain_every_days=2, candidates=["logistic"]
    )
    lines: list[str] = []

    summaries = pipeline.replay_days(settings, DAYS[0], DAYS[-1], lines.append)

    assert [s["day"] for s in summaries] == [d.isoformat() for d in DAYS]
    first, second = sorted(v["version"] for v in registry.list_versions(settings))
    assert registry.get_alias(settings, "champion") is None
    assert registry.get_alias(settings, "challenger") == second
    trained = f"trained as of {DAYS[0]} (no model has been trained): {first}, challenger"
    assert any(line.startswith(trained) for line in lines), lines
    for day, summary in zip(DAYS, summaries, strict=True):
        assert summary["versions"]["champion"] == FALLBACK_VERSION
        rows = pd.read_parquet(settings.paths.predictions_partition(day))
        assert set(rows.loc[rows["model_role"] == "champion", "model_version"]) == {
            FALLBACK_VERSION
        }
        assert set(rows.loc[rows["model_role"] == "challenger", "model_version"]) == {first}
        record = json.loads(settings.paths.drift_report(day, ".json").read_text())
        assert record["model_version"] == FALLBACK_VERSION and record["reference"] is None
        assert record["series"] == [] and record["drifted_features"] == []
        overall = [r for r in record["performance"]["estimated"] if r["dimension"] == "all"]
        assert {r["model_role"] for r in overall} == {"champion", "challenger"}
        page = settings.paths.drift_report(day, ".html").read_text()
        assert "No model is champion (none has passed the promotion gate" in page
        assert not settings.paths.monitoring_partition("drift", day).exists()
    # The policy waits for its schedule (every 2 days), then trains the next model.
    held, fired = summaries[1]["retraining"], summaries[2]["retraining"]
    assert held["retrain"] is False
    assert any("heuristic baseline serves" in r for r in held["reasons"]), held
    assert fired["retrain"] and fired["reasons"][0].startswith("schedule:"), fired
    assert summaries[2]["trained"]["version"] == second
    assert not summaries[2]["trained"]["champion"]


def test_monitoring_a_day_served_by_the_heuristic_replaces_an_earlier_champions_drift(
    trained_copy,
):
    """A day monitored against a champion, monitored again after the registry lost its
    champion: the record and the drift table say what serves the day now."""
    settings = make_settings(trained_copy)
    day = AS_OF
    pipeline.predict(settings, day)
    pipeline.monitor(settings, day)
    assert settings.paths.monitoring_partition("drift", day).exists()
    registry.clear_alias(settings, "champion", reason="test: no champion")

    pipeline.predict(settings, day)
    result = pipeline.monitor(settings, day)

    assert result["model_version"] == FALLBACK_VERSION and result["drifted"] == []
    assert result["estimated"]["model_version"] == FALLBACK_VERSION
    assert not settings.paths.monitoring_partition("drift", day).exists()
    decision = pipeline.decide_retraining(settings, day)
    assert not decision["retrain"], decision
