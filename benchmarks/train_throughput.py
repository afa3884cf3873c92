"""Training and scoring throughput of each candidate, beside the raw library calls.

Needs the marts of the training window published in ``ML_DATA_DIR`` (``ml ingest`` and
``ml transform`` for the 90 + 31 days before the as-of date). For every candidate it
times :func:`ml.train.fit_candidate` (fit, early stopping, cross-fitted calibration) and
``predict_proba`` over the holdout; for the boosted ones it also times the floor: the
library's own ``train`` for the same number of rounds on the same matrix, and its own
``predict``.

Usage:
    ML_DATA_DIR=... .venv/bin/python benchmarks/train_throughput.py --as-of 2013-07-01
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time

from ml.config import load_settings
from ml.features import LABEL
from ml.models import BoostedClassifier
from ml.train import fit_candidate, split_window


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2013, 7, 1))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings()
    import sklearn  # noqa: F401  (imported once here, not inside the first candidate's time)

    _, fit, validation = split_window(settings, args.as_of)
    rows = []
    for algorithm in settings.candidates:
        candidate = fit_candidate(settings, algorithm, fit, validation)
        train_s = _best(
            lambda a=algorithm: fit_candidate(settings, a, fit, validation), args.repeat
        )
        score_s = _best(lambda c=candidate: c.model.predict_proba(validation), args.repeat)
        row = {
            "candidate": algorithm,
            "fit_rows": len(fit),
            "train_seconds": round(train_s, 2),
            "score_rows_per_second": round(len(validation) / score_s),
        }
        base = candidate.model.estimator_
        if isinstance(base, BoostedClassifier):
            x_fit = base._matrix(fit)
            y_fit = fit[LABEL].astype(int).to_numpy()
            x_val = base._matrix(validation)
            raw_train = _best(
                lambda b=base, x=x_fit, y=y_fit: b._train(x, y, b.best_iteration_),
                args.repeat,
            )
            raw_score = _best(lambda b=base, x=x_val: b._raw_predict(b.booster_, x), args.repeat)
            row.update(
                {
                    "rounds": base.best_iteration_,
                    "raw_train_seconds": round(raw_train, 2),
                    "raw_score_rows_per_second": round(len(validation) / raw_score),
                    "train_ratio": round(train_s / raw_train, 2),
                    "score_ratio": round(raw_score / score_s, 2),
                }
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()})
    )


if __name__ == "__main__":
    main()
