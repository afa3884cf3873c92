"""Predict: score every flight scheduled on a day and publish that day's partition.

Rows come from the champion and, in shadow, the challenger (``model_role``). If the
champion cannot be loaded (none registered; unreadable aliases or metadata; an artifact
that fails its SHA-256 check or its parser), the heuristic baseline scores the day
instead, its rows marked ``model_version = 'heuristic-fallback'``, and a warning naming
the file is logged: a day is never left without predictions. Each row's ``risk_band``
comes from its model's own bands (:mod:`ml.risk`), fitted on its holdout. The partition
is written whole and atomically, so re-running a day replaces its rows and never
duplicates them.

A registered model never scores a day it learned from (:func:`ml.registry.load_model`):
if the champion did (a day before its as-of date, run again or backfilled), the step
fails with one line and the day's published rows stay as they are; a challenger that did
is left out of the day's shadow rows, with a warning naming the day and the version.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.config import Settings
from ml.dates import cutoff_at
from ml.errors import LeakageError
from ml.features import (
    DISPLAY_COLUMNS,
    HEURISTIC_COLUMN,
    infer_spec,
    load_features,
    row_fingerprints,
)
from ml.io import STALE_SECONDS, remove_stale_temporaries, write_parquet
from ml.risk import RiskBands, bands_for, settings_bands

if TYPE_CHECKING:
    from ml.models import CalibratedClassifier

log = logging.getLogger(__name__)

FALLBACK_VERSION = "heuristic-fallback"
TOP_REASONS = 3

REASON_TYPE = pa.list_(pa.struct([("feature", pa.string()), ("contribution", pa.float64())]))
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("flight_id", pa.string()),
        ("carrier", pa.string()),
        ("flight", pa.int32()),
        ("tailnum", pa.string()),
        ("origin", pa.string()),
        ("dest", pa.string()),
        ("sched_dep_at", pa.timestamp("us", tz="UTC")),
        ("p_delayed", pa.float64()),
        ("risk_band", pa.string()),
        ("model_version", pa.string()),
        ("model_role", pa.string()),
        ("top_reasons", REASON_TYPE),
        ("predicted_at", pa.timestamp("us", tz="UTC")),
        ("feature_fingerprint", pa.string()),
    ]
)


@dataclass(frozen=True)
class PredictionResult:
    day: dt.date
    rows: int
    versions: dict[str, str]
    path: str
    # role -> the calibration revision that scored it (a date, or "training")
    calibrations: dict[str, str] = field(default_factory=dict)


def top_reasons(
    contributions: np.ndarray, names: list[str], k: int = TOP_REASONS
) -> list[list[dict]]:
    """The ``k`` features with the largest absolute contribution, per row, signed."""
    order = np.argsort(-np.abs(contributions), axis=1)[:, :k]
    return [
        [{"feature": names[j], "contribution": float(contributions[i, j])} for j in row]
        for i, row in enumerate(order)
    ]


def _score(
    settings: Settings,
    frame: pd.DataFrame,
    role: str,
    version: str,
    model: CalibratedClassifier,
    metadata: dict[str, Any],
) -> pd.DataFrame:
    p = model.predict_proba(frame)
    reasons = top_reasons(model.contributions(frame), model.spec.columns)
    return _rows(
        frame,
        p,
        reasons,
        version,
        role,
        row_fingerprints(frame, model.spec),
        bands_for(settings, metadata),
    )


def _fallback(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    p = frame[HEURISTIC_COLUMN].to_numpy(dtype=float)
    reasons = [[{"feature": HEURISTIC_COLUMN, "contribution": float(v)}] for v in p]
    return _rows(
        frame,
        p,
        reasons,
        FALLBACK_VERSION,
        "champion",
        row_fingerprints(frame, infer_spec(frame)),
        settings_bands(settings),
    )


def _rows(
    frame: pd.DataFrame,
    p: np.ndarray,
    reasons: list,
    version: str,
    role: str,
    fingerprints: pd.Series,
    bands: RiskBands,
) -> pd.DataFrame:
    day = frame["flight_date"].iloc[0]
    out = (
        frame[list(DISPLAY_COLUMNS)]
        .drop(columns=["flight_date"])
        .rename(columns={"flight_number": "flight"})
    )
    out["sched_dep_at"] = pd.to_datetime(out["sched_dep_at"], utc=True)
    out["p_delayed"] = np.clip(p, 0.0, 1.0)
    out["risk_band"] = bands.assign(out["p_delayed"].to_numpy())
    out["model_version"] = version
    out["model_role"] = role
    out["top_reasons"] = reasons
    out["predicted_at"] = pd.Timestamp(cutoff_at(day)).tz_convert("UTC")
    out["feature_fingerprint"] = fingerprints.to_numpy()
    return out.reset_index(drop=True)


def _load_models(settings: Settings) -> tuple[dict[str, tuple[str, Any, dict]], dict[str, str]]:
    """The serving roles' models, each loaded once: role to (version, model, metadata),
    and role to why it cannot be used (a missing champion, an unreadable alias file or
    a version that fails to load)."""
    from ml import registry

    try:
        aliases = registry.read_aliases(settings)
    except registry.RegistryError as exc:  # no alias can be trusted: score with the heuristic
        return {}, {"champion": str(exc)}
    loaded, unusable = {}, {}
    if aliases.get("champion") is None:
        unusable["champion"] = (
            "no model is champion (none has passed the promotion gate, or the champion was "
            "withdrawn): the heuristic baseline serves"
            if registry.list_versions(settings)
            else "no model is registered (run `ml train --as-of D`)"
        )
    for role in registry.ALIASES:
        version = aliases.get(role)
        if version is None or (role == "challenger" and version == aliases.get("champion")):
            continue
        try:
            loaded[role] = (version, *registry.load_model(settings, version))
        except registry.RegistryError as exc:
            unusable[role] = str(exc) if role == "champion" else f"{version} skipped: {exc}"
    return loaded, unusable


def predict(settings: Settings, day: dt.date) -> PredictionResult:
    """Score the flights of ``day`` with the champion (and challenger) and publish them."""
    from ml.recalibration import apply_map, map_in_force
    from ml.warehouse import refresh_catalog

    loaded, unusable = _load_models(settings)
    calibrations = {}
    for role, (version, model, _) in loaded.items():
        calibration = map_in_force(settings, version, model, day)
        apply_map(model, calibration)
        calibrations[role] = calibration.revision
    oracle = any(meta.get("uses_oracle_forecast") for _, _, meta in loaded.values())
    frame = load_features(settings, day, day, oracle=oracle)
    parts, versions = [], {}
    if "champion" in loaded:
        version, model, metadata = loaded["champion"]
        try:
            parts.append(_score(settings, frame, "champion", version, model, metadata))
        except LeakageError as exc:
            raise LeakageError(
                f"predict {day}: champion {exc}; the day's published predictions are "
                "unchanged (roll back to a version trained before it, or score later days)"
            ) from exc
        versions["champion"] = version
    else:
        log.warning("scoring %s with the heuristic baseline: %s", day, unusable["champion"])
        parts.append(_fallback(settings, frame))
        versions["champion"] = FALLBACK_VERSION
    if "challenger" in loaded:
        version, model, metadata = loaded["challenger"]
        try:
            parts.append(_score(settings, frame, "challenger", version, model, metadata))
            versions["challenger"] = version
        except LeakageError as exc:
            log.warning("no shadow rows on %s: challenger %s", day, exc)
    elif "challenger" in unusable:
        log.warning("challenger %s", unusable["challenger"])
    rows = pd.concat(parts, ignore_index=True)
    table = pa.Table.from_pandas(rows, schema=PREDICTIONS_SCHEMA, preserve_index=False)
    destination = settings.paths.predictions_partition(day)
    remove_stale_temporaries(destination.parent, recursive=False, older_than=STALE_SECONDS)
    path = write_parquet(table, destination)
    settings.paths.superseded_predictions(day).unlink(missing_ok=True)  # scored from today's inputs
    refresh_catalog(settings)
    log.info(
        "predictions for %s: %d rows (%s; calibration %s) -> %s",
        day,
        len(rows),
        versions,
        calibrations,
        path,
    )
    return PredictionResult(
        day=day, rows=len(rows), versions=versions, path=str(path), calibrations=calibrations
    )
