"""The one read API of what people look at (the CLI, the ML view and the demo summary)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ml.errors import DataError
from ml.queries import SHOWN_COLUMNS, risk_bands, riskiest_flights
from tests.conftest import make_settings

DAY = dt.date(2013, 3, 20)


@pytest.fixture
def predicted(trained_copy):
    from ml.predict import predict

    settings = make_settings(trained_copy)
    predict(settings, DAY)
    return settings, pd.read_parquet(settings.paths.predictions_partition(DAY))


def test_riskiest_flights_are_the_partitions_rows_riskiest_first_ties_by_flight_id(predicted):
    settings, rows = predicted
    champion = rows[rows.model_role == "champion"]
    expected = champion.sort_values(["p_delayed", "flight_id"], ascending=[False, True]).head(7)
    shown = riskiest_flights(settings, DAY, limit=7)
    assert list(shown.columns) == [*SHOWN_COLUMNS, "departs_local"]
    assert shown["flight_id"].tolist() == expected["flight_id"].tolist()
    assert (shown["model_role"] == "champion").all()
    everyone = riskiest_flights(settings, DAY, role=None, limit=10_000)
    assert len(everyone) == len(rows)


def test_departure_times_are_shown_in_new_york(predicted):
    settings, _ = predicted
    shown = riskiest_flights(settings, DAY, limit=50)
    local = shown["sched_dep_at"].dt.tz_convert("America/New_York").dt.strftime("%H:%M")
    assert shown["departs_local"].tolist() == local.tolist()
    # 2013-03-20 is in daylight time: New York is UTC-4.
    first = shown.iloc[0]
    assert (first["sched_dep_at"] - pd.Timedelta(hours=4)).strftime("%H:%M") == first[
        "departs_local"
    ]


def test_risk_bands_count_every_flight_of_the_role(predicted):
    settings, rows = predicted
    bands = risk_bands(settings, DAY)
    assert bands["flights"].sum() == (rows.model_role == "champion").sum()
    assert bands["mean_p_delayed"].is_monotonic_decreasing


def test_a_day_without_predictions_names_the_file_and_the_command(trained_copy):
    settings = make_settings(trained_copy)
    with pytest.raises(DataError, match=r"no predictions for 2013-03-29 \(run `ml predict"):
        riskiest_flights(settings, dt.date(2013, 3, 29))


def test_model_versions_show_holdout_metrics_beside_the_heuristic_or_the_error(trained_copy):
    import json

    from ml import registry
    from ml.queries import model_versions

    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    (row,) = [v for v in model_versions(settings) if v["version"] == champion]
    metrics = registry.load_metrics(settings, champion)["holdout"]
    assert row["holdout"]["log_loss"] == metrics["model"]["log_loss"]
    assert row["holdout"]["heuristic_auc"] == metrics["baselines"]["heuristic"]["auc"]
    assert "champion" in row["aliases"] and row["error"] is None
    path = registry.version_dir(settings, champion) / "metrics.json"
    path.write_text(json.dumps({"holdout": {}}))  # a key missing: that version only
    (row,) = [v for v in model_versions(settings) if v["version"] == champion]
    assert row["holdout"] is None and isinstance(row["error"], LookupError)


def test_serving_models_show_each_role_with_its_metrics_beside_the_baselines(trained_copy):
    from ml import registry
    from ml.queries import model_details, serving_models

    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    roles = {r["role"]: r for r in serving_models(settings)}
    assert set(roles) == set(registry.ALIASES)
    card = roles["champion"]
    assert card["version"] == champion and card["error"] is None
    holdout = registry.load_metrics(settings, champion)["holdout"]
    names = [row[0] for row in card["rows"]]
    assert names == ["model", "heuristic", "prior rate"]
    assert card["rows"][0][1:] == [holdout["model"][k] for k in ("log_loss", "auc", "ece")]
    assert card["rows"][1][2] == holdout["baselines"]["heuristic"]["auc"]
    assert model_details(settings, champion)["aliases"] == ["champion"]
    if roles["challenger"]["version"] is None:
        assert "rows" not in roles["challenger"]


def test_the_days_monitoring_reads_predictions_drift_performance_and_decisions(trained_copy):
    """One query per call over the warehouse's views: what the demo summary prints."""
    import duckdb

    from ml.pipeline import decide_retraining, monitor, predict
    from ml.queries import daily_monitoring

    settings = make_settings(trained_copy)
    days = [DAY, DAY + dt.timedelta(days=settings.label_maturity_days)]
    for day in days:
        predict(settings, day)
        monitor(settings, day)
        decide_retraining(settings, day)
    rows = daily_monitoring(settings, days + [dt.date(2013, 3, 29)])  # a day never predicted
    assert [r["flight_date"] for r in rows] == days

    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        champion_rows, top = con.execute(
            "select count(*), max(p_delayed) from latest_predictions where flight_date = ?",
            [DAY],
        ).fetchone()
        realized_auc = con.execute(
            "select auc from monitoring_performance where kind = 'realized' and "
            "dimension = 'all' and model_role = 'champion' and flight_date = ?",
            [DAY],
        ).fetchone()[0]
    first, second = rows
    assert first["champion_rows"] == champion_rows and first["max_p"] == top
    assert first["realized_auc"] == realized_auc and 0.5 < realized_auc < 1
    assert second["realized_rows"] is None  # its labels have not matured by the last day
    assert isinstance(first["drifted"], int) and first["retrain"] in (True, False)
    assert 0.5 < second["estimated_auc"] < 1


def test_the_demo_summary_prints_each_days_monitoring_and_the_riskiest_flights(
    trained_copy, monkeypatch, capsys
):
    from ml import demo_summary
    from ml.pipeline import decide_retraining, monitor, predict

    settings = make_settings(trained_copy)
    monkeypatch.setenv("ML_DATA_DIR", str(trained_copy))
    predict(settings, DAY)
    monitor(settings, DAY)
    decide_retraining(settings, DAY)
    assert demo_summary.main([DAY.isoformat()]) == 0
    out = capsys.readouterr().out
    top = riskiest_flights(settings, DAY, limit=1).iloc[0]
    assert f"{DAY}  " in out and str(top["flight_id"]) in out
    assert f"Riskiest flights on {DAY}:" in out and "not matured" in out  # labels of DAY


def test_latest_reports_list_the_last_monitoring_page_and_the_validation_index(trained_copy):
    from ml.pipeline import monitor, predict
    from ml.queries import latest_reports

    settings = make_settings(trained_copy)
    assert [r["kind"] for r in latest_reports(settings)] == ["data validation"]
    for day in (DAY, DAY + dt.timedelta(days=1)):
        predict(settings, day)
        monitor(settings, day)
    first, *_ = latest_reports(settings)
    assert first == {
        "kind": "latest drift and performance",
        "path": settings.paths.drift_report(DAY + dt.timedelta(days=1), ".html"),
    }
