"""The retraining policy: each rule fires on its own evidence, once, and every decision is kept."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ml import registry
from ml.paths import PART_FILE
from ml.retraining import decide
from tests.conftest import AS_OF, make_settings


def _drift_rows(settings, version: str, days: list[dt.date], drifted: bool) -> None:
    for day in days:
        folder = settings.paths.monitoring / "drift" / f"flight_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "model_version": [version, version],
                "feature": ["origin_max_wind_speed_mph_1d", "p_delayed"],
                "source": ["feature", "prediction"],
                "is_drifted": [drifted, True],
            }
        ).to_parquet(folder / PART_FILE)


def _realized_rows(settings, version: str, days: list[dt.date], log_loss: float) -> None:
    for day in days:
        folder = settings.paths.monitoring / "performance" / "kind=realized" / f"flight_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "model_role": ["champion"],
                "model_version": [version],
                "dimension": ["all"],
                "value": ["all"],
                "log_loss": [log_loss],
            }
        ).to_parquet(folder / PART_FILE)


def _days(first: dt.date, n: int) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range(n)]


def test_nothing_fires_the_day_after_training(trained_copy):
    decision = decide(make_settings(trained_copy), AS_OF + dt.timedelta(days=1))
    assert not decision.retrain and decision.reasons == ["no rule fired"]


def test_the_schedule_rule_fires_when_the_latest_training_is_old_enough(trained_copy):
    settings = make_settings(trained_copy)
    day = AS_OF + dt.timedelta(days=settings.retrain_every_days)
    decision = decide(settings, day)
    assert decision.retrain and decision.reasons[0].startswith("schedule:")
    assert decision.last_training_as_of == AS_OF
    rows = pd.read_parquet(settings.paths.monitoring / "retraining")
    assert rows["retrain"].tolist() == [True] and "schedule" in rows["reasons"][0][0]


def test_lasting_drift_fires_but_a_shorter_streak_or_prediction_drift_alone_does_not(
    trained_copy,
):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    first = AS_OF + dt.timedelta(days=1)
    _drift_rows(settings, champion, _days(first, 2), drifted=True)
    short = decide(settings, first + dt.timedelta(days=1))  # two days: not yet
    assert not short.retrain and short.reasons == [
        "no rule fired",
        f"drift: features of {champion} drifted, 2 day(s) in a row, fewer than 3",
    ]
    _drift_rows(settings, champion, _days(first + dt.timedelta(days=2), 1), drifted=False)
    third = first + dt.timedelta(days=2)
    assert not decide(settings, third).retrain  # only the score drifted that day
    _drift_rows(settings, champion, _days(first, 3), drifted=True)
    decision = decide(settings, third)
    assert decision.retrain and decision.drift_streak_days == 3
    assert decision.reasons == [
        f"drift: features of {champion} drifted on each of the last 3 days, since {first} "
        "(threshold: 3 days)"
    ]


def test_degradation_counts_matured_days_against_the_holdout_log_loss(trained_copy):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    holdout = registry.load_metrics(settings, champion)["holdout"]["model"]["log_loss"]
    first = AS_OF + dt.timedelta(days=1)
    _realized_rows(settings, champion, _days(first, 3), holdout + 0.01)  # within the margin
    day = first + dt.timedelta(days=2 + settings.label_maturity_days)
    assert not decide(settings, day).retrain
    _realized_rows(settings, champion, _days(first, 3), holdout + 0.05)
    decision = decide(settings, day)
    assert decision.retrain and decision.degradation_streak_days == 3
    assert decision.reasons[0].startswith("degradation:")


def test_a_streak_that_began_before_the_latest_training_does_not_fire_again(trained_copy):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    first = AS_OF - dt.timedelta(days=2)  # drift already under way when the model was trained
    _drift_rows(settings, champion, _days(first, 4), drifted=True)
    decision = decide(settings, AS_OF + dt.timedelta(days=1))
    assert decision.drift_streak_days == 4 and not decision.retrain
    assert decision.reasons == [
        "no rule fired",
        f"drift: features of {champion} drifted on each of the last 4 days, since {first}, "
        f"but the streak began on or before the latest training (as of {AS_OF}), which has "
        "acted on it: only a streak that begins after a training fires",
    ]
