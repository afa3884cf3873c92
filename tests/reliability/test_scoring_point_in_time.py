"""No path scores a day its model learned from.

The session's champion was trained as of 2013-03-15 on a 30-day window with a 7-day
holdout: it learned from 2013-02-13..2013-03-14 (fit, early-stopping holdout and the
calibration's folds). The registry hands it out holding that last day, and every output
that reaches a table, a report or a comparison refuses the days up to it: the daily
prediction (the CLI here; the DAG in ``tests/e2e``), the challenger's shadow rows,
monitoring's re-scoring, evaluation, the replay and the promotion gate.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest

from ml import registry
from ml.errors import LeakageError
from tests.conftest import AS_OF, make_settings
from tests.reliability.conftest import digests, error_lines, run_ml

FIRST_FIT_DAY = AS_OF - dt.timedelta(days=30)
HOLDOUT_DAY = AS_OF - dt.timedelta(days=3)
LAST_SEEN = AS_OF - dt.timedelta(days=1)
SEEN_DAYS = [FIRST_FIT_DAY, HOLDOUT_DAY, LAST_SEEN]


def _champion(settings) -> str:
    return registry.get_alias(settings, "champion")


def _register_later(settings, as_of: dt.date) -> str:
    """The champion's model registered again as a version that learned from the 30 days
    before ``as_of`` (its window says so, and the registry holds it to that)."""
    champion = _champion(settings)
    model, metadata = registry.load_model(settings, champion)
    shift = as_of - dt.date.fromisoformat(metadata["as_of"])
    window = {
        key: (dt.date.fromisoformat(value) + shift).isoformat()
        for key, value in metadata["window"].items()
    }
    version = f"{as_of:%Y%m%d}-later"
    keep = {k: v for k, v in metadata.items() if k not in ("artifacts", "libraries", "git_commit")}
    registry.register(
        settings,
        model,
        {**keep, "version": version, "as_of": as_of.isoformat(), "window": window},
        registry.load_metrics(settings, champion),
        registry.load_profile(settings, champion),
    )
    return version


def test_a_registered_model_refuses_every_day_it_learned_from_and_scores_the_next(trained_data):
    from ml.features import load_features

    settings = make_settings(trained_data)
    version = _champion(settings)
    model, metadata = registry.load_model(settings, version)
    assert registry.last_seen_day(metadata) == LAST_SEEN
    for day in SEEN_DAYS:
        frame = load_features(settings, day, day)
        for output in (model.predict_proba, model.contributions):
            with pytest.raises(LeakageError) as refused:
                output(frame)
            message = str(refused.value)
            assert f"{version} learned from flights up to {LAST_SEEN}" in message
            assert f"must not score {day}" in message and "point in time" in message
    # a frame that only begins after the last day seen, and one that reaches back into it
    after = load_features(settings, AS_OF, AS_OF + dt.timedelta(days=2))
    assert model.predict_proba(after).shape == (len(after),)
    mixed = load_features(settings, LAST_SEEN, AS_OF)
    with pytest.raises(LeakageError):
        model.predict_proba(mixed)
    # the raw scores a calibration map is fitted on are an input to learning, not a score
    assert len(model.predict_uncalibrated(mixed)) == len(mixed)


@pytest.mark.parametrize("day", SEEN_DAYS, ids=["first-fit-day", "holdout-day", "last-day"])
def test_ml_predict_of_a_day_the_champion_learned_from_fails_with_one_line_and_changes_nothing(
    trained_copy, day
):
    ok = run_ml("predict", "--date", AS_OF.isoformat(), data_dir=trained_copy)
    assert ok.returncode == 0, ok.stderr[-2000:]  # the first day after the last one seen
    before = digests(trained_copy)
    proc = run_ml("predict", "--date", day.isoformat(), data_dir=trained_copy)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = error_lines(proc)
    version = _champion(make_settings(trained_copy))
    assert f"predict {day}: champion {version} learned from flights up to {LAST_SEEN}" in line
    assert "point in time" in line and "unchanged" in line
    assert "Traceback" not in proc.stderr
    assert digests(trained_copy) == before
    assert not make_settings(trained_copy).paths.predictions_partition(day).exists()


def test_a_challenger_that_learned_from_the_day_is_left_out_of_the_shadow_rows(
    trained_copy, caplog
):
    from ml.predict import predict

    settings = make_settings(trained_copy)
    champion = _champion(settings)
    later = _register_later(settings, dt.date(2013, 3, 22))  # learned up to 2013-03-21
    registry.set_alias(settings, "challenger", later, reason="point-in-time test")
    day = dt.date(2013, 3, 18)
    with caplog.at_level(logging.WARNING, logger="ml.predict"):
        result = predict(settings, day)
    rows = pd.read_parquet(result.path)
    assert set(rows["model_role"]) == {"champion"}
    assert set(rows["model_version"]) == {champion}
    assert result.versions == {"champion": champion}
    assert f"no shadow rows on {day}: challenger {later} learned from flights up to 2013-03-21" in (
        caplog.text
    )
    # the first day it had not seen: both roles score
    scored = pd.read_parquet(predict(settings, dt.date(2013, 3, 22)).path)
    assert scored.groupby("model_role")["model_version"].first().to_dict() == {
        "champion": champion,
        "challenger": later,
    }


def test_a_new_champion_is_refused_the_days_it_learned_from_on_every_command(trained_copy):
    """Promoted by hand over days already scored: predict, monitor, evaluate and replay
    each refuse those days with one line, and the days already published stay as they were."""
    for day in ("2013-03-15", "2013-03-16"):
        assert run_ml("predict", "--date", day, data_dir=trained_copy).returncode == 0
    settings = make_settings(trained_copy)
    later = _register_later(settings, dt.date(2013, 3, 17))  # learned up to 2013-03-16
    registry.promote(settings, later, reason="point-in-time test")
    before = digests(trained_copy)
    commands = {
        "predict": ["predict", "--date", "2013-03-16"],
        "monitor": ["monitor", "--date", "2013-03-16"],
        "evaluate": ["evaluate", "--model", later, "--start", "2013-03-15", "--end", "2013-03-20"],
        "replay": ["replay", "--start", "2013-03-16", "--end", "2013-03-18"],
    }
    for name, args in commands.items():
        proc = run_ml(*args, data_dir=trained_copy)
        assert proc.returncode == 1, (name, proc.stderr[-2000:])
        (line,) = error_lines(proc)
        assert later in line and "2013-03-16" in line, (name, line)
        assert "Traceback" not in proc.stderr, name
    assert digests(trained_copy) == before


def test_monitoring_leaves_the_days_the_champion_saw_out_of_its_score_series(trained_copy):
    from ml.features import load_features
    from ml.pipeline import monitor, predict

    settings = make_settings(trained_copy)
    day = AS_OF + dt.timedelta(days=1)
    for scored in (AS_OF, day):
        predict(settings, scored)
    monitor(settings, day)
    drift = pd.read_parquet(settings.paths.monitoring_partition("drift", day))
    score = drift[drift["feature"] == "p_delayed"].set_index("horizon")["rows"]
    served = load_features(settings, AS_OF, day)
    assert score["day"] == (served["flight_date"] == day).sum()
    # the trailing window reaches back into the training window: only the days served count
    window = [h for h in score.index if h != "day"]
    assert window and score[window[0]] == len(served)
    feature_rows = drift[(drift["feature"] != "p_delayed") & (drift["horizon"] == window[0])]
    assert (feature_rows["rows"] > len(served)).all()  # the features keep every day


def test_the_gate_compares_the_champion_only_on_holdout_days_it_had_not_seen(trained_data):
    from ml.evaluate import assess
    from ml.features import load_features
    from ml.gate import Incumbent, judge

    settings = make_settings(trained_data)
    version = _champion(settings)
    champion, _ = registry.load_model(settings, version)
    candidate, _ = registry.load_model(settings, version)
    del candidate.last_seen_day_  # fitted in memory, as training holds a candidate
    prior = registry.load_metrics(settings, version)["prior_rate"]
    holdout = load_features(settings, dt.date(2013, 3, 11), dt.date(2013, 3, 17))
    report = assess(settings, candidate, holdout, prior)
    metadata = {"version": "candidate", "uses_oracle_forecast": False}

    def decide(last_seen: dt.date):
        incumbent = Incumbent(version, last_seen, lambda: (champion, prior))
        return {
            c["name"]: c
            for c in judge(settings, metadata, report, holdout, incumbent, candidate).checks
        }

    checks = decide(LAST_SEEN)
    compared = (holdout["flight_date"] > LAST_SEEN).sum()
    assert (
        f"on 2013-03-15..2013-03-17 ({compared} flights)" in checks["beats the champion"]["detail"]
    )
    assert "fair comparison" not in checks
    covered = decide(dt.date(2013, 3, 17))
    assert covered["fair comparison"]["passed"] is False
    assert "learned from days up to 2013-03-17" in covered["fair comparison"]["detail"]
