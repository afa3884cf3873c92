"""Train: stateless retraining on a trailing window of matured labels before the as-of date.

The window is ``[as_of - train_window_days, as_of - 1]``, and only the labels known before
the as-of date are used: a late flight of the day before lands after midnight, so its label
(``label_known_date``) is not known at the cutoff and is left out. The window's last
``validation_days`` are the holdout. Each candidate (heuristic, logistic regression, LightGBM, XGBoost) is
fitted on the days before it, the boosted ones stopping early on it, then calibrated on
out-of-fold predictions over the fit period; the lowest holdout log loss wins. The winner
is assessed on the holdout (metrics beside the baselines, slices, behavioural tests,
importance), given its risk bands (:mod:`ml.risk`, fitted on the holdout), registered with its model card, and goes through the promotion gate: it
becomes champion or, if any check fails, challenger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml.config import Settings
from ml.dates import parse_date
from ml.errors import ConfigError, DataError, LeakageError
from ml.evaluate import assess, gain_importance, permutation_importance
from ml.features import (
    LABEL,
    ORACLE_LABEL,
    check_features_read_before_their_date,
    check_labels_known_before,
    frame_fingerprint,
    infer_spec,
    labels_known_before,
    load_features,
    rows_between,
)
from ml.metrics import binary_metrics
from ml.model_card import card_files
from ml.models import BoostedClassifier, CalibratedClassifier, check_algorithms, make_classifier
from ml.models.backend import describe, training_backend
from ml.risk import fit_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingWindow:
    """The days a model learns from; ``fit`` and ``validation`` never overlap."""

    as_of: dt.date
    fit_start: dt.date
    fit_end: dt.date
    validation_start: dt.date
    validation_end: dt.date

    @classmethod
    def before(cls, as_of: dt.date, window_days: int, validation_days: int) -> TrainingWindow:
        return cls(
            as_of=as_of,
            fit_start=as_of - dt.timedelta(days=window_days),
            fit_end=as_of - dt.timedelta(days=validation_days + 1),
            validation_start=as_of - dt.timedelta(days=validation_days),
            validation_end=as_of - dt.timedelta(days=1),
        )

    def to_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class TrainingResult:
    version: str
    algorithm: str
    metrics: dict[str, Any]
    became_champion: bool
    gate_reason: str
    awaiting_approval: bool = False


@dataclass(frozen=True)
class Candidate:
    """A fitted, calibrated candidate and its scores on the holdout."""

    model: CalibratedClassifier
    scores: dict[str, float]
    uncalibrated: dict[str, float]
    seconds: float


def check_splits(window: TrainingWindow, fit: pd.DataFrame, validation: pd.DataFrame) -> None:
    """The leakage checks every training run passes before it fits anything.

    - the fit period ends before the validation period starts, and both before the as-of date;
    - no flight is in both splits;
    - no label was known only on or after the as-of date (``label_known_date``);
    - no feature of any row read a day on or after that row's own date (``latest_source_date``).

    Raises:
        LeakageError: naming the check that failed.
    """
    if not window.fit_end < window.validation_start <= window.validation_end < window.as_of:
        raise LeakageError(f"training window overlaps itself or the as-of date: {window.to_dict()}")
    if not fit.empty and fit["flight_date"].max() > window.fit_end:
        raise LeakageError(f"fit rows after {window.fit_end} (check: fit period)")
    if not validation.empty and (
        validation["flight_date"].min() < window.validation_start
        or validation["flight_date"].max() >= window.as_of
    ):
        raise LeakageError(
            f"validation rows outside {window.validation_start}..{window.validation_end}"
        )
    shared = set(fit["flight_id"]) & set(validation["flight_id"])
    if shared:
        raise LeakageError(
            f"{len(shared)} flight(s) in both fit and validation, e.g. {sorted(shared)[:3]}"
        )
    for name, split in (("fit", fit), ("validation", validation)):
        check_labels_known_before(split, window.as_of, name)
        check_features_read_before_their_date(split, name)


def split_window(
    settings: Settings,
    as_of: dt.date,
    window_days: int | None = None,
    history: pd.DataFrame | None = None,
) -> tuple[TrainingWindow, pd.DataFrame, pd.DataFrame]:
    """The training window before ``as_of`` and its fit and holdout rows, leakage-checked.

    Args:
        settings: Paths, window and holdout lengths.
        as_of: The cutoff: nothing known on or after it is used.
        window_days: Override ``settings.train_window_days``.
        history: Feature rows already loaded (sorted by flight_date) that cover the window;
            the backtest loads the mart once and slices it here. None reads the mart.

    Raises:
        DataError: A period has no rows, or the fit period has one class only.
        LeakageError: See :func:`check_splits`.
    """
    window = TrainingWindow.before(
        as_of, window_days or settings.train_window_days, settings.validation_days
    )
    if history is None:
        frame = load_features(
            settings, window.fit_start, window.validation_end, oracle=settings.use_oracle_forecast
        )
    else:
        frame = rows_between(history, window.fit_start, window.validation_end)
    frame = frame[labels_known_before(frame, as_of)]
    fit = frame[frame["flight_date"] <= window.fit_end]
    validation = frame[frame["flight_date"] >= window.validation_start]
    check_splits(window, fit, validation)
    if fit.empty or validation.empty:
        raise DataError(
            f"training window {window.fit_start}..{window.validation_end}: no rows in the fit "
            f"({len(fit)}) or validation ({len(validation)}) period; ingest and transform that history first"
        )
    if fit[LABEL].nunique() < 2:
        raise DataError(
            f"training window {window.fit_start}..{window.fit_end}: the label has one class only"
        )
    return window, fit, validation


def fit_candidate(
    settings: Settings,
    algorithm: str,
    fit: pd.DataFrame,
    validation: pd.DataFrame,
    params: dict[str, Any] | None = None,
) -> Candidate:
    """Fit one candidate, calibrate it, and score it on the holdout."""
    started = time.perf_counter()
    y_fit = fit[LABEL].astype(int).to_numpy()
    y_val = validation[LABEL].astype(int).to_numpy()
    model = CalibratedClassifier(
        make_classifier(settings, algorithm, infer_spec(fit, settings.feature_exclude), params),
        n_folds=settings.calibration_folds,
    ).fit(fit, y_fit, validation, y_val)
    seconds = time.perf_counter() - started
    threshold = settings.operating_threshold
    return Candidate(
        model=model,
        scores=binary_metrics(y_val, model.predict_proba(validation), threshold),
        uncalibrated=binary_metrics(y_val, model.predict_uncalibrated(validation), threshold),
        seconds=seconds,
    )


def select_model(
    settings: Settings,
    fit: pd.DataFrame,
    validation: pd.DataFrame,
    candidates: tuple[str, ...] | list[str] | None = None,
    progress: Callable[[str], None] = log.info,
) -> tuple[str, dict[str, Candidate]]:
    """Fit every candidate (``settings.candidates`` unless given) and pick the one with the
    lowest holdout log loss; returns its name and every fitted candidate. ``progress`` gets
    a line per candidate as it is fitted (the log by default)."""
    candidates = tuple(candidates or settings.candidates)
    check_algorithms("candidates", candidates)
    fitted: dict[str, Candidate] = {}
    for number, algorithm in enumerate(candidates, 1):
        candidate = fit_candidate(settings, algorithm, fit, validation)
        scores = candidate.scores
        progress(
            f"candidate {number}/{len(candidates)} {algorithm}: holdout log loss "
            f"{scores['log_loss']:.4f}, AUC {scores['auc']:.4f}, ECE {scores['ece']:.4f} "
            f"({candidate.seconds:.1f} s)"
        )
        fitted[algorithm] = candidate
    best = min(fitted, key=lambda name: fitted[name].scores["log_loss"])
    return best, fitted


def _version(
    as_of: dt.date, model: CalibratedClassifier, window, fingerprint: str, oracle: bool
) -> str:
    config = json.dumps(
        {
            "params": model.estimator_.resolved_params(),
            "window": window.to_dict(),
            "spec": model.spec.to_dict(),
            "calibration": [round(model.slope_, 10), round(model.intercept_, 10)],
        },
        sort_keys=True,
    )
    digest = hashlib.sha256((fingerprint + config).encode()).hexdigest()[:8]
    return f"{as_of:%Y%m%d}-{model.algorithm}{'-oracle' if oracle else ''}-{digest}"


def train(
    settings: Settings,
    as_of: dt.date,
    progress: Callable[[str], None] = log.info,
    approval: str = "auto",
) -> TrainingResult:
    """Train every candidate as of ``as_of``, register the best, and run the promotion gate.
    ``progress`` gets a line per candidate as it is fitted (the log by default). With
    ``approval="manual"``, a best that passed the gate stays challenger, awaiting a
    person's approval (:func:`ml.registry.record_approval`).

    Raises:
        DataError: The window has no rows, or only one class.
        LeakageError: The splits would leak (see :func:`check_splits`).
    """
    from ml import gate, registry
    from ml.drift import reference_profile

    oracle = settings.use_oracle_forecast
    if oracle:
        log.warning("training with the %s", ORACLE_LABEL)
    window, fit, validation = split_window(settings, as_of)
    y_fit = fit[LABEL].astype(int).to_numpy()
    prior = float(y_fit.mean())

    with training_backend(settings):
        trained_on = describe(settings)
        progress(
            f"training as of {as_of}: {len(settings.candidates)} candidates on "
            f"{window.fit_start}..{window.validation_end} ({len(fit)} rows to fit"
            + (
                f"; boosted ones on Dask, {trained_on['workers']} workers)"
                if "workers" in trained_on
                else ")"
            )
        )
        best, candidates = select_model(settings, fit, validation, progress=progress)
    model = candidates[best].model

    holdout = assess(settings, model, validation, prior)
    y_val = validation[LABEL].astype(int).to_numpy()
    bands = fit_for(settings, y_val, model.predict_proba(validation))
    importance = {
        "gain": gain_importance(model),
        "permutation": permutation_importance(model, validation, y_val, settings.random_state),
    }
    fingerprint = frame_fingerprint(
        pd.concat([fit, validation])[[*model.spec.columns, LABEL, "flight_id"]]
    )
    version = _version(as_of, model, window, fingerprint, oracle)
    metadata = {
        "version": version,
        "algorithm": best,
        "as_of": as_of.isoformat(),
        "window": window.to_dict(),
        "input_fingerprint": fingerprint,
        "input_partitions": {
            "mart": "flight_features" + ("+flight_oracle_weather" if oracle else ""),
            "first": window.fit_start.isoformat(),
            "last": window.validation_end.isoformat(),
        },
        "features": model.spec.to_dict(),
        "feature_types": {
            **{c: "numeric" for c in model.spec.numeric},
            **{c: "categorical" for c in model.spec.categorical},
        },
        "params": model.estimator_.resolved_params(),
        "calibration": {
            "method": "platt",
            "slope": model.slope_,
            "intercept": model.intercept_,
            "fitted_on": f"out-of-fold predictions over the fit period, {settings.calibration_folds} blocks of days",
        },
        "best_iteration": getattr(model.estimator_, "best_iteration_", None),
        # the cluster fits the boosted candidates only
        "trained_on": trained_on
        if isinstance(model.estimator_, BoostedClassifier)
        else {"backend": "local"},
        "risk_bands": bands,
        "uses_oracle_forecast": oracle,
        **({"oracle_note": ORACLE_LABEL} if oracle else {}),
    }
    decision = gate.decide(settings, metadata, holdout, validation, model)
    metrics = {
        "prior_rate": prior,
        "rows": {"fit": int(len(fit)), "validation": int(len(validation))},
        "holdout": holdout,
        "candidates": {
            name: {
                **c.scores,
                "uncalibrated_log_loss": c.uncalibrated["log_loss"],
                "uncalibrated_ece": c.uncalibrated["ece"],
            }
            for name, c in candidates.items()
        },
        "importance": importance,
        "gate": decision.to_dict(),
    }
    reference = pd.concat([fit, validation], ignore_index=True)
    profile = reference_profile(
        reference,
        model.spec,
        model.predict_proba(reference),
        window_days=settings.drift_window_days,
        small_batch_rows=settings.drift_small_batch_rows,
        family_alpha=settings.drift_family_alpha,
    )
    registry.register(settings, model, metadata, metrics, profile, documents=card_files)
    registry.record_run(
        settings,
        version,
        {"candidates": {name: {"seconds": round(c.seconds, 2)} for name, c in candidates.items()}},
    )
    became_champion = registry.apply_gate(settings, version, decision, approval)
    return TrainingResult(
        version=version,
        algorithm=best,
        metrics=metrics,
        became_champion=became_champion,
        gate_reason=decision.reason,
        awaiting_approval=decision.promote and not became_champion,
    )


def version_learning_curve(
    settings: Settings, version: str, windows: list[int], start: dt.date, end: dt.date
) -> dict[str, Any]:
    """:func:`learning_curve` of a registered version's algorithm, as of its date:
    ``algorithm``, ``as_of`` and the curve's ``rows``."""
    from ml import registry

    metadata = registry.load_metadata(settings, version)
    as_of = parse_date(metadata["as_of"])
    rows = learning_curve(settings, metadata["algorithm"], as_of, windows, start, end)
    return {"algorithm": metadata["algorithm"], "as_of": as_of.isoformat(), "rows": rows}


def learning_curve(
    settings: Settings,
    algorithm: str,
    as_of: dt.date,
    windows: list[int],
    start: dt.date,
    end: dt.date,
) -> list[dict[str, Any]]:
    """Retrain ``algorithm`` as of ``as_of`` on each window length; score on ``start..end``."""
    from ml.features import LABEL, load_features

    if start < as_of:
        raise ConfigError(f"the curve's range starts {start}, before the as-of date {as_of}")
    scored = load_features(settings, start, end)
    y = scored[LABEL].astype(int).to_numpy()
    rows = []
    for days in sorted(windows):
        if days <= settings.validation_days:
            raise ConfigError(f"window of {days} days: not longer than validation_days")
        window, fit, validation = split_window(settings, as_of, days)
        candidate = fit_candidate(settings, algorithm, fit, validation)
        rows.append(
            {
                "window_days": days,
                "fit_start": window.fit_start.isoformat(),
                "fit_rows": int(len(fit)),
                "seconds": round(candidate.seconds, 2),
                "validation": candidate.scores,
                "scored": binary_metrics(
                    y, candidate.model.predict_proba(scored), settings.operating_threshold
                ),
            }
        )
    return rows
