"""Candidate models, calibration, metrics and behavioural tests on small synthetic frames."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml.behaviour import invariance_to_identifiers, run_behaviour_tests
from ml.features import HEURISTIC_COLUMN, FeatureSpec
from ml.metrics import binary_metrics, expected_calibration_error
from ml.models import CalibratedClassifier, day_folds, make_classifier

SPEC = FeatureSpec(("x", "origin_total_precip_in_1d", HEURISTIC_COLUMN), ("carrier",))


def _frame(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "flight_date": [
                dt.date(2013, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 30, n)
            ],
            "x": rng.normal(size=n),
            "origin_total_precip_in_1d": rng.exponential(0.1, n),
            HEURISTIC_COLUMN: rng.uniform(0.1, 0.4, n),
            "carrier": rng.choice(["AA", "B6", "UA"], n),
            "flight_number": rng.integers(1, 5000, n).astype(str),
            "tailnum": rng.choice(["N1", "N2"], n),
        }
    )
    logits = (
        1.5 * frame["x"] + 3 * frame["origin_total_precip_in_1d"] - 1 + (frame["carrier"] == "B6")
    )
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logits))).astype(int)
    return frame, y


@pytest.mark.parametrize("algorithm", ["heuristic", "logistic", "lightgbm", "xgboost"])
def test_every_candidate_calibrates_saves_and_loads_to_the_same_predictions(algorithm, tmp_path):
    frame, y = _frame()
    fit, held = frame.iloc[:2400], frame.iloc[2400:]
    # small data: let LightGBM split on leaves far smaller than its default
    params = {"min_data_in_leaf": 20} if algorithm == "lightgbm" else None
    model = CalibratedClassifier(make_classifier(algorithm, SPEC, params))
    model.base.fit(fit, y[:2400], held, y[2400:])
    model.calibrate(fit, y[:2400], n_folds=3)
    p = model.predict_proba(held)
    assert ((p > 0) & (p < 1)).all()
    contributions = model.contributions(held)
    assert contributions.shape == (len(held), len(model.spec.columns))
    model.save(tmp_path)
    loaded = CalibratedClassifier.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(held), p, rtol=1e-6)
    if algorithm != "heuristic":
        assert binary_metrics(y[2400:], p)["auc"] > 0.75


def test_calibration_fixes_a_model_that_is_too_confident():
    frame, y = _frame(6000)
    model = CalibratedClassifier(make_classifier("logistic", SPEC))
    model.base.fit(frame, y)
    raw = model.base.predict_proba(frame)
    model.base.coef_ = model.base.coef_ * 3  # overconfident on purpose
    model.calibrate(frame, y, n_folds=3)
    model.base.coef_ = model.base.coef_ * 3
    assert expected_calibration_error(y, model.base.predict_proba(frame)) > 0.05
    # Platt scaling learned on out-of-fold predictions brings the slope back
    assert 0.2 < model.slope < 1.5
    assert expected_calibration_error(y, raw) < 0.05


def test_day_folds_keep_each_day_in_one_fold():
    dates = pd.Series([dt.date(2013, 1, d) for d in (1, 1, 2, 3, 3, 4, 5, 6)])
    folds = day_folds(dates, 3)
    assert len(set(folds)) == 3
    for day in dates.unique():
        assert len(set(folds[dates.to_numpy() == day])) == 1
    assert list(folds) == sorted(folds)  # contiguous blocks in time


def test_metrics_match_hand_computed_values():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    m = binary_metrics(y, p, threshold=0.35)
    assert m["auc"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(1.0)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    # one row in each of the bins of 0.1, 0.4, 0.35 and 0.8: gaps 0.1, 0.4, 0.65, 0.2
    assert m["ece"] == pytest.approx((0.1 + 0.4 + 0.65 + 0.2) / 4)


class _PeeksAtIdentifiers:
    """A broken model that reads the flight number: the invariance test must catch it."""

    spec = SPEC

    def predict_proba(self, frame):
        return frame["flight_number"].map(lambda s: sum(map(ord, s)) % 10 / 10).to_numpy()


class _RainLowersRisk:
    spec = SPEC

    def predict_proba(self, frame):
        return 1 / (1 + np.exp(frame["origin_total_precip_in_1d"] * 5))


def test_behavioural_tests_fail_models_that_misbehave():
    frame, _ = _frame()
    assert not invariance_to_identifiers(_PeeksAtIdentifiers(), frame)["passed"]
    results = {r["name"]: r for r in run_behaviour_tests(_RainLowersRisk(), frame)}
    assert not results["directional: worse weather before the cutoff"]["passed"]
    assert results["invariance: flight and tail numbers"]["passed"]
