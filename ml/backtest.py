"""Backtest: replay stateless retraining over history with a rolling origin.

At every retrain date (the start, then every day, week or month, or never again) a model
is trained exactly as production trains it, through :func:`ml.train.split_window` and
:func:`ml.train.select_model`: the same window, leakage checks, candidates, early
stopping and calibration. It then scores every day up to the next retrain date. The
features come from the published mart, which holds only what was known at each flight's
cutoff, and a retrain as of D learns only from labels known before D; so every score is
one the system could have produced on its day.

The feature mart is read once for the whole run and sliced per fold by binary search.
What ``ml train`` does after choosing its model (permutation importance, behavioural
tests, the model card, the registry) is left out, and so is the promotion gate: every
retrained model scores its fold, so a backtest measures what retraining at a cadence is
worth, not how often the gate would have let a model through.

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

import pandas as pd
import pyarrow as pa

from ml.config import CADENCES, Settings
from ml.errors import ConfigError, DataError
from ml.features import (
    LABEL,
    ORACLE_LABEL,
    check_features_read_before_their_date,
    load_features,
    rows_between,
)
from ml.io import read_partitions, write_parquet
from ml.metrics import binary_metrics, log_losses
from ml.models import HeuristicClassifier, check_algorithms
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
) -> BacktestSpec:
    """A spec with the settings' defaults (``train_window_days``, ``backtest_candidates``,
    ``use_oracle_forecast``) where an argument is None."""
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


def training_settings(settings: Settings) -> dict[str, Any]:
    """The settings besides the spec that change a backtest's numbers; stored with each run,
    so a run made under other settings is never taken for a current one."""
    return {
        "validation_days": settings.validation_days,
        "calibration_folds": settings.calibration_folds,
        "random_state": settings.random_state,
        # every candidate's hyperparameters (ML_MODEL_PARAMS__* may override them)
        "model_params": json.dumps(
            {name: dict(params) for name, params in settings.model_params.items()},
            sort_keys=True,
        ),
    }


def _fit_fold(
    settings: Settings, spec: BacktestSpec, fold: Fold, history: pd.DataFrame
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train as production would as of ``fold.as_of``; score the fold's days."""
    started = time.perf_counter()
    _, fit, validation = split_window(settings, fold.as_of, spec.window_days, history)
    best, fitted = select_model(settings, fit, validation, spec.candidates)
    model = fitted[best].model
    trained = time.perf_counter()
    scored = rows_between(history, fold.as_of, fold.last_day)
    if scored.empty:
        raise DataError(f"no flights between {fold.as_of} and {fold.last_day} in the feature mart")
    check_features_read_before_their_date(scored, "scored")
    prior = float(fit[LABEL].mean())
    heuristic = HeuristicClassifier(random_state=settings.random_state, prior=prior)
    heuristic.fit(fit, fit[LABEL].to_numpy())
    predictions = pd.DataFrame(
        {
            "flight_id": scored["flight_id"].to_numpy(),
            "flight_date": scored["flight_date"].to_numpy(),
            "as_of": fold.as_of,
            "model_age_days": [(d - fold.as_of).days for d in scored["flight_date"]],
            "carrier": scored["carrier"].to_numpy(),
            "origin": scored["origin"].to_numpy(),
            "sched_dep_hour": scored["sched_dep_hour"].to_numpy(),
            "distance_miles": scored["distance_miles"].to_numpy(),
            LABEL: scored[LABEL].astype(bool).to_numpy(),
            "p_delayed": model.predict_proba(scored),
            "p_heuristic": heuristic.predict_proba(scored),
            "p_prior": prior,
        }
    )
    first_fit_day = min(fit["flight_date"])
    record = {
        "as_of": fold.as_of,
        "last_day": fold.last_day,
        "algorithm": best,
        "fit_start": first_fit_day,
        "effective_window_days": (fold.as_of - first_fit_day).days,
        "fit_rows": len(fit),
        "validation_rows": len(validation),
        "prior_rate": prior,
        "best_iteration": getattr(model.estimator_, "best_iteration_", None),  # boosted only
        "calibration_slope": model.slope_,
        "calibration_intercept": model.intercept_,
        "holdout_log_loss": fitted[best].scores["log_loss"],
        "holdout_auc": fitted[best].scores["auc"],
        "scored_rows": len(scored),
        "train_seconds": trained - started,
        "score_seconds": time.perf_counter() - trained,
    }
    return record, predictions


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
) -> BacktestResult:
    """Replay ``spec`` and publish its four tables (replacing an earlier run of the same id).

    Args:
        settings: Paths and every training setting (``use_oracle_forecast`` comes from the spec).
        spec: The range, cadence, window and candidates.
        progress: Show a progress bar (None: only on a terminal); without one, each fold
            is logged.
        refresh_catalog: Recreate the warehouse views afterwards (Airflow does it in a task
            of the one-slot ``warehouse`` pool instead).

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
    records, parts = [], []
    bar = _progress(folds, spec.run_id, progress)
    training_log = logging.getLogger("ml.train")
    quiet = contextlib.nullcontext() if bar.disable else _level(training_log, logging.WARNING)
    with quiet:
        for fold in bar:
            record, predictions = _fit_fold(settings, spec, fold, history)
            records.append(record)
            parts.append(predictions)
            message = (
                f"as of {fold.as_of}: {record['algorithm']} on {record['effective_window_days']} "
                f"days, holdout log loss {record['holdout_log_loss']:.4f}, {record['train_seconds']:.1f} s"
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
        "train_seconds": float(folds_table["train_seconds"].sum()),
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
    points: list[tuple[str, int, bool]],
    candidates: list[str] | None = None,
) -> list[BacktestSpec]:
    """One spec per (cadence, window days, oracle) point of a grid over ``start..end``."""
    return [make_spec(settings, start, end, c, w, candidates, oracle) for c, w, oracle in points]


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
    for i, spec in enumerate(specs, 1):
        run = None if spec.run_id in done else run_backtest(settings, spec, progress=progress).run
        if on_run is not None:
            on_run(i, spec, run)
