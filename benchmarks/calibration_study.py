"""Calibration, measured on the days after training: the training map, and daily recalibration.

Two tables, on the marts of 2013 published in ``ML_DATA_DIR`` (``--prepare`` lands and
builds them):

1. **The training map.** For each ``--as-of`` date and candidate, the model is fitted as
   ``ml train`` fits it, and its next 60 days are scored four ways: uncalibrated; with
   Platt scaling on out-of-fold predictions over contiguous blocks of days (what
   training does); on interleaved days (day i in fold i mod 3); and on the 14-day
   holdout. Beside them, the delay rates of the fit period, the holdout and the 60 days.
2. **Daily recalibration.** For each ``--recalibrate`` period, XGBoost champions trained
   as of its first day and then every ``--retrain-every`` days (7, the policy's schedule;
   0, never) each score the days until the next, either with the training map alone or
   recalibrated each morning exactly as :func:`ml.recalibration.recalibrate` does (the
   same window and held-back day, through :func:`ml.recalibration.propose`), for several
   window lengths; and, for comparison, with a window restricted to the days since the
   champion's as-of date.

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
        model = make_classifier(settings, algorithm, infer_spec(fit, settings.feature_exclude)).fit(
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


def daily_recalibration(
    settings, history, start: dt.date, end: dt.date, windows, retrain_every: int
) -> None:
    """XGBoost champions trained as of ``start`` and every ``retrain_every`` days (0: once),
    each serving until the next, scored with the training map or recalibrated daily."""
    champions = []
    as_of = start
    while as_of <= end:
        _, fit, holdout = split_window(settings, as_of, history=history)
        model = CalibratedClassifier(
            make_classifier(settings, "xgboost", infer_spec(fit, settings.feature_exclude)),
            settings.calibration_folds,
        ).fit(
            fit, fit[LABEL].astype(int).to_numpy(), holdout, holdout[LABEL].astype(int).to_numpy()
        )
        last = end if not retrain_every else min(end, as_of + dt.timedelta(days=retrain_every - 1))
        holdout_start = holdout["flight_date"].min()
        scored = rows_between(history, holdout_start, last).reset_index(drop=True)
        champions.append(
            {
                "as_of": as_of,
                "holdout": holdout_start,
                "u": model.predict_uncalibrated(scored),
                "y": scored[LABEL].astype(int).to_numpy(),
                "dates": scored["flight_date"].to_numpy(),
                "known": scored["label_known_date"].to_numpy(),
                "training": CalibrationMap(model.slope_, model.intercept_),
            }
        )
        as_of = last + dt.timedelta(days=1)

    def serve(days: int | None, since_as_of: bool = False) -> tuple[dict, int, int]:
        daily = dataclasses.replace(settings, recalibration_days=days or 1)
        scores, labels, used, fitted = [], [], 0, 0
        for c in champions:
            in_force, dates, known = c["training"], c["dates"], c["known"]
            for day in sorted(set(dates[dates >= c["as_of"]])):
                not_before = c["as_of"] if since_as_of else c["holdout"]
                first, held_back = matured_window(daily, day, not_before)
                window = (dates >= first) & (dates <= held_back) & (known < day)
                held = window & (dates == held_back)
                enough = (window & ~held).sum() >= daily.recalibration_min_rows and held.any()
                if days and first < held_back and enough:
                    revision = propose(
                        c["u"][window], c["y"][window], held[window], day, in_force,
                        (first, held_back - dt.timedelta(days=1)),
                    )  # fmt: skip
                    fitted += 1
                    if revision["used"]:
                        used += 1
                        in_force = CalibrationMap(revision["slope"], revision["intercept"])
                today = dates == day
                scores.append(in_force.apply(c["u"][today]))
                labels.append(c["y"][today])
        y, p = np.concatenate(labels), np.concatenate(scores)
        return binary_metrics(y, p, 0.35), used, fitted

    how = f"retrained every {retrain_every} days" if retrain_every else "without retraining"
    print(f"\nXGBoost from {start}, {how}, scoring {start}..{end}")
    print("| calibration | AUC | log loss | ECE | revisions used / fitted |")
    print("|---|---|---|---|---|")
    rows = [("training map", None, False)]
    rows += [(f"daily, {d} days, from the holdout", d, False) for d in windows]
    rows += [(f"daily, {windows[-1]} days, only days since the as-of date", windows[-1], True)]
    for name, days, since_as_of in rows:
        m, used, fitted = serve(days, since_as_of)
        counts = f"{used} / {fitted}" if days else "-"
        print(f"| {name} | {m['auc']:.4f} | {m['log_loss']:.4f} | {m['ece']:.4f} | {counts} |")


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
    parser.add_argument("--windows", default="14,28")
    parser.add_argument(
        "--retrain-every", default="7,0", help="days between trainings (0: once), for each run"
    )
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
    for every in (int(e) for e in args.retrain_every.split(",")):
        for period in args.recalibrate:
            start, end = map(dt.date.fromisoformat, period.split(":"))
            daily_recalibration(settings, history, start, end, windows, every)


if __name__ == "__main__":
    main()
