"""Validate: Great Expectations suites that stop bad data before it is published.

Suites live as JSON in ``expectations/`` (one per dataset) and run in an ephemeral Great
Expectations context on pandas frames:

- ``raw_flights`` and ``raw_weather`` run inside ``ingest``, on the parsed files, before
  anything lands: a day with a failed expectation goes to ``quarantine/<date>/`` with a
  ``reason.json`` instead of the landing zone, and the step fails.
- ``flight_features`` runs on dbt's build of the feature mart, before it is published:
  a failed build is quarantined the same way and nothing published changes.

Every failure names the file, the expectation and the column. Each run's summary is
written to ``reports/validation/`` and its full result rendered into Great Expectations'
Data Docs, ``reports/data_docs/index.html`` (offline the pages render unstyled: their CSS
comes from a CDN).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ml.config import Settings
from ml.errors import ConfigError, ValidationError
from ml.io import atomic_path, window_label, write_json

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"
DAY_COLUMN = "flight_date"


@dataclass
class SuiteOutcome:
    """The result of one suite on one batch."""

    suite: str
    source: str
    success: bool
    evaluated: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    bad_days: list[str] = field(default_factory=list)
    # What is worth knowing but not a reason to refuse the batch (e.g. missing hours).
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = []
        for failure in self.failures:
            column = f" on column {failure['column']!r}" if failure.get("column") else ""
            lines.append(
                f"{self.source}: {failure['expectation']}{column} failed ({failure['detail']})"
            )
        return "; ".join(lines)


def load_suite(name: str, folder: Path = EXPECTATIONS_DIR):
    """Load ``expectations/<name>.json`` as a Great Expectations suite."""
    _quiet_gx()
    import great_expectations as gx

    path = folder / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"{path}: expectation suite not found")
    return gx.ExpectationSuite(**json.loads(path.read_text(encoding="utf-8")))


def _quiet_gx() -> None:
    """Call before importing great_expectations: no analytics, no import-time log flood."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations._docs_decorators").disabled = True
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def _context():
    """An ephemeral context, for checks whose results need not be kept."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 3}
DOCS_SITE = "reports"


def _file_context(settings: Settings):
    """A file context under ``<data>/gx`` that keeps every result and builds Data Docs.

    The suites' source of truth stays ``expectations/`` in the repository: each run loads
    them from there, so the context only holds copies, results and the rendered docs
    (``reports/data_docs/index.html``).
    """
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(settings.paths.root / "gx"))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if DOCS_SITE not in (context.get_config().data_docs_sites or {}):
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(settings.paths.reports / "data_docs"),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _validate_with_docs(
    settings: Settings, frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any]
):
    """Run the suite through a checkpoint that stores the result and updates Data Docs."""
    context = _file_context(settings)
    import great_expectations as gx

    suite = context.suites.add_or_update(load_suite(suite_name))
    source = context.data_sources.add_or_update_pandas("pipeline_frames")
    try:
        asset = source.get_asset(suite_name)
    except LookupError:
        asset = source.add_dataframe_asset(suite_name)
    try:
        batch_definition = asset.get_batch_definition("whole_frame")
    except (KeyError, LookupError):
        batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(data=batch_definition, suite=suite, name=suite_name)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite_name,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])],
            result_format=RESULT_FORMAT,
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters)
    return next(iter(run.run_results.values()))


def run_suite(
    frame: pd.DataFrame,
    suite_name: str,
    source: str,
    parameters: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> SuiteOutcome:
    """Validate ``frame`` against a suite and summarise every failed expectation.

    With ``settings``, the result is kept in the data folder's Great Expectations context
    and rendered into Data Docs (``reports/data_docs/``); without, it runs ephemeral.
    If the frame has a ``flight_date`` column, the days of the offending rows are
    reported in ``bad_days`` (so one bad day does not condemn a whole range).
    """
    frame = frame.reset_index(drop=True)
    if settings is not None:
        result = _validate_with_docs(settings, frame, suite_name, parameters or {})
    else:
        asset = (
            _context()
            .data_sources.add_pandas(f"{suite_name}_source")
            .add_dataframe_asset(suite_name)
        )
        batch = asset.add_batch_definition_whole_dataframe("batch").get_batch(
            batch_parameters={"dataframe": frame}
        )
        result = batch.validate(
            load_suite(suite_name),
            expectation_parameters=parameters or {},
            result_format=RESULT_FORMAT,
        )
    outcome = SuiteOutcome(
        suite=suite_name, source=source, success=bool(result.success), evaluated=len(result.results)
    )
    bad_days: set[str] = set()
    whole_batch_failed = False
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        res = item.result or {}
        if "unexpected_count" in res:
            sample = res.get("partial_unexpected_list", [])[:3]
            detail = (
                f"{res['unexpected_count']} unexpected of {res.get('element_count')}, e.g. {sample}"
            )
        elif "observed_value" in res:
            detail = f"observed {res['observed_value']}"
        elif item.exception_info and item.exception_info.get("raised_exception"):
            detail = str(item.exception_info.get("exception_message", "")).splitlines()[0]
        else:
            detail = "failed"
        indices = res.get("unexpected_index_list")
        if DAY_COLUMN in frame.columns and indices:
            rows = [i if isinstance(i, int) else i.get("index", i) for i in indices]
            rows = [r for r in rows if isinstance(r, int)]
            bad_days.update(_iso_days(frame.iloc[rows][DAY_COLUMN]))
        else:
            whole_batch_failed = True
        outcome.failures.append(
            {
                "expectation": config.type,
                "column": config.kwargs.get("column")
                or config.kwargs.get("column_list")
                or (
                    [config.kwargs["column_A"], config.kwargs["column_B"]]
                    if "column_A" in config.kwargs
                    else None
                ),
                "detail": detail,
            }
        )
    if whole_batch_failed and DAY_COLUMN in frame.columns:
        bad_days.update(_iso_days(frame[DAY_COLUMN]))
    outcome.bad_days = sorted(bad_days)
    return outcome


def _iso_days(values: pd.Series) -> set[str]:
    return {pd.Timestamp(v).date().isoformat() for v in values.unique()}


def quarantine(
    settings: Settings, label: str, outcome: SuiteOutcome, files: dict[str, Path | pd.DataFrame]
) -> Path:
    """Move a rejected batch to ``quarantine/<label>/`` with a ``reason.json``.

    Args:
        settings: Gives the data folder.
        label: The batch's date (or date range): the folder name.
        outcome: Why it was rejected.
        files: Name to a file to move there, or to a frame to write there as Parquet.
    """
    folder = settings.paths.quarantine / label
    folder.mkdir(parents=True, exist_ok=True)
    for name, item in files.items():
        dest = folder / name
        if isinstance(item, pd.DataFrame):
            with atomic_path(dest) as tmp:
                item.to_parquet(tmp, index=False)
        elif item.exists():
            shutil.move(item, dest)
    reason = {
        "batch": label,
        "suite": outcome.suite,
        "source": outcome.source,
        "failures": outcome.failures,
        "bad_days": outcome.bad_days,
        "files": sorted(files),
        "message": outcome.describe(),
    }
    write_json(reason, folder / f"reason_{outcome.suite}.json")
    log.error("quarantined %s in %s: %s", outcome.suite, folder, outcome.describe())
    return folder


def _report(settings: Settings, label: str, outcomes: list[SuiteOutcome]) -> None:
    report = {
        "batch": label,
        "success": all(o.success for o in outcomes),
        "warnings": [w for o in outcomes for w in o.warnings],
        "suites": [asdict(o) for o in outcomes],
    }
    write_json(report, settings.paths.reports / "validation" / f"validation_{label}.json")


def check_raw(settings: Settings, table: str, frame: pd.DataFrame, source: str) -> SuiteOutcome:
    """Run the raw suite of ``table`` (``flights`` or ``weather``) on parsed rows.

    ``frame`` must carry the ``flight_date`` of each row, so a failure names its days.
    Weather hours missing for an airport are recorded as warnings, not failures: the real
    2013 record misses a few.
    """
    outcome = run_suite(frame, f"raw_{table}", source, settings=settings)
    if table == "weather":
        outcome.warnings.extend(missing_weather_hours(frame, source))
    for warning in outcome.warnings:
        log.warning("%s", warning)
    if outcome.success:
        log.info("raw %s from %s: %d expectations passed", table, source, outcome.evaluated)
    return outcome


WEATHER_STATIONS = ("EWR", "JFK", "LGA")
SHOWN_MISSING_HOURS = 5


def missing_weather_hours(frame: pd.DataFrame, source: str) -> list[str]:
    """One line per day with observation hours missing for a station, naming them (UTC).

    The expected hours are every hour of the local day (23 or 25 on the days the clocks
    change), for each station that reports on any day of the batch.
    """
    from ml.io import cutoff_at

    if frame.empty:
        return []
    observed = pd.to_datetime(frame["time_hour"], utc=True, format="%Y-%m-%dT%H:%M:%SZ")
    seen = set(zip(frame["origin"], observed, strict=True))
    stations = sorted(set(frame["origin"]) & set(WEATHER_STATIONS)) or sorted(set(frame["origin"]))
    lines = []
    for day in sorted(set(frame[DAY_COLUMN])):
        day = pd.Timestamp(day).date()
        hours = pd.date_range(
            cutoff_at(day), cutoff_at(day + dt.timedelta(days=1)), freq="h", inclusive="left"
        ).tz_convert("UTC")
        for station in stations:
            missing = [h for h in hours if (station, h) not in seen]
            if missing:
                shown = ", ".join(h.strftime("%H:%M") for h in missing[:SHOWN_MISSING_HOURS])
                more = "" if len(missing) <= SHOWN_MISSING_HOURS else ", ..."
                lines.append(
                    f"{source}: {station} on {day}: {len(missing)} of {len(hours)} hourly "
                    f"observations missing (check: hourly coverage, a warning; UTC {shown}{more})"
                )
    return lines


def write_raw_report(settings: Settings, label: str, outcomes: list[SuiteOutcome]) -> None:
    """The raw suites' summary of an ingest run, warnings included."""
    if outcomes:
        _report(settings, f"raw_{label}", outcomes)


def validate_features(
    settings: Settings,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    built: bool = False,
) -> SuiteOutcome:
    """Run the ``flight_features`` suite on the mart's rows for ``start..end``.

    Args:
        settings: Paths.
        start: First flight date; with ``end``, None means every date in the batch.
        end: Last flight date.
        built: Check dbt's unpublished build (``marts/_build``) rather than the published mart.
            A failing build is quarantined.

    Raises:
        ValidationError: An expectation failed; names the file, expectation and column.
    """
    import duckdb

    from ml.features import load_features
    from ml.transform import PUBLISHED_MARTS

    requested_start, requested_end = start, end
    frame = load_features(settings, start, end, built=built)
    first, last = frame[DAY_COLUMN].min(), frame[DAY_COLUMN].max()
    start, end = start or first, end or last
    raw_glob = str(settings.paths.raw_table("flights") / "*" / "*.parquet")
    with duckdb.connect() as con:
        scheduled = con.execute(
            "select count(*) from read_parquet(?, hive_partitioning = true) where flight_date between ? and ?",
            [raw_glob, start, end],
        ).fetchone()[0]
    checked = frame.assign(
        flight_date=frame[DAY_COLUMN].astype(str),
        latest_source_date=frame["latest_source_date"].astype(str),
        label_known_date=frame["label_known_date"].astype(str),
    )
    label = window_label(start, end)
    build_label = window_label(requested_start, requested_end)
    source = str(
        settings.paths.mart_build("flight_features", build_label)
        if built
        else settings.paths.mart("flight_features")
    )
    source = f"{source} [flight_date {start}..{end}]"
    outcome = run_suite(
        checked,
        "flight_features",
        source,
        parameters={"scheduled_flights": scheduled, "last_day": end.isoformat()},
        settings=settings,
    )
    _report(settings, f"features_{label}", [outcome])
    if not outcome.success:
        if built:
            paths = settings.paths
            quarantine(
                settings,
                label,
                outcome,
                {
                    f"{mart}.parquet": paths.mart_build(mart, build_label)
                    for mart in PUBLISHED_MARTS
                },
            )
        raise ValidationError(outcome.describe())
    log.info("features %s: %d expectations passed", label, outcome.evaluated)
    return outcome


def validate_day(settings: Settings, day: dt.date) -> list[SuiteOutcome]:
    """Re-run every suite on ``day``'s landed raw partitions and published feature rows.

    Raises:
        ValidationError: Any suite failed (nothing is moved: these files are published).
    """
    outcomes = []
    for table in ("flights", "weather"):
        path = settings.paths.raw_partition(table, day)
        if not path.exists():
            raise ValidationError(
                f"{path}: raw {table} partition missing (run `ml ingest` for {day})"
            )
        outcomes.append(
            check_raw(settings, table, pd.read_parquet(path).assign(flight_date=day), str(path))
        )
    failed = [o for o in outcomes if not o.success]
    if failed:
        raise ValidationError("; ".join(o.describe() for o in failed))
    outcomes.append(validate_features(settings, day, day))
    return outcomes
