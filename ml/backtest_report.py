"""Backtest reports: one self-contained HTML page (and JSON) per run, and one per grid.

A run's page shows its metrics week by week beside the heuristic and the prior rate,
its calibration over time, its skill by the model's age, and its folds. Every page ends
with the grid: every run over the same period and candidates, cadence by window, as a
table and a chart, with the paired differences between cadences and a plain-language
conclusion drawn from them, and the oracle-forecast comparison where one was run. The
numbers come from :mod:`ml.backtest_stats`; this module only renders them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ml.backtest_stats import (
    SE_MULTIPLE,
    grid_runs,
    grid_summary,
    json_safe,
    load_runs,
    run_summary,
)
from ml.config import CADENCES, Settings
from ml.errors import DataError
from ml.features import ORACLE_LABEL
from ml.html import render
from ml.io import write_json, write_text


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
        **grid,
        "rows": [
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
    }


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
        folds=summary["folds"],
        grid=grid_context(summary["grid"], current=run["run_id"]),
    )


def write_run_report(settings: Settings, run_id: str) -> Path:
    """Write ``reports/backtest/<run_id>.html`` and ``.json``; returns the HTML's path."""
    summary = run_summary(settings, run_id)
    paths = settings.paths
    write_json(json_safe(summary), paths.backtest_report(run_id, ".json"))
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
    write_json(json_safe(grid), settings.paths.backtest_report(label, ".json"))
    return write_text(page, settings.paths.backtest_report(label, ".html"))
