"""Calibration, measured on the days after training: the training map, and daily recalibration.

Two tables, on the marts of 2013 published in ``ML_DATA_DIR`` (``--prepare`` lands and
builds them):

1. **The training map.** For each ``--as-of`` date and candidate, the model is fitted as
   ``ml train`` fits it, and its next 60 days are scored four ways: uncalibrated; with
   Platt scaling on out-of-fold predictions over contiguous blocks of days (what
   training does); on interleaved days (day i in fold i mod 3); and on the 14-day
   holdout. Beside them, the delay rates of the fit period, the holdout and the 60 days.
2. **Daily recalibration.** For each ``--recalibrate`` period, the XGBoost champion
   trained as of its first day scores every day to its last, with no retraining, either
   with the training map alone or recalibrated each morning exactly as
   :func:`ml.recalibration.recalibrate` does (the same window and the same held-back
   day, through :func:`ml.recalibration.propose`), for several window lengths.

Usage:
    ML_DATA_DIR=... .venv/bin/python benchmarks/calibration_study.py [--prepare]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt

import numpy as np

from ml.config import load_settings
from ml.features import LABEL, infer_spec, load_features, rows_between
from ml.metrics import binary_metrics, logit, sigmoid
from ml.models import CalibratedClassifier, make_classifier
from ml.models.base import day_folds
from ml.models.calibration import platt
from ml.recalibration import CalibrationMap, matured_window, propose
from ml.train import split_window

ALGORITHMS = ("logistic", "lightgbm", "xgboost")


def _scores(y: np.ndarray, p: np.ndarray) -> str:
    m = binary_metrics(y, p, 0.35)
    return f"{m['log_loss']:.4f} / {m['ece']:.4f}"


def training_maps(settings, history, as_of: dt.date) -> None:
    _, fit, holdout = split_window(settings, as_of, history=history)
    after = rows_between(history, as_of, as_of + dt.timedelta(days=59))
    y, y_holdout, y_after = (f[LABEL].astype(int).to_numpy() for f in (fit, holdout, after))
    print(
        f"\nas of {as_of}: delay rate {y.mean():.3f} (fit), {y_holdout.mean():.3f} (holdout), "
        f"{y_after.mean():.3f} (next 60 days); log loss / ECE on the next 60 days"
    )
    days = np.sort(fit["flight_date"].unique())
    interleaved = fit["flight_date"].map({d: i % 3 for i, d in enumerate(days)}).to_numpy()
    print("| candidate | uncalibrated | blocks (training) | interleaved days | holdout |")
    print("|---|---|---|---|---|")
    for algorithm in ALGORITHMS:
        model = make_classifier(settings, algorithm, infer_spec(fit)).fit(
            fit, y, holdout, y_holdout
        )
        base = model.predict_proba(after)
        cells = [_scores(y_after, base)]
        for folds in (day_folds(fit["flight_date"], settings.calibration_folds), interleaved):
            slope, intercept = platt(logit(model.cross_fitted(fit, y, folds)), y)
            cells.append(
                f"{_scores(y_after, sigmoid(slope * logit(base) + intercept))} ({slope:.2f})"
            )
        slope, intercept = platt(logit(model.predict_proba(holdout)), y_holdout)
        cells.append(f"{_scores(y_after, sigmoid(slope * logit(base) + intercept))} ({slope:.2f})")
        print(f"| {algorithm} | " + " | ".join(cells) + " |")


def daily_recalibration(settings, history, start: dt.date, end: dt.date, windows) -> None:
    _, fit, holdout = split_window(settings, start, history=history)
    model = CalibratedClassifier(
        make_classifier(settings, "xgboost", infer_spec(fit)), settings.calibration_folds
    ).fit(fit, fit[LABEL].astype(int).to_numpy(), holdout, holdout[LABEL].astype(int).to_numpy())
    scored = rows_between(history, start, end).reset_index(drop=True)
    u = model.predict_uncalibrated(scored)
    y = scored[LABEL].astype(int).to_numpy()
    dates = scored["flight_date"].to_numpy()
    known = scored["label_known_date"].to_numpy()
    training = CalibrationMap(model.slope_, model.intercept_)
    print(f"\nXGBoost trained as of {start}, scoring {start}..{end} without retraining")
    print("| calibration | AUC | log loss | ECE | revisions used / fitted |")
    print("|---|---|---|---|---|")
    m = binary_metrics(y, training.apply(u), 0.35)
    print(f"| training map | {m['auc']:.4f} | {m['log_loss']:.4f} | {m['ece']:.4f} | - |")
    for days in windows:
        daily = dataclasses.replace(settings, recalibration_days=days)
        p, in_force, used, fitted = np.empty(len(y)), training, 0, 0
        for day in sorted(set(dates)):
            first, held_back = matured_window(daily, day, start)
            window = (dates >= first) & (dates <= held_back) & (known < day)
            held = window & (dates == held_back)
            if first < held_back and (window & ~held).sum() >= daily.recalibration_min_rows:
                revision = propose(
                    u[window], y[window], held[window], day, in_force,
                    (first, held_back - dt.timedelta(days=1)),
                )  # fmt: skip
                fitted += 1
                if revision["used"]:
                    used += 1
                    in_force = CalibrationMap(revision["slope"], revision["intercept"], str(day))
            today = dates == day
            p[today] = in_force.apply(u[today])
        m = binary_metrics(y, p, 0.35)
        print(
            f"| daily, {days} days | {m['auc']:.4f} | {m['log_loss']:.4f} | {m['ece']:.4f} | "
            f"{used} / {fitted} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true", help="land and build 2013 first")
    parser.add_argument(
        "--as-of", nargs="*", type=dt.date.fromisoformat,
        default=[dt.date(2013, 4, 15), dt.date(2013, 7, 1), dt.date(2013, 8, 1), dt.date(2013, 10, 1)],
    )  # fmt: skip
    parser.add_argument(
        "--recalibrate", nargs="*", default=["2013-04-01:2013-05-31", "2013-07-01:2013-08-31",
                                             "2013-09-01:2013-10-31"],
    )  # fmt: skip
    parser.add_argument("--windows", default="14,21,28")
    args = parser.parse_args()
    settings = load_settings()
    if args.prepare:
        from ml.ingest import ingest
        from ml.pipeline import transform

        ingest(settings, dt.date(2013, 1, 1), dt.date(2013, 12, 31))
        transform(settings, dt.date(2013, 1, 1), dt.date(2013, 12, 31))
    history = load_features(settings, dt.date(2013, 1, 1), dt.date(2013, 12, 31))
    for as_of in args.as_of:
        training_maps(settings, history, as_of)
    windows = [int(w) for w in args.windows.split(",")]
    for period in args.recalibrate:
        start, end = map(dt.date.fromisoformat, period.split(":"))
        daily_recalibration(settings, history, start, end, windows)


if __name__ == "__main__":
    main()
