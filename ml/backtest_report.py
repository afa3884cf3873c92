"""Backtest reports: one self-contained HTML page (and JSON) per run, and one per grid.

A run's page shows its metrics week by week beside the heuristic and the prior rate,
its calibration over time, its skill by the model's age, and its folds. Every page ends
with the grid: every run over the same period and candidates, cadence by window, as a
table and a chart, with the paired differences between cadences and a plain-language
conclusion drawn from them, and the oracle-forecast comparison where one was run.

Differences between two runs are paired by day (both scored the same flights) and
summarised per week: the mean weekly difference in log loss, with a Newey-West standard
error over the weeks. Weeks, not flights, are the unit because a day's flights share
their weather; neighbouring weeks share a model (or a season) too, which the Newey-West
error allows for, where the plain standard error of the weekly mean would be too small.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.backtest import grouped_metrics
from ml.config import CADENCES, Settings
from ml.errors import DataError
from ml.features import LABEL, ORACLE_LABEL
from ml.io import write_json, write_text
from ml.metrics import expected_calibration_error
from ml.reports import CUR_COLOUR, REF_COLOUR, line_chart_svg, page, table

AGE_BANDS = (
    (0, 7, "0-6 days"),
    (7, 14, "7-13"),
    (14, 30, "14-29"),
    (30, 60, "30-59"),
    (60, 10_000, "60+"),
)
# Two standard errors: a difference smaller than this is reported as not measurable.
SE_MULTIPLE = 2.0


def report_dir(settings: Settings) -> Path:
    return settings.paths.backtest_reports


def load_runs(settings: Settings) -> pd.DataFrame:
    """Every completed run (one row each), or an empty frame."""
    from ml.io import read_partitions

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


def _describe(diff: dict[str, float] | None, better: str, worse: str) -> str:
    if diff is None:
        return f"{better} and {worse} cannot be compared: they scored no common day"
    if not np.isfinite(diff["se"]):
        return f"{better} and {worse} share too few weeks to estimate an error"
    margin = SE_MULTIPLE * diff["se"]
    amount = f"{abs(diff['mean']):.4f} \u00b1 {margin:.4f}"
    if abs(diff["mean"]) <= margin:
        return (
            f"{better} and {worse} are indistinguishable ({amount} log loss, {diff['weeks']} weeks)"
        )
    verb = "lowers" if diff["mean"] < 0 else "raises"
    return f"{better} instead of {worse} {verb} log loss by {amount} ({diff['weeks']} weeks)"


def grid_summary(settings: Settings, runs: pd.DataFrame) -> dict[str, Any]:
    """The grid's table, the paired comparisons and the conclusion, as data."""
    plain = runs[~runs["uses_oracle_forecast"].astype(bool)]
    oracle = runs[runs["uses_oracle_forecast"].astype(bool)]
    cells = [
        {
            "run_id": r.run_id,
            "cadence": r.cadence,
            "window_days": int(r.window_days),
            "folds": int(r.folds),
            "auc": r.auc,
            "log_loss": r.log_loss,
            "ece": r.ece,
            "heuristic_auc": r.heuristic_auc,
            "heuristic_log_loss": r.heuristic_log_loss,
            "prior_log_loss": r.prior_log_loss,
            "min_effective_window_days": int(r.min_effective_window_days),
        }
        for r in plain.itertuples()
    ]
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
                {
                    "window_days": window,
                    "a": faster,
                    "b": slower,
                    "difference": diff,
                    "text": f"{window}-day window: "
                    + _describe(diff, f"retraining {faster}", slower),
                }
            )
    for cadence in cadences:
        present = [w for w in windows if (cadence, w) in by_key]
        for short, long in zip(present, present[1:], strict=False):
            diff = paired_difference(
                settings, by_key[(cadence, short)]["run_id"], by_key[(cadence, long)]["run_id"]
            )
            comparisons.append(
                {
                    "cadence": cadence,
                    "a": f"{short}d",
                    "b": f"{long}d",
                    "difference": diff,
                    "text": f"retraining {cadence}: "
                    + _describe(diff, f"{short} days of history", f"{long}"),
                }
            )
    oracle_rows = []
    for r in oracle.itertuples():
        twin = by_key.get((r.cadence, int(r.window_days)))
        if twin is None:
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
        "cells": cells,
        "cadences": cadences,
        "windows": windows,
        "comparisons": comparisons,
        "oracle": oracle_rows,
        "conclusion": conclusion(cells, comparisons, oracle_rows),
    }


def conclusion(
    cells: list[dict[str, Any]], comparisons: list[dict[str, Any]], oracle: list[dict[str, Any]]
) -> list[str]:
    """Plain-language sentences drawn from the grid's numbers."""
    if not cells:
        return []
    best = min(cells, key=lambda c: c["log_loss"])
    worst = max(cells, key=lambda c: c["log_loss"])
    if len(cells) == 1:
        return [
            f"One run so far: log loss {best['log_loss']:.4f} against the prior rate's "
            f"{best['prior_log_loss']:.4f} and the heuristic's {best['heuristic_log_loss']:.4f}."
        ]
    lines = [
        f"The lowest log loss, {best['log_loss']:.4f} (AUC {best['auc']:.3f}), came from retraining "
        f"{best['cadence']} on {best['window_days']} days; the prior rate scores {best['prior_log_loss']:.4f} "
        f"and the heuristic {best['heuristic_log_loss']:.4f} on the same flights. The highest, "
        f"{worst['log_loss']:.4f}, from retraining {worst['cadence']} on {worst['window_days']} days."
    ]
    measurable = [
        c
        for c in comparisons
        if c["difference"] and abs(c["difference"]["mean"]) > SE_MULTIPLE * c["difference"]["se"]
    ]
    if comparisons:
        lines.append(
            f"{len(measurable)} of {len(comparisons)} pairs of settings differ by more than "
            f"{SE_MULTIPLE:g} (Newey-West) standard errors of their weekly paired difference:"
        )
        lines.extend(c["text"] for c in comparisons)
    capped = sorted(
        {
            (c["window_days"], c["min_effective_window_days"])
            for c in cells
            if c["min_effective_window_days"] < c["window_days"]
        }
    )
    if capped:
        lines.append(
            "Windows are capped where the data starts: at the first retrain "
            + ", ".join(f"a {w}-day window held {n} days" for w, n in capped)
            + (
                "; retraining once, such windows train the same model."
                if len({n for _, n in capped}) < len(capped)
                else "."
            )
        )
    for o in oracle:
        lines.append(
            f"With the oracle-forecast features (an upper bound: the weather observed at departure), retraining "
            f"{o['cadence']} on {o['window_days']} days reaches AUC {o['auc']:.3f} against {o['without_auc']:.3f} "
            f"without them; "
            + _describe(o["difference"], "the oracle", "no forecast")
            + ". A real forecast recovers at most part of that."
        )
    return lines


def grouped_bars_svg(
    groups: list[str],
    series: dict[str, list[float | None]],
    width: int = 640,
    height: int = 220,
    unit: str = "",
) -> str:
    """Bars per group (x) and series (colour), from zero, with a legend."""
    colours = [REF_COLOUR, CUR_COLOUR, "#d9822b", "#067647"]
    series = {name: [_finite(v) for v in vs] for name, vs in series.items()}
    values = [v for vs in series.values() for v in vs if v is not None]
    if not groups or not values:
        return "<p class='muted'>No runs yet.</p>"
    # from zero, below it too: a model worse than its baseline shows as a bar under the axis
    top = max(max(values), 0.0) * 1.1 or 1e-9
    bottom = min(min(values), 0.0) * 1.1
    pad_l, pad_b, pad_t = 46, 36, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    slot = plot_w / len(groups)
    bar = slot * 0.8 / len(series)
    parts = [
        f"<svg width='{width}' height='{height}' role='img' xmlns='http://www.w3.org/2000/svg'>"
    ]

    def y_of(v: float) -> float:
        return pad_t + plot_h * (top - v) / (top - bottom)

    for tick in sorted({bottom, 0.0, top}):
        y = y_of(tick)
        parts.append(
            f"<line x1='{pad_l}' x2='{width - 10}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e3e6ec'/>"
            f"<text x='{pad_l - 4}' y='{y + 3:.1f}' font-size='9' text-anchor='end'>{tick:.3f}</text>"
        )
    for i, group in enumerate(groups):
        x0 = pad_l + i * slot + slot * 0.1
        for k, (name, vs) in enumerate(series.items()):
            v = vs[i]
            if v is None:
                continue
            y0, y1 = sorted((y_of(v), y_of(0.0)))
            parts.append(
                f"<rect x='{x0 + k * bar:.1f}' y='{y0:.1f}' width='{bar - 1:.1f}' height='{y1 - y0:.1f}' "
                f"fill='{colours[k % len(colours)]}'><title>{escape(group)}, {escape(name)}: {v:.4f}{escape(unit)}</title></rect>"
            )
        parts.append(
            f"<text x='{x0 + slot * 0.4:.1f}' y='{height - 22}' font-size='10' text-anchor='middle'>{escape(group)}</text>"
        )
    for k, name in enumerate(series):
        parts.append(
            f"<rect x='{pad_l + 130 * k}' y='{height - 11}' width='10' height='10' fill='{colours[k % len(colours)]}'/>"
            f"<text x='{pad_l + 130 * k + 14}' y='{height - 2}' font-size='10'>{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def grid_html(grid: dict[str, Any], current: str | None = None) -> str:
    """The grid section: table, chart, comparisons, oracle, conclusion."""
    cells = grid["cells"]
    if not cells:
        return "<h2>The grid</h2><p class='muted'>No other runs over this period yet (`ml backtest-grid`).</p>"
    rows = [
        [
            ("\u2192 " if c["run_id"] == current else "") + c["cadence"],
            c["window_days"],
            c["folds"],
            c["log_loss"],
            c["prior_log_loss"],
            c["heuristic_log_loss"],
            c["auc"],
            c["heuristic_auc"],
            c["ece"],
        ]
        for c in sorted(
            cells,
            key=lambda c: (grid["windows"].index(c["window_days"]), CADENCES.index(c["cadence"])),
        )
    ]
    summary = table(
        [
            "cadence",
            "window (days)",
            "retrains",
            "log loss",
            "prior",
            "heuristic",
            "AUC",
            "heuristic AUC",
            "ECE",
        ],
        rows,
    )
    by_key = {(c["cadence"], c["window_days"]): c for c in cells}
    skill = {
        f"{w} days": [
            (by_key[(c, w)]["prior_log_loss"] - by_key[(c, w)]["log_loss"])
            if (c, w) in by_key
            else None
            for c in grid["cadences"]
        ]
        for w in grid["windows"]
    }
    auc = {
        f"{w} days": [by_key[(c, w)]["auc"] if (c, w) in by_key else None for c in grid["cadences"]]
        for w in grid["windows"]
    }
    oracle = ""
    if grid["oracle"]:
        oracle = (
            f"<h3>The value of forecast data: an upper bound</h3><p class='bad'>{escape(ORACLE_LABEL)}</p>"
            + table(
                [
                    "cadence",
                    "window",
                    "AUC with",
                    "AUC without",
                    "log loss with",
                    "log loss without",
                ],
                [
                    [
                        o["cadence"],
                        o["window_days"],
                        o["auc"],
                        o["without_auc"],
                        o["log_loss"],
                        o["without_log_loss"],
                    ]
                    for o in grid["oracle"]
                ],
            )
        )
    conclusion_html = "".join(f"<li>{escape(line)}</li>" for line in grid["conclusion"])
    return (
        "<h2>The grid: how often to retrain, on how much history</h2>"
        f"<h3>Conclusion</h3><ul>{conclusion_html}</ul>"
        f"{summary}"
        "<h3>Log loss below the prior rate's (higher is better), by cadence</h3>"
        f"{grouped_bars_svg(grid['cadences'], skill)}"
        "<h3>AUC by cadence</h3>"
        f"{grouped_bars_svg(grid['cadences'], auc)}"
        f"{oracle}"
    )


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
    return {
        "run": {k: (v.item() if hasattr(v, "item") else v) for k, v in run.to_dict().items()},
        "weekly": weekly.to_dict("records"),
        "skill_by_age": skill_by_age(metrics),
        "folds": folds.to_dict("records"),
        "grid": grid_summary(settings, grid_runs(runs, run)),
    }


def run_html(summary: dict[str, Any]) -> str:
    run = summary["run"]
    weekly = summary["weekly"]
    weeks = [str(w["week"]) for w in weekly]
    oracle = bool(run["uses_oracle_forecast"])
    folds = summary["folds"]
    fold_rows = [
        [
            str(f["as_of"]),
            str(f["last_day"]),
            f["algorithm"],
            str(f["fit_start"]),
            f["effective_window_days"],
            f["fit_rows"],
            f["holdout_log_loss"],
            f["holdout_auc"],
            f["best_iteration"] or "-",
            f"{f['train_seconds']:.1f}",
        ]
        for f in folds
    ]
    ages = summary["skill_by_age"]
    body = (
        f"<h1>Backtest {escape(run['run_id'])}</h1>"
        + (f"<p class='bad'>{escape(ORACLE_LABEL)}</p>" if oracle else "")
        + f"<p class='muted'>Flights of {escape(str(run['start']))} to {escape(str(run['end']))}, {run['scored_rows']:,} in all. "
        f"A {escape(run['candidates'])} model retrained {escape(run['cadence'])} ({run['folds']} retrains) on the "
        f"{run['window_days']} days before each retrain date"
        + (
            f" ({run['min_effective_window_days']} at the first, where the data starts)"
            if run["min_effective_window_days"] < run["window_days"]
            else ""
        )
        + " through production's training code (without the promotion gate: every retrained model "
        "scores), then scoring each day until the next retrain. "
        "Features hold only what was known at each flight's cutoff; training uses only labels known before the retrain date.</p>"
        "<h2>Over the whole period, beside the baselines</h2>"
        + table(
            ["", "log loss", "Brier", "AUC", "PR-AUC", "ECE"],
            [
                ["model", run["log_loss"], run["brier"], run["auc"], run["pr_auc"], run["ece"]],
                [
                    "heuristic (carrier x origin 28-day rate)",
                    run["heuristic_log_loss"],
                    run["heuristic_brier"],
                    run["heuristic_auc"],
                    run["heuristic_pr_auc"],
                    run["heuristic_ece"],
                ],
                [
                    "prior rate (training window's)",
                    run["prior_log_loss"],
                    run["prior_brier"],
                    "-",
                    "-",
                    "-",
                ],
            ],
        )
        + f"<p class='muted'>Loaded the features in {run['load_seconds']:.1f} s, trained for {run['train_seconds']:.0f} s, "
        f"{run['elapsed_seconds']:.0f} s in all.</p>"
        "<h2>Metrics over time (weekly)</h2><h3>Log loss (lower is better)</h3>"
        + line_chart_svg(
            weeks,
            {
                "model": [w["log_loss"] for w in weekly],
                "heuristic": [w["heuristic_log_loss"] for w in weekly],
                "prior rate": [w["prior_log_loss"] for w in weekly],
            },
        )
        + "<h3>AUC</h3>"
        + line_chart_svg(
            weeks,
            {
                "model": [_finite(w["auc"]) for w in weekly],
                "heuristic": [_finite(w["heuristic_auc"]) for w in weekly],
            },
        )
        + "<h2>Calibration over time (weekly)</h2><h3>Mean predicted probability and observed delay rate</h3>"
        + line_chart_svg(
            weeks,
            {
                "mean predicted": [w["mean_prediction"] for w in weekly],
                "observed": [w["observed_rate"] for w in weekly],
            },
        )
        + "<h3>Expected calibration error</h3>"
        + line_chart_svg(weeks, {"ECE": [w["ece"] for w in weekly]})
        + "<h2>Skill by model age</h2><p class='muted'>Log loss on the days that many days after the model's retrain date. "
        "With a long cadence the older days are also later in the year, so age and season are mixed.</p>"
        + table(
            ["days since retraining", "days", "flights", "log loss", "prior", "heuristic"],
            [
                [
                    a["age"],
                    a["days"],
                    a["rows"],
                    a["log_loss"],
                    a["prior_log_loss"],
                    a["heuristic_log_loss"],
                ]
                for a in ages
            ],
        )
        + grid_html(summary["grid"], current=run["run_id"])
        + "<h2>Retrains</h2>"
        + table(
            [
                "as of",
                "scores to",
                "algorithm",
                "fit from",
                "window days",
                "fit rows",
                "holdout log loss",
                "holdout AUC",
                "trees",
                "seconds",
            ],
            fold_rows,
        )
    )
    return page(f"Backtest {run['run_id']}", body)


def _finite(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_run_report(settings: Settings, run_id: str) -> Path:
    """Write ``reports/backtest/<run_id>.html`` and ``.json``; returns the HTML's path."""
    summary = run_summary(settings, run_id)
    folder = report_dir(settings)
    write_json(_json_safe(summary), folder / f"{run_id}.json")
    return write_text(run_html(summary), folder / f"{run_id}.html")


def write_grid_report(settings: Settings, start: dt.date, end: dt.date, candidates: str) -> Path:
    """Write ``reports/backtest/grid-<start>-<end>.html`` and ``.json`` for the grid's runs."""
    runs = load_runs(settings)
    if runs.empty:
        raise DataError(f"{settings.paths.backtests}: no backtest runs yet")
    grid = grid_summary(
        settings, grid_runs(runs, {"start": start, "end": end, "candidates": candidates})
    )
    links = "".join(
        f"<li><a href='{escape(c['run_id'])}.html'>{escape(c['run_id'])}</a></li>"
        for c in grid["cells"]
    ) + "".join(
        f"<li><a href='{escape(o['run_id'])}.html'>{escape(o['run_id'])}</a> (oracle)</li>"
        for o in grid["oracle"]
    )
    body = (
        f"<h1>How often to retrain: backtests of {start} to {end}</h1>"
        f"<p class='muted'>Every run replays production training ({escape(candidates)}) with a rolling origin over the same "
        "flights; each cell is one cadence and one window of history. Differences are paired by day and summarised by week "
        f"(mean \u00b1 {SE_MULTIPLE:g} standard errors).</p>"
        + grid_html(grid)
        + f"<h2>Runs</h2><ul>{links}</ul>"
    )
    folder = report_dir(settings)
    label = f"grid-{start:%Y%m%d}-{end:%Y%m%d}-{candidates.replace(',', '_')}"
    write_json(_json_safe(grid), folder / f"{label}.json")
    return write_text(page(f"Backtest grid {start} to {end}", body), folder / f"{label}.html")
