"""Candidate models, calibration, metrics and behavioural tests on small synthetic frames."""

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from ml.behaviour import invariance_to_identifiers, run_behaviour_tests
from ml.config import load_settings
from ml.errors import ConfigError, RegistryError
from ml.features import HEURISTIC_COLUMN, FeatureSpec
from ml.metrics import binary_metrics, expected_calibration_error
from ml.models import (
    ALGORITHMS,
    CLASSIFIERS,
    HEURISTIC_SPEC,
    CalibratedClassifier,
    Classifier,
    HeuristicClassifier,
    LogisticClassifier,
    day_folds,
    load_classifier,
    make_classifier,
)
from ml.models.backend import THREAD_PARAMS

SPEC = FeatureSpec(("x", "origin_total_precip_in_1d", HEURISTIC_COLUMN), ("carrier",))
# small data: let LightGBM split on leaves far smaller than its default
SMALL_DATA = {"lightgbm": {"min_data_in_leaf": 20}}
# Each candidate fitted on _frame()'s first 2400 rows and saved by commit 2cc6bf6, the last
# before ml/models.py became a package, with its predictions on the next 50 rows.
SAVED_BEFORE = Path(__file__).parent / "saved_models" / "2cc6bf6"


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


@pytest.fixture
def settings(tmp_path):
    return load_settings(env={}, data_dir=tmp_path / "data")


def _assert_same_file(written: Path, before: Path) -> None:
    """The same bytes; for JSON, the same document with every float equal to 1e-12; in
    both, but for the thread counts the fit was given (``n_jobs``, which the snapshot's
    parameters held at 2: they do not change what is learned).

    A linear solver's last bits depend on the CPU's BLAS kernels (the logistic
    candidate's Newton-Cholesky steps), so a fit on another machine may differ there.
    """
    if before.suffix != ".json":
        threads = re.compile(rb"^\[num_threads: \d+\]\n", re.MULTILINE)
        assert threads.sub(b"", written.read_bytes()) == threads.sub(b"", before.read_bytes())
        return
    new, old = json.loads(written.read_text()), json.loads(before.read_text())
    for document in (new, old):
        for key in THREAD_PARAMS:
            document.get("params", {}).pop(key, None)
    assert _without_floats(new) == _without_floats(old), before.name
    assert _floats(new) == pytest.approx(_floats(old), rel=1e-12, abs=1e-12), before.name


def _without_floats(value):
    if isinstance(value, dict):
        return {k: _without_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_floats(v) for v in value]
    return float if isinstance(value, float) else value


def _floats(value) -> list[float]:
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return [value] if isinstance(value, float) else []


def _learned(model) -> set[str]:
    return {k for k in vars(model) if k not in model.get_params(deep=False)}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_candidate_fits_calibrates_saves_and_loads_to_the_same_predictions(
    algorithm, settings, tmp_path
):
    frame, y = _frame()
    fit, held = frame.iloc[:2400], frame.iloc[2400:]
    unfitted = make_classifier(settings, algorithm, SPEC, SMALL_DATA.get(algorithm))
    model = CalibratedClassifier(unfitted, n_folds=3)
    assert model.fit(fit, y[:2400], held, y[2400:]) is model
    assert _learned(unfitted) == set()  # fit works on a copy: the parameter stays unfitted
    assert type(model.estimator_) is CLASSIFIERS[algorithm]
    p = model.predict_proba(held)
    assert ((p > 0) & (p < 1)).all()
    contributions = model.contributions(held)
    assert contributions.shape == (len(held), len(model.spec.columns))
    model.save(tmp_path)
    saved_before = SAVED_BEFORE / algorithm
    for path in saved_before.iterdir():  # what the code before the package wrote
        if path.name != "expected.json":
            _assert_same_file(tmp_path / path.name, path)
    loaded = load_classifier(tmp_path)
    assert type(loaded.estimator_) is CLASSIFIERS[algorithm]
    assert loaded.spec == model.spec and loaded.estimator_.random_state == 13
    assert loaded.estimator_.resolved_params() == model.estimator_.resolved_params()
    np.testing.assert_array_equal(loaded.predict_proba(held), p)
    np.testing.assert_array_equal(loaded.contributions(held), contributions)
    if algorithm != "heuristic":
        assert binary_metrics(y[2400:], p)["auc"] > 0.75


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_saved_model_keeps_the_state_file_format_older_versions_load(
    algorithm, settings, tmp_path
):
    frame, y = _frame(1200)
    model = CalibratedClassifier(
        make_classifier(settings, algorithm, SPEC, SMALL_DATA.get(algorithm))
    )
    model.fit(frame.iloc[:900], y[:900], frame.iloc[900:], y[900:]).save(tmp_path)
    state = json.loads((tmp_path / "preprocessing.json").read_text())
    learned = {
        "heuristic": {"prior"},
        "logistic": {"medians", "means", "scales", "levels", "coef", "intercept"},
        "lightgbm": {"categories", "best_iteration", "artifact"},
        "xgboost": {"categories", "best_iteration", "artifact"},
    }[algorithm]
    assert set(state) == {"algorithm", "spec", "params", "random_state"} | learned
    assert state["algorithm"] == algorithm and state["random_state"] == 13
    calibration = json.loads((tmp_path / "calibration.json").read_text())
    assert set(calibration) == {"method", "slope", "intercept"}
    artifact = {"lightgbm": "model.txt", "xgboost": "model.json"}.get(algorithm)
    assert {p.name for p in tmp_path.iterdir()} == {
        "preprocessing.json",
        "calibration.json",
        *([artifact] if artifact else []),
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_model_saved_before_the_models_package_loads_and_predicts_the_same(algorithm):
    frame, _ = _frame()
    held = frame.iloc[2400:2450]
    expected = json.loads((SAVED_BEFORE / algorithm / "expected.json").read_text())
    model = load_classifier(SAVED_BEFORE / algorithm)
    assert type(model.estimator_) is CLASSIFIERS[algorithm]
    # Equal to the last bits the CPU's vector kernels may round differently.
    np.testing.assert_allclose(model.predict_proba(held), expected["p_delayed"], rtol=1e-12)
    np.testing.assert_allclose(
        model.contributions(held), expected["contributions"], rtol=1e-12, atol=1e-15
    )


def test_the_table_names_every_class_by_its_algorithm_and_each_follows_the_protocol():
    assert ALGORITHMS == ("heuristic", "logistic", "lightgbm", "xgboost")
    for name, cls in CLASSIFIERS.items():
        assert cls.algorithm == name
        assert isinstance(cls(spec=SPEC), Classifier), name


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_init_stores_its_parameters_and_nothing_else(algorithm):
    params = {"C": 2.0} if algorithm == "logistic" else {}
    model = CLASSIFIERS[algorithm](spec=SPEC, params=params, random_state=5)
    assert vars(model) == model.get_params(deep=False)
    assert model.get_params()["spec"] is SPEC and model.get_params()["params"] is params
    assert model.random_state == 5


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_clone_copies_the_parameters_and_none_of_the_learned_state(algorithm, settings):
    frame, y = _frame(1200)
    model = make_classifier(settings, algorithm, SPEC, SMALL_DATA.get(algorithm))
    fitted = model.fit(frame.iloc[:900], y[:900], frame.iloc[900:], y[900:])
    assert fitted is model
    learned = _learned(model)
    assert learned and all(name.endswith("_") for name in learned)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy.params is not model.params  # a deep copy: changing one leaves the other
    assert _learned(copy) == set()
    with pytest.raises(NotFittedError):
        copy.predict_proba(frame)


def test_predicting_with_an_unfitted_or_uncalibrated_model_is_refused(settings):
    frame, y = _frame(300)
    with pytest.raises(NotFittedError):
        LogisticClassifier(spec=SPEC).contributions(frame)
    with pytest.raises(NotFittedError):
        CalibratedClassifier(LogisticClassifier(spec=SPEC)).predict_proba(frame)


def test_the_calibrated_model_is_an_estimator_too():
    model = CalibratedClassifier(LogisticClassifier(spec=SPEC, random_state=3), n_folds=4)
    assert vars(model) == model.get_params(deep=False)
    assert model.get_params()["estimator__random_state"] == 3
    copy = clone(model).set_params(estimator__random_state=9, n_folds=2)
    assert (copy.estimator.random_state, copy.n_folds) == (9, 2)
    assert model.estimator.random_state == 3


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_seed_and_the_hyperparameters_come_from_the_settings(algorithm, tmp_path):
    env = {"ML_MODEL_PARAMS__LOGISTIC__C": "0.5", "ML_MODEL_PARAMS__XGBOOST__MAX_DEPTH": "3"}
    settings = load_settings(env=env, data_dir=tmp_path, random_state=21)
    model = make_classifier(settings, algorithm, SPEC, {"extra": 1})
    assert model.random_state == 21
    params = model.resolved_params()
    assert params == {**settings.model_params[algorithm], **params, "extra": 1}
    if algorithm in ("lightgbm", "xgboost"):
        assert params["seed"] == 21
        assert "monotone_constraints" in params
    overridden = {"logistic": ("C", 0.5), "xgboost": ("max_depth", 3)}
    if algorithm in overridden:
        key, value = overridden[algorithm]
        assert params[key] == value


def test_the_heuristic_reads_its_own_column_and_learns_only_the_prior(settings):
    frame, y = _frame(400)
    model = make_classifier(settings, "heuristic", SPEC)
    assert model.spec == HEURISTIC_SPEC
    assert model.fit(frame, y).prior_ == pytest.approx(y.mean())
    given = HeuristicClassifier(prior=0.3).fit(frame, y)
    assert given.prior_ == 0.3 and given.prior == 0.3
    frame.loc[0, HEURISTIC_COLUMN] = np.nan
    assert given.predict_proba(frame)[0] == 0.3


def test_an_unknown_algorithm_is_refused_by_the_factory_and_by_the_loader(settings, tmp_path):
    with pytest.raises(ConfigError, match="catboost"):
        make_classifier(settings, "catboost", SPEC)
    frame, y = _frame(300)
    model = CalibratedClassifier(make_classifier(settings, "heuristic", SPEC)).fit(frame, y)
    model.save(tmp_path)
    state = json.loads((tmp_path / "preprocessing.json").read_text())
    (tmp_path / "preprocessing.json").write_text(json.dumps({**state, "algorithm": "catboost"}))
    with pytest.raises(RegistryError, match="unknown algorithm 'catboost'"):
        load_classifier(tmp_path)


def test_training_refuses_an_unknown_candidate_before_fitting_any(settings):
    from ml.train import select_model

    frame, _ = _frame(10)  # no label column: fitting lightgbm first would fail otherwise
    with pytest.raises(ConfigError, match="catboost"):
        select_model(settings, frame, frame, ("lightgbm", "catboost"))


class _Overconfident(LogisticClassifier):
    """Logistic regression with its log-odds tripled: right ranking, too sure."""

    def fit(self, frame, y, eval_frame=None, eval_y=None):
        super().fit(frame, y)
        self.coef_ = self.coef_ * 3
        self.intercept_ = self.intercept_ * 3
        return self


def test_calibration_fixes_a_model_that_is_too_confident():
    frame, y = _frame(6000)
    model = CalibratedClassifier(_Overconfident(spec=SPEC), n_folds=3).fit(frame, y)
    assert expected_calibration_error(y, model.predict_uncalibrated(frame)) > 0.05
    # Platt scaling learned on out-of-fold predictions brings the slope back near 1/3
    assert 0.2 < model.slope_ < 0.5
    assert expected_calibration_error(y, model.predict_proba(frame)) < 0.05


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
    assert not invariance_to_identifiers(_PeeksAtIdentifiers(), frame, random_state=13)["passed"]
    results = {r["name"]: r for r in run_behaviour_tests(_RainLowersRisk(), frame, random_state=13)}
    assert not results["directional: worse weather before the cutoff"]["passed"]
    assert results["invariance: flight and tail numbers"]["passed"]


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost"])
def test_the_boosted_models_take_their_rounds_from_the_settings(algorithm, tmp_path):
    settings = load_settings(
        env={}, data_dir=tmp_path, boosting_max_rounds=7, boosting_early_stopping_rounds=3
    )
    frame, y = _frame()
    model = make_classifier(settings, algorithm, SPEC, SMALL_DATA.get(algorithm))
    assert (model.max_rounds, model.early_stopping_rounds) == (7, 3)
    model.fit(frame.iloc[:2400], y[:2400], frame.iloc[2400:], y[2400:])
    assert 1 <= model.best_iteration_ <= 7


@pytest.mark.parametrize("algorithm", ["logistic", "lightgbm", "xgboost"])
def test_the_thread_count_is_the_settings_and_never_changes_what_is_learned(algorithm, tmp_path):
    """``threads`` reaches the library as its thread count, stays out of the model's
    parameters (and so of the version's name), and a fit on 1 thread learns what a fit
    on 3 does, to the last bit."""
    frame, y = _frame()
    fitted = {}
    for threads in ("1", "3"):
        settings = load_settings(env={"ML_THREADS": threads}, data_dir=tmp_path / "data")
        model = make_classifier(settings, algorithm, SPEC, SMALL_DATA.get(algorithm))
        assert model.n_jobs == int(threads)
        assert not set(THREAD_PARAMS) & set(model.resolved_params())
        if algorithm != "logistic":
            assert model.local_params()[model.thread_param] == int(threads)
        fitted[threads] = model.fit(frame.iloc[:2400], y[:2400], frame.iloc[2400:], y[2400:])
    held = frame.iloc[2400:]
    np.testing.assert_array_equal(fitted["1"].predict_proba(held), fitted["3"].predict_proba(held))


def test_a_loaded_lightgbm_model_scores_with_this_processs_threads(tmp_path, monkeypatch):
    """LightGBM's file keeps the thread count it was trained with; scoring passes this
    process's own (ML_THREADS), not the training machine's."""
    frame, y = _frame()
    settings = load_settings(env={"ML_THREADS": "3"}, data_dir=tmp_path / "data")
    model = make_classifier(settings, "lightgbm", SPEC, SMALL_DATA["lightgbm"])
    (tmp_path / "model").mkdir()
    CalibratedClassifier(model).fit(frame.iloc[:2400], y[:2400], frame.iloc[2400:], y[2400:]).save(
        tmp_path / "model"
    )
    monkeypatch.setenv("ML_THREADS", "1")
    loaded = load_classifier(tmp_path / "model")
    asked = []
    booster = loaded.estimator_.booster_
    original = booster.predict
    monkeypatch.setattr(booster, "predict", lambda *a, **k: asked.append(k) or original(*a, **k))
    loaded.predict_proba(frame.iloc[2400:])
    assert [k["num_threads"] for k in asked] == [1]
