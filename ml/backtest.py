"""Backtest: replay stateless retraining over history with a rolling origin.

At every retrain date (the start, then every day, week or month, or never again) a model
is trained exactly as production trains it, through :func:`ml.train.split_window` and
:func:`ml.train.select_model`: the same window, leakage checks, candidates, early
stopping and calibration. It then scores every day up to the next retrain date. The
features come from the published mart, which holds only what was known at each flight's
cutoff, and a retrain as of D learns only from labels known before D; so every score is
one the system could have produced on its day.

By default a run replays what production does with each retrained model:

- **The promotion gate** (:func:`ml.gate.judge`, the checks ``ml train`` runs, behavioural
  tests included): a candidate that fails it is not deployed, and the champion it did not
  beat keeps scoring (no champion yet: the heuristic scores, as prediction falls back).
- **Daily recalibration** (:func:`ml.recalibration.propose`, the same window, held-back
  day and guard as the ``recalibrate`` task): each morning the serving champion's Platt
  map is refitted on the matured days it was never fitted on.

Either can be left out (``gate=False``: every retrain is deployed; ``recalibration=False``:
the training map scores); the grid runs both ways to measure what each changes. Every run
also keeps, per flight, what the two counterfactuals would have scored: ``p_static`` (the
serving champion with its training map) and ``p_candidate`` (the fold's own retrain,
deployed). What ``ml train`` does besides (permutation importance, the model card, the
registry) is left out. The feature mart is read once for the whole run and sliced per
fold by binary search; a grid trains each (as-of date, window) once for all its runs.

A run's id is its parameters, so re-running one replaces it. Its rows go to four tables,
each a folder of ``run_id=<id>/part-0.parquet`` under ``backtests/`` and a view in the
warehouse: ``backtest_runs`` (one row: parameters, pooled metrics beside the baselines,
timings), ``backtest_folds`` (one row per retrain), ``backtest_metrics`` (per day and per
slice: model, heuristic and prior rate side by side, and the model's age) and
``backtest_predictions`` (every scored flight, for checking the metrics independently).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.config import CADENCES, Settings
from ml.errors import ConfigError, DataError
from ml.evaluate import assess
from ml.features import (
    LABEL,
    ORACLE_LABEL,
    check_features_read_before_their_date,
    labels_known_before,
    load_features,
    rows_between,
)
from ml.gate import Incumbent, judge
from ml.io import read_partitions, write_parquet
from ml.metrics import binary_metrics, log_loss, log_losses
from ml.models import CalibratedClassifier, HeuristicClassifier, check_algorithms
from ml.predict import FALLBACK_VERSION as FALLBACK
from ml.recalibration import TRAINING, CalibrationMap, matured_window, revise, training_map
from ml.risk import RiskBands, fit_for, from_thresholds, settings_bands
from ml.slices import slice_columns
from ml.train import select_model, split_window

log = logging.getLogger(__name__)

TABLES = ("runs", "folds", "metrics", "predictions")
# Model, then the two baselines every metric is shown beside.
SCORERS = {"model": "p_delayed", "heuristic": "p_heuristic", "prior": "p_prior"}


@dataclass(frozen=True)
class BacktestSpec:
    """What a backtest replays; its :attr:`run_id` is derived from nothing else."""

    start: dt.date
    end: dt.date
    cadence: str
    window_days: int
    candidates: tuple[str, ...]
    oracle: bool = False
    gate: bool = True
    recalibration: bool = True

    def __post_init__(self) -> None:
        if self.cadence not in CADENCES:
            raise ConfigError(f"cadence {self.cadence!r}: expected one of {list(CADENCES)}")
        if self.end < self.start:
            raise ConfigError(f"backtest ends {self.end}, before it starts {self.start}")
        check_algorithms("candidates", self.candidates)

    @property
    def run_id(self) -> str:
        return (
            f"{self.cadence}-{self.window_days}d-{self.start:%Y%m%d}-{self.end:%Y%m%d}-"
            f"{'_'.join(self.candidates)}{'-oracle' if self.oracle else ''}"
            f"{'' if self.gate else '-nogate'}{'' if self.recalibration else '-norecal'}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "start": self.start,
            "end": self.end,
            "cadence": self.cadence,
            "window_days": self.window_days,
            "candidates": ",".join(self.candidates),
            "uses_oracle_forecast": self.oracle,
            "replays_gate": self.gate,
            "replays_recalibration": self.recalibration,
        }


@dataclass(frozen=True)
class Fold:
    """A retrain as of ``as_of`` and the days its model scores, ``as_of..last_day``."""

    as_of: dt.date
    last_day: dt.date


@dataclass(frozen=True)
class BacktestResult:
    spec: BacktestSpec
    run: dict[str, Any]
    folds: pd.DataFrame
    metrics: pd.DataFrame
    predictions: pd.DataFrame


def retrain_dates(start: dt.date, end: dt.date, cadence: str) -> list[dt.date]:
    """The start, then every day / 7 days / first of the month up to ``end``; ``once``: the start."""
    if cadence == "once":
        return [start]
    if cadence in ("daily", "weekly"):
        step = dt.timedelta(days=1 if cadence == "daily" else 7)
        return [start + step * i for i in range((end - start) // step + 1)]
    if cadence == "monthly":
        dates, day = [start], start.replace(day=1)
        while True:
            day = (day + dt.timedelta(days=32)).replace(day=1)
            if day > end:
                return dates
            dates.append(day)
    raise ConfigError(f"cadence {cadence!r}: expected one of {list(CADENCES)}")


def make_folds(start: dt.date, end: dt.date, cadence: str) -> list[Fold]:
    """Consecutive folds covering ``start..end``, each up to the day before the next retrain."""
    dates = retrain_dates(start, end, cadence)
    ends = [d - dt.timedelta(days=1) for d in dates[1:]] + [end]
    return [Fold(as_of, last) for as_of, last in zip(dates, ends, strict=True)]


def make_spec(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    cadence: str,
    window_days: int | None = None,
    candidates: list[str] | tuple[str, ...] | None = None,
    oracle: bool | None = None,
    gate: bool = True,
    recalibration: bool | None = None,
) -> BacktestSpec:
    """A spec with the settings' defaults (``train_window_days``, ``backtest_candidates``,
    ``use_oracle_forecast``, ``recalibration_enabled``) where an argument is None."""
    window_days = window_days or settings.train_window_days
    shortest = settings.validation_days + settings.calibration_folds
    if window_days < shortest:
        raise ConfigError(
            f"window of {window_days} days: at least validation_days + calibration_folds "
            f"({shortest}) days, so that every calibration block has a day to learn from"
        )
    return BacktestSpec(
        start=start,
        end=end,
        cadence=cadence,
        window_days=window_days,
        candidates=tuple(candidates or settings.backtest_candidates),
        oracle=settings.use_oracle_forecast if oracle is None else oracle,
        gate=gate,
        recalibration=settings.recalibration_enabled if recalibration is None else recalibration,
    )


def _pointwise(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-row log loss and squared error of each scorer, for grouped means."""
    y = frame[LABEL].to_numpy(dtype=float)
    out = {}
    for name, column in SCORERS.items():
        out[f"{name}_loss"] = log_losses(y, frame[column].to_numpy(dtype=float))
        out[f"{name}_sq"] = (frame[column].to_numpy(dtype=float) - y) ** 2
    return pd.DataFrame(out, index=frame.index)


def grouped_metrics(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows, observed rate, mean prediction, and log loss, Brier and AUC of the model and
    the heuristic (log loss and Brier of the prior rate) per group of ``keys``.

    AUC comes from ranks within each group (Mann-Whitney), ties averaged; it is missing
    where a group has one class only or the scores do not vary.
    """
    frame = pd.concat([frame, _pointwise(frame)], axis=1)
    frame["_y"] = frame[LABEL].astype(float)
    groups = frame.groupby(keys, sort=True, observed=True)
    out = pd.DataFrame(
        {
            "rows": groups.size(),
            "observed_rate": groups["_y"].mean(),
            "mean_prediction": groups[SCORERS["model"]].mean(),
        }
    )
    positives = groups["_y"].sum()
    negatives = out["rows"] - positives
    for name, column in SCORERS.items():
        prefix = "" if name == "model" else f"{name}_"
        out[f"{prefix}log_loss"] = groups[f"{name}_loss"].mean()
        out[f"{prefix}brier"] = groups[f"{name}_sq"].mean()
        if name == "prior":
            continue  # one value for every row: AUC 0.5 by construction
        varies = groups[column].max() > groups[column].min()
        ranks = groups[column].rank(method="average")
        rank_sum = (ranks * frame["_y"]).groupby([frame[k] for k in keys], sort=True).sum()
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
        # missing, as in binary_metrics, for one class or scores that do not vary
        out[f"{prefix}auc"] = auc.where((positives > 0) & (negatives > 0) & varies)
    out["rows"] = out["rows"].astype("int64")
    return out.reset_index()


def metrics_by_day_and_slice(predictions: pd.DataFrame) -> pd.DataFrame:
    """:func:`grouped_metrics` per flight date for every flight (``all``) and every slice."""
    parts = [predictions.assign(dimension="all", value="all")]
    for dimension, labels in slice_columns(predictions).items():
        parts.append(predictions.assign(dimension=dimension, value=labels.to_numpy()))
    long = pd.concat(parts, ignore_index=True)
    table = grouped_metrics(long, ["flight_date", "dimension", "value"])
    ages = predictions.groupby("flight_date")[["as_of", "model_age_days"]].first()
    return table.merge(ages, left_on="flight_date", right_index=True, how="left")


def pooled_metrics(predictions: pd.DataFrame) -> dict[str, float]:
    """The run's metrics over every scored flight: the model's, then its baselines'."""
    y = predictions[LABEL].astype(int).to_numpy()
    out: dict[str, float] = {}
    for name, column in SCORERS.items():
        scores = binary_metrics(y, predictions[column].to_numpy(dtype=float))
        prefix = "" if name == "model" else f"{name}_"
        keys = (
            ("auc", "pr_auc", "log_loss", "brier", "ece")
            if name != "prior"
            else ("log_loss", "brier")
        )
        out.update({f"{prefix}{k}": scores[k] for k in keys})
    return out


def _log_loss(predictions: pd.DataFrame, column: str) -> float:
    return log_loss(predictions[LABEL].astype(int).to_numpy(), predictions[column].to_numpy())


def counterfactual_metrics(predictions: pd.DataFrame) -> dict[str, float]:
    """AUC, log loss and ECE of the two counterfactuals of the run: ``static_*``, the
    served champions with their training maps, and ``every_retrain_*``, each fold's own
    retrain deployed, also with its training map."""
    y = predictions[LABEL].astype(int).to_numpy()
    out = {}
    for name, column in (("static", "p_static"), ("every_retrain", "p_candidate")):
        scores = binary_metrics(y, predictions[column].to_numpy(dtype=float))
        out.update({f"{name}_{k}": scores[k] for k in ("auc", "log_loss", "ece")})
    return out


def training_settings(settings: Settings) -> dict[str, Any]:
    """The settings besides the spec that change a backtest's numbers; stored with each run,
    so a run made under other settings is never taken for a current one."""
    return {
        "validation_days": settings.validation_days,
        "feature_exclude": ",".join(settings.feature_exclude),
        "calibration_folds": settings.calibration_folds,
        "random_state": settings.random_state,
        "label_maturity_days": settings.label_maturity_days,
        "gate_settings": json.dumps(
            {
                "max_ece": settings.gate_max_ece,
                "log_loss_margin": settings.gate_log_loss_margin,
                "slice_tolerance": settings.gate_slice_tolerance,
                "slice_min_rows": settings.gate_slice_min_rows,
            }
        ),
        "recalibration_days": settings.recalibration_days,
        "recalibration_min_rows": settings.recalibration_min_rows,
        "risk_high_precision": settings.risk_high_precision,
        "risk_low_delay_rate": settings.risk_low_delay_rate,
        "risk_band_min_flights": settings.risk_band_min_flights,
        # every candidate's hyperparameters (ML_MODEL_PARAMS__* may override them)
        "model_params": json.dumps(
            {name: dict(params) for name, params in settings.model_params.items()},
            sort_keys=True,
        ),
    }


@dataclass
class Retrain:
    """A fold's candidate, trained as production trains it as of ``as_of``, with the
    baselines fitted on the same rows. A grid shares one per (as-of date, window)."""

    as_of: dt.date
    algorithm: str
    model: CalibratedClassifier
    prior: float
    heuristic: HeuristicClassifier
    last_seen: dt.date  # the last day it learned from: its holdout's end
    validation: pd.DataFrame
    bands: RiskBands
    record: dict[str, Any]
    _holdout_report: dict[str, Any] | None = None

    def holdout_report(self, settings: Settings) -> dict[str, Any]:
        """What the gate reads: the holdout's metrics, slices and behavioural tests."""
        if self._holdout_report is None:
            self._holdout_report = assess(settings, self.model, self.validation, self.prior)
        return self._holdout_report


@dataclass
class Serving:
    """The champion a replay deploys, and the calibration map in force for it."""

    retrain: Retrain
    calibration: CalibrationMap


def retrain(
    settings: Settings, spec: BacktestSpec, as_of: dt.date, history: pd.DataFrame
) -> Retrain:
    """Train as production would as of ``as_of`` (through :func:`ml.train.select_model`)."""
    started = time.perf_counter()
    window, fit, validation = split_window(settings, as_of, spec.window_days, history)
    best, fitted = select_model(settings, fit, validation, spec.candidates)
    model = fitted[best].model
    prior = float(fit[LABEL].mean())
    heuristic = HeuristicClassifier(random_state=settings.random_state, prior=prior)
    heuristic.fit(fit, fit[LABEL].to_numpy())
    first_fit_day = min(fit["flight_date"])
    bands = fit_for(
        settings, validation[LABEL].astype(int).to_numpy(), model.predict_proba(validation)
    )
    record = {
        "algorithm": best,
        "fit_start": first_fit_day,
        "effective_window_days": (as_of - first_fit_day).days,
        "fit_rows": len(fit),
        "validation_rows": len(validation),
        "prior_rate": prior,
        "best_iteration": getattr(model.estimator_, "best_iteration_", None),  # boosted only
        "calibration_slope": model.slope_,
        "calibration_intercept": model.intercept_,
        "holdout_log_loss": fitted[best].scores["log_loss"],
        "holdout_auc": fitted[best].scores["auc"],
        "risk_low_max": bands["low_max"],
        "risk_high_min": bands["high_min"],
        "train_seconds": time.perf_counter() - started,
    }
    return Retrain(
        as_of,
        best,
        model,
        prior,
        heuristic,
        window.validation_end,
        validation,
        from_thresholds(bands["low_max"], bands["high_min"], f"holdout as of {as_of}"),
        record,
    )


def gate_decision(
    settings: Settings, spec: BacktestSpec, candidate: Retrain, serving: Serving | None
) -> tuple[bool, str]:
    """Whether the replay deploys ``candidate``, and why: the promotion gate against the
    serving champion (scored with its training map, as the registry loads it)."""
    if not spec.gate:
        return True, "deployed: the gate is not replayed"
    incumbent = None
    if serving is not None:
        champion = serving.retrain
        incumbent = Incumbent(
            f"{champion.algorithm} as of {champion.as_of}",
            champion.last_seen,
            lambda: (champion.model, champion.prior),
        )
    decision = judge(
        settings,
        {
            "version": f"{candidate.algorithm} as of {candidate.as_of}",
            "uses_oracle_forecast": spec.oracle,
        },
        candidate.holdout_report(settings),
        candidate.validation,
        incumbent,
        candidate.model,
    )
    return decision.promote, decision.reason


def recalibrated_maps(
    settings: Settings, serving: Serving, history: pd.DataFrame, days: list[dt.date]
) -> list[CalibrationMap]:
    """The map in force on each of ``days`` (in order) when the ``recalibrate`` task runs
    every morning: :func:`ml.recalibration.recalibrate`'s window, rows and guard, on the
    history in memory. Updates ``serving.calibration``."""
    holdout_start = serving.retrain.validation["flight_date"].min()
    first = matured_window(settings, days[0], holdout_start)[0]
    frame = rows_between(history, first, days[-1])
    uncalibrated = serving.retrain.model.predict_uncalibrated(frame)
    y = frame[LABEL].astype(int).to_numpy()
    dates = frame["flight_date"].to_numpy()
    maps = []
    for day in days:
        first, held_back = matured_window(settings, day, holdout_start)
        if first >= held_back:  # as recalibrate: no matured day it was not fitted on
            maps.append(serving.calibration)
            continue
        rows = (dates >= first) & (dates <= held_back) & labels_known_before(frame, day).to_numpy()
        revision, _ = revise(
            settings,
            day,
            (first, held_back),
            serving.calibration,
            dates[rows],
            y[rows],
            lambda rows=rows: uncalibrated[rows],
        )
        if revision is not None and revision["used"]:
            serving.calibration = CalibrationMap(
                revision["slope"], revision["intercept"], revision["as_of"]
            )
        maps.append(serving.calibration)
    return maps


def score_fold(
    settings: Settings,
    spec: BacktestSpec,
    fold: Fold,
    candidate: Retrain,
    serving: Serving | None,
    history: pd.DataFrame,
) -> pd.DataFrame:
    """Every flight of the fold scored by the serving champion (its map in force each day),
    beside the baselines and the two counterfactuals (``p_static``, ``p_candidate``)."""
    scored = rows_between(history, fold.as_of, fold.last_day)
    if scored.empty:
        raise DataError(f"no flights between {fold.as_of} and {fold.last_day} in the feature mart")
    check_features_read_before_their_date(scored, "scored")
    dates = scored["flight_date"].to_numpy()
    p_heuristic = candidate.heuristic.predict_proba(scored)
    if serving is None:  # as prediction does without a usable champion
        p_static = p_served = p_heuristic
        as_of, calibration = fold.as_of, np.full(len(scored), FALLBACK)
        bands = settings_bands(settings)
    else:
        as_of, bands = serving.retrain.as_of, serving.retrain.bands
        uncalibrated = serving.retrain.model.predict_uncalibrated(scored)
        p_static = training_map(serving.retrain.model).apply(uncalibrated)
        p_served, calibration = p_static, np.full(len(scored), TRAINING)
        if spec.recalibration:
            days = sorted(set(dates))
            in_force = dict(
                zip(days, recalibrated_maps(settings, serving, history, days), strict=True)
            )
            p_served = np.empty(len(scored))
            calibration = np.empty(len(scored), dtype=object)
            for day, calibration_map in in_force.items():
                rows = dates == day
                p_served[rows] = calibration_map.apply(uncalibrated[rows])
                calibration[rows] = calibration_map.revision
    return pd.DataFrame(
        {
            "flight_id": scored["flight_id"].to_numpy(),
            "flight_date": dates,
            "as_of": as_of,
            "model_age_days": [(d - as_of).days for d in dates],
            "retrain_as_of": fold.as_of,
            "calibration": calibration.astype(str),
            "carrier": scored["carrier"].to_numpy(),
            "origin": scored["origin"].to_numpy(),
            "sched_dep_hour": scored["sched_dep_hour"].to_numpy(),
            "distance_miles": scored["distance_miles"].to_numpy(),
            LABEL: scored[LABEL].astype(bool).to_numpy(),
            "p_delayed": p_served,
            "risk_band": bands.assign(p_served),
            "p_heuristic": p_heuristic,
            "p_prior": candidate.prior,
            "p_static": p_static,
            "p_candidate": candidate.model.predict_proba(scored),
        }
    )


def _progress(folds: list[Fold], run_id: str, show: bool | None):
    from tqdm import tqdm

    return tqdm(folds, desc=run_id, unit="fold", disable=None if show is None else not show)


@contextlib.contextmanager
def _level(logger: logging.Logger, level: int) -> Iterator[None]:
    """Raise ``logger``'s level for a block (the progress bar replaces its per-fold lines)."""
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def run_backtest(
    settings: Settings,
    spec: BacktestSpec,
    *,
    progress: bool | None = None,
    refresh_catalog: bool = True,
    retrains: dict[tuple, Retrain] | None = None,
) -> BacktestResult:
    """Replay ``spec`` and publish its four tables (replacing an earlier run of the same id).

    Args:
        settings: Paths and every training setting (``use_oracle_forecast`` comes from the spec).
        spec: The range, cadence, window and candidates.
        progress: Show a progress bar (None: only on a terminal); without one, each fold
            is logged.
        refresh_catalog: Recreate the warehouse views afterwards (Airflow does it in a task
            of the one-slot ``warehouse`` pool instead).
        retrains: Retrains already trained by an earlier run of a grid, by (as-of date,
            window, candidates, oracle); this run's are added to it.

    Raises:
        DataError: The mart lacks the history a fold needs, or a fold has no rows.
        LeakageError: A fold's rows would see past its cutoff.
    """
    settings = dataclasses.replace(settings, use_oracle_forecast=spec.oracle)
    if spec.oracle:
        log.warning("backtest with the %s", ORACLE_LABEL)
    started = time.perf_counter()
    folds = make_folds(spec.start, spec.end, spec.cadence)
    history = load_features(
        settings, spec.start - dt.timedelta(days=spec.window_days), spec.end, oracle=spec.oracle
    )
    missing = sorted({spec.start, spec.end} - set(history["flight_date"].unique()))
    if missing:
        raise DataError(
            f"{settings.paths.mart('flight_features')}: no flights on {missing[0]}; "
            f"run `ml ingest` and `ml transform` for {spec.start - dt.timedelta(days=spec.window_days)}..{spec.end}"
        )
    loaded = time.perf_counter()
    retrains = {} if retrains is None else retrains
    records, parts, serving = [], [], None
    bar = _progress(folds, spec.run_id, progress)
    training_log = logging.getLogger("ml.train")
    quiet = contextlib.nullcontext() if bar.disable else _level(training_log, logging.WARNING)
    with quiet:
        for fold in bar:
            key = (fold.as_of, spec.window_days, spec.candidates, spec.oracle)
            reused = key in retrains
            if not reused:
                retrains[key] = retrain(settings, spec, fold.as_of, history)
            candidate = retrains[key]
            gated = time.perf_counter()
            promoted, reason = gate_decision(settings, spec, candidate, serving)
            if promoted:
                serving = Serving(candidate, training_map(candidate.model))
            scoring = time.perf_counter()
            predictions = score_fold(settings, spec, fold, candidate, serving, history)
            parts.append(predictions)
            records.append(
                {
                    "as_of": fold.as_of,
                    "last_day": fold.last_day,
                    **candidate.record,
                    "train_seconds": 0.0 if reused else candidate.record["train_seconds"],
                    "promoted": promoted,
                    "gate_reason": reason,
                    "served_as_of": None if serving is None else serving.retrain.as_of,
                    "served_algorithm": "heuristic"
                    if serving is None
                    else serving.retrain.algorithm,
                    "served_log_loss": _log_loss(predictions, "p_delayed"),
                    "candidate_log_loss": _log_loss(predictions, "p_candidate"),
                    "revisions_in_force": len(
                        set(predictions["calibration"]) - {TRAINING, FALLBACK}
                    ),
                    "scored_rows": len(predictions),
                    "gate_seconds": scoring - gated,
                    "score_seconds": time.perf_counter() - scoring,
                }
            )
            message = (
                f"as of {fold.as_of}: {candidate.algorithm} on {candidate.record['effective_window_days']} "
                f"days, holdout log loss {candidate.record['holdout_log_loss']:.4f}, "
                f"{'deployed' if promoted else 'kept out'}, {records[-1]['train_seconds']:.1f} s"
            )
            if bar.disable:
                log.info("fold %d/%d %s", len(records), len(folds), message)
            else:
                bar.set_postfix_str(message, refresh=False)
        bar.close()
    predictions = pd.concat(parts, ignore_index=True)
    predictions.insert(0, "run_id", spec.run_id)
    folds_table = pd.DataFrame(records).astype({"best_iteration": "Int64"})
    folds_table.insert(0, "run_id", spec.run_id)
    metrics = metrics_by_day_and_slice(predictions)
    metrics.insert(0, "run_id", spec.run_id)
    run = {
        **spec.to_dict(),
        "folds": len(folds),
        "scored_rows": len(predictions),
        "algorithms": ",".join(sorted(set(folds_table["algorithm"]))),
        **training_settings(settings),
        "min_effective_window_days": int(folds_table["effective_window_days"].min()),
        **pooled_metrics(predictions),
        "load_seconds": loaded - started,
        "retrains_deployed": int(folds_table["promoted"].sum()),
        **counterfactual_metrics(predictions),
        "train_seconds": float(folds_table["train_seconds"].sum()),
        "gate_seconds": float(folds_table["gate_seconds"].sum()),
        "score_seconds": float(folds_table["score_seconds"].sum()),
        "elapsed_seconds": time.perf_counter() - started,
    }
    publish(settings, spec.run_id, run, folds_table, metrics, predictions, refresh=refresh_catalog)
    return BacktestResult(spec, run, folds_table, metrics, predictions)


def publish(
    settings: Settings,
    run_id: str,
    run: dict[str, Any],
    folds: pd.DataFrame,
    metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    refresh: bool = True,
) -> None:
    """Write the run's part of each table atomically, the ``runs`` row last, and (with
    ``refresh``) the warehouse views. A reader sees a run once its ``runs`` row exists."""
    from ml.warehouse import refresh_catalog

    paths = settings.paths
    # first: a re-run that fails part-way must not leave the old row vouching for new tables
    paths.backtest_table("runs", run_id).unlink(missing_ok=True)
    tables = {"folds": folds, "metrics": metrics, "predictions": predictions}
    tables["runs"] = pd.DataFrame([run])  # last: it marks the run complete
    for table, frame in tables.items():
        # run_id is the partition (``run_id=<id>/``), not a column of the file
        arrow = pa.Table.from_pandas(frame.drop(columns="run_id"), preserve_index=False)
        write_parquet(arrow, paths.backtest_table(table, run_id))
    if refresh:
        refresh_catalog(settings)


# -- the grid: how often to retrain, on how much history ---------------------------------
def grid_specs(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    points: list[tuple[str, int, bool, bool, bool | None]],
    candidates: list[str] | None = None,
) -> list[BacktestSpec]:
    """One spec per (cadence, window days, oracle, gate, recalibration) point of a grid
    over ``start..end`` (recalibration None: ``recalibration_enabled``)."""
    return [
        make_spec(settings, start, end, c, w, candidates, oracle, gate, recalibration)
        for c, w, oracle, gate, recalibration in points
    ]


def load_runs(settings: Settings) -> pd.DataFrame:
    """Every completed run (one row each), or an empty frame."""
    runs = read_partitions(
        settings.paths.backtest_glob("runs"),
        "select * from {files} order by run_id",
        [],
        partition="run_id",
    )
    if runs is None:
        return pd.DataFrame()
    for column in ("start", "end"):
        runs[column] = pd.to_datetime(runs[column]).dt.date
    return runs


def completed_run_ids(settings: Settings) -> set[str]:
    """Runs already complete under the current training settings (see training_settings)."""
    runs = load_runs(settings)
    if runs.empty:
        return set()
    current = training_settings(settings)
    return {
        row["run_id"]
        for row in runs.to_dict("records")
        if all(row.get(k) == v for k, v in current.items())
    }


def run_grid(
    settings: Settings,
    specs: list[BacktestSpec],
    *,
    rerun: bool = False,
    progress: bool | None = None,
    on_run: Callable[[int, BacktestSpec, dict[str, Any] | None], None] | None = None,
) -> None:
    """Run every spec of a grid not already run under the current settings (all with
    ``rerun``); ``on_run(i, spec, run)`` after each, with None for a spec skipped."""
    done = set() if rerun else completed_run_ids(settings)
    retrains: dict[tuple, Retrain] = {}  # the gate and recalibration variants share them
    for i, spec in enumerate(specs, 1):
        run = (
            None
            if spec.run_id in done
            else run_backtest(settings, spec, progress=progress, retrains=retrains).run
        )
        if on_run is not None:
            on_run(i, spec, run)
