"""Promotion gate: whether a newly trained model may replace the champion.

The comparison is made on the new model's holdout (the last ``validation_days`` before its
as-of date), where both models are scored on the same rows: the holdout's days after the
last day the champion learned from (:func:`ml.registry.last_seen_day`; its fit, its own
early-stopping holdout), since a champion scored on days it saw would look better than it
is. When the champion saw the whole holdout, the comparison is not fair and the new model
is not promoted automatically. The candidate is promoted
only if every check passes; otherwise it becomes challenger (it runs in shadow) and the
failed checks are the reason written to the audit log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ml.config import Settings


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    champion: str | None = None

    @property
    def reason(self) -> str:
        failed = [c for c in self.checks if not c["passed"]]
        if not failed:
            against = f"champion {self.champion}" if self.champion else "no champion"
            return f"passed the promotion gate against {against}"
        return "gate failed: " + "; ".join(f"{c['name']} ({c['detail']})" for c in failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "champion": self.champion,
            "reason": self.reason,
            "checks": self.checks,
        }


def _check(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail}


def _slice_regressions(
    settings: Settings, candidate: list[dict], champion: list[dict]
) -> list[str]:
    theirs = {(s["dimension"], s["value"]): s for s in champion}
    worse = []
    for mine in candidate:
        other = theirs.get((mine["dimension"], mine["value"]))
        if other is None or mine["rows"] < settings.gate_slice_min_rows:
            continue
        change = mine["log_loss"] - other["log_loss"]
        if change > settings.gate_slice_tolerance:
            worse.append(f"{mine['dimension']}={mine['value']} +{change:.3f}")
    return worse


@dataclass(frozen=True)
class Incumbent:
    """The champion a candidate is compared with: its version, the last day it learned
    from (fit or early-stopping holdout), and how to load it (its model and its
    fit-period prior rate) when the comparison gets that far."""

    version: str
    last_seen: dt.date
    load: Callable[[], tuple[Any, float]]


def decide(
    settings: Settings,
    metadata: dict[str, Any],
    holdout_report: dict[str, Any],
    holdout: pd.DataFrame,
    candidate: Any,
) -> GateDecision:
    """Run every check of the gate for a trained, not yet registered model
    (``candidate``), against the registry's champion."""
    from ml import registry

    champion = registry.get_alias(settings, "champion")
    incumbent = None
    if champion is not None and champion != metadata["version"]:
        champion_meta = registry.load_metadata(settings, champion)
        incumbent = Incumbent(
            champion,
            registry.last_seen_day(champion_meta),
            lambda: (
                registry.load_model(settings, champion)[0],
                registry.load_metrics(settings, champion)["prior_rate"],
            ),
        )
    return judge(settings, metadata, holdout_report, holdout, incumbent, candidate)


def judge(
    settings: Settings,
    metadata: dict[str, Any],
    holdout_report: dict[str, Any],
    holdout: pd.DataFrame,
    incumbent: Incumbent | None,
    candidate: Any,
) -> GateDecision:
    """The gate's checks of a candidate (its ``metadata`` and holdout report, with
    behavioural tests) against ``incumbent`` (None: no champion). Training calls it
    through :func:`decide`; the backtest calls it with the champion it replays.
    ``candidate`` (the model) is scored again when the champion saw part of the holdout,
    so that both are compared on the same days."""
    from ml.errors import RegistryError
    from ml.evaluate import assess

    model_metrics = holdout_report["model"]
    heuristic = holdout_report["baselines"]["heuristic"]
    checks = [
        _check(
            "deployable",
            not metadata.get("uses_oracle_forecast"),
            "uses the oracle-forecast group"
            if metadata.get("uses_oracle_forecast")
            else "uses only features known at the cutoff",
        ),
        _check(
            "calibration",
            model_metrics["ece"] <= settings.gate_max_ece,
            f"ECE {model_metrics['ece']:.4f}, limit {settings.gate_max_ece}",
        ),
        _check(
            "beats the heuristic",
            model_metrics["log_loss"] < heuristic["log_loss"]
            and not model_metrics["auc"] <= heuristic["auc"],
            f"log loss {model_metrics['log_loss']:.4f} vs {heuristic['log_loss']:.4f}, "
            f"AUC {model_metrics['auc']:.4f} vs {heuristic['auc']:.4f}",
        ),
    ]
    failed_tests = [t["name"] for t in holdout_report.get("behaviour", []) if not t["passed"]]
    checks.append(
        _check(
            "behavioural tests",
            not failed_tests,
            "all passed" if not failed_tests else "failed: " + ", ".join(failed_tests),
        )
    )

    if incumbent is None:
        return GateDecision(all(c["passed"] for c in checks), checks, None)
    champion, last_seen = incumbent.version, incumbent.last_seen
    compared = holdout[holdout["flight_date"] > last_seen]
    if compared.empty:
        checks.append(
            _check(
                "fair comparison",
                False,
                f"champion {champion} learned from days up to {last_seen}, covering this "
                "model's holdout; a model older than the champion is not promoted automatically",
            )
        )
        return GateDecision(False, checks, champion)
    try:
        champion_model, champion_prior = incumbent.load()
        champion_report = assess(
            settings, champion_model, compared, champion_prior, behaviour=False
        )
    except (RegistryError, KeyError) as exc:
        checks.append(
            _check("champion scored", True, f"champion {champion} cannot be scored ({exc})")
        )
        return GateDecision(all(c["passed"] for c in checks), checks, champion)
    if len(compared) < len(holdout):  # the candidate on the same days as the champion
        mine = assess(settings, candidate, compared, champion_prior, behaviour=False)
        model_metrics, slices = mine["model"], mine["slices"]
    else:
        slices = holdout_report["slices"]
    days = f"{min(compared['flight_date'])}..{max(compared['flight_date'])}"
    theirs = champion_report["model"]
    checks.append(
        _check(
            "beats the champion",
            model_metrics["log_loss"] <= theirs["log_loss"] - settings.gate_log_loss_margin,
            f"log loss {model_metrics['log_loss']:.4f} vs champion {theirs['log_loss']:.4f} "
            f"on {days} ({len(compared)} flights), margin {settings.gate_log_loss_margin}",
        )
    )
    worse = _slice_regressions(settings, slices, champion_report["slices"])
    checks.append(
        _check(
            "no slice regresses",
            not worse,
            f"slices with {settings.gate_slice_min_rows}+ rows within +{settings.gate_slice_tolerance} log loss"
            if not worse
            else "worse: " + ", ".join(worse),
        )
    )
    return GateDecision(all(c["passed"] for c in checks), checks, champion)
