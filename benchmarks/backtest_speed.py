"""A full-year weekly backtest, beside its floor and beside re-querying the mart per fold.

Needs the marts of 2013 published in ``ML_DATA_DIR`` (``--prepare`` lands and builds
them). It times :func:`ml.backtest.run_backtest` for weekly retrains from 2013-03-01 to
2013-12-31 on 90-day windows, then two references on the same folds:

- the floor: for each fold, one raw ``lgb.train`` of the fold's final number of rounds
  on its fit rows, and one raw ``predict`` of its scored rows; what the backtest adds
  is the early-stopping overrun, the cross-fitted calibration and the bookkeeping;
- the naive loading: querying the feature mart for each fold's window instead of
  loading the range once and slicing it.

Usage:
    make bench-backtest        # or:
    ML_DATA_DIR=... .venv/bin/python benchmarks/backtest_speed.py [--prepare]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time

from ml.backtest import make_spec, run_backtest
from ml.config import load_settings
from ml.features import LABEL, infer_spec, load_features, rows_between
from ml.models import make_classifier
from ml.train import split_window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2013, 3, 1))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2013, 12, 31))
    parser.add_argument("--window-days", type=int, default=90)
    parser.add_argument("--prepare", action="store_true", help="ingest and transform 2013 first")
    args = parser.parse_args()
    settings = load_settings()
    if args.prepare:
        from ml.ingest import ingest
        from ml.pipeline import transform

        ingest(settings, dt.date(2013, 1, 1), dt.date(2013, 12, 31))
        transform(settings, dt.date(2013, 1, 1), dt.date(2013, 12, 31))
    import lightgbm  # noqa: F401  (imported here, not inside the first fold's time)
    import sklearn  # noqa: F401

    spec = make_spec(settings, args.start, args.end, "weekly", args.window_days, ["lightgbm"])
    result = run_backtest(settings, spec, progress=False, refresh_catalog=False)
    run = result.run

    history = load_features(settings, args.start - dt.timedelta(days=args.window_days), args.end)
    floor_train = floor_score = naive_load = 0.0
    for fold in result.folds.itertuples():
        window, fit, _ = split_window(settings, fold.as_of, args.window_days, history)
        scored = rows_between(history, fold.as_of, fold.last_day)
        model = make_classifier(
            settings, "lightgbm", infer_spec(fit, settings.feature_exclude)
        ).learn_categories(fit)
        x_fit, x_scored = model._matrix(fit), model._matrix(scored)
        started = time.perf_counter()
        booster, _ = model._train(
            x_fit, fit[LABEL].astype(int).to_numpy(), int(fold.best_iteration)
        )
        trained = time.perf_counter()
        booster.predict(x_scored)
        floor_train += trained - started
        floor_score += time.perf_counter() - trained
        started = time.perf_counter()
        load_features(settings, window.fit_start, fold.last_day)
        naive_load += time.perf_counter() - started

    backtest = {
        "run_id": spec.run_id,
        "folds": run["folds"],
        "scored_rows": run["scored_rows"],
        "elapsed_seconds": round(run["elapsed_seconds"], 1),
        "load_seconds": round(run["load_seconds"], 2),
        "train_seconds": round(run["train_seconds"], 1),
        "score_seconds": round(run["score_seconds"], 1),
        "log_loss": round(run["log_loss"], 4),
        "prior_log_loss": round(run["prior_log_loss"], 4),
        "auc": round(run["auc"], 4),
        "heuristic_auc": round(run["heuristic_auc"], 4),
    }
    floor = {
        "raw_lgb_train_seconds": round(floor_train, 1),
        "raw_predict_seconds": round(floor_score, 2),
        "train_ratio": round(run["train_seconds"] / floor_train, 2),
        "per_fold_query_seconds": round(naive_load, 1),
        "load_once_seconds": round(run["load_seconds"], 2),
        "load_ratio": round(naive_load / run["load_seconds"], 1),
    }
    print(json.dumps({"backtest": backtest}))
    print(json.dumps({"references": floor}))
    print(
        json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()})
    )


if __name__ == "__main__":
    main()
