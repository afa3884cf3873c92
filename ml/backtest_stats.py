"""Backtest statistics: a run's tables read back, its weekly metrics and skill by model
age, and the grid of runs over the same period with the paired differences between them.
Numbers only: :mod:`ml.backtest_report` words the conclusion and draws the pages.

Differences between two runs are paired by day (both scored the same flights) and
summarised per week: the mean weekly difference in log loss, with a Newey-West standard
error over the weeks. Weeks, not flights, are the unit because a day's flights share
their weather; neighbouring weeks share a model (or a season) too, which the Newey-West
error allows for, where the plain standard error of the weekly mean would be too small.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ml.backtest import grouped_metrics, load_runs
from ml.config import CADENCES, Settings
from ml.errors import DataError
from ml.features import LABEL
from ml.metrics import expected_calibration_error

AGE_BANDS = (
    (0, 7, "0-6 days"),
    (7, 14, "7-13"),
    (14, 30, "14-29"),
    (30, 60, "30-59"),
    (60, 10_000, "60+"),
)
# Two standard errors: a difference smaller than this is reported as not measurable.
SE_MULTIPLE = 2.0


def load_table(settings: Settings, table: str, run_id: str) -> pd.DataFrame:
    path = settings.paths.backtest_table(table, run_id)
    if not path.exists():
        raise DataError(f"{path}: no backtest run {run_id!r} (see `ml backtest --help`)")
    return pd.read_parquet(path)


def week_of(dates: pd.Series) -> pd.Series:
    """The Monday starting each date's week."""
    days = pd.to_datetime(dates)
    return (days - pd.to_timedelta(days.dt.weekday, unit="D")).dt.date


def weekly_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per week: model, heuristic and prior metrics, and the model's ECE."""
    frame = predictions.assign(week=week_of(predictions["flight_date"]))
    weekly = grouped_metrics(frame, ["week"])
    ece = {
        week: expected_calibration_error(
            part[LABEL].astype(int).to_numpy(), part["p_delayed"].to_numpy()
        )
        for week, part in frame.groupby("week")
    }
    weekly["ece"] = weekly["week"].map(ece)
    return weekly


def bands_by_month(predictions: pd.DataFrame) -> list[dict[str, Any]]:
    """Per calendar month and risk band (the serving model's, :mod:`ml.risk`): the share of
    the month's flights in the band and the share of them delayed; empty for a run
    written before bands were kept."""
    if "risk_band" not in predictions:
        return []
    frame = predictions.assign(
        month=pd.to_datetime(predictions["flight_date"]).dt.strftime("%Y-%m"),
        _y=predictions[LABEL].astype(float),
    )
    flights = frame.groupby("month").size()
    out = []
    for (month, band), part in frame.groupby(["month", "risk_band"], sort=True):
        out.append(
            {
                "month": month,
                "band": band,
                "flights": len(part),
                "share": len(part) / flights[month],
                "delay_rate": float(part["_y"].mean()),
                "mean_p": float(part["p_delayed"].mean()),
            }
        )
    return out


def skill_by_age(metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """Log loss below the prior rate's, by days since the model was trained."""
    days = metrics[metrics["dimension"] == "all"]
    out = []
    for low, high, label in AGE_BANDS:
        band = days[(days["model_age_days"] >= low) & (days["model_age_days"] < high)]
        if band.empty:
            continue
        w = band["rows"]
        out.append(
            {
                "age": label,
                "days": len(band),
                "rows": int(w.sum()),
                "log_loss": float(np.average(band["log_loss"], weights=w)),
                "prior_log_loss": float(np.average(band["prior_log_loss"], weights=w)),
                "heuristic_log_loss": float(np.average(band["heuristic_log_loss"], weights=w)),
            }
        )
    return out


def newey_west_se(values: np.ndarray) -> float:
    """Standard error of the mean of a serially correlated series: Bartlett weights up to
    lag ``floor(4 (n / 100) ** (2 / 9))``, the usual rule; NaN below two values."""
    n = len(values)
    if n < 2:
        return float("nan")
    e = np.asarray(values, dtype=float) - np.mean(values)
    lags = int(4 * (n / 100) ** (2 / 9))
    variance = e @ e / n
    for k in range(1, lags + 1):
        variance += 2 * (1 - k / (lags + 1)) * (e[k:] @ e[:-k]) / n
    return float(np.sqrt(max(variance, 0.0) / n))


def paired_difference(settings: Settings, run_a: str, run_b: str) -> dict[str, float] | None:
    """Log loss of ``run_a`` minus ``run_b`` over the days both scored: the mean of the
    weekly differences and its Newey-West standard error. Negative: ``run_a`` is better.

    Raises:
        ValueError: The runs scored different flights on a common day.
    """
    a = load_table(settings, "metrics", run_a)
    b = load_table(settings, "metrics", run_b)
    keep = ["flight_date", "rows", "log_loss"]
    a, b = (m.loc[m["dimension"] == "all", keep] for m in (a, b))
    both = a.merge(b, on="flight_date", suffixes=("_a", "_b"))
    if both.empty:
        return None
    if not (both["rows_a"] == both["rows_b"]).all():
        raise DataError(
            f"backtests {run_a} and {run_b} scored different flights on the same days "
            "(were they run on different marts?); re-run one with `--rerun`"
        )
    both["week"] = week_of(both["flight_date"])
    both["diff"] = (both["log_loss_a"] - both["log_loss_b"]) * both["rows_a"]
    weeks = both.groupby("week")[["diff", "rows_a"]].sum()
    weekly = (weeks["diff"] / weeks["rows_a"]).to_numpy()
    return {"mean": float(weekly.mean()), "se": newey_west_se(weekly), "weeks": len(weekly)}


def grid_runs(runs: pd.DataFrame, run: pd.Series | dict) -> pd.DataFrame:
    """The runs over the same period and candidates as ``run``, oracle ones included."""
    same = (
        (runs["start"] == run["start"])
        & (runs["end"] == run["end"])
        & (runs["candidates"] == run["candidates"])
    )
    return runs[same]


PRODUCTION = (True, True)  # a run that replays the gate and daily recalibration


def replay_variant(run: Any) -> tuple[bool, bool]:
    """(replays the gate, replays daily recalibration) of a run row; a run written before
    either was replayed counts as replaying neither."""

    def flag(key: str) -> bool:
        value = run.get(key)  # a dict or a pandas row; None where the column is missing
        return bool(value) if value is not None and not pd.isna(value) else False

    return flag("replays_gate"), flag("replays_recalibration")


def variant_label(variant: tuple[bool, bool]) -> str:
    gate, recalibration = variant
    return (
        ("gate replayed" if gate else "every retrain deployed")
        + ", "
        + ("recalibrated daily" if recalibration else "training map")
    )


def _cell(r: pd.Series) -> dict[str, Any]:
    deployed = r.get("retrains_deployed")  # missing before the gate was replayed: all were
    return {
        "run_id": r["run_id"],
        "cadence": r["cadence"],
        "window_days": int(r["window_days"]),
        "variant": replay_variant(r),
        "folds": int(r["folds"]),
        "deployed": int(r["folds"] if deployed is None or pd.isna(deployed) else deployed),
        "auc": r["auc"],
        "log_loss": r["log_loss"],
        "ece": r["ece"],
        "heuristic_auc": r["heuristic_auc"],
        "heuristic_log_loss": r["heuristic_log_loss"],
        "prior_log_loss": r["prior_log_loss"],
        "min_effective_window_days": int(r["min_effective_window_days"]),
    }


def grid_summary(settings: Settings, runs: pd.DataFrame) -> dict[str, Any]:
    """The grid's cells, and the paired comparisons: between cadences on one window
    (``window_days``, ``a`` and ``b`` cadences) and between windows on one cadence
    (``cadence``, ``a`` and ``b`` windows in days), each with its ``difference``.

    The cadence and window comparisons are made among the runs of one replay variant
    (``variant``): production's (gate and recalibration replayed) where there is one, else
    the variant with the most runs. ``replay`` pairs each of that variant's runs with its
    twin that leaves out the gate, or daily recalibration, where that twin was run.
    """
    plain = runs[~runs["uses_oracle_forecast"].astype(bool)]
    oracle = runs[runs["uses_oracle_forecast"].astype(bool)]
    every = [_cell(r) for _, r in plain.iterrows()]
    counts = Counter(c["variant"] for c in every)
    variant = (
        PRODUCTION
        if PRODUCTION in counts or not counts
        else max(counts, key=lambda v: (counts[v], v))
    )
    cells = [c for c in every if c["variant"] == variant]
    twins = {(c["cadence"], c["window_days"], c["variant"]): c for c in every}
    replay = []
    for c in cells:
        gate, recalibration = c["variant"]
        pairs = (
            ("gate", (not gate, recalibration), gate),
            ("recalibration", (gate, not recalibration), recalibration),
        )
        for part, twin_variant, replayed in pairs:
            twin = twins.get((c["cadence"], c["window_days"], twin_variant))
            if twin is None:
                continue
            on, off = (c, twin) if replayed else (twin, c)
            replay.append(
                {
                    "part": part,
                    "cadence": c["cadence"],
                    "window_days": c["window_days"],
                    "with": on,
                    "without": off,
                    "difference": paired_difference(settings, on["run_id"], off["run_id"]),
                }
            )
    by_key = {(c["cadence"], c["window_days"]): c for c in cells}
    windows = sorted({c["window_days"] for c in cells})
    cadences = [c for c in CADENCES if any(k[0] == c for k in by_key)]
    comparisons = []
    for window in windows:
        ordered = [c for c in cadences if (c, window) in by_key]
        # each cadence against the next slower one, and against never retraining
        pairs = list(zip(ordered, ordered[1:], strict=False))
        if "once" in ordered:
            pairs += [(c, "once") for c in ordered[:-2]]
        for faster, slower in pairs:
            diff = paired_difference(
                settings, by_key[(faster, window)]["run_id"], by_key[(slower, window)]["run_id"]
            )
            comparisons.append(
                {"window_days": window, "a": faster, "b": slower, "difference": diff}
            )
    for cadence in cadences:
        present = [w for w in windows if (cadence, w) in by_key]
        for short, long in zip(present, present[1:], strict=False):
            diff = paired_difference(
                settings, by_key[(cadence, short)]["run_id"], by_key[(cadence, long)]["run_id"]
            )
            comparisons.append({"cadence": cadence, "a": short, "b": long, "difference": diff})
    oracle_rows = []
    for r in oracle.itertuples():
        twin = by_key.get((r.cadence, int(r.window_days)))
        if twin is None or replay_variant(r._asdict()) != variant:
            continue
        diff = paired_difference(settings, r.run_id, twin["run_id"])
        oracle_rows.append(
            {
                "run_id": r.run_id,
                "cadence": r.cadence,
                "window_days": int(r.window_days),
                "auc": r.auc,
                "log_loss": r.log_loss,
                "without_auc": twin["auc"],
                "without_log_loss": twin["log_loss"],
                "difference": diff,
            }
        )
    return {
        "variant": list(variant),
        "variant_label": variant_label(variant),
        "cells": cells,
        "replay": replay,
        "cadences": cadences,
        "windows": windows,
        "comparisons": comparisons,
        "oracle": oracle_rows,
    }


# What a run written before the gate and recalibration were replayed lacks: it deployed
# every retrain with its training map, and kept no counterfactual scores.
RUN_BEFORE_REPLAY: dict[str, Any] = {
    "replays_gate": False,
    "replays_recalibration": False,
    "retrains_deployed": None,
    "gate_seconds": None,
    **{f"{k}_{m}": None for k in ("static", "every_retrain") for m in ("auc", "log_loss", "ece")},
}
FOLD_BEFORE_REPLAY: dict[str, Any] = {
    "promoted": True,
    "gate_reason": "deployed: the gate was not replayed",
    "served_log_loss": None,
    "candidate_log_loss": None,
}


def run_summary(settings: Settings, run_id: str) -> dict[str, Any]:
    """Everything a run's page shows, as data (also written as JSON)."""
    runs = load_runs(settings)
    if runs.empty or run_id not in set(runs["run_id"]):
        raise DataError(f"{settings.paths.backtests}: no completed backtest run {run_id!r}")
    run = runs[runs["run_id"] == run_id].iloc[0]
    predictions = load_table(settings, "predictions", run_id)
    metrics = load_table(settings, "metrics", run_id)
    folds = load_table(settings, "folds", run_id)
    weekly = weekly_metrics(predictions)
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in run.to_dict().items()}
    return {
        "run": {**RUN_BEFORE_REPLAY, **{k: v for k, v in record.items() if v is not None}},
        "weekly": weekly.to_dict("records"),
        "skill_by_age": skill_by_age(metrics),
        "bands_by_month": bands_by_month(predictions),
        "folds": [
            {
                **FOLD_BEFORE_REPLAY,
                "served_as_of": f["as_of"],
                **f,
                "deployed": "yes" if f.get("promoted", True) else "no",
            }
            for f in folds.to_dict("records")
        ],
        "grid": grid_summary(settings, grid_runs(runs, run)),
    }


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
