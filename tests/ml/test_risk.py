"""Risk bands fitted on a model's holdout by precision targets (ml.risk)."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from ml import registry
from ml.models import load_classifier
from ml.predict import FALLBACK_VERSION, predict
from ml.queries import band_definitions
from ml.risk import SETTINGS_SOURCE, bands_for, fit_bands, from_thresholds
from tests.conftest import AS_OF, make_settings, raw_labels

DAY = AS_OF + dt.timedelta(days=1)


def _cuts(p, y, descending):
    """Every (size, delay rate) of a set of the riskiest (or safest) flights that does not
    split a score, by brute force."""
    out = []
    for t in np.unique(p):
        rows = p >= t if descending else p <= t
        out.append((int(rows.sum()), float(y[rows].mean())))
    return out


def test_the_bands_are_the_largest_sets_that_meet_their_targets():
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(2, 5, 5000), 3)  # rounded: many ties
    y = (rng.random(5000) < p).astype(int)
    bands = fit_bands(y, p, high_precision=0.5, low_rate=0.1, min_flights=100)
    high = p >= bands["high_min"]
    low = p < bands["low_max"]
    assert y[high].mean() >= 0.5 and y[low].mean() <= 0.1
    assert high.sum() >= 100 and low.sum() >= 100
    best_high = max(n for n, rate in _cuts(p, y, True) if rate >= 0.5 and n >= 100)
    best_low = max(n for n, rate in _cuts(p, y, False) if rate <= 0.1 and n >= 100)
    assert high.sum() == best_high and low.sum() == best_low
    # no score is split between two bands
    assigned = from_thresholds(bands["low_max"], bands["high_min"], "test").assign(p)
    assert pd.Series(assigned).groupby(p).nunique().max() == 1
    held = bands["holdout"]
    assert sum(b["flights"] for b in held.values()) == len(p)
    assert held["high"]["delay_rate"] == pytest.approx(y[high].mean())
    assert held["low"]["share"] == pytest.approx(low.mean())


def test_a_band_no_set_qualifies_for_stays_empty():
    rng = np.random.default_rng(4)
    p = rng.uniform(0.3, 0.45, 2000)
    y = (rng.random(2000) < 0.35).astype(int)  # nothing safe, nothing sure
    bands = fit_bands(y, p, high_precision=0.6, low_rate=0.1, min_flights=200)
    assert bands["low_max"] is None and bands["high_min"] is None
    assigned = from_thresholds(None, None, "test").assign(np.linspace(0, 1, 11))
    assert set(assigned) == {"medium"}
    assert bands["holdout"]["high"] == {
        "flights": 0,
        "share": 0.0,
        "delay_rate": None,
        "mean_p": None,
    }


def test_a_version_without_bands_or_with_broken_ones_uses_the_settings(tmp_path):
    settings = make_settings(tmp_path)
    for metadata in (None, {"version": "v"}, {"version": "v", "risk_bands": {"low_max": "x"}}):
        bands = bands_for(settings, metadata)
        assert bands.source == SETTINGS_SOURCE
        assert (bands.low_max, bands.high_min) == (
            settings.risk_band_low_max,
            settings.risk_band_high_min,
        )
    broken = {"version": "v", "risk_bands": {"low_max": "x", "high_min": 0.4}}
    assert bands_for(settings, broken).source == SETTINGS_SOURCE


def test_training_fits_the_bands_on_the_holdout_and_prediction_applies_them(
    trained_copy, package_source
):
    settings = make_settings(trained_copy)
    version = registry.get_alias(settings, "champion")
    _, metadata = registry.load_model(settings, version)
    # training fitted the bands on the holdout: the model as training held it, in memory
    # (the registry's copy refuses the days it learned from)
    model = load_classifier(registry.version_dir(settings, version))
    stored = metadata["risk_bands"]
    assert stored["targets"]["high_precision"] == settings.risk_high_precision
    # recomputed from the package's own files: the holdout's labels and the model's scores
    from ml.features import load_features

    window = metadata["window"]
    holdout = load_features(
        settings,
        dt.date.fromisoformat(window["validation_start"]),
        dt.date.fromisoformat(window["validation_end"]),
    )
    holdout = holdout[holdout["label_known_date"] < AS_OF]
    labels = raw_labels(
        package_source,
        dt.date.fromisoformat(window["validation_start"]),
        dt.date.fromisoformat(window["validation_end"]),
    ).set_index("flight_id")
    y = labels.loc[holdout["flight_id"], "delayed"].to_numpy()
    p = model.predict_proba(holdout)
    assert stored == json.loads(
        json.dumps(
            fit_bands(
                y,
                p,
                settings.risk_high_precision,
                settings.risk_low_delay_rate,
                settings.risk_band_min_flights,
            )
        )
    )
    if stored["high_min"] is not None:
        assert y[p >= stored["high_min"]].mean() >= settings.risk_high_precision

    rows = pd.read_parquet(predict(settings, DAY).path)
    champion = rows[rows["model_role"] == "champion"]
    expected = from_thresholds(stored["low_max"], stored["high_min"], "").assign(
        champion["p_delayed"].to_numpy()
    )
    assert (champion["risk_band"].to_numpy() == expected).all()
    (definition,) = band_definitions(settings, [version])
    assert definition["source"] == f"holdout of {version}"
    assert definition["holdout"] == stored["holdout"]
    card = (registry.version_dir(settings, version) / "model_card.md").read_text()
    assert "Risk bands: high holds flights of which at least 50%" in card

    # the heuristic fallback keeps the settings' fixed thresholds, and says so
    (fallback,) = band_definitions(settings, [FALLBACK_VERSION])
    assert fallback["source"] == SETTINGS_SOURCE and fallback["holdout"] is None


def test_the_targets_are_settings_checked_when_read(tmp_path):
    from ml.errors import ConfigError

    with pytest.raises(ConfigError, match="risk_low_delay_rate and risk_high_precision"):
        make_settings(tmp_path, risk_low_delay_rate=0.6, risk_high_precision=0.5)
    settings = make_settings(tmp_path, risk_high_precision=0.7)
    assert settings.risk_high_precision == 0.7
