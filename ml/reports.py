"""The monitoring and validation pages: each page's context from the JSON its step
writes, rendered by the templates of :mod:`ml.html` (drift with performance, one
validation run, the index of validation runs). Self-contained HTML: inline style and
SVG, nothing fetched.

A day's monitoring report is ``reports/drift/drift_D.json`` and the page drawn from it:
:func:`write_drift_report` writes both (from ``ml monitor``), and
:func:`add_retraining_decision` adds the retraining policy's decision to the record and
draws the page again (from ``ml decide-retraining``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from ml.config import Settings
from ml.errors import DataError
from ml.html import render
from ml.io import read_json, write_json, write_text

# A bin of ml.drift.bin_labels: "<a", "a-b" or ">=a", each edge to 3 significant digits.
_EDGE = r"-?\d+(?:\.\d*)?(?:e[+-]\d+)?"
_BIN = re.compile(rf"^(<|>=)?({_EDGE})(?:-({_EDGE}))?$")
# Distributions drawn on the drift page: every drifted series, the score, and the stable
# series nearest their threshold up to this many in all. A chart costs about 35 ms to
# lay out; every series' numbers are in the page's table and its bins in the JSON.
DISTRIBUTIONS_SHOWN = 8
SCORE = "p_delayed"


def write_drift_report(
    settings: Settings, day: dt.date, summary: dict[str, Any]
) -> tuple[Path, Path]:
    """Write the day's monitoring record and its page; their paths (JSON, HTML)."""
    paths = settings.paths
    json_path = write_json(summary, paths.drift_report(day, ".json"))
    html_path = write_text(drift_report_html(summary), paths.drift_report(day, ".html"))
    return json_path, html_path


def check_monitored(settings: Settings, day: dt.date) -> Path:
    """The day's monitoring record; :class:`DataError` unless ``day`` has been monitored."""
    path = settings.paths.drift_report(day, ".json")
    if not path.exists():
        raise DataError(
            f"{path}: {day} has not been monitored (run `ml monitor --date {day}` first)"
        )
    return path


def add_retraining_decision(settings: Settings, day: dt.date, decision: dict) -> Path:
    """Add the retraining policy's decision for ``day`` (as :mod:`ml.retraining` records
    it) to the day's monitoring record, and draw its page again; returns the page.

    Raises:
        DataError: The day has not been monitored (its record is missing or unreadable).
    """
    path = check_monitored(settings, day)
    summary = read_json(path)
    summary["retraining"] = decision
    return write_drift_report(settings, day, summary)[1]


def drift_report_html(summary: dict[str, Any]) -> str:
    """The daily drift page: the verdict first, then every series' test and distribution.

    ``summary`` is what ``ml monitor`` writes beside the page as ``drift_<date>.json``.
    """
    series = summary["series"]
    drifted = summary["drifted_features"]
    day_series = sorted(
        (f for f in series if f["horizon"] == "day"),
        key=lambda f: (f["feature"] not in drifted, f["feature"] != SCORE, -_z(f), f["feature"]),
    )
    shown = max(DISTRIBUTIONS_SHOWN, len(drifted) + 1)
    day_series, not_shown = day_series[:shown], sorted(f["feature"] for f in day_series[shown:])
    context = {
        **summary,
        "title": f"Monitoring {summary['flight_date']}",
        "drifted": [
            {
                "feature": name,
                "since": summary["drifted_since"][name],
                "tests": [f for f in series if f["feature"] == name and f["is_drifted"]],
            }
            for name in drifted
        ],
        "series_count": len({f["feature"] for f in series}),
        "day_series": [
            {
                **f,
                "drifted": f["feature"] in drifted,
                "bins": f["bins"] if f["kind"] == "categorical" else [_bin(b) for b in f["bins"]],
            }
            for f in day_series
        ],
        "not_shown": not_shown,
        "large_psi": large_psi_but_stable(series),
        "psi_rule_of_thumb": PSI_RULE_OF_THUMB,
        "retraining": summary.get("retraining"),
        "performance": _performance(summary["performance"]) if "performance" in summary else None,
    }
    return render("drift.html", **context)


# The PSI that the usual rule of thumb calls a major shift.
PSI_RULE_OF_THUMB = 0.25


def large_psi_but_stable(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stable tests whose PSI the rule of thumb would call a major shift, largest
    first: each series is judged against its own day-to-day spread over the reference
    period (its z-score), and some (yesterday's temperature, say) move that much between
    ordinary days."""
    psi = [
        f
        for f in series
        if not f["is_drifted"] and f.get("psi") is not None and f["psi"] >= PSI_RULE_OF_THUMB
    ]
    return sorted(psi, key=lambda f: -f["psi"])


def _z(series: dict[str, Any]) -> float:
    """A series' z-score, missing ones last."""
    z = series.get("z")
    return float("-inf") if z is None or z != z else float(z)


def _bin(label: str) -> str:
    """A numeric bin's label with its edges in plain digits: ``1.12e+03-1.31e+03`` is
    ``1,120 to 1,310``, ``-5--2.5`` is ``-5 to -2.5``, ``>=24`` is ``\u2265 24``."""
    match = _BIN.match(label)
    if match is None:
        return label
    prefix, low, high = match.groups()
    if high is None:
        return {"<": "< ", ">=": "\u2265 "}.get(prefix or "", "") + _edge(low)
    return f"{_edge(low)} to {_edge(high)}"


def _edge(text: str) -> str:
    value = float(text)
    return f"{value:,.0f}" if abs(value) >= 1000 else text


def _performance(performance: dict[str, Any]) -> dict[str, Any]:
    """Today's estimate and the matured day's realized metrics (overall rows), and the
    champion's history of both as charts."""
    rows = [
        {"prior_log_loss": None, **r, "kind": kind, "day": day}
        for kind, day, records in (
            ("estimated", None, performance["estimated"]),
            ("realized", performance["realized_day"], performance["realized"]),
        )
        for r in records
        if r["dimension"] == "all"
    ]
    history = performance["history"]
    dates = sorted({str(h["flight_date"])[:10] for h in history})
    charts = []
    for metric, label in (("auc", "AUC"), ("log_loss", "log loss")):
        series = {}
        for kind in ("estimated", "realized"):
            by_day = {str(h["flight_date"])[:10]: h[metric] for h in history if h["kind"] == kind}
            series[f"{kind} {label}"] = [by_day.get(d) for d in dates]
        has_values = any(v is not None for values in series.values() for v in values)
        charts.append({"label": label, "series": series, "has_values": has_values})
    return {
        **performance,
        "rows": rows,
        "dates": dates,
        "charts": charts,
        "gap": estimate_gap(history),
    }


GAP_DAYS = 28


def estimate_gap(history: list[dict[str, Any]], days: int = GAP_DAYS) -> dict[str, Any] | None:
    """How far the champion's estimates were from what its days realized: over the last
    ``days`` days that have both, per metric the mean absolute gap and the mean of
    realized minus estimated (positive log loss: the estimate was optimistic). None
    before any day has both."""
    by_kind: dict[str, dict[str, dict]] = {"estimated": {}, "realized": {}}
    for h in history:
        by_kind[h["kind"]][str(h["flight_date"])[:10]] = h
    both = sorted(by_kind["estimated"].keys() & by_kind["realized"].keys())[-days:]
    if not both:
        return None
    gap: dict[str, Any] = {"days": len(both), "first": both[0], "last": both[-1]}
    for metric in ("log_loss", "auc"):
        pairs = [(by_kind["realized"][d][metric], by_kind["estimated"][d][metric]) for d in both]
        diffs = [r - e for r, e in pairs if r is not None and e is not None and r == r and e == e]
        gap[metric] = (
            {
                "mean_abs": sum(abs(d) for d in diffs) / len(diffs),
                "mean": sum(diffs) / len(diffs),
            }
            if diffs
            else None
        )
    return gap


def validation_html(report: dict[str, Any]) -> str:
    """One validation run: every suite, every expectation with its outcome, the warnings."""
    suites = [
        {
            **suite,
            "failed": sum(not r["success"] for r in suite.get("results", [])),
            "results": [
                {
                    **r,
                    "column": ", ".join(r["column"])
                    if isinstance(r["column"], list)
                    else r["column"] or "",
                }
                for r in suite.get("results", [])
            ],
        }
        for suite in report["suites"]
    ]
    return render(
        "validation.html",
        title=f"Validation {report['batch']}",
        batch=report["batch"],
        success=report["success"],
        warnings=report.get("warnings") or [],
        suites=suites,
    )


def validation_index_html(rows: list[dict[str, Any]]) -> str:
    """Every validation run on file, newest first, linked to its page."""
    runs = [{"warnings": 0, **r} for r in rows]
    return render("validation_index.html", title="Data validation", runs=runs)
