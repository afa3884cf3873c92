"""Backtest reports: one self-contained HTML page (and JSON) per run, and one per grid.

A run's page shows its metrics week by week beside the heuristic and the prior rate,
its calibration over time, its skill by the model's age, and its folds. Every page ends
with the grid: every run over the same period and candidates, cadence by window, as a
table and a chart, with the paired differences between cadences and a plain-language
conclusion drawn from them, and the oracle-forecast comparison where one was run. The
numbers come from :mod:`ml.backtest_stats`; this module words and draws them, its
numbers formatted by :func:`ml.html.number` like every page's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from ml.backtest import load_runs
from ml.backtest_stats import (
    SE_MULTIPLE,
    grid_runs,
    grid_summary,
    json_safe,
    run_summary,
)
from ml.config import CADENCES, Settings
from ml.errors import DataError
from ml.features import ORACLE_LABEL
from ml.html import number, render
from ml.io import write_json, write_text


def describe(diff: dict[str, float] | None, better: str, worse: str) -> str:
    """One paired difference in words: which is lower, by how much, give or take
    :data:`SE_MULTIPLE` standard errors, or that the two cannot be told apart."""
    if diff is None:
        return f"{better} and {worse} cannot be compared: they scored no common day"
    if not np.isfinite(diff["se"]):
        return f"{better} and {worse} share too few weeks to estimate an error"
    margin = SE_MULTIPLE * diff["se"]
    amount = f"{number(abs(diff['mean']), 4)} \u00b1 {number(margin, 4)}"
    if abs(diff["mean"]) <= margin:
        return (
            f"{better} and {worse} are indistinguishable ({amount} log loss, {diff['weeks']} weeks)"
        )
    verb = "lowers" if diff["mean"] < 0 else "raises"
    return f"{better} instead of {worse} {verb} log loss by {amount} ({diff['weeks']} weeks)"


def _comparison(c: dict[str, Any]) -> str:
    if "window_days" in c:
        return f"{c['window_days']}-day window: " + describe(
            c["difference"], f"retraining {c['a']}", c["b"]
        )
    return f"retraining {c['cadence']}: " + describe(
        c["difference"], f"{c['a']} days of history", f"{c['b']}"
    )


def _replay(r: dict[str, Any]) -> str:
    on, off = r["with"], r["without"]
    where = f"retraining {r['cadence']} on {r['window_days']} days"
    if r["part"] == "gate":
        return (
            f"The promotion gate, {where}: it deployed {on['deployed']} of {on['folds']} "
            f"retrains, the champion it kept scoring in between (AUC {number(on['auc'], 3)} "
            f"against {number(off['auc'], 3)} deploying every retrain); "
            + describe(r["difference"], "replaying the gate", "deploying every retrain")
            + "."
        )
    return (
        f"Daily recalibration, {where}: ECE {number(on['ece'], 4)} against "
        f"{number(off['ece'], 4)} with the training map, AUC {number(on['auc'], 3)} against "
        f"{number(off['auc'], 3)}; "
        + describe(r["difference"], "recalibrating daily", "the training map")
        + "."
    )


def conclusion(grid: dict[str, Any]) -> list[str]:
    """The grid's plain-language conclusion, drawn from its numbers."""
    if not grid["cells"]:
        return []
    variant = (
        "The runs compared replay production's promotion gate and daily recalibration."
        if tuple(grid["variant"]) == (True, True)
        else f"The runs compared are {grid['variant_label']}: they do not replay all that "
        "production does."
    )
    return [variant, *_freshness(grid), *(_replay(r) for r in grid["replay"])]


def _freshness(grid: dict[str, Any]) -> list[str]:
    cells, comparisons, oracle = grid["cells"], grid["comparisons"], grid["oracle"]
    best = min(cells, key=lambda c: c["log_loss"])
    worst = max(cells, key=lambda c: c["log_loss"])
    if len(cells) == 1:
        return [
            f"One run so far: log loss {number(best['log_loss'], 4)} against the prior rate's "
            f"{number(best['prior_log_loss'], 4)} and the heuristic's "
            f"{number(best['heuristic_log_loss'], 4)}."
        ]
    lines = [
        f"The lowest log loss, {number(best['log_loss'], 4)} (AUC {number(best['auc'], 3)}), "
        f"came from retraining {best['cadence']} on {best['window_days']} days; the prior rate "
        f"scores {number(best['prior_log_loss'], 4)} and the heuristic "
        f"{number(best['heuristic_log_loss'], 4)} on the same flights. The highest, "
        f"{number(worst['log_loss'], 4)}, from retraining {worst['cadence']} on "
        f"{worst['window_days']} days."
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
        lines.extend(_comparison(c) for c in comparisons)
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
            "With the oracle-forecast features (an upper bound: the weather observed at "
            f"departure), retraining {o['cadence']} on {o['window_days']} days reaches AUC "
            f"{number(o['auc'], 3)} against {number(o['without_auc'], 3)} without them; "
            + describe(o["difference"], "the oracle", "no forecast")
            + ". A real forecast recovers at most part of that."
        )
    return lines


def with_conclusion(grid: dict[str, Any]) -> dict[str, Any]:
    """The grid's numbers and its :func:`conclusion`, as its pages and JSON records hold them."""
    return {**grid, "conclusion": conclusion(grid)}


def grid_context(grid: dict[str, Any], current: str | None = None) -> dict[str, Any]:
    """The grid section's table rows (cadence by window, ``current`` marked), the series
    of its two charts and its oracle rows."""
    cells = sorted(
        grid["cells"],
        key=lambda c: (grid["windows"].index(c["window_days"]), CADENCES.index(c["cadence"])),
    )
    by_key = {(c["cadence"], c["window_days"]): c for c in cells}

    def per_cadence(value) -> dict[str, list[float | None]]:
        return {
            f"{w} days": [
                value(by_key[(c, w)]) if (c, w) in by_key else None for c in grid["cadences"]
            ]
            for w in grid["windows"]
        }

    return {
        **with_conclusion(grid),
        "rows": [
            [
                ("\u2192 " if c["run_id"] == current else "") + c["cadence"],
                c["window_days"],
                c["folds"],
                c["deployed"],
                c["log_loss"],
                c["prior_log_loss"],
                c["heuristic_log_loss"],
                c["auc"],
                c["heuristic_auc"],
                c["ece"],
            ]
            for c in cells
        ],
        "skill": per_cadence(lambda c: c["prior_log_loss"] - c["log_loss"]),
        "auc": per_cadence(lambda c: c["auc"]),
        "oracle_rows": [
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
        "oracle_label": ORACLE_LABEL,
        "replay_rows": [
            [
                r["part"],
                r["cadence"],
                r["window_days"],
                r["with"]["log_loss"],
                r["without"]["log_loss"],
                r["with"]["auc"],
                r["without"]["auc"],
                r["with"]["ece"],
                r["without"]["ece"],
            ]
            for r in grid["replay"]
        ],
    }


def _band_rows(bands: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per month: each band's share of the flights and the share of them delayed."""
    by_month: dict[str, dict[str, dict[str, Any]]] = {}
    for b in bands:
        by_month.setdefault(b["month"], {})[b["band"]] = b
    rows = []
    for month, present in by_month.items():
        row: list[Any] = [month]
        for band in ("high", "medium", "low"):
            cell = present.get(band)
            row += [cell["share"], cell["delay_rate"]] if cell else [0.0, None]
        rows.append(row)
    return rows


def run_html(summary: dict[str, Any]) -> str:
    """A run's page from its summary (:func:`ml.backtest_stats.run_summary`)."""
    run = summary["run"]
    weekly = summary["weekly"]
    return render(
        "backtest_run.html",
        title=f"Backtest {run['run_id']}",
        run=run,
        oracle_label=ORACLE_LABEL if run["uses_oracle_forecast"] else None,
        weeks=[str(w["week"]) for w in weekly],
        weekly={key: [w[key] for w in weekly] for key in weekly[0]} if weekly else {},
        skill_by_age=summary["skill_by_age"],
        band_rows=_band_rows(summary["bands_by_month"]),
        folds=summary["folds"],
        grid=grid_context(summary["grid"], current=run["run_id"]),
    )


def write_run_report(settings: Settings, run_id: str) -> Path:
    """Write ``reports/backtest/<run_id>.html`` and ``.json``; returns the HTML's path."""
    summary = run_summary(settings, run_id)
    paths = settings.paths
    record = {**summary, "grid": with_conclusion(summary["grid"])}
    write_json(json_safe(record), paths.backtest_report(run_id, ".json"))
    return write_text(run_html(summary), paths.backtest_report(run_id, ".html"))


def write_grid_report(settings: Settings, start: dt.date, end: dt.date, candidates: str) -> Path:
    """Write ``reports/backtest/grid-<start>-<end>.html`` and ``.json`` for the grid's runs."""
    runs = load_runs(settings)
    if runs.empty:
        raise DataError(f"{settings.paths.backtests}: no backtest runs yet")
    grid = grid_summary(
        settings, grid_runs(runs, {"start": start, "end": end, "candidates": candidates})
    )
    page = render(
        "backtest_grid.html",
        title=f"Backtest grid {start} to {end}",
        start=start,
        end=end,
        candidates=candidates,
        se_multiple=SE_MULTIPLE,
        grid=grid_context(grid),
    )
    label = f"grid-{start:%Y%m%d}-{end:%Y%m%d}-{candidates.replace(',', '_')}"
    write_json(json_safe(with_conclusion(grid)), settings.paths.backtest_report(label, ".json"))
    return write_text(page, settings.paths.backtest_report(label, ".html"))
