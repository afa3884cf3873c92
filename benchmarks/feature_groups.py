"""What each feature group of the mart adds, on two periods: each group added to the base, and
each left out of all.

On the marts of 2013 published in ``ML_DATA_DIR``, one candidate (``--algorithm``,
LightGBM by default, as the backtest trains) is fitted as ``ml train`` fits it with a
group of columns left out through the setting ``feature_exclude``, for these variants:

- **base**: every group below left out (the features the mart held before them);
- **+ group**: base and that group;
- **all**: nothing left out;
- **all - group**: every group but that one (``--drop``);
- **defaults**: the settings' ``feature_exclude``, what training uses.

Two periods, as issue goals name them:

1. **Jul-Aug**: trained as of 2013-07-01, scored on 2013-07-01..2013-08-31 with its
   training map, as ``ml evaluate`` scores a model.
2. **Mar-Dec**: retrained at ``--start`` and on the 1st of each month to ``--end`` on the
   trailing window (the backtest's monthly folds), each model scoring until the next
   (a monthly backtest without the gate or recalibration: the features' own effect, not
   the deployment policy's).

For each variant: log loss, AUC and ECE pooled over the period, and the difference in
daily log loss from base with two Newey-West standard errors over the days. A group
helps on a period when it lowers log loss by more than those two standard errors. Also
the median seconds of one candidate's fit (fit, early stopping, cross-fitted calibration).

Usage:
    ML_DATA_DIR=... .venv/bin/python benchmarks/feature_groups.py [--algorithm lightgbm]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import statistics

import numpy as np
import pandas as pd

from ml.backtest import make_folds
from ml.backtest_stats import newey_west_se
from ml.config import load_settings
from ml.features import LABEL, load_features, rows_between
from ml.metrics import binary_metrics, log_loss
from ml.train import fit_candidate, split_window

# The groups of the mart measured here, by the patterns of feature_exclude that name them.
GROUPS = {
    "flight number": ("flight_number_*",),
    "departure hour at the origin": ("origin_hour_*",),
    "scheduled congestion": ("origin_departures_3h", "dest_arrivals_from_nyc_hour"),
    "the evening before": ("origin_evening_dep_*",),
    "seasonality": ("day_of_year", "week_of_year"),
}
JUL_AUG = (dt.date(2013, 7, 1), dt.date(2013, 8, 31))


def variants(drop: bool, defaults: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    every = tuple(p for patterns in GROUPS.values() for p in patterns)
    table = {"base": every}
    for name, patterns in GROUPS.items():
        table[f"+ {name}"] = tuple(p for p in every if p not in patterns)
    table["all"] = ()
    if drop:
        table.update({f"all - {name}": patterns for name, patterns in GROUPS.items()})
    table["defaults"] = defaults
    return table


def daily_log_loss(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby("flight_date").apply(
        lambda day: log_loss(day[LABEL].astype(int).to_numpy(), day["p"].to_numpy()),
        include_groups=False,
    )


def scored(settings, history, as_of: dt.date, last: dt.date, algorithm: str):
    """The candidate fitted as of ``as_of``, its predictions on ``as_of..last``, and its
    fit seconds."""
    _, fit, holdout = split_window(settings, as_of, history=history)
    candidate = fit_candidate(settings, algorithm, fit, holdout)
    scored_rows = rows_between(history, as_of, last)
    rows = scored_rows[["flight_date", LABEL]].copy()
    rows["p"] = candidate.model.predict_proba(scored_rows)
    return rows, candidate.seconds


def summary(frame: pd.DataFrame) -> dict[str, float]:
    return binary_metrics(frame[LABEL].astype(int).to_numpy(), frame["p"].to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="lightgbm")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2013, 3, 1))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2013, 12, 31))
    parser.add_argument("--drop", action="store_true", help="also leave each group out of all")
    parser.add_argument(
        "--only", type=lambda v: v.split(","), help="these variants only (base is always run)"
    )
    args = parser.parse_args()
    settings = load_settings()
    history = load_features(settings, None, args.end)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{args.algorithm}, window {settings.train_window_days} days"
    )
    results: dict[str, dict] = {}
    table = variants(args.drop, settings.feature_exclude)
    if args.only:
        table = {n: e for n, e in table.items() if n == "base" or n in args.only}
    for name, exclude in table.items():
        s = dataclasses.replace(settings, feature_exclude=exclude)
        seconds = []
        months = []
        for fold in make_folds(args.start, args.end, "monthly"):
            rows, took = scored(s, history, fold.as_of, fold.last_day, args.algorithm)
            months.append(rows)
            seconds.append(took)
        summer, took = scored(s, history, JUL_AUG[0], JUL_AUG[1], args.algorithm)
        seconds.append(took)
        year = pd.concat(months, ignore_index=True)
        results[name] = {
            "jul_aug": summer,
            "year": year,
            "seconds": statistics.median(seconds),
            "monthly_ece": {
                m: summary(part)["ece"]
                for m, part in year.groupby(pd.to_datetime(year["flight_date"]).dt.month)
            },
        }
        print(f"{name}: done, median fit {statistics.median(seconds):.1f} s", flush=True)

    for period, label in (
        ("jul_aug", "Jul-Aug, trained as of 2013-07-01"),
        ("year", "Mar-Dec, monthly retrains"),
    ):
        print(f"\n{label}: log loss / AUC / ECE, and daily log loss minus base (2 NW SE)")
        print("| variant | log loss | AUC | ECE | daily log loss - base |")
        print("|---|---|---|---|---|")
        base_daily = daily_log_loss(results["base"][period])
        for name, r in results.items():
            m = summary(r[period])
            diff = (daily_log_loss(r[period]) - base_daily).to_numpy()
            se = newey_west_se(diff)
            cell = "" if name == "base" else f"{np.mean(diff):+.4f} ± {2 * se:.4f}"
            print(f"| {name} | {m['log_loss']:.4f} | {m['auc']:.4f} | {m['ece']:.4f} | {cell} |")
    print("\nMonthly ECE, Mar-Dec")
    months = sorted(results["base"]["monthly_ece"])
    print("| variant | " + " | ".join(dt.date(2013, m, 1).strftime("%b") for m in months) + " |")
    print("|---|" + "---|" * len(months))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r['monthly_ece'][m]:.3f}" for m in months) + " |")
    print(
        "\nMedian seconds of one fit: "
        + ", ".join(f"{n} {r['seconds']:.1f}" for n, r in results.items())
    )


if __name__ == "__main__":
    main()
