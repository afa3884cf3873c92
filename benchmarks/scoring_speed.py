"""Scoring throughput of the boosted candidates beside the library's own ``predict``.

For LightGBM and XGBoost, trained as of ``--as-of`` exactly as ``ml train`` fits a
candidate, over the flights of ``--start..--end`` read from the mart's Parquet:

- **floor**: the library's fastest call on the prepared matrix (LightGBM's
  ``Booster.predict`` and XGBoost's ``Booster.inplace_predict`` on the float64 array in
  the booster's column order);
- **predict_proba**: our scoring from the feature frame (the matrix built once, the
  library call, the vectorised Platt calibration), and the pandas path it replaced (a
  categorical frame per call, as training builds it);
- **end to end**: what the daily ``predict`` does from the mart's Parquet to the written
  partition (read, score, the top reasons from the library's contributions, the rows'
  fingerprints, the Parquet write), step by step, beside its own floor (the library's
  predict plus its contributions).

The three scorings run interleaved ``--repeat`` times in one process; each ratio is the
median of the runs' own ratios (the steps of the breakdown: medians of 5 runs). Needs the marts of the training window and
of the scored range published in ``ML_DATA_DIR`` (``make bench-scoring`` lands and
builds them first with ``--prepare``).

Usage:
    ML_DATA_DIR=... .venv/bin/python benchmarks/scoring_speed.py --prepare
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from ml.config import load_settings
from ml.features import load_features, row_fingerprints
from ml.io import write_parquet
from ml.predict import PREDICTIONS_SCHEMA, _rows, top_reasons
from ml.train import fit_candidate, split_window


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _interleaved(calls: dict) -> dict[str, float]:
    """One run of each call, in turn; seconds per call."""
    seconds = {}
    for name, fn in calls.items():
        started = time.perf_counter()
        fn()
        seconds[name] = time.perf_counter() - started
    return seconds


def _floor(base, array: np.ndarray, contrib: bool = False) -> np.ndarray:
    """The library's own call on the prepared array, nothing of ours around it."""
    if base.algorithm == "lightgbm":
        return base.booster_.predict(
            array, num_iteration=base.best_iteration_, pred_contrib=contrib
        )
    if not contrib:
        return base.booster_.inplace_predict(array, iteration_range=(0, base.best_iteration_))
    return base._raw_predict(base.booster_, array, contrib=True)


def _old_predict_proba(model, frame) -> np.ndarray:
    """Scoring as it was: a pandas categorical frame per call (``_matrix``), then the library."""
    from ml.metrics import logit, sigmoid

    base = model.estimator_
    raw = base._raw_predict(base.booster_, base._matrix(frame))
    return sigmoid(model.slope_ * logit(raw) + model.intercept_)


def measure(settings, algorithm: str, fit, validation, start, end, repeat: int) -> dict:
    model = fit_candidate(settings, algorithm, fit, validation).model
    base = model.estimator_
    frame = load_features(settings, start, end)
    rows = len(frame)
    array = base._array(frame)
    assert np.array_equal(_old_predict_proba(model, frame), model.predict_proba(frame))
    # The three scorings interleaved, run after run, so that the machine's noise falls on
    # all of them alike; the ratios are medians of each run's own ratio.
    runs = [
        _interleaved(
            {
                "floor_predict": lambda: _floor(base, array),
                "predict_proba": lambda: model.predict_proba(frame),
                "old_predict_proba": lambda: _old_predict_proba(model, frame),
            }
        )
        for _ in range(repeat)
    ]
    timings = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    ratio = statistics.median(r["floor_predict"] / r["predict_proba"] for r in runs)
    old_ratio = statistics.median(r["floor_predict"] / r["old_predict_proba"] for r in runs)
    timings["floor_contributions"] = _median(lambda: _floor(base, array, contrib=True), 3)
    # The daily predict step, piece by piece, from the mart's Parquet to the partition.
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "part-0.parquet"
        steps = {
            "read_mart": lambda: load_features(settings, start, end),
            "build_array": lambda: base._array(frame),
            "library_predict": lambda: _floor(base, array),
            "library_contributions": lambda: model.contributions(frame),
            "top_reasons": lambda: top_reasons(model.contributions(frame), model.spec.columns),
            "fingerprints": lambda: row_fingerprints(frame, model.spec),
        }
        breakdown = {name: _median(fn, 5) for name, fn in steps.items()}
        breakdown["top_reasons"] -= breakdown["library_contributions"]
        p = model.predict_proba(frame)
        reasons = top_reasons(model.contributions(frame), model.spec.columns)
        prints = row_fingerprints(frame, model.spec)

        def assemble():
            out = _rows(settings, frame, p, reasons, "v", "champion", prints)
            return pa.Table.from_pandas(out, schema=PREDICTIONS_SCHEMA, preserve_index=False)

        table = assemble()
        breakdown["assemble_rows"] = _median(assemble, 5)
        breakdown["write_parquet"] = _median(lambda: write_parquet(table, target), 5)
    end_to_end = sum(breakdown.values()) - breakdown["build_array"]  # inside the two calls
    return {
        "algorithm": algorithm,
        "rows": rows,
        "rounds": base.best_iteration_,
        "floor_rows_per_s": round(rows / timings["floor_predict"]),
        "predict_proba_rows_per_s": round(rows / timings["predict_proba"]),
        "ratio": round(ratio, 2),
        "old_ratio": round(old_ratio, 2),
        "end_to_end_rows_per_s": round(rows / end_to_end),
        "end_to_end_ratio_to_predict_and_contributions": round(
            (timings["floor_predict"] + timings["floor_contributions"]) / end_to_end, 2
        ),
        "breakdown_ms": {k: round(v * 1000, 1) for k, v in breakdown.items()},
    }


def prepare(settings, as_of: dt.date, end: dt.date) -> None:
    from ml.ingest import ingest
    from ml.pipeline import transform

    first = as_of - dt.timedelta(days=settings.train_window_days)
    ingest(settings, first - dt.timedelta(days=settings.feature_lookback_days), end, history=True)
    transform(settings, first, end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2013, 7, 1))
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2013, 7, 1))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2013, 7, 31))
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--prepare", action="store_true", help="land and build the days first")
    args = parser.parse_args()
    settings = load_settings()
    if args.prepare:
        prepare(settings, args.as_of, args.end)
    _, fit, validation = split_window(settings, args.as_of)
    for algorithm in ("lightgbm", "xgboost"):
        row = measure(settings, algorithm, fit, validation, args.start, args.end, args.repeat)
        print(json.dumps(row), flush=True)
    print(
        json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()})
    )


if __name__ == "__main__":
    main()
