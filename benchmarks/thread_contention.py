"""A fit of each library idle and beside busy processes, with the old thread settings and
the package's, in one run.

Each fit runs in its own process, through the package's model classes
(``ml.models.make_classifier``), on ``--rows`` x ``--columns`` random rows: LightGBM and
XGBoost for ``--rounds`` rounds, the logistic candidate (scikit-learn's Newton-Cholesky,
on the BLAS). Beside it run 0, 1, 2 and 4 CPU-bound processes (``while True: pass``), as
a Celery worker's other tasks, a second test worker or a scheduler would. Two settings:

- old: two threads per library, whatever the machine, and OpenMP's default wait policy
  (its idle threads spin before they sleep): the libraries are imported before the
  package, so its environment comes too late for them, as it did before;
- new: the package's, ``threads`` from the CPUs the process may use and
  ``OMP_WAIT_POLICY=PASSIVE`` (ml/__init__.py).

Prints, per library and load, each setting's seconds and its ratio to the same setting
idle; the goal is a fit beside two busy processes within 2x of itself idle.

Usage:
    .venv/bin/python benchmarks/thread_contention.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

LOADS = (0, 1, 2, 4)
LIBRARIES = ("lightgbm", "xgboost", "logistic")
BUSY = "while True: pass"
FIT = """
import json, sys, time
old, algorithm, rows, columns, rounds = sys.argv[1] == "old", sys.argv[2], *map(int, sys.argv[3:6])
if old:  # the libraries load (and read their environment) before the package
    import lightgbm, xgboost, sklearn.linear_model  # noqa: F401
import numpy as np, pandas as pd
from ml.config import load_settings
from ml.features import FeatureSpec
from ml.models import make_classifier
rng = np.random.default_rng(0)
names = [f"x{i}" for i in range(columns)]
frame = pd.DataFrame(rng.normal(size=(rows, columns)), columns=names)
y = (frame["x0"] + rng.normal(size=rows) > 0.6).astype(int).to_numpy()
# a tenth held out, and early stopping that never stops: every fit grows all its rounds
settings = load_settings(env={}, boosting_max_rounds=rounds, boosting_early_stopping_rounds=rounds)
model = make_classifier(settings, algorithm, FeatureSpec(tuple(names), ()))
if old:
    model.n_jobs = 2
started = time.perf_counter()
cut = rows - rows // 10
model.fit(frame.iloc[:cut], y[:cut], frame.iloc[cut:], y[cut:])
print(json.dumps({"seconds": time.perf_counter() - started, "threads": model.n_jobs}))
"""


def fit(setting: str, algorithm: str, args: argparse.Namespace) -> float:
    env = dict(os.environ)
    for key in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ML_THREADS"):
        env.pop(key, None)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            FIT,
            setting,
            algorithm,
            *map(str, (args.rows, args.columns, args.rounds)),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=70_000)
    parser.add_argument("--columns", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    args = parser.parse_args()
    from ml import available_cpus

    print(
        f"{platform.processor() or platform.machine()}, {available_cpus()} CPUs for this "
        f"process, Python {platform.python_version()}; {args.rows:,} x {args.columns} rows, "
        f"{args.rounds} rounds; median of {args.repeat}"
    )
    results: dict[tuple[str, int, str], float] = {}
    started = time.perf_counter()
    for load in LOADS:
        busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(load)]
        try:
            for algorithm in args.libraries.split(","):
                for setting in ("old", "new"):
                    # old and new alternate, so that both see the same machine
                    results[(algorithm, load, setting)] = statistics.median(
                        fit(setting, algorithm, args) for _ in range(args.repeat)
                    )
        finally:
            for process in busy:
                process.kill()
                process.wait()
    print(
        f"{'library':<9} {'busy':>4}  {'old s':>7} {'x idle':>6}  {'new s':>7} {'x idle':>6}  new/old"
    )
    for algorithm in args.libraries.split(","):
        for load in LOADS:
            old, new = (results[(algorithm, load, s)] for s in ("old", "new"))
            old_idle, new_idle = (results[(algorithm, 0, s)] for s in ("old", "new"))
            print(
                f"{algorithm:<9} {load:>4}  {old:7.2f} {old / old_idle:6.2f}  "
                f"{new:7.2f} {new / new_idle:6.2f}  {new / old:7.2f}"
            )
    print(f"({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
