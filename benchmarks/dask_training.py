"""Training the boosted candidates here against on a Dask cluster, at 1x and Nx the volume.

Needs the marts of the training window published in ``ML_DATA_DIR`` (as
``benchmarks/train_throughput.py``). For each scale and each boosted candidate it times
:func:`ml.train.fit_candidate` (the fit with early stopping, the three out-of-fold refits
that calibration needs, the calibration and the holdout scores) with ``train_backend``
local, then on a ``distributed.LocalCluster`` of ``--workers`` single-threaded workers,
and splits the time between the library's training calls (``_train``: the fit, the
refits) and the rest. The cluster's start is timed once, apart.

Nx the volume: the window's feature rows, each copied N times; copy k's flights leave from
synthetic airports (``EWR~k``, ``JFK~k``, ``LGA~k``) with their numeric features jittered by
2 %, as if N times as many airports flew the same schedule. Training reads only the
feature mart, so the copies are made there.

Usage:
    ML_DATA_DIR=... .venv/bin/python benchmarks/dask_training.py --as-of 2013-07-01 --scales 1 20
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import statistics
import time

import numpy as np
import pandas as pd

from ml.config import load_settings
from ml.features import infer_spec
from ml.models import BoostedClassifier
from ml.models.backend import training_backend
from ml.train import fit_candidate, split_window

BOOSTED = ("lightgbm", "xgboost")


def scaled(frame: pd.DataFrame, factor: int, numeric: list[str], seed: int) -> pd.DataFrame:
    """``frame`` and ``factor - 1`` copies from synthetic origin airports, jittered."""
    if factor == 1:
        return frame
    rng = np.random.default_rng(seed)
    copies = [frame]
    for copy in range(1, factor):
        out = frame.copy()
        out["origin"] = out["origin"].astype("object") + f"~{copy}"
        out["flight_id"] = out["flight_id"].astype("object") + f"~{copy}"
        values = out[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        out[numeric] = values * rng.normal(1.0, 0.02, size=values.shape)
        copies.append(out)
    return pd.concat(copies, ignore_index=True)


@contextlib.contextmanager
def training_calls(totals: dict[str, float]):
    """Add the seconds and the number of every ``BoostedClassifier._train`` call to ``totals``."""
    original = BoostedClassifier._train

    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            totals["train_calls_s"] += time.perf_counter() - started
            totals["train_calls"] += 1

    BoostedClassifier._train = timed
    try:
        yield
    finally:
        BoostedClassifier._train = original


def measure(settings, algorithm: str, fit, validation, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        totals = {"train_calls_s": 0.0, "train_calls": 0}
        with training_calls(totals):
            candidate = fit_candidate(settings, algorithm, fit, validation)
        runs.append((candidate, totals))
    seconds = [c.seconds for c, _ in runs]
    candidate, totals = runs[seconds.index(statistics.median_low(seconds))]
    return {
        "seconds_median": round(statistics.median(seconds), 1),
        "seconds_runs": [round(s, 1) for s in seconds],
        "in_training_calls_s": round(totals["train_calls_s"], 1),
        "training_calls": totals["train_calls"],
        "rounds": candidate.model.estimator_.best_iteration_,
        "holdout_auc": round(candidate.scores["auc"], 4),
        "holdout_log_loss": round(candidate.scores["log_loss"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2013, 7, 1))
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="runs at 1x (one above it)")
    args = parser.parse_args()
    from distributed import LocalCluster

    local = load_settings(train_backend="local")
    _, fit, validation = split_window(local, args.as_of)
    numeric = list(infer_spec(fit, local.feature_exclude).numeric)
    started = time.perf_counter()
    cluster = LocalCluster(
        n_workers=args.workers, threads_per_worker=1, dashboard_address=None, silence_logs=40
    )
    print(json.dumps({"cluster_start_s": round(time.perf_counter() - started, 1)}), flush=True)
    on_dask = dataclasses.replace(
        local, train_backend="dask", dask_scheduler=cluster.scheduler_address
    )
    with cluster:
        for factor in args.scales:
            fit_n = scaled(fit, factor, numeric, seed=factor)
            validation_n = scaled(validation, factor, numeric, seed=factor + 1000)
            repeat = args.repeat if factor == 1 else 1
            for algorithm in BOOSTED:
                row = {"scale": factor, "fit_rows": len(fit_n), "candidate": algorithm}
                for name, settings in (("local", local), ("dask", on_dask)):
                    with training_backend(settings):
                        row[name] = measure(settings, algorithm, fit_n, validation_n, repeat)
                row["dask_over_local"] = round(
                    row["dask"]["seconds_median"] / row["local"]["seconds_median"], 2
                )
                print(json.dumps(row), flush=True)
    print(
        json.dumps({"machine": platform.processor() or platform.machine(), "cores": os.cpu_count()})
    )


if __name__ == "__main__":
    main()
