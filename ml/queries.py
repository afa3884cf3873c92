"""The one read API for what people look at, shared by the ``ml`` commands, the ML view
of the Airflow UI and the demo summary: a day's predictions (`ml predictions show`), the
dates that have them, the registered models with their holdout metrics beside the
baselines (`ml models list` and `show`), the serving roles, the alias history
(`ml models audit`), the days' monitoring, and the latest reports. Predictions are read
straight from Parquet (no catalog, no lock); the caller formats what it gets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ml.config import Settings
from ml.dates import LOCAL_TZ
from ml.errors import DataError, MLError
from ml.io import duckdb_connect, read_json, read_json_lines, reading
from ml.paths import partition_days

log = logging.getLogger(__name__)

# What a person looks at first, in this order; `departs_local` is sched_dep_at in New York.
SHOWN_COLUMNS = (
    "flight_id",
    "carrier",
    "flight",
    "origin",
    "dest",
    "sched_dep_at",
    "p_delayed",
    "risk_band",
    "model_version",
    "model_role",
    "top_reasons",
)


def _partition(settings: Settings, day: dt.date):
    path = settings.paths.predictions_partition(day)
    if not path.exists():
        raise DataError(f"{path}: no predictions for {day} (run `ml predict --date {day}`)")
    return path, f"predict the day again with `ml predict --date {day}`"


def riskiest_flights(
    settings: Settings, day: dt.date, *, role: str | None = "champion", limit: int = 20
) -> pd.DataFrame:
    """The day's predictions, riskiest first (ties by flight_id), of one model role or of
    both (``role=None``); the columns of :data:`SHOWN_COLUMNS` and ``departs_local``.

    Raises:
        DataError: No partition for the day, or an unreadable one (the file is named).
    """
    path, hint = _partition(settings, day)
    where, params = ("where model_role = ?", [role]) if role else ("", [])
    with reading(path, hint), duckdb_connect() as con:
        frame = con.execute(
            f"select {', '.join(SHOWN_COLUMNS)} from read_parquet(?) {where} "
            "order by p_delayed desc, flight_id limit ?",
            [str(path), *params, limit],
        ).df()
    frame["departs_local"] = frame["sched_dep_at"].dt.tz_convert(LOCAL_TZ).dt.strftime("%H:%M")
    return frame


def risk_bands(settings: Settings, day: dt.date, *, role: str = "champion") -> pd.DataFrame:
    """Flights and mean ``p_delayed`` per risk band of one model role, riskiest band first."""
    path, hint = _partition(settings, day)
    with reading(path, hint), duckdb_connect() as con:
        return con.execute(
            "select risk_band, count(*) as flights, avg(p_delayed) as mean_p_delayed "
            "from read_parquet(?) where model_role = ? group by 1 order by 3 desc",
            [str(path), role],
        ).df()


# What a registry file that lacks an expected key, or is unreadable, raises.
UNREADABLE = (LookupError, OSError, ValueError, TypeError)


def band_definitions(settings: Settings, versions: list[str]) -> list[dict[str, Any]]:
    """How each version's risk bands are defined (:mod:`ml.risk`): ``low_max`` and
    ``high_min`` (None: that band is empty), where they come from, and what each band held
    on the holdout they were fitted on (None for the settings' fixed thresholds)."""
    import math

    from ml import registry
    from ml.risk import bands_for

    out = []
    for version in versions:
        try:
            metadata = registry.load_metadata(settings, version)
        except (registry.RegistryError, *UNREADABLE):
            metadata = None  # the heuristic fallback, or a version that cannot be read
        bands = bands_for(settings, metadata)
        stored = (metadata or {}).get("risk_bands") if bands.source.startswith("holdout") else None
        out.append(
            {
                "version": version,
                "low_max": bands.low_max if bands.low_max > 0 else None,
                "high_min": None if math.isinf(bands.high_min) else bands.high_min,
                "source": bands.source,
                "holdout": stored.get("holdout") if isinstance(stored, dict) else None,
            }
        )
    return out


def prediction_dates(settings: Settings) -> list[dt.date]:
    """The dates with a published prediction partition, oldest first."""
    paths = settings.paths
    days = partition_days(paths.predictions)
    return [day for day in days if paths.predictions_partition(day).exists()]


def model_versions(settings: Settings) -> list[dict]:
    """Every registered version, newest first: its metadata and aliases, and ``holdout``
    (log loss and AUC of the model and of the heuristic on the same flights), or, where
    its metrics cannot be read, ``error`` (the exception) and no ``holdout``."""
    from ml import registry

    rows = []
    for meta in registry.list_versions(settings):
        row = {**meta, "holdout": None, "error": None}
        try:
            holdout = registry.load_metrics(settings, meta["version"])["holdout"]
            model, heuristic = holdout["model"], holdout["baselines"].get("heuristic", {})
            row["holdout"] = {
                "log_loss": metric_value(model, "log_loss"),
                "heuristic_log_loss": metric_value(heuristic, "log_loss"),
                "auc": metric_value(model, "auc"),
                "heuristic_auc": metric_value(heuristic, "auc"),
            }
        except UNREADABLE as exc:
            row["error"] = exc
        rows.append(row)
    return rows


# The rows of a serving role's metric table: the model and its two baselines.
BASELINE_ROWS = (("model", None), ("heuristic", "heuristic"), ("prior rate", "prior_rate"))


def model_details(settings: Settings, version: str) -> dict[str, Any]:
    """One version: its metadata, metrics and aliases, ``rows`` (name, log loss, AUC,
    ECE of the model and of each baseline on the holdout), and its calibration revisions,
    oldest first (:mod:`ml.recalibration`).

    Raises:
        RegistryError: The version is unknown or its files cannot be read.
    """
    from ml import registry
    from ml.recalibration import revisions

    metadata = registry.load_metadata(settings, version)
    metrics = registry.load_metrics(settings, version)
    holdout = metrics["holdout"]
    aliases = [a for a, v in registry.read_aliases(settings).items() if v == version]
    rows = []
    for name, baseline in BASELINE_ROWS:
        m = holdout["model"] if baseline is None else holdout["baselines"].get(baseline, {})
        rows.append([name, *(metric_value(m, k) for k in ("log_loss", "auc", "ece"))])
    return {
        "metadata": metadata,
        "metrics": metrics,
        "aliases": aliases,
        "rows": rows,
        "calibration_revisions": revisions(settings, version),
    }


def serving_models(settings: Settings) -> list[dict[str, Any]]:
    """Champion and challenger: per role its ``version`` (None when unset), and either
    its ``algorithm``, ``as_of``, ``holdout`` (the metrics' section) and ``rows`` (see
    :func:`model_details`), or ``error`` (the exception)."""
    from ml import registry

    aliases = registry.read_aliases(settings)
    roles = []
    for role in registry.ALIASES:
        card: dict[str, Any] = {"role": role, "version": aliases.get(role), "error": None}
        if card["version"] is not None:
            try:
                details = model_details(settings, card["version"])
                card["algorithm"] = details["metadata"]["algorithm"]
                card["as_of"] = details["metadata"]["as_of"]
                card["holdout"] = details["metrics"]["holdout"]
                card["rows"] = details["rows"]
            except UNREADABLE as exc:
                card["error"] = exc
        roles.append(card)
    return roles


def alias_history(
    settings: Settings, limit: int | None = None, events: bool = False
) -> list[dict[str, Any]]:
    """The alias changes and a person's rejections, newest first (``limit`` of them):
    ``at``, ``event`` (``alias`` or ``approval``), ``alias``, ``from`` (None for the
    first), ``to`` and ``reason``; with ``events``, the audit log's other entries too (the
    champion's calibration revisions)."""
    from ml import registry

    shown = (registry.ALIAS_CHANGE, registry.APPROVAL)
    entries = [
        e
        for e in registry.audit_log(settings)
        if events or e.get("event", registry.ALIAS_CHANGE) in shown
    ]
    return [
        {"event": e.get("event", registry.ALIAS_CHANGE)}
        | {key: e.get(key) for key in ("at", "alias", "from", "to", "reason")}
        for e in entries[::-1][:limit]
    ]


def superseded(settings: Settings, day: dt.date) -> dict[str, Any] | None:
    """Why ``day``'s predictions were made from superseded inputs (None: they were not,
    or the record is unreadable, with a warning)."""
    path = settings.paths.superseded_predictions(day)
    if not path.exists():
        return None
    try:
        record = read_json(path)
    except MLError as exc:
        log.warning("%s", exc)
        return None
    return record if isinstance(record, dict) else None


MONITORING_HINT = "run `ml monitor --date D` for a day first: it adds the monitoring views"


@contextlib.contextmanager
def _monitoring_views(settings: Settings) -> Iterator[Any]:
    """The warehouse opened read-only for its monitoring views; a failure to read them is
    a :class:`DataError` that names the file and what to run."""
    warehouse = settings.paths.warehouse
    with reading(warehouse, MONITORING_HINT), duckdb_connect(warehouse, read_only=True) as con:
        yield con


def daily_monitoring(settings: Settings, days: list[dt.date]) -> list[dict[str, Any]]:
    """Per day of ``days`` that has predictions, from the warehouse (read-only): the
    champion's rows and ``p_delayed`` range, drifted series, estimated AUC and log loss,
    the retraining decision, and the performance realized on that day once its labels
    matured (None before)."""
    with _monitoring_views(settings) as con:
        cursor = con.execute(
            """
            with predicted as (
                select flight_date, count(*) as champion_rows, min(p_delayed) as min_p,
                       max(p_delayed) as max_p, any_value(model_version) as model_version
                from latest_predictions where flight_date in (select unnest($days))
                group by 1
            ), drifted as (
                select flight_date, count(distinct feature) filter (where is_drifted) as drifted
                from monitoring_drift where flight_date in (select unnest($days)) group by 1
            ), performance as (
                select flight_date, kind, auc, log_loss, prior_log_loss, ece, rows
                from monitoring_performance
                where dimension = 'all' and model_role = 'champion'
            )
            select p.*, d.drifted, e.auc as estimated_auc, e.log_loss as estimated_log_loss,
                   r.retrain, r.reasons[1] as retrain_reason,
                   m.auc as realized_auc, m.log_loss as realized_log_loss,
                   m.prior_log_loss as realized_prior_log_loss, m.ece as realized_ece,
                   m.rows as realized_rows
            from predicted p
            left join drifted d using (flight_date)
            left join performance e on e.flight_date = p.flight_date and e.kind = 'estimated'
            left join performance m on m.flight_date = p.flight_date and m.kind = 'realized'
            left join retraining_decisions r on r.flight_date = p.flight_date
            order by p.flight_date
            """,
            {"days": days},
        )
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def latest_reports(settings: Settings, backtests: int = 10) -> list[dict[str, Any]]:
    """The pages a person opens first: the latest day's monitoring, the ``backtests``
    newest backtest pages and the validation index, each as ``{"kind", "path"}``."""
    paths = settings.paths
    found: list[tuple[str, Path]] = []
    drift = paths.drift_report_pages()
    if drift:
        found.append(("latest drift and performance", drift[-1]))
    found += [("backtest", page) for page in paths.backtest_report_pages()[:backtests]]
    if paths.validation_index.exists():
        found.append(("data validation", paths.validation_index))
    return [{"kind": kind, "path": path} for kind, path in found]


def metric_value(metrics: dict, name: str) -> float | None:
    """``metrics[name]`` as a float, or None where it is missing or not a number."""
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


# The holdout metrics two versions are compared on, as (key, label).
COMPARED_METRICS = (
    ("log_loss", "log loss"),
    ("auc", "AUC"),
    ("pr_auc", "PR-AUC"),
    ("brier", "Brier"),
    ("ece", "ECE"),
)


def compare_versions(settings: Settings, first: str, second: str) -> dict[str, Any]:
    """Two versions side by side: what each is (``summary``: name, first, second), their
    holdout metrics and the baselines' on the same flights (``metrics``: name, first,
    second, second minus first), their slices (``slices``), the parameters that differ
    (``params``: those both set; ``same_params``: how many agree; ``params_only``: the
    names only one sets, as with two algorithms) and the features that differ
    (``features``). ``same_holdout``: both were scored on the same days; otherwise a
    difference mixes the models with their periods.

    Raises:
        RegistryError: A version is unknown or its files cannot be read.
    """
    sides = [model_details(settings, version) for version in (first, second)]
    meta = [side["metadata"] for side in sides]
    holdout = [side["metrics"]["holdout"] for side in sides]

    def pair(label: str, values: list[Any]) -> list[Any]:
        a, b = values
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        return [label, a, b, b - a if numeric else None]

    summary = [
        ["algorithm", *(m["algorithm"] for m in meta)],
        ["as of", *(m["as_of"] for m in meta)],
        ["fitted on", *(f"{m['window']['fit_start']}..{m['window']['fit_end']}" for m in meta)],
        ["holdout", *(f"{h['start']}..{h['end']}, {h['rows']} flights" for h in holdout)],
        ["aliases", *(", ".join(side["aliases"]) or "none" for side in sides)],
        ["input fingerprint", *(str(m.get("input_fingerprint", ""))[:16] for m in meta)],
        ["calibration (slope, intercept)", *(_calibration(m) for m in meta)],
        ["calibration revisions", *(len(side["calibration_revisions"]) for side in sides)],
        ["oracle forecast", *(bool(m.get("uses_oracle_forecast")) for m in meta)],
    ]
    metrics = [
        pair(label, [metric_value(h["model"], key) for h in holdout])
        for key, label in COMPARED_METRICS
    ]
    # The prior rate ranks nothing: its AUC is undefined.
    for name, baseline, keys in (
        ("heuristic", "heuristic", ("log_loss", "auc")),
        ("prior rate", "prior_rate", ("log_loss",)),
    ):
        for key in keys:
            values = [metric_value(h["baselines"].get(baseline, {}), key) for h in holdout]
            metrics.append(pair(f"{name}: {dict(COMPARED_METRICS)[key]}", values))
    slices = _paired_slices([h.get("slices", []) for h in holdout])
    params = [meta[0].get("params", {}), meta[1].get("params", {})]
    shared = sorted(set(params[0]) & set(params[1]))
    differing = [
        [key, _text(params[0][key]), _text(params[1][key])]
        for key in shared
        if params[0][key] != params[1][key]
    ]
    only = [sorted(set(params[0]) - set(params[1])), sorted(set(params[1]) - set(params[0]))]
    types = [_feature_types(m) for m in meta]
    features = [
        [name, types[0].get(name, "not used"), types[1].get(name, "not used")]
        for name in sorted(types[0].keys() | types[1].keys())
        if types[0].get(name) != types[1].get(name)
    ]
    return {
        "versions": [first, second],
        "summary": summary,
        "same_holdout": (holdout[0]["start"], holdout[0]["end"])
        == (holdout[1]["start"], holdout[1]["end"]),
        "metrics": metrics,
        "slices": slices,
        "params": differing,
        "same_params": len(shared) - len(differing),
        "params_only": only,
        "features": features,
        "same_features": sum(types[1].get(name) == kind for name, kind in types[0].items()),
    }


def _calibration(metadata: dict[str, Any]) -> str:
    calibration = metadata.get("calibration", {})
    slope, intercept = calibration.get("slope"), calibration.get("intercept")
    return "none" if slope is None else f"{slope:.4f}, {intercept:.4f}"


def _feature_types(metadata: dict[str, Any]) -> dict[str, str]:
    spec = metadata.get("features", {})
    return {
        **{name: "numeric" for name in spec.get("numeric", [])},
        **{name: "categorical" for name in spec.get("categorical", [])},
    }


def _text(value: Any) -> Any:
    """A parameter as a table shows it: numbers and text as they are, the rest as JSON,
    cut at 60 characters (a list of per-feature constraints runs to hundreds)."""
    import json

    if value is None or isinstance(value, bool | int | float | str):
        return value
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else f"{text[:59]}…"


def _paired_slices(sides: list[list[dict[str, Any]]]) -> list[list[Any]]:
    """Rows of (dimension, value, flights, log loss and AUC of each side), in the first
    side's order, then the slices only the second has."""
    by_key = [{(s["dimension"], s["value"]): s for s in side} for side in sides]
    keys = list(by_key[0]) + [k for k in by_key[1] if k not in by_key[0]]
    rows = []
    for key in keys:
        a, b = (side.get(key, {}) for side in by_key)
        rows.append(
            [
                *key,
                a.get("rows"),
                b.get("rows"),
                metric_value(a, "log_loss"),
                metric_value(b, "log_loss"),
                metric_value(a, "auc"),
                metric_value(b, "auc"),
            ]
        )
    return rows


def performance_by_day(settings: Settings, days: list[dt.date]) -> dict[str, dict[str, list]]:
    """The champion's performance over ``days``, from the warehouse (read-only): for each
    kind (``estimated``: from its scores on the day; ``realized``: once the labels
    matured), the lists ``log_loss``, ``auc`` and ``prior_log_loss`` (the prior rate's),
    one value per day of ``days`` (None where not known)."""
    with _monitoring_views(settings) as con:
        rows = con.execute(
            "select kind, flight_date, log_loss, auc, prior_log_loss from monitoring_performance "
            "where dimension = 'all' and model_role = 'champion' "
            "and flight_date in (select unnest($days))",
            {"days": days},
        ).fetchall()
    found = {(kind, day): values for kind, day, *values in rows}
    metrics = ("log_loss", "auc", "prior_log_loss")
    return {
        kind: {
            metric: [(found.get((kind, day)) or [None] * 3)[i] for day in days]
            for i, metric in enumerate(metrics)
        }
        for kind in ("estimated", "realized")
    }


def drift_scores(settings: Settings, days: list[dt.date]) -> pd.DataFrame:
    """The drift checks of ``days``, from the warehouse (read-only): one row per day and
    series, with the larger calibrated score ``z`` of its horizons (the day, the trailing
    week) and ``is_drifted`` where either drifted."""
    with _monitoring_views(settings) as con:
        return con.execute(
            "select flight_date, feature, max(z) as z, bool_or(is_drifted) as is_drifted "
            "from monitoring_drift where flight_date in (select unnest($days)) "
            "group by all order by flight_date, feature",
            {"days": days},
        ).df()


def deadline_misses(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The latest daily runs that missed their deadline, newest first (a cut line is
    skipped): ``dag_id``, ``run_id``, ``flight_date``, ``queued_at``, ``deadline_at`` and
    the run's ``state`` when the deadline passed."""
    return read_json_lines(settings.paths.deadline_misses, "deadline miss")[::-1][:limit]
