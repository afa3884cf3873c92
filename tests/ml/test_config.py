from pathlib import Path

import pytest

from ml.config import load_defaults, load_settings
from ml.errors import ConfigError


def test_defaults_come_from_the_yaml_file():
    settings = load_settings(env={})
    assert settings.train_window_days == 90
    assert settings.candidates == ("heuristic", "logistic", "lightgbm", "xgboost")
    assert settings.data_dir == Path("data").resolve()


def test_environment_overrides_each_key_with_its_type(tmp_path):
    env = {
        "ML_DATA_DIR": str(tmp_path),
        "ML_TRAIN_WINDOW_DAYS": "60",
        "ML_DRIFT_FAMILY_ALPHA": "0.01",
        "ML_CANDIDATES": "lightgbm",
    }
    settings = load_settings(env=env)
    assert settings.data_dir == tmp_path
    assert settings.train_window_days == 60
    assert settings.drift_family_alpha == pytest.approx(0.01)
    assert settings.candidates == ("lightgbm",)
    assert settings.paths.warehouse == tmp_path / "warehouse.duckdb"


def test_a_malformed_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="ML_TRAIN_WINDOW_DAYS"):
        load_settings(env={"ML_TRAIN_WINDOW_DAYS": "ninety"})


@pytest.mark.parametrize("variable", ["ML_CANDIDATES", "ML_BACKTEST_CANDIDATES"])
def test_a_candidate_list_naming_no_algorithm_is_refused_when_the_settings_are_read(variable):
    with pytest.raises(ConfigError, match=r"candidates \['catboost'\]: expected some of"):
        load_settings(env={variable: "lightgbm,catboost"})


def test_model_params_name_exactly_the_algorithms_the_models_package_knows():
    """The candidate check reads the keys of model_params; they are the classifiers."""
    from ml.models import CLASSIFIERS

    assert set(load_settings(env={}).model_params) == set(CLASSIFIERS)


def test_every_setting_has_its_default_in_the_yaml_file_and_nowhere_else():
    import dataclasses

    from ml.config import Settings, load_defaults

    fields = dataclasses.fields(Settings)
    assert {f.name for f in fields} == set(load_defaults())
    assert [f.name for f in fields if f.default is not dataclasses.MISSING] == []


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(env={}, window=3)


def test_validation_slice_must_fit_in_the_window():
    with pytest.raises(ConfigError, match="validation_days"):
        load_settings(env={}, train_window_days=10, validation_days=10)


def test_each_models_hyperparameters_come_from_the_yaml_file_read_only():
    params = load_settings(env={}).model_params
    assert set(params) == {"heuristic", "logistic", "lightgbm", "xgboost"}
    assert params["lightgbm"]["num_leaves"] == 15 and params["logistic"]["C"] == 1.0
    with pytest.raises(TypeError):
        params["lightgbm"]["num_leaves"] = 31  # frozen like every other setting


def test_one_hyperparameter_is_overridden_with_its_type_in_any_case():
    env = {
        "ML_MODEL_PARAMS__LIGHTGBM__NUM_LEAVES": "31",
        "ML_MODEL_PARAMS__LOGISTIC__C": "2",
        "ML_MODEL_PARAMS__LIGHTGBM__DETERMINISTIC": "no",
    }
    params = load_settings(env=env).model_params
    assert params["lightgbm"]["num_leaves"] == 31
    assert params["logistic"]["C"] == 2.0 and isinstance(params["logistic"]["C"], float)
    assert params["lightgbm"]["deterministic"] is False
    assert params["lightgbm"]["learning_rate"] == 0.05  # the others untouched


@pytest.mark.parametrize(
    "env",
    [
        {"ML_MODEL_PARAMS__LIGHTGBM__NUM_LEAVS": "31"},
        {"ML_MODEL_PARAMS__CATBOOST__DEPTH": "6"},
        {"ML_MODEL_PARAMS__LIGHTGBM__NUM_LEAVES": "many"},
        {"ML_MODEL_PARAMS__LIGHTGBM": "num_leaves=31"},
        {"ML_MODEL_PARAMS": "{}"},
    ],
)
def test_a_hyperparameter_override_that_names_nothing_or_is_malformed_names_the_variable(env):
    with pytest.raises(ConfigError, match=next(iter(env))):
        load_settings(env=env)


def test_feature_exclude_is_read_from_a_comma_separated_variable():
    settings = load_settings(env={"ML_FEATURE_EXCLUDE": "flight_number_*, day_of_year"})
    assert settings.feature_exclude == ("flight_number_*", "day_of_year")
    assert load_settings(env={}).feature_exclude == tuple(load_defaults()["feature_exclude"])


def test_promotion_approval_is_auto_or_manual():
    assert load_settings(env={}).promotion_approval == "auto"
    assert load_settings(env={"ML_PROMOTION_APPROVAL": "manual"}).promotion_approval == "manual"
    with pytest.raises(ConfigError, match="promotion_approval 'sometimes': expected one of"):
        load_settings(env={"ML_PROMOTION_APPROVAL": "sometimes"})
