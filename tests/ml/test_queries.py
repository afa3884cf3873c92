"""The one read API for a day's predictions (the CLI, the ML view and the demo summary)."""

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
