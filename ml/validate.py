"""Validate: Great Expectations suites that stop bad data before it is published.

Suites live as JSON in ``expectations/`` (one per dataset) and run in an ephemeral Great
Expectations context on pandas frames:

- ``raw_flights`` and ``raw_weather`` run inside ``ingest``, on the parsed files, before
  anything lands: a day with a failed expectation goes to ``quarantine/<date>/`` with a
  ``reason.json`` instead of the landing zone, and the step fails.
- ``flight_features`` runs on dbt's build of the feature mart, before it is published:
  a failed build is quarantined the same way and nothing published changes.

Every failure names the file, the expectation and the column. Each run's result, every
expectation with its outcome, is written to ``reports/validation/`` as JSON and as a
self-contained page, listed in ``reports/validation/index.html``. (Great Expectations'
own Data Docs load their scripts and styles from five CDNs, so offline their index is
empty; these pages reference nothing outside themselves.)
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from ml.config import Settings
from ml.dates import window_label
from ml.errors import ConfigError, DataError, TransformError, ValidationError
from ml.io import (
    atomic_path,
    file_sha256,
    read_json,
    read_partitions,
    reading,
    write_json,
    write_text,
)
from ml.landing import quarantine_staged
from ml.paths import EXPECTATIONS_DIR, PUBLISHED_MARTS

log = logging.getLogger(__name__)

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
    # Every expectation: type, column, what it checks, success, what was observed.
    results: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        lines = []
        for failure in self.failures:
            column = f" on column {failure['column']!r}" if failure.get("column") else ""
            line = f"{self.source}: {failure['expectation']}{column} failed ({failure['detail']})"
            if line not in lines:  # e.g. a value outside its set and unknown to its reference
                lines.append(line)
        return "; ".join(lines)


def load_suite(name: str, folder: Path = EXPECTATIONS_DIR):
    """Load ``expectations/<name>.json`` as a Great Expectations suite, with the
    expectations of the contract its ``meta.contract`` names (:mod:`ml.contract`) after
    the file's own (read once per process and content: a suite edited on disk is read
    again)."""
    path = folder / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"{path}: expectation suite not found")
    return _suite(path, path.stat().st_mtime_ns)


@functools.cache
def _suite(path: Path, modified_ns: int):
    _quiet_gx()
    import great_expectations as gx

    from ml.contract import TABLES, expectations

    config = json.loads(path.read_text(encoding="utf-8"))
    contract = config.get("meta", {}).get("contract")
    if contract is not None:
        if contract not in TABLES:
            raise ConfigError(f"{path}: meta.contract {contract!r} is not a table of ml.contract")
        config["expectations"] = config["expectations"] + expectations(TABLES[contract])
    return gx.ExpectationSuite(**config)


def _quiet_gx() -> None:
    """Call before importing great_expectations: no analytics, no import-time log flood."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations._docs_decorators").disabled = True
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


@functools.cache
def _context():
    """An ephemeral context, for checks whose results need not be kept: one per process."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 3}


@functools.cache
def _batch_definition(suite_name: str):
    """A whole-dataframe batch definition of the process's context, one per suite; each
    validation hands it its frame."""
    source = _context().data_sources.add_pandas(f"{suite_name}_source")
    return source.add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe("batch")


def run_suite(
    frame: pd.DataFrame,
    suite_name: str,
    source: str,
    parameters: dict[str, Any] | None = None,
) -> SuiteOutcome:
    """Validate ``frame`` against a suite and summarise every expectation's outcome.

    If the frame has a ``flight_date`` column, the days of the offending rows are
    reported in ``bad_days`` (so one bad day does not condemn a whole range).
    """
    frame = frame.reset_index(drop=True)
    batch = _batch_definition(suite_name).get_batch(batch_parameters={"dataframe": frame})
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
        config = item.expectation_config
        res = item.result or {}
        column = _column_of(config.kwargs)
        outcome.results.append(
            {
                "expectation": config.type,
                "column": column,
                "success": bool(item.success),
                "checked": _checked(config.kwargs),
                "observed": _observed(res),
            }
        )
        if item.success:
            continue
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
        why = (config.meta or {}).get("notes")
        if why:  # the rule's reason, as its contract or suite gives it
            detail = f"{detail}; {why}"
        outcome.failures.append({"expectation": config.type, "column": column, "detail": detail})
    if whole_batch_failed and DAY_COLUMN in frame.columns:
        bad_days.update(_iso_days(frame[DAY_COLUMN]))
    outcome.bad_days = sorted(bad_days)
    return outcome


def _column_of(kwargs: dict[str, Any]) -> str | list[str] | None:
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return kwargs.get("column") or kwargs.get("column_list")


SHOWN_KWARGS = ("min_value", "max_value", "value_set", "regex", "mostly", "value")


def _checked(kwargs: dict[str, Any]) -> str:
    """The expectation's parameters, in words a page can show."""
    parts = []
    for key in SHOWN_KWARGS:
        if key in kwargs and kwargs[key] is not None:
            value = kwargs[key]
            parts.append(
                f"{key} {value.get('$PARAMETER', value) if isinstance(value, dict) else value}"
            )
    return ", ".join(parts)


def _observed(res: dict[str, Any]) -> str:
    if "unexpected_count" in res:
        return f"{res['unexpected_count']} unexpected of {res.get('element_count')}"
    if "observed_value" in res:
        return f"observed {res['observed_value']}"
    return ""


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
    folder = settings.paths.quarantine_day(label)
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
    write_json(reason, settings.paths.quarantine_reason(label, outcome.suite))
    log.error("quarantined %s in %s: %s", outcome.suite, folder, outcome.describe())
    return folder


def _report(settings: Settings, label: str, outcomes: list[SuiteOutcome]) -> None:
    """The run's result as JSON and as a page, and the index of every run's page."""
    from ml.reports import validation_html, validation_index_html

    report = {
        "batch": label,
        "success": all(o.success for o in outcomes),
        "warnings": [w for o in outcomes for w in o.warnings],
        "suites": [asdict(o) for o in outcomes],
    }
    paths = settings.paths
    write_json(report, paths.validation_report(label, ".json"))
    write_text(validation_html(report), paths.validation_report(label, ".html"))
    write_text(validation_index_html(_index_rows(paths)), paths.validation_index)


def _index_rows(paths) -> list[dict[str, Any]]:
    """One row per validation run on file, newest first (by file time)."""
    rows = []
    records = paths.validation_report_records()
    for path in sorted(records, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rows.append({"page": None, "batch": path.name, "success": None, "suites": []})
            continue
        rows.append(
            {
                "page": path.with_suffix(".html").name,
                "batch": report.get("batch", path.stem),
                "success": report.get("success"),
                "warnings": len(report.get("warnings", [])),
                "suites": [s.get("suite") for s in report.get("suites", [])],
            }
        )
    return rows


def check_raw(
    settings: Settings,
    table: str,
    frame: pd.DataFrame,
    source: str,
    references: dict[str, pl.DataFrame] | None = None,
) -> SuiteOutcome:
    """Run the raw suite of ``table`` (``flights`` or ``weather``) on parsed rows.

    ``frame`` must carry the ``flight_date`` of each row, so a failure names its days.
    The tables its columns refer to (:class:`ml.contract.Reference`) are taken from
    ``references`` (what the run read), or else as landed (staged, or published).
    Weather hours missing for an airport are recorded as warnings, not failures: the real
    2013 record misses a few.
    """
    from ml.contract import TABLES, reference_parameter, reference_values

    parameters = {
        reference_parameter(ref): reference_values(
            ref, _reference_table(settings, ref.table, references or {})
        )
        for ref in TABLES[table].references
    }
    outcome = run_suite(frame, f"raw_{table}", source, parameters)
    if table == "weather":
        outcome.warnings.extend(missing_weather_hours(frame, source))
    for warning in outcome.warnings:
        log.warning("%s", warning)
    if outcome.success:
        log.info("raw %s from %s: %d expectations passed", table, source, outcome.evaluated)
    return outcome


def _reference_table(
    settings: Settings, table: str, references: dict[str, pl.DataFrame]
) -> pl.DataFrame:
    """A reference table: as this run read it, else as landed (staged first)."""
    if table in references:
        return references[table]
    paths = settings.paths
    published = paths.raw_reference(table)
    for path in (paths.raw_staged(published), published):
        if path.exists():
            with reading(path, f"land it again with `ml ingest` ({table} is read whole)"):
                return pl.read_parquet(path)
    raise DataError(f"{published}: the {table} table is not landed (run `ml ingest` first)")


WEATHER_STATIONS = ("EWR", "JFK", "LGA")
SHOWN_MISSING_HOURS = 5


def missing_weather_hours(frame: pd.DataFrame, source: str) -> list[str]:
    """One line per day with observation hours missing for a station, naming them (UTC).

    The expected hours are every hour of the local day (23 or 25 on the days the clocks
    change), for each station that reports on any day of the batch.
    """
    from ml.dates import cutoff_at

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

    from ml.features import load_features

    requested_start, requested_end = start, end
    build_label = window_label(requested_start, requested_end)
    if built:
        before = build_digests(settings, build_label)
    frame = load_features(settings, start, end, built=built)
    first, last = frame[DAY_COLUMN].min(), frame[DAY_COLUMN].max()
    start, end = start or first, end or last
    if built:  # the raw the build was made from, staged files included
        scheduled = _scheduled_in_build(settings, build_label, start, end)
    else:
        counted = read_partitions(
            settings.paths.raw_glob("flights"),
            "select count(*) as flights from {files} where flight_date between ? and ?",
            [start, end],
            hint=f"land those days again with `ml ingest --start {start} --end {end}`",
        )
        scheduled = 0 if counted is None else int(counted["flights"].iloc[0])
    checked = frame.assign(
        flight_date=frame[DAY_COLUMN].astype(str),
        latest_source_date=frame["latest_source_date"].astype(str),
        label_known_date=frame["label_known_date"].astype(str),
    )
    label = window_label(start, end)
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
    )
    _check_finite(settings, outcome, requested_start, requested_end, built)
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
            moved = quarantine_staged(
                paths, label, "flight_features suite on the build", outcome.failures
            )
            raise ValidationError(outcome.describe() + moved)
        raise ValidationError(outcome.describe())
    if built:
        # Publish takes exactly the bytes that passed: a build replaced meanwhile by
        # another run of the same window is not vouched for.
        if build_digests(settings, build_label) != before:
            raise TransformError(
                f"{settings.paths.mart_build_dir(build_label)}: the build changed while it "
                "was validated (another run rebuilt the window); validate it again"
            )
        mark_validated(settings, build_label, before)
    log.info("features %s: %d expectations passed", label, outcome.evaluated)
    return outcome


def _check_finite(
    settings: Settings,
    outcome: SuiteOutcome,
    start: dt.date | None,
    end: dt.date | None,
    built: bool,
) -> None:
    """Fail ``outcome`` for every float column of the contract holding NaN or an infinity
    (a suite on a DataFrame would take NaN for a missing value, and its ranges would only
    catch an infinity where the column has one)."""
    from ml.contract import FLIGHT_FEATURES
    from ml.features import non_finite_values

    floats = [c.name for c in FLIGHT_FEATURES.columns if c.dtype == pl.Float64]
    found = non_finite_values(settings, start, end, floats, built=built)
    for column, (count, day) in found.items():
        outcome.failures.append(
            {
                "expectation": "finite",
                "column": column,
                "detail": f"{count} row(s) hold NaN or an infinity, the first on {day}",
            }
        )
        outcome.results.append(
            {
                "expectation": "finite",
                "column": column,
                "success": False,
                "checked": "not NaN, not infinite",
                "observed": f"{count} non-finite",
            }
        )
        outcome.bad_days = sorted({*outcome.bad_days, day.isoformat()})
    if found:
        outcome.success = False


def _scheduled_in_build(settings: Settings, label: str, start: dt.date, end: dt.date) -> int:
    """Flights scheduled on ``start..end`` in the raw the window's build read, as the
    build recorded them (:meth:`ml.paths.Paths.build_scheduled`)."""
    path = settings.paths.build_scheduled(label)
    counts = read_json(path, TransformError)
    first, last = str(start)[:10], str(end)[:10]  # dates, or timestamps of a frame's column
    return sum(n for day, n in counts.items() if first <= day <= last)


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


VALIDATED_FILE = "validated.json"


def build_digests(settings: Settings, label: str) -> dict[str, str]:
    """SHA-256 of each mart file of the window's build (what validation vouches for)."""
    digests = {}
    for mart in PUBLISHED_MARTS:
        path = settings.paths.mart_build(mart, label)
        with reading(path, "build the window again with `ml transform`"):
            digests[mart] = file_sha256(path)
    return digests


def mark_validated(settings: Settings, label: str, digests: dict[str, str]) -> None:
    """Record that the build's files with these digests passed validation."""
    write_json(digests, settings.paths.mart_build_dir(label) / VALIDATED_FILE)


def validated_digests(paths, label: str) -> dict[str, str]:
    """The digests validation recorded for the window's build; refuses an unvalidated one."""
    build_dir = paths.mart_build_dir(label)
    if not build_dir.is_dir():
        raise TransformError(
            f"{build_dir}: no build of the window to publish (run the build first)"
        )
    record = build_dir / VALIDATED_FILE
    if not record.exists():
        raise TransformError(
            f"{record}: the build was not validated; validate the window first "
            "(`ml transform` builds, validates and publishes)"
        )
    return read_json(record, TransformError)
