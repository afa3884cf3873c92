"""Validate: Great Expectations suites over a day's raw files and its feature rows.

Suites live as JSON in ``expectations/`` (one per dataset) and run in an ephemeral Great
Expectations context on pandas frames. A failed expectation fails the step with the
file, the expectation and the column; the full result lands in ``reports/validation/``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ml.config import Settings
from ml.io import DataError, write_json

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"


class ValidationError(DataError):
    """A batch failed its expectation suite."""


@dataclass
class SuiteOutcome:
    """The result of one suite on one batch."""

    suite: str
    source: str
    success: bool
    failures: list[dict[str, Any]] = field(default_factory=list)
    evaluated: int = 0

    def describe(self) -> str:
        lines = []
        for f in self.failures:
            column = f" on column {f['column']!r}" if f.get("column") else ""
            lines.append(f"{self.source}: {f['expectation']}{column} failed ({f['detail']})")
        return "; ".join(lines)


def load_suite(name: str, folder: Path = EXPECTATIONS_DIR):
    """Load ``expectations/<name>.json`` as a Great Expectations suite."""
    import great_expectations as gx

    path = folder / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: expectation suite not found")
    return gx.ExpectationSuite(**json.loads(path.read_text(encoding="utf-8")))


def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # Great Expectations logs every public function it registers at import; keep it quiet.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_suite(
    frame: pd.DataFrame,
    suite_name: str,
    source: str,
    parameters: dict[str, Any] | None = None,
    context=None,
) -> SuiteOutcome:
    """Validate ``frame`` against a suite and summarise every failed expectation."""
    context = context or _context()
    asset = context.data_sources.add_pandas(f"{suite_name}_source").add_dataframe_asset(suite_name)
    batch = asset.add_batch_definition_whole_dataframe("batch").get_batch(
        batch_parameters={"dataframe": frame}
    )
    result = batch.validate(load_suite(suite_name), expectation_parameters=parameters or {})
    outcome = SuiteOutcome(
        suite=suite_name, source=source, success=bool(result.success), evaluated=len(result.results)
    )
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        res = item.result or {}
        if "unexpected_count" in res:
            detail = f"{res['unexpected_count']} unexpected of {res.get('element_count')}, e.g. {res.get('partial_unexpected_list', [])[:3]}"
        elif "observed_value" in res:
            detail = f"observed {res['observed_value']}"
        elif item.exception_info and item.exception_info.get("raised_exception"):
            detail = str(item.exception_info.get("exception_message", "")).splitlines()[0]
        else:
            detail = "failed"
        outcome.failures.append(
            {
                "expectation": config.type,
                "column": config.kwargs.get("column") or config.kwargs.get("column_list"),
                "detail": detail,
            }
        )
    return outcome


def validate_day(settings: Settings, day: dt.date) -> list[SuiteOutcome]:
    """Run the raw flights, raw weather and feature suites for ``day``.

    Raises:
        ValidationError: Any suite failed; the message names the file, expectation and column.
    """
    from ml.features import load_features, mart_path

    paths = settings.paths
    context = _context()
    outcomes = []
    flights_path = paths.raw_partition("flights", day)
    if not flights_path.exists():
        raise ValidationError(
            f"{flights_path}: raw flights partition missing (run `ml ingest` for {day})"
        )
    raw_flights = pd.read_parquet(flights_path)
    outcomes.append(run_suite(raw_flights, "raw_flights", str(flights_path), context=context))
    weather_path = paths.raw_partition("weather", day)
    if weather_path.exists():
        outcomes.append(
            run_suite(
                pd.read_parquet(weather_path), "raw_weather", str(weather_path), context=context
            )
        )
    features = load_features(settings, day, day)
    outcomes.append(
        run_suite(
            features,
            "flight_features",
            f"{mart_path(settings)} [flight_date={day}]",
            parameters={"scheduled_flights": len(raw_flights)},
            context=context,
        )
    )
    report = {
        "flight_date": day.isoformat(),
        "success": all(o.success for o in outcomes),
        "suites": [o.__dict__ for o in outcomes],
    }
    write_json(report, paths.reports / "validation" / f"validation_{day.isoformat()}.json")
    failed = [o for o in outcomes if not o.success]
    if failed:
        raise ValidationError("; ".join(o.describe() for o in failed))
    log.info("validation of %s passed: %s", day, {o.suite: o.evaluated for o in outcomes})
    return outcomes
