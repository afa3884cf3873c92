"""Monitor: compare a day's features and scores with the champion's training reference.

Writes ``monitoring/drift/flight_date=D/part-0.parquet`` (the ``monitoring_drift``
table: one row per feature and the score), ``reports/drift/drift_D.json`` and a
self-contained ``reports/drift/drift_D.html``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ml.config import Settings
from ml.io import PART_FILE, DataError, write_json, write_parquet, write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorResult:
    day: dt.date
    model_version: str
    drifted: list[str]
    html: Path
    json: Path


def monitor(settings: Settings, day: dt.date) -> MonitorResult:
    """Compute the drift of ``day`` against the champion's reference profile and publish it."""
    from ml import registry
    from ml.drift import compare
    from ml.features import load_features
    from ml.reports import drift_report_html
    from ml.warehouse import refresh_catalog

    version = registry.get_alias(settings, "champion")
    if version is None:
        raise DataError("no champion model: train one first (`ml train --as-of D`)")
    profile = registry.load_profile(settings, version)
    predictions_path = settings.paths.predictions_partition(day)
    if not predictions_path.exists():
        raise DataError(
            f"{predictions_path}: no predictions for {day} (run `ml predict --date {day}` first)"
        )
    scores = pd.read_parquet(predictions_path, filters=[("model_role", "=", "champion")])[
        "p_delayed"
    ].to_numpy()
    oracle = bool(registry.load_metadata(settings, version).get("uses_oracle_forecast"))
    frame = load_features(settings, day, day, oracle=oracle)
    table = compare(profile, frame, scores, settings.drift_psi_threshold)
    table.insert(0, "model_version", version)

    drift_dir = settings.paths.monitoring / "drift" / f"flight_date={day.isoformat()}"
    write_parquet(pa.Table.from_pandas(table, preserve_index=False), drift_dir / PART_FILE)
    summary = {
        "flight_date": day.isoformat(),
        "model_version": version,
        "reference_rows": profile["rows"],
        "current_rows": int(len(frame)),
        "base_threshold": settings.drift_psi_threshold,
        "drifted_features": table.loc[table["is_drifted"], "feature"].tolist(),
        "features": table.drop(columns=["model_version"]).to_dict(orient="records"),
    }
    report_dir = settings.paths.reports / "drift"
    json_path = write_json(summary, report_dir / f"drift_{day.isoformat()}.json")
    html_path = write_text(drift_report_html(summary), report_dir / f"drift_{day.isoformat()}.html")
    refresh_catalog(settings)
    log.info(
        "drift %s vs %s: %d drifted %s -> %s",
        day,
        version,
        len(summary["drifted_features"]),
        summary["drifted_features"],
        html_path,
    )
    return MonitorResult(day, version, summary["drifted_features"], html_path, json_path)
