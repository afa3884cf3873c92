"""Behavioural tests of a trained model: what it must and must not respond to.

- Invariance: flight and tail numbers are arbitrary identifiers; changing them must not
  move any prediction.
- Directional: worse weather at the origin before the cutoff, or higher trailing delay
  rates, must not lower the mean risk.
- Stability: small numeric perturbations (1 % of a feature's spread) move predictions
  little.

Each test returns a dict with ``name``, ``passed``, the measured ``value``, its
``threshold`` and a sentence; the promotion gate requires all of them to pass. The
column groups below follow the feature mart's naming; a fork with other features edits
them here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.features import DELAY_RATE_MARKERS, weather_direction

IDENTIFIER_COLUMNS = ("flight_number", "tailnum")
# Worse weather moves each weather feature (see ml.features: more precipitation, wind and
# gusts, less visibility) to at least as bad as the value only a tenth of the rows reach:
# a bad day seen in the data, not an invented one.
WORSE_QUANTILE = 0.9
INVARIANCE_TOLERANCE = 1e-9
DIRECTIONAL_TOLERANCE = 0.002
# A tenth of the width of the medium risk band (0.15-0.35) on average, half of it for
# the 1 % of flights that move most.
STABILITY_MEAN_LIMIT = 0.02
STABILITY_P99_LIMIT = 0.10


def _result(name: str, passed: bool, value: float, threshold: float, text: str) -> dict[str, Any]:
    return {
        "name": name,
        "passed": bool(passed),
        "value": float(value),
        "threshold": float(threshold),
        "description": text,
    }


def invariance_to_identifiers(model, frame: pd.DataFrame, random_state: int) -> dict[str, Any]:
    rng = np.random.default_rng(random_state)
    changed = frame.copy()
    for column in IDENTIFIER_COLUMNS:
        if column in changed:
            changed[column] = [f"X{rng.integers(10**6)}" for _ in range(len(changed))]
    shift = float(np.max(np.abs(model.predict_proba(changed) - model.predict_proba(frame))))
    return _result(
        "invariance: flight and tail numbers",
        shift <= INVARIANCE_TOLERANCE,
        shift,
        INVARIANCE_TOLERANCE,
        "largest change in p_delayed when every flight and tail number is replaced",
    )


def _directional(name: str, model, frame: pd.DataFrame, changed: pd.DataFrame, columns) -> dict:
    if not columns:
        return _result(name, True, 0.0, -DIRECTIONAL_TOLERANCE, "no such features in the model")
    delta = float(model.predict_proba(changed).mean() - model.predict_proba(frame).mean())
    return _result(
        name,
        delta >= -DIRECTIONAL_TOLERANCE,
        delta,
        -DIRECTIONAL_TOLERANCE,
        f"change in mean p_delayed after changing {len(columns)} feature(s): {', '.join(columns[:4])}"
        + (", ..." if len(columns) > 4 else ""),
    )


def worse_weather_raises_risk(model, frame: pd.DataFrame) -> dict[str, Any]:
    changed = frame.copy()
    touched = []
    for column in model.spec.numeric:
        direction = weather_direction(column)
        if direction == 0:
            continue
        values = pd.to_numeric(changed[column], errors="coerce").astype("float64")
        if direction > 0:
            bad = values.quantile(WORSE_QUANTILE)
            changed[column] = np.maximum(values.fillna(bad), bad)
        else:
            bad = values.quantile(1 - WORSE_QUANTILE)
            changed[column] = np.minimum(values.fillna(bad), bad)
        touched.append(column)
    return _directional(
        "directional: worse weather before the cutoff", model, frame, changed, touched
    )


def higher_delay_rates_raise_risk(model, frame: pd.DataFrame) -> dict[str, Any]:
    changed = frame.copy()
    touched = [c for c in model.spec.numeric if any(m in c for m in DELAY_RATE_MARKERS)]
    for column in touched:
        changed[column] = np.minimum(pd.to_numeric(changed[column], errors="coerce") + 0.10, 1.0)
    return _directional("directional: trailing delay rates +0.10", model, frame, changed, touched)


def stable_under_small_noise(model, frame: pd.DataFrame, random_state: int) -> dict[str, Any]:
    rng = np.random.default_rng(random_state)
    changed = frame.copy()
    for column in model.spec.numeric:
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        spread = float(np.nanstd(values)) if values.notna().any() else 0.0
        changed[column] = values + rng.normal(0.0, 0.01 * spread, len(values))
    shift = np.abs(model.predict_proba(changed) - model.predict_proba(frame))
    mean, p99 = float(shift.mean()), float(np.quantile(shift, 0.99))
    return _result(
        "stability: noise of 1% of each numeric feature's spread",
        mean <= STABILITY_MEAN_LIMIT and p99 <= STABILITY_P99_LIMIT,
        mean,
        STABILITY_MEAN_LIMIT,
        f"mean change in p_delayed {mean:.4f} (limit {STABILITY_MEAN_LIMIT}), "
        f"99th percentile {p99:.4f} (limit {STABILITY_P99_LIMIT})",
    )


def run_behaviour_tests(model, frame: pd.DataFrame, random_state: int) -> list[dict[str, Any]]:
    """Every behavioural test of ``model`` on the rows of ``frame``; ``random_state``
    (``settings.random_state``) seeds the replaced identifiers and the noise."""
    return [
        invariance_to_identifiers(model, frame, random_state),
        worse_weather_raises_risk(model, frame),
        higher_delay_rates_raise_risk(model, frame),
        stable_under_small_noise(model, frame, random_state),
    ]
