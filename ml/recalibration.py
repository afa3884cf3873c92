"""Daily recalibration: the champion's Platt map refitted on the labels matured since.

Every label of day M is known at the cutoff of M + ``label_maturity_days``, so each
morning D the system knows how well the champion's probabilities of the days before
turned out. :func:`recalibrate` refits the champion's Platt scaling (one slope and one
intercept on the log-odds of the model's own, uncalibrated score) on the trailing
``recalibration_days`` matured days, holding back the latest one,
D - ``label_maturity_days``: the revision is **used** only if its log loss on that
held-back day is no worse than the map in force's. Only days the version was never fitted
on count: its holdout (the 14 days before its as-of date, which the boosted models only
stopped early on) and the days it has served since; with fewer than
``recalibration_min_rows`` such flights, the training map stays.

A revision is a file of the version, ``models/<version>/calibration/<D>.json`` (the
model and its training map are untouched): its map, the days it was fitted on, the
log loss before and after on them and on the held-back day, and whether it is used.
Prediction for D applies the latest used revision dated D or earlier
(:func:`map_in_force`). Each revision written is also an entry of the audit log and a
row of the version's model card. Re-running D writes the same files, and no second entry.

Revisions and the model card rendered with them are written through the registry
(:func:`ml.registry.write_version_files`), which records each file's SHA-256 with it under
its lock. A revision file that is unreadable, fails its checksum (edited by hand, cut
short) or was never recorded is skipped with a warning that names it: the map falls back
to the revision before it, or to the training map.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.config import Settings
from ml.errors import RegistryError
from ml.features import LABEL, labels_known_before, load_features
from ml.io import json_text
from ml.metrics import log_loss, logit, sigmoid
from ml.models.calibration import platt
from ml.registry import (
    REVISIONS_DIR,
    append_event,
    audit_log,
    get_alias,
    last_seen_day,
    load_metrics,
    load_model,
    read_version_file,
    write_version_files,
)

log = logging.getLogger(__name__)

TRAINING = "training"
RECALIBRATION = "recalibration"  # the audit log's event


@dataclass(frozen=True)
class CalibrationMap:
    """``p = sigmoid(slope * logit(p_model) + intercept)``; ``revision`` is the date of the
    revision it comes from, or ``"training"``."""

    slope: float
    intercept: float
    revision: str = TRAINING

    def apply(self, uncalibrated: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * logit(uncalibrated) + self.intercept)


def revisions_dir(settings: Settings, version: str) -> Path:
    return settings.paths.model_version(version) / REVISIONS_DIR


def revisions(settings: Settings, version: str) -> list[dict[str, Any]]:
    """Every readable revision of ``version``, oldest first. One that is unreadable, that
    fails its recorded checksum or that the registry never recorded (written by hand) is
    left out with a warning that names its file and the check: the map falls back to the
    revision before it, or to the training map."""
    folder = revisions_dir(settings, version)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("????-??-??.json")):
        try:
            text = read_version_file(settings, version, f"{REVISIONS_DIR}/{path.name}")
            revision = json.loads(text)
            dt.date.fromisoformat(revision["as_of"])
            float(revision["slope"]), float(revision["intercept"]), bool(revision["used"])
        except RegistryError as exc:
            log.warning("calibration revision skipped: %s", exc)
            continue
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable calibration revision skipped (%s)", path, exc)
            continue
        found.append(revision)
    return found


def training_map(model) -> CalibrationMap:
    return CalibrationMap(float(model.slope_), float(model.intercept_))


def map_in_force(settings: Settings, version: str, model, day: dt.date) -> CalibrationMap:
    """The map that scores ``day``: the latest used revision dated ``day`` or earlier, or
    the training map (always, when recalibration is off)."""
    if settings.recalibration_enabled:
        for revision in reversed(revisions(settings, version)):
            if revision["used"] and revision["as_of"] <= day.isoformat():
                return CalibrationMap(
                    float(revision["slope"]), float(revision["intercept"]), revision["as_of"]
                )
    return training_map(model)


def apply_map(model, calibration: CalibrationMap):
    """``model`` (a :class:`~ml.models.CalibratedClassifier`) scoring with ``calibration``."""
    model.slope_, model.intercept_ = calibration.slope, calibration.intercept
    return model


def propose(
    uncalibrated: np.ndarray,
    y: np.ndarray,
    held_back: np.ndarray,
    day: dt.date,
    before: CalibrationMap,
    fitted_on: tuple[dt.date, dt.date],
) -> dict[str, Any]:
    """The revision as of ``day``: Platt scaling fitted on the rows not ``held_back``, its
    log loss beside ``before``'s on them and on the held-back rows, and whether it is used
    (no worse on the held-back rows). ``fitted_on`` names the fitted days."""
    fitted = ~held_back
    slope, intercept = platt(logit(uncalibrated[fitted]), y[fitted])
    after = CalibrationMap(slope, intercept, day.isoformat())
    losses = {
        part: {
            "before": round(log_loss(y[rows], before.apply(uncalibrated[rows])), 6),
            "after": round(log_loss(y[rows], after.apply(uncalibrated[rows])), 6),
        }
        for part, rows in (("fitted", fitted), ("held_back", held_back))
    }
    return {
        "as_of": day.isoformat(),
        "method": "platt",
        "slope": round(slope, 10),
        "intercept": round(intercept, 10),
        "fitted_on": {
            "start": fitted_on[0].isoformat(),
            "end": fitted_on[1].isoformat(),
            "rows": int(fitted.sum()),
        },
        "held_back": {
            "day": (fitted_on[1] + dt.timedelta(days=1)).isoformat(),
            "rows": int(held_back.sum()),
        },
        "replaces": before.revision,
        "log_loss": losses,
        "used": losses["held_back"]["after"] <= losses["held_back"]["before"],
    }


def matured_window(
    settings: Settings, day: dt.date, not_before: dt.date
) -> tuple[dt.date, dt.date]:
    """The days whose labels a revision as of ``day`` learns from, the held-back day last:
    the trailing ``recalibration_days`` before ``day - label_maturity_days`` and that day,
    none before ``not_before`` (the model's holdout: it was never fitted on those days)."""
    held_back = day - dt.timedelta(days=settings.label_maturity_days)
    return max(held_back - dt.timedelta(days=settings.recalibration_days), not_before), held_back


def revise(
    settings: Settings,
    day: dt.date,
    window: tuple[dt.date, dt.date],
    before: CalibrationMap,
    dates: np.ndarray,
    y: np.ndarray,
    uncalibrated: Callable[[], np.ndarray],
) -> tuple[dict[str, Any] | None, str | None]:
    """The revision as of ``day`` (:func:`propose`) from the flights of ``window`` (see
    :func:`matured_window`) whose labels were known by ``day``'s cutoff, given by their
    dates and labels and, called only if they are enough, their uncalibrated scores; or
    None and why not. :func:`recalibrate` calls it, and so does the backtest's replay."""
    first, held_back = window
    held = dates == held_back
    if (~held).sum() < settings.recalibration_min_rows or not held.any():
        return None, (
            f"{int((~held).sum())} matured flights of {first}.."
            f"{held_back - dt.timedelta(days=1)} and {int(held.sum())} of {held_back}: "
            f"too few to refit (recalibration_min_rows {settings.recalibration_min_rows})"
        )
    revision = propose(
        uncalibrated(), y, held, day, before, (first, held_back - dt.timedelta(days=1))
    )
    return revision, None


def recalibrate(settings: Settings, day: dt.date) -> dict[str, Any]:
    """Refit the champion's calibration as of ``day`` from the labels matured by its cutoff.

    Returns a summary: ``revision`` (None when nothing was fitted, with ``reason``),
    ``used``, the log losses and the map in force for ``day``. Without a usable champion
    nothing is fitted: prediction then falls back to the heuristic, and says so.
    """
    summary: dict[str, Any] = {"day": day.isoformat(), "version": None, "revision": None}
    try:
        version = get_alias(settings, "champion")
        if version is None:
            return {**summary, "reason": "no model is champion: the heuristic baseline serves"}
        summary["version"] = version
        if not settings.recalibration_enabled:
            return {**summary, "reason": "recalibration is off (ML_RECALIBRATION_ENABLED)"}
        model, metadata = load_model(settings, version)
    except RegistryError as exc:
        log.warning("no recalibration as of %s: %s", day, exc)
        return {**summary, "reason": str(exc)}
    if day <= (last_seen := last_seen_day(metadata)):
        return {
            **summary,
            "reason": f"{version} learned from flights up to {last_seen}: no revision for a "
            "day it cannot score",
        }
    holdout = dt.date.fromisoformat(metadata["window"]["validation_start"])
    first, held_back = matured_window(settings, day, holdout)
    if first >= held_back:
        return {
            **summary,
            "reason": f"{version} has no matured day unseen in its fit before {held_back}",
        }
    frame = load_features(
        settings, first, held_back, oracle=bool(metadata.get("uses_oracle_forecast"))
    )
    frame = frame[labels_known_before(frame, day).to_numpy()]
    before = map_in_force(settings, version, model, day - dt.timedelta(days=1))
    revision, reason = revise(
        settings,
        day,
        (first, held_back),
        before,
        frame["flight_date"].to_numpy(),
        frame[LABEL].astype(int).to_numpy(),
        lambda: model.predict_uncalibrated(frame),
    )
    if revision is None:
        return {**summary, "reason": reason}
    _store(settings, version, metadata, revision)
    return {
        **summary,
        "revision": revision["as_of"],
        "used": revision["used"],
        "log_loss": revision["log_loss"],
        "in_force": revision["as_of"] if revision["used"] else before.revision,
    }


def _store(
    settings: Settings, version: str, metadata: dict[str, Any], revision: dict[str, Any]
) -> None:
    """Write the revision and the version's model card with it (through the registry,
    which records their checksums after them), then its audit entry unless the log has
    it: a run killed in between completes them on its retry, and a re-run adds nothing."""
    name = f"{REVISIONS_DIR}/{revision['as_of']}.json"
    write_version_files(
        settings,
        version,
        {name: json_text(revision), **_cards(settings, version, metadata, revision)},
    )
    losses = revision["log_loss"]
    verdict = (
        "used"
        if revision["used"]
        else f"not used: worse on the held-back day than {revision['replaces']}"
    )
    entry = {
        "event": RECALIBRATION,
        "alias": "champion",
        "from": f"{version} calibration {revision['replaces']}",
        "to": f"{version} calibration {revision['as_of']}",
        "reason": (
            f"Platt refitted on {revision['fitted_on']['start']}..{revision['fitted_on']['end']} "
            f"({revision['fitted_on']['rows']} flights): log loss "
            f"{losses['fitted']['before']:.4f} -> {losses['fitted']['after']:.4f}; held-back "
            f"{revision['held_back']['day']}: {losses['held_back']['before']:.4f} -> "
            f"{losses['held_back']['after']:.4f}; {verdict}"
        ),
    }
    recorded = ({k: e.get(k) for k in entry} for e in audit_log(settings))
    if entry not in recorded:
        append_event(settings, entry)
        log.info("calibration revision %s of %s: %s", revision["as_of"], version, verdict)


def _cards(
    settings: Settings, version: str, metadata: dict[str, Any], revision: dict[str, Any]
) -> dict[str, str]:
    """The version's model card (file name to text), rendered again with its revisions,
    ``revision`` among them."""
    from ml.model_card import card_files

    others = [r for r in revisions(settings, version) if r["as_of"] != revision["as_of"]]
    shown = sorted([*others, revision], key=lambda r: r["as_of"])
    return card_files(metadata, load_metrics(settings, version), shown)
