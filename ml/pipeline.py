"""The pipeline's steps, each named as the DAG task that runs it.

A DAG task is one call of the function of its name here, so a word means one thing in
the Airflow UI and in the code; the ``ml`` commands of the same names (``transform``,
``recalibrate``, ``predict``, ``monitor``, ``decide-retraining``, ``train``) call the same
functions. (``ml ingest`` lands any range of days; the daily ``ingest`` one day and the history its
features read.) Each step takes the settings and its dates, does one stage (or, for
``transform``, the three stages the daily DAG runs as separate tasks) and returns a small
summary that fits in an XCom.

Daily (``flights_daily``): ``ingest`` -> ``build`` -> ``validate_build`` -> ``publish``
-> ``recalibrate`` -> ``predict`` -> ``monitor`` -> ``decide_retraining``. Training
(``flights_training``): ``ingest_history`` -> ``transform`` (of the training window) ->
``train``. Replay (``flights_replay``): ``ingest_range`` -> ``build`` -> ``validate_build``
-> ``publish`` (of the whole range and the training window before it) -> ``replay_days``
(the daily steps and the retraining policy's training, day by day). Backtest (``backtest``):
``prepare`` -> ``run`` (:func:`ml.backtest.run_backtest`) -> ``report``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from ml.config import Settings
from ml.errors import ConfigError


# -- daily -------------------------------------------------------------------------------
def ingest(settings: Settings, day: dt.date) -> dict[str, Any]:
    """Land ``day``'s raw files (and any missing day of the history its features read)."""
    from ml.ingest import ingest_for_day

    result = ingest_for_day(settings, day)
    return {"day": day.isoformat(), "rows": result.rows, **_landed(result)}


def _landed(result) -> dict[str, Any]:
    """The days and reference tables an ingest wrote (what its lineage names)."""
    return {"landed": result.partitions, "references": result.reference_tables}


def build(settings: Settings, start: dt.date | None, end: dt.date | None) -> str:
    """``dbt build`` of the window's marts (with dbt's tests) into a build folder."""
    from ml.transform import build as dbt_build

    return str(dbt_build(settings, start, end))


def validate_build(settings: Settings, start: dt.date | None, end: dt.date | None) -> str:
    """The ``flight_features`` suite on the window's build; a failing build is quarantined."""
    from ml.validate import validate_features

    outcome = validate_features(settings, start, end, built=True)
    return f"{outcome.suite}: {outcome.evaluated} expectations passed ({outcome.source})"


def publish(settings: Settings, start: dt.date | None, end: dt.date | None) -> dict[str, list[str]]:
    """Switch the window's dates of every mart to the validated build; per mart, its days."""
    from ml.transform import publish as publish_build

    return publish_build(settings, start, end)


def transform(
    settings: Settings, start: dt.date | None = None, end: dt.date | None = None
) -> dict[str, list[str]]:
    """:func:`build`, :func:`validate_build` and :func:`publish` of ``start..end`` (every
    landed day by default): what the daily DAG does in three tasks, in one step.

    A build whose features fail validation is quarantined and nothing is published.
    """
    build(settings, start, end)
    validate_build(settings, start, end)
    return publish(settings, start, end)


def recalibrate(settings: Settings, day: dt.date) -> dict[str, Any]:
    """Refit the champion's calibration on the labels matured by ``day``'s cutoff, as a
    new revision of its version, used from ``day`` on if no worse on a held-back day."""
    from ml.recalibration import recalibrate as refit

    return refit(settings, day)


def predict(settings: Settings, day: dt.date) -> dict[str, Any]:
    """Score ``day``'s flights with the champion (and the challenger) into its partition."""
    from ml.predict import predict as score_day

    result = score_day(settings, day)
    return {
        "day": day.isoformat(),
        "rows": result.rows,
        "versions": result.versions,
        "path": str(result.path),
        "calibrations": result.calibrations,
    }


def monitor(settings: Settings, day: dt.date) -> dict[str, Any]:
    """Drift of ``day`` against the champion's reference and its performance, estimated
    for ``day`` and realized for the day whose labels just matured; writes the report."""
    from ml.monitor import monitor as monitor_day

    result = monitor_day(settings, day)
    return {
        "day": day.isoformat(),
        "model_version": result.model_version,
        "drifted": result.drifted,
        "estimated": result.estimated,
        "realized_day": result.realized_day.isoformat(),
        "realized": result.realized,
        "report": str(result.html),
    }


def decide_retraining(settings: Settings, day: dt.date) -> dict[str, Any]:
    """The retraining policy as of ``day`` (after its monitoring): recorded in
    ``retraining_decisions`` and added to the day's drift report."""
    from ml.reports import add_retraining_decision, check_monitored
    from ml.retraining import decide
    from ml.warehouse import refresh_catalog

    check_monitored(settings, day)  # the policy reads the day's monitoring
    decision = decide(settings, day)
    add_retraining_decision(settings, day, decision.to_dict())
    refresh_catalog(settings)  # the retraining_decisions view, from the first decision on
    return {"day": day.isoformat(), "retrain": decision.retrain, "reasons": decision.reasons}


# -- replay ------------------------------------------------------------------------------
def replay_window(settings: Settings, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The days a replay of ``start..end`` builds: the range, and before it one training
    window, which any training as of a day of the range reads (its later part, the range)."""
    return start - dt.timedelta(days=settings.train_window_days), end


def ingest_range(settings: Settings, start: dt.date, end: dt.date) -> dict[str, Any]:
    """Land every day of ``start..end`` (replacing it, as the daily ``ingest`` does) and
    any missing day of the history before it: the training window and the features'
    lookback."""
    from ml.ingest import ingest as land

    first_day_to_run(settings, start, end)  # refuse at once a range a later model would score
    first, _ = replay_window(settings, start, end)
    history = first - dt.timedelta(days=settings.feature_lookback_days)
    result = land(settings, history, start - dt.timedelta(days=1), history=True)
    result += land(settings, start, end)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": result.rows,
        **_landed(result),
    }


def replay_days(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The daily run's ``recalibrate``, ``predict``, ``monitor`` and ``decide_retraining``
    for each day of ``start..end`` in order, and, when the policy fires on a day D, the
    training DAG's ``train`` as of D before D + 1: what ``flights_daily`` day after day and the
    ``flights_training`` runs its events start leave, in one process. The range's marts
    (and the training window before it) must be published (:func:`replay_window`).

    A day whose retraining decision is recorded has been run (by a replay or a daily run)
    and is skipped, so a retried or repeated replay resumes at its first day not run
    (training first if the day before fired and its model is missing). With no model
    trained yet, a first model is trained as of that day; one that fails the gate leaves
    the heuristic baseline serving as champion (:mod:`ml.retraining`) until a later
    training passes.

    ``progress`` gets one line per day (and per training); the summaries of the days run
    are returned.

    Raises:
        ConfigError: A registered model was trained as of a day after the first day to
            run: it learned from that day's outcomes and must not score it.
    """
    from ml import registry
    from ml.dates import date_range

    days = date_range(start, end)
    first = first_day_to_run(settings, start, end)
    if first is None:
        progress(f"every day of {start}..{end} has been run already: nothing to do")
        return []
    if first > start:
        progress(f"resuming at {first}: {start}..{first - dt.timedelta(days=1)} have been run")
    versions = registry.list_versions(settings)
    before = first - dt.timedelta(days=1)
    trained_before = any(v.get("as_of") == before.isoformat() for v in versions)
    if _decided(settings, before) and _fired(settings, before) and not trained_before:
        trained = train(settings, before, progress)
        progress(_trained_line(before, trained, "the policy fired"))
    if not registry.list_versions(settings):  # read again: the day before may have trained
        trained = train(settings, first, progress)
        progress(_trained_line(first, trained, "no model has been trained"))
    summaries = []
    for number, day in enumerate(days, 1):
        if day < first:
            continue
        started = time.perf_counter()
        recalibrated = recalibrate(settings, day)
        scored = predict(settings, day)
        monitored = monitor(settings, day)
        decision = decide_retraining(settings, day)
        summaries.append({**scored, "drifted": monitored["drifted"], "retraining": decision})
        progress(
            f"{day} ({number}/{len(days)}): {scored['rows']} predictions ("
            + ", ".join(f"{role} {version}" for role, version in scored["versions"].items())
            + f"; calibration {scored['calibrations'].get('champion', '-')}"
            + (
                ""
                if recalibrated["revision"] is None or recalibrated["used"]
                else " (revision not used)"
            )
            + f"); drift in {len(monitored['drifted'])} feature(s); "
            + ("retrain: " if decision["retrain"] else "no retraining: ")
            + "; ".join(decision["reasons"])
            + f" ({time.perf_counter() - started:.1f} s)"
        )
        if decision["retrain"]:
            summaries[-1]["trained"] = trained = train(settings, day, progress)
            progress(_trained_line(day, trained, "the policy fired"))
    return summaries


def first_day_to_run(settings: Settings, start: dt.date, end: dt.date) -> dt.date | None:
    """The first day of ``start..end`` not run to its end (None: every day was).

    Raises:
        ConfigError: A registered model was trained as of a later day: it learned from
            that day's outcomes and must not score it.
    """
    from ml import registry
    from ml.dates import date_range

    first = next((day for day in date_range(start, end) if not _decided(settings, day)), None)
    if first is None:
        return None
    future = sorted(
        v["version"] for v in registry.list_versions(settings) if registry.last_seen_day(v) >= first
    )
    if future:
        raise ConfigError(
            f"replay from {first}: {', '.join(future)} learned from days on or after it and "
            "would score them; replay into a new data folder, or from the latest as-of date on"
        )
    return first


def _decided(settings: Settings, day: dt.date) -> bool:
    """Has ``day`` been run to its end (its retraining decision recorded)?"""
    return settings.paths.monitoring_partition("retraining", day).exists()


def _fired(settings: Settings, day: dt.date) -> bool:
    """Did the retraining policy fire on ``day`` (a decided day)?"""
    import pyarrow.parquet as pq

    path = settings.paths.monitoring_partition("retraining", day)
    return bool(pq.read_table(path, columns=["retrain"]).column("retrain")[0].as_py())


def _trained_line(as_of: dt.date, trained: dict[str, Any], why: str) -> str:
    role = "champion" if trained["champion"] else "challenger"
    return f"trained as of {as_of} ({why}): {trained['version']}, {role}: {trained['gate']}"


def replay(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The daily pipeline over ``start..end`` as ``flights_replay`` runs it: one ingest,
    one dbt build, one validation and one publish of the range (and the training window
    before it), then :func:`replay_days`. The partitions it leaves are those of daily
    runs of each day in order, with the policy's trainings between them."""
    if end < start:
        raise ConfigError(f"replay {start}..{end}: the end is before the start")
    ingest_range(settings, start, end)
    progress(f"landed {start}..{end} and the history before it")
    first, last = replay_window(settings, start, end)
    transform(settings, first, last)
    progress(f"built, validated and published the marts of {first}..{last}")
    return replay_days(settings, start, end, progress)


# -- backtest ----------------------------------------------------------------------------
def prepare(settings: Settings, spec) -> str:
    """Land and publish the history a backtest reads (its first window and the features'
    lookback before it, through its last scored day); returns the run id."""
    from ml.ingest import ingest as land

    first = spec.start - dt.timedelta(days=spec.window_days)
    land(
        settings, first - dt.timedelta(days=settings.feature_lookback_days), spec.end, history=True
    )
    transform(settings, first, spec.end)
    return spec.run_id


def backtest_grid(
    settings: Settings,
    specs: list,
    *,
    rerun: bool = False,
    progress: bool | None = None,
    on_run=None,
) -> str:
    """Run a grid of backtests (:func:`ml.backtest.run_grid`), then write each run's report
    (after every run, so each page's grid is complete) and the grid's; the grid's path."""
    from ml.backtest import run_grid
    from ml.backtest_report import write_grid_report, write_run_report

    run_grid(settings, specs, rerun=rerun, progress=progress, on_run=on_run)
    for spec in specs:
        write_run_report(settings, spec.run_id)
    first = specs[0]
    return str(write_grid_report(settings, first.start, first.end, first.to_dict()["candidates"]))


def report(settings: Settings, run_id: str) -> str:
    """Refresh the warehouse's views and write a backtest run's HTML report; its path."""
    from ml.backtest_report import write_run_report
    from ml.warehouse import refresh_catalog

    refresh_catalog(settings)
    return str(write_run_report(settings, run_id))


# -- training ----------------------------------------------------------------------------
def training_window(settings: Settings, as_of: dt.date) -> tuple[dt.date, dt.date]:
    """The days a training run as of ``as_of`` reads labels from."""
    return as_of - dt.timedelta(days=settings.train_window_days), as_of - dt.timedelta(days=1)


def ingest_history(settings: Settings, as_of: dt.date) -> dict[str, Any]:
    """Land every missing day of the training window and of the history its features read."""
    from ml.ingest import ingest as land

    first, last = training_window(settings, as_of)
    result = land(
        settings, first - dt.timedelta(days=settings.feature_lookback_days), last, history=True
    )
    return {"as_of": as_of.isoformat(), "rows": result.rows, **_landed(result)}


def train(
    settings: Settings,
    as_of: dt.date,
    progress: Callable[[str], None] = print,
    approval: str = "auto",
) -> dict[str, Any]:
    """Train the candidates, register the best with its model card, run the promotion gate.
    ``progress`` gets a line as training starts and one per candidate fitted. With
    ``approval="manual"`` a best that passed the gate awaits a person's approval
    (``awaiting_approval``, and ``approval_note``: what the approver is shown)."""
    from ml.train import train as train_models

    result = train_models(settings, as_of, progress, approval)
    holdout = result.metrics["holdout"]["model"]
    checks = result.metrics["gate"]["checks"]
    return {
        "version": result.version,
        "algorithm": result.algorithm,
        "holdout": {k: holdout[k] for k in ("auc", "log_loss", "brier", "ece")},
        "champion": result.became_champion,
        "gate": result.gate_reason,
        "awaiting_approval": result.awaiting_approval,
        "approval_note": _approval_note(
            result.version, result.gate_reason, checks, result.metrics["gate"]["champion"]
        ),
    }


# The approval step's answer that promotes (the training DAG's Human-in-the-loop task).
APPROVE = "Approve"


def _approval_note(
    version: str, reason: str, checks: list[dict[str, Any]], champion: str | None
) -> str:
    """What an approver reads (Markdown): the gate's checks, the model card and, where
    there is a champion, the two side by side in the ML view."""
    rows = "\n".join(
        f"| {c['name']} | {'passed' if c['passed'] else 'failed'} | {c['detail']} |" for c in checks
    )
    beside = f" · [beside the champion](/ml/compare?first={champion}&second={version})"
    return (
        f"**{version}** {reason}.\n\n| check | result | detail |\n|---|---|---|\n{rows}\n\n"
        f"[Its model card](/ml/models/{version}){beside if champion else ''}. "
        "Approve to make it champion; reject to keep it challenger, with your reason."
    )


def record_approval(settings: Settings, version: str, answer: dict[str, Any]) -> dict[str, Any]:
    """Act on a person's answer from the training DAG's approval step (the Human-in-the-
    loop task's result: ``chosen_options``, ``params_input``, ``responded_by_user``)."""
    from ml import registry

    approved = answer["chosen_options"] == [APPROVE]
    user = answer.get("responded_by_user") or {}
    by = user.get("name") or user.get("id") or "unknown"
    reason = str((answer.get("params_input") or {}).get("reason") or "").strip()
    if answer.get("timedout"):  # nobody answered in time: the request's default, Reject
        by, reason = "nobody", "no answer before the request timed out"
    champion = registry.record_approval(settings, version, approved, by=by, reason=reason)
    return {"version": version, "approved": approved, "by": by, "champion": champion}
