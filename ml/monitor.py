"""Monitor: a day's drift against the champion's training reference, and performance.

For day D it writes:

- ``monitoring/drift/flight_date=D/`` (the ``monitoring_drift`` table: one row per series
  and horizon); the tests, their calibration and the family-wise control of false alarms
  are in :mod:`ml.drift`;
- ``monitoring/performance/kind=estimated/flight_date=D/``: D's performance estimated from
  its calibrated scores, and ``kind=realized/flight_date=M/`` for M = D minus the label
  maturity, whose labels are now all known (the ``monitoring_performance`` table; see
  :mod:`ml.performance`);
- ``reports/drift/drift_D.json`` and a self-contained ``reports/drift/drift_D.html``
  (:func:`ml.reports.write_drift_report`), to which the next step
  (:func:`ml.pipeline.decide_retraining`) adds the retraining policy's decision.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.config import Settings
from ml.dates import as_dates, consecutive_days
from ml.errors import DataError, LeakageError
from ml.io import STALE_SECONDS, read_partitions, reading, remove_stale_temporaries, write_parquet
from ml.reports import write_drift_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorResult:
    day: dt.date
    model_version: str
    drifted: list[str]
    estimated: dict[str, float]
    realized_day: dt.date
    realized: dict[str, float] | None
    html: Path
    json: Path


def _performance(
    settings: Settings, day: dt.date, features: pd.DataFrame, *, realized: bool
) -> pd.DataFrame | None:
    """The performance rows of ``day`` (None when it has no predictions), and publish them.

    ``features`` are the day's feature rows when the caller has them already; empty, they
    are read from the mart.
    """
    from ml.features import load_features
    from ml.performance import performance_table

    path = settings.paths.predictions_partition(day)
    if not path.exists():
        if not realized:
            raise DataError(
                f"{path}: no predictions for {day} (run `ml predict --date {day}` first)"
            )
        log.info("no predictions for %s: no realized performance to report", day)
        return None
    from ml import registry

    with reading(path, f"predict the day again with `ml predict --date {day}`"):
        predictions = pd.read_parquet(path)
    priors = {}
    for version in predictions["model_version"].unique():
        try:
            priors[version] = registry.load_metrics(settings, version)["prior_rate"]
        except (registry.RegistryError, OSError, KeyError, ValueError):
            continue  # the heuristic fallback, or a version no longer in the registry
    table = performance_table(
        predictions,
        features if not features.empty else load_features(settings, day, day),
        settings.operating_threshold,
        realized=realized,
        priors=priors,
    )
    kind = "realized" if realized else "estimated"
    write_parquet(
        pa.Table.from_pandas(table, preserve_index=False),
        settings.paths.monitoring_partition("performance", day, kind=kind),
    )
    return table


def _overall(table: pd.DataFrame | None, role: str = "champion") -> dict | None:
    if table is None:
        return None
    rows = table[(table["dimension"] == "all") & (table["model_role"] == role)]
    return None if rows.empty else _json_rows(rows)[0]


def performance_history(settings: Settings, last: dt.date, days: int = 60) -> list[dict]:
    """The champion's overall estimated and realized metrics over the ``days`` before
    ``last``, as known at ``last``'s run: realized only for the days matured by then
    (up to ``last`` minus the label maturity), so that running ``last`` again later, when
    more days have matured, writes the same report."""
    matured = last - dt.timedelta(days=settings.label_maturity_days)
    history = read_partitions(
        settings.paths.monitoring_glob("performance"),
        "select kind, flight_date, model_version, auc, log_loss, rows, observed_rate, "
        "mean_prediction from {files} where dimension = 'all' and model_role = 'champion' "
        "and flight_date between ? and ? and (kind = 'estimated' or flight_date <= ?) "
        "order by flight_date, kind",
        [last - dt.timedelta(days=days - 1), last, matured],
    )
    if history is None:
        return []
    return _json_rows(history)


def drifted_since(
    settings: Settings, day: dt.date, version: str, features: list[str]
) -> dict[str, dt.date]:
    """For each feature drifted on ``day``: the first day of its unbroken run of drifted days.

    Reads the earlier days of ``monitoring_drift`` checked against the same model; a day
    not monitored, or monitored against another model, ends the run.
    """
    since = {feature: day for feature in features}
    if not features:
        return since
    history = read_partitions(
        settings.paths.monitoring_glob("drift"),
        "select distinct flight_date, feature from {files} "
        "where is_drifted and flight_date < ? and model_version = ?",
        [day, version],
    )
    if history is None:
        return since
    drifted_days = list(zip(as_dates(history["flight_date"]), history["feature"], strict=True))
    for feature in features:
        run = consecutive_days(
            {d: True for d, f in drifted_days if f == feature}, day - dt.timedelta(days=1)
        )
        since[feature] = day - dt.timedelta(days=run)
    return since


def champion_scores(settings: Settings, window: pd.DataFrame, version: str) -> np.ndarray:
    """The champion's ``p_delayed`` for every row of ``window``: as published, for the
    flights of the days this version scored (the partitions' champion rows), and from
    the model, loaded only if needed, for the others (days scored by an earlier champion
    or by the fallback, or not predicted), each day with its calibration revision in
    force. Days the version learned from (:func:`ml.registry.last_seen_day`) get NaN: a
    score of a day the model saw is in-sample, so the window's score series leaves them
    out (the drift statistics skip missing values)."""
    from ml import registry

    last_seen = registry.last_seen_day(registry.load_metadata(settings, version))
    stored: dict[str, float] = {}
    for day in sorted(set(window["flight_date"])):
        path = settings.paths.predictions_partition(day)
        if day <= last_seen or not path.exists():
            continue
        with reading(path, f"predict the day again with `ml predict --date {day}`"):
            rows = pd.read_parquet(
                path, columns=["flight_id", "p_delayed", "model_version", "model_role"]
            )
        mine = rows[(rows["model_role"] == "champion") & (rows["model_version"] == version)]
        stored.update(zip(mine["flight_id"], mine["p_delayed"], strict=True))
    scores = window["flight_id"].map(stored).to_numpy(dtype=float, na_value=np.nan, copy=True)
    dates = window["flight_date"].to_numpy()
    missing = np.isnan(scores) & (dates > last_seen)
    if missing.any():
        from ml.recalibration import apply_map, map_in_force

        model, _ = registry.load_model(settings, version)
        for day in sorted(set(dates[missing])):  # each day with the calibration it had
            rows = missing & (dates == day)
            apply_map(model, map_in_force(settings, version, model, day))
            scores[rows] = model.predict_proba(window[rows])
    log.debug(
        "champion scores: %d published, %d scored now, %d of days it learned from left out",
        np.isfinite(scores).sum() - missing.sum(),
        missing.sum(),
        (dates <= last_seen).sum(),
    )
    return scores


def monitor(settings: Settings, day: dt.date) -> MonitorResult:
    """Test the drift of ``day`` (and its trailing window) against the champion's reference."""
    from ml import registry
    from ml.drift import compare
    from ml.features import load_features

    for folder in (settings.paths.monitoring, settings.paths.reports):
        remove_stale_temporaries(folder, older_than=STALE_SECONDS)
    version = registry.get_alias(settings, "champion")
    if version is None:
        return _heuristic_day(settings, day)
    profile = registry.load_profile(settings, version)
    metadata = registry.load_metadata(settings, version)
    if day <= (last_seen := registry.last_seen_day(metadata)):
        raise LeakageError(
            f"monitor {day}: champion {version} learned from flights up to {last_seen} "
            f"(check: point in time; its drift and performance on a day it saw are "
            f"in-sample); monitor days from {last_seen + dt.timedelta(days=1)} on"
        )
    first = day - dt.timedelta(days=profile["window_days"] - 1)
    window = load_features(
        settings, first, day, oracle=bool(metadata.get("uses_oracle_forecast"))
    ).reset_index(drop=True)
    today = _day_rows(settings, window, day)
    scores = champion_scores(settings, window, version)
    table = compare(profile, window[today], scores[today], window, scores)
    drifted = sorted(set(table.loc[table["is_drifted"], "feature"]))
    since = drifted_since(settings, day, version, drifted)
    table["drifted_since"] = [
        since.get(f) if d else None
        for f, d in table[["feature", "is_drifted"]].itertuples(index=False)
    ]
    table.insert(0, "model_version", version)

    write_parquet(
        pa.Table.from_pandas(table, preserve_index=False),
        settings.paths.monitoring_partition("drift", day),
    )
    summary = {
        "flight_date": day.isoformat(),
        "model_version": version,
        "reference": {
            "first": metadata["window"]["fit_start"],
            "last": metadata["window"]["validation_end"],
            "rows": profile["rows"],
            "days": profile["days"],
        },
        "current_rows": int(today.sum()),
        "window": {
            "first": first.isoformat(),
            "days": int(window["flight_date"].nunique()),
            "rows": int(len(window)),
        },
        "tests": profile["tests"],
        "z_threshold": profile["z_threshold"],
        "family_alpha": profile["family_alpha"],
        "reference_alarm_rate": profile["reference_alarm_rate"],
        "drifted_features": drifted,
        "drifted_since": {f: d.isoformat() for f, d in since.items()},
        "series": _json_rows(table.drop(columns=["model_version"])),
    }
    log.info("drift %s vs %s: %d drifted %s", day, version, len(drifted), drifted)
    return _publish(settings, day, summary, window)


def _day_rows(settings: Settings, window: pd.DataFrame, day: dt.date) -> np.ndarray:
    """Which rows of ``window`` are ``day``'s; :class:`DataError` if none are."""
    today = (window["flight_date"] == day).to_numpy()
    if not today.any():
        raise DataError(
            f"{settings.paths.mart('flight_features')}: no flights on {day} "
            f"(run `ml transform --start {day} --end {day}` first)"
        )
    return today


def _heuristic_day(settings: Settings, day: dt.date) -> MonitorResult:
    """Monitor a day served by the heuristic baseline, the champion of a registry where
    no model has passed the gate yet (:data:`ml.predict.FALLBACK_VERSION`): its
    performance, estimated and realized, as for a model; no drift tests, which compare a
    day with a model's training reference (the heuristic has none). The day's drift rows
    of an earlier run, against a champion since withdrawn, are removed: the record says
    what served the day now."""
    from ml.features import load_features
    from ml.predict import FALLBACK_VERSION

    realized_day = day - dt.timedelta(days=settings.label_maturity_days)
    window = load_features(settings, realized_day, day).reset_index(drop=True)
    today = _day_rows(settings, window, day)
    settings.paths.monitoring_partition("drift", day).unlink(missing_ok=True)
    summary = {
        "flight_date": day.isoformat(),
        "model_version": FALLBACK_VERSION,
        "reference": None,
        "current_rows": int(today.sum()),
        "drifted_features": [],
        "drifted_since": {},
        "series": [],
    }
    log.info("drift %s: not tested, no model is champion (the heuristic serves)", day)
    return _publish(settings, day, summary, window)


def _publish(
    settings: Settings, day: dt.date, summary: dict, window: pd.DataFrame
) -> MonitorResult:
    """Add the performance of ``day`` (estimated) and of the day whose labels just matured
    (realized) to ``summary``, publish them with the day's record and page, and return
    what was monitored. ``window`` holds the feature rows of both days."""
    from ml.warehouse import refresh_catalog

    realized_day = day - dt.timedelta(days=settings.label_maturity_days)
    dates = window["flight_date"]
    estimated = _performance(settings, day, window[dates == day], realized=False)
    realized = _performance(settings, realized_day, window[dates == realized_day], realized=True)
    summary["performance"] = {
        "threshold": settings.operating_threshold,
        "estimated": _json_rows(estimated),
        "realized_day": realized_day.isoformat(),
        "realized": [] if realized is None else _json_rows(realized),
        "history": performance_history(settings, day),
    }
    json_path, html_path = write_drift_report(settings, day, summary)
    refresh_catalog(settings)
    log.info("monitoring of %s -> %s", day, html_path)
    return MonitorResult(
        day,
        summary["model_version"],
        summary["drifted_features"],
        _overall(estimated),
        realized_day,
        _overall(realized),
        html_path,
        json_path,
    )


def _json_rows(table: pd.DataFrame) -> list[dict]:
    """Records with dates as ISO strings and NaN as null, for the JSON report."""
    records = []
    for record in table.to_dict(orient="records"):
        for key, value in record.items():
            if isinstance(value, dt.date):
                record[key] = value.isoformat()
            elif isinstance(value, float) and not np.isfinite(value):
                record[key] = None
        records.append(record)
    return records
