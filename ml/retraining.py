"""The retraining policy: should the models be retrained as of day D, and why.

Three rules, each configured (``ML_RETRAIN_*``), any one of which fires:

- **schedule**: the latest training (champion or not) is ``retrain_every_days`` or more
  days old: the weekly retrain;
- **drift**: at least one of the champion's features drifted on each of the last
  ``retrain_persistence_days`` monitored days;
- **degradation**: on each of the last ``retrain_persistence_days`` days whose labels have
  matured, the champion's realized log loss exceeded its holdout log loss by more than
  ``retrain_degradation_margin``.

With no model trained yet, the policy fires (``no model has been trained``). A registry
whose models all failed the gate serves the heuristic baseline as its champion
(:data:`ml.predict.FALLBACK_VERSION`): the schedule rule then trains the next model, and
the drift and degradation rules, which watch a model, wait for one to pass.

A streak that began on or before the latest training has already been acted on and does
not fire again. When no rule fires, the decision says why each streak under way did not
(too short, or already acted on). Every decision, fired or not, is a row of ``retraining_decisions``
(``monitoring/retraining/flight_date=D/``) with its reasons; the daily DAG turns a fired
one into an asset event that starts the training DAG.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field

import pandas as pd
import pyarrow as pa

from ml.config import Settings
from ml.dates import as_dates, consecutive_days, cutoff_at
from ml.io import read_partitions, write_parquet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainingDecision:
    flight_date: dt.date
    retrain: bool
    reasons: list[str]
    champion: str | None
    last_training_as_of: dt.date | None
    drift_streak_days: int
    degradation_streak_days: int
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["flight_date"] = self.flight_date.isoformat()
        out["last_training_as_of"] = (
            self.last_training_as_of.isoformat() if self.last_training_as_of else None
        )
        return out


def drift_days(settings: Settings, version: str, last: dt.date) -> dict[dt.date, bool]:
    """Monitored days up to ``last`` against ``version``: did any feature drift?"""
    frame = read_partitions(
        settings.paths.monitoring_glob("drift"),
        "select flight_date, bool_or(is_drifted and source = 'feature') as drifted from {files} "
        "where model_version = ? and flight_date <= ? group by all",
        [version, last],
    )
    if frame is None:
        return {}
    return dict(zip(as_dates(frame["flight_date"]), frame["drifted"].astype(bool), strict=True))


def degraded_days(
    settings: Settings, version: str, holdout_log_loss: float, last: dt.date
) -> dict[dt.date, bool]:
    """Matured days up to ``last``: was the champion's realized log loss past the margin?"""
    frame = read_partitions(
        settings.paths.monitoring_glob("performance", kind="realized"),
        "select flight_date, log_loss from {files} where model_version = ? "
        "and model_role = 'champion' and dimension = 'all' and flight_date <= ?",
        [version, last],
    )
    if frame is None:
        return {}
    limit = holdout_log_loss + settings.retrain_degradation_margin
    return dict(zip(as_dates(frame["flight_date"]), frame["log_loss"] > limit, strict=True))


def decide(settings: Settings, day: dt.date) -> RetrainingDecision:
    """Apply the policy as of ``day`` (after its monitoring) and record the decision."""
    from ml import registry

    champion = registry.get_alias(settings, "champion")
    trained = [
        dt.date.fromisoformat(v["as_of"])
        for v in registry.list_versions(settings)
        if v.get("as_of") and dt.date.fromisoformat(v["as_of"]) <= day
    ]
    last_training = max(trained, default=None)
    reasons: list[str] = []
    # Why a streak of drift or degradation did not fire: said when no rule fires.
    held: list[str] = []
    details: dict = {}
    drift_streak = degradation_streak = 0
    if champion is None and last_training is not None:
        held.append(
            "no model is champion (none has passed the promotion gate, or the champion was "
            "withdrawn): the heuristic baseline serves until the next training"
        )
    if last_training is None:
        reasons.append("no model has been trained")
    else:
        age = (day - last_training).days
        details["days_since_training"] = age
        if age >= settings.retrain_every_days:
            reasons.append(
                f"schedule: the latest training, as of {last_training}, is {age} days old "
                f"(retrain every {settings.retrain_every_days})"
            )
    if champion is not None:
        drift_streak = consecutive_days(drift_days(settings, champion, day), day)
        matured = day - dt.timedelta(days=settings.label_maturity_days)
        holdout = registry.load_metrics(settings, champion)["holdout"]["model"]["log_loss"]
        degradation_streak = consecutive_days(
            degraded_days(settings, champion, holdout, matured), matured
        )
        details.update(
            {
                "holdout_log_loss": holdout,
                "degradation_limit": holdout + settings.retrain_degradation_margin,
            }
        )
        persistence = settings.retrain_persistence_days

        def acted_on(began: dt.date) -> bool:
            return last_training is not None and began <= last_training

        def streak(rule: str, days: int, began: dt.date, evidence: str) -> None:
            if days == 0:
                return
            if days < persistence:
                held.append(f"{rule}: {evidence}, {days} day(s) in a row, fewer than {persistence}")
            elif acted_on(began):
                held.append(
                    f"{rule}: {evidence} on each of the last {days} days, since {began}, but the "
                    f"streak began on or before the latest training (as of {last_training}), "
                    "which has acted on it: only a streak that begins after a training fires"
                )
            else:
                reasons.append(
                    f"{rule}: {evidence} on each of the last {days} days, since {began} "
                    f"(threshold: {persistence} days)"
                )

        streak(
            "drift",
            drift_streak,
            day - dt.timedelta(days=drift_streak - 1),
            f"features of {champion} drifted",
        )
        streak(
            "degradation",
            degradation_streak,
            matured - dt.timedelta(days=degradation_streak - 1),
            f"realized log loss of {champion} above {holdout:.4f} + "
            f"{settings.retrain_degradation_margin} (matured days up to {matured})",
        )
    decision = RetrainingDecision(
        flight_date=day,
        retrain=bool(reasons),
        reasons=reasons or ["no rule fired", *held],
        champion=champion,
        last_training_as_of=last_training,
        drift_streak_days=drift_streak,
        degradation_streak_days=degradation_streak,
        details=details,
    )
    _record(settings, decision)
    log.info("retraining as of %s: %s (%s)", day, decision.retrain, "; ".join(decision.reasons))
    return decision


def _record(settings: Settings, decision: RetrainingDecision) -> None:
    row = {
        "decided_at": pd.Timestamp(cutoff_at(decision.flight_date)).tz_convert("UTC"),
        "retrain": decision.retrain,
        "reasons": decision.reasons,
        "champion": decision.champion,
        "last_training_as_of": decision.last_training_as_of,
        "drift_streak_days": decision.drift_streak_days,
        "degradation_streak_days": decision.degradation_streak_days,
        "policy": json.dumps(
            {
                "every_days": settings.retrain_every_days,
                "persistence_days": settings.retrain_persistence_days,
                "degradation_margin": settings.retrain_degradation_margin,
            }
        ),
    }
    write_parquet(
        pa.Table.from_pylist([row]),
        settings.paths.monitoring_partition("retraining", decision.flight_date),
    )
