"""Where every file lives: the one place that knows the layout of the data folder
(``ML_DATA_DIR``) and of the repository folders the pipeline reads (the dbt project and
the expectation suites). Ground floor: imports nothing from ``ml``.

A date partition is a folder ``.../flight_date=YYYY-MM-DD/`` holding one ``part-0.parquet``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_DIR / "dbt_project"
EXPECTATIONS_DIR = REPO_DIR / "expectations"

PART_FILE = "part-0.parquet"
# A registered model version's own files, beside the model's (see ml.registry).
MODEL_METADATA = "metadata.json"
MODEL_METRICS = "metrics.json"
MODEL_PROFILE = "reference_profile.json"
# A version's model card, rendered from its metadata and metrics (see ml.model_card).
MODEL_CARD_FILES = {".md": "model_card.md", ".html": "model_card.html"}
# The marts a build publishes, one partition per flight date each (see transform.publish).
PUBLISHED_MARTS = ("flights", "flight_features", "flight_oracle_weather")


def partition_glob(folder: Path, key: str) -> str:
    """Every part file of a hive-partitioned table: ``<folder>/<key>=*/*.parquet``.

    Temporaries (dot-names) and stray folders do not match.
    """
    return str(folder / f"{key}=*" / "*.parquet")


def partition_days(folder: Path, key: str = "flight_date") -> list[dt.date]:
    """The dates of ``<folder>/<key>=YYYY-MM-DD`` partitions, oldest first (other names,
    temporaries among them, are left out)."""
    prefix = f"{key}="
    days = []
    for name in (p.name for p in folder.iterdir()) if folder.is_dir() else ():
        try:
            days.append(dt.date.fromisoformat(name.removeprefix(prefix)))
        except ValueError:
            continue
    return sorted(days)


@dataclass(frozen=True)
class Paths:
    """Layout of the data folder (``ML_DATA_DIR``)."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    def raw_table(self, table: str) -> Path:
        return self.raw / table

    def raw_glob(self, table: str) -> str:
        """Every landed day of a raw table."""
        return partition_glob(self.raw_table(table), "flight_date")

    def raw_partition(self, table: str, day: dt.date) -> Path:
        return self.raw / table / f"flight_date={day.isoformat()}" / PART_FILE

    def raw_reference(self, table: str) -> Path:
        return self.raw / table / PART_FILE

    @property
    def raw_staging(self) -> Path:
        """Raw files landed by ``ingest`` and not yet published: they become ``raw/`` only
        with the marts built from them, once every check has passed (:mod:`ml.landing`)."""
        return self.root / "staging" / "raw"

    def raw_staged(self, published: Path) -> Path:
        """Where the staged file that will replace ``published`` (a file under ``raw/``) waits."""
        return self.raw_staging / published.relative_to(self.raw)

    @property
    def raw_staged_sources(self) -> Path:
        """The source file each staged table was read from: table to path."""
        return self.raw_staging / "sources.json"

    @property
    def dbt_raw(self) -> Path:
        """What the dbt sources read: ``raw/``'s layout, each file a link to its staged
        version where one waits, to the published one otherwise (a constant location, so
        that dbt's parse outlives the run)."""
        return self.dbt / "raw"

    @property
    def marts(self) -> Path:
        return self.root / "marts"

    def mart(self, name: str) -> Path:
        """The published mart: ``marts/<name>/flight_date=D/part-0.parquet``."""
        return self.marts / name

    def mart_partition_dir(self, name: str, day: dt.date) -> Path:
        """``marts/<name>/flight_date=D``: a link into ``_dates`` (see ``mart_dates``)."""
        return self.marts / name / f"flight_date={day.isoformat()}"

    def mart_partition(self, name: str, day: dt.date) -> Path:
        return self.mart_partition_dir(name, day) / PART_FILE

    def mart_glob(self, name: str) -> str:
        """Every published partition of a mart."""
        return partition_glob(self.mart(name), "flight_date")

    def mart_days(self, name: str) -> list[dt.date]:
        """The days a mart has published, in order."""
        return partition_days(self.mart(name))

    @property
    def mart_dates(self) -> Path:
        """Where the published marts' files live, one generation folder per date.

        ``marts/<name>/flight_date=D`` is a link to ``_dates/D/<name>``, and ``_dates/D``
        a link to the date's current generation ``_dates/.D.<id>/``: replacing that one
        link switches every mart of the date at once (see ``transform.publish``).
        """
        return self.marts / "_dates"

    def mart_date_link(self, day: dt.date) -> Path:
        return self.mart_dates / day.isoformat()

    @property
    def mart_builds(self) -> Path:
        return self.marts / "_build"

    def mart_build_dir(self, label: str) -> Path:
        """Where dbt writes one run's window of each mart, before validation and publication."""
        return self.mart_builds / label

    def mart_build(self, name: str, label: str) -> Path:
        return self.mart_build_dir(label) / f"{name}.parquet"

    def build_scheduled(self, label: str) -> Path:
        """Flights scheduled per day in the raw one build read (what validation counts its
        feature rows against: ``dbt/raw/`` may be relinked by the next build meanwhile)."""
        return self.mart_build_dir(label) / "scheduled.json"

    def mart_published_record(self, label: str) -> Path:
        """What the publish of a window's build published, kept after the build is dropped
        so that publishing it again is a no-op rather than an error."""
        return self.mart_builds / f"{label}.published.json"

    @property
    def publish_lock(self) -> Path:
        """Held by one publish at a time, from reading a build to dropping it."""
        return self.marts / ".publish.lock"

    @property
    def dbt(self) -> Path:
        """dbt's own DuckDB file (``transform.duckdb``, see profiles.yml), target and logs."""
        return self.root / "dbt"

    @property
    def dbt_database(self) -> Path:
        return self.dbt / "transform.duckdb"

    @property
    def dbt_window(self) -> Path:
        """The dates the current dbt run builds, read by the dbt project at run time
        (``macros/build_window.sql``), so that dbt's parse outlives the run."""
        return self.dbt / "build_window.json"

    @property
    def dbt_outputs(self) -> Path:
        """Where dbt writes the marts of the current run (a constant location, for the
        same reason); ``ml`` moves them into the window's build folder."""
        return self.dbt / "build"

    @property
    def dbt_lock(self) -> Path:
        """Held by one dbt run at a time (dbt's DuckDB file takes one writer)."""
        return self.dbt / ".dbt.lock"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def warehouse_lock(self) -> Path:
        """Held while the catalog is rebuilt and swapped in."""
        return self.warehouse.with_name(f".{self.warehouse.name}.lock")

    # -- model registry ---------------------------------------------------------------------
    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def models_lock(self) -> Path:
        """Held while a version is registered or an alias moves."""
        return self.models / ".lock"

    @property
    def model_aliases(self) -> Path:
        """``aliases.json``: champion and challenger, and their versions."""
        return self.models / "aliases.json"

    @property
    def model_audit_log(self) -> Path:
        """``audit.jsonl``: every alias change, one JSON object per line."""
        return self.models / "audit.jsonl"

    def model_card(self, version: str, suffix: str = ".html") -> Path:
        """A version's model card, ``.html`` or ``.md``."""
        return self.model_version(version) / MODEL_CARD_FILES[suffix]

    def model_run_record(self, version: str) -> Path:
        """``<version>.run.json`` beside a version's folder: what varies from one training
        run to the next (the candidates' fitting times), kept out of the version's
        content so that identical runs register identical folders."""
        return self.models / f"{version}.run.json"

    def model_version(self, version: str) -> Path:
        """A version's folder: its model files and :data:`MODEL_METADATA`,
        :data:`MODEL_METRICS`, :data:`MODEL_PROFILE` and model card."""
        return self.models / version

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def predictions_glob(self) -> str:
        return partition_glob(self.predictions, "flight_date")

    def predictions_partition(self, day: dt.date) -> Path:
        return self.predictions / f"flight_date={day.isoformat()}" / PART_FILE

    def superseded_predictions(self, day: dt.date) -> Path:
        """A day whose features were rebuilt from new inputs after it was predicted: why,
        until ``predict`` scores it again (beside the table, never matched by its glob)."""
        return self.root / "superseded" / f"{day.isoformat()}.json"

    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def deadline_misses(self) -> Path:
        """``deadline_misses.jsonl``: one line per daily run not done by its deadline."""
        return self.monitoring / "deadline_misses.jsonl"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def backtests(self) -> Path:
        return self.root / "backtests"

    def backtest_glob(self, table: str) -> str:
        """Every run's part of a backtest table."""
        return partition_glob(self.backtests / table, "run_id")

    def backtest_table(self, table: str, run_id: str) -> Path:
        """One run's part of a backtest table: ``backtests/<table>/run_id=<id>/part-0.parquet``."""
        return self.backtests / table / f"run_id={run_id}" / PART_FILE

    @property
    def source_index(self) -> Path:
        """The raw source's daily files split by day, once per content (see ml.ingest)."""
        return self.root / "source_index"

    def source_index_dir(self, table: str, key: str) -> Path:
        """One source file's split: ``source_index/<table>-<key>/``."""
        return self.source_index / f"{table}-{key}"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    # -- repository folders ---------------------------------------------------------------
    @property
    def dbt_project(self) -> Path:
        """The dbt project (``dbt_project/`` in the repository)."""
        return DBT_PROJECT_DIR

    @property
    def expectations(self) -> Path:
        """The Great Expectations suites, one JSON file per dataset."""
        return EXPECTATIONS_DIR

    # -- dbt's own files, under the data folder --------------------------------------------
    @property
    def dbt_target(self) -> Path:
        return self.dbt / "target"

    @property
    def dbt_logs(self) -> Path:
        return self.dbt / "logs"

    @property
    def dbt_docs(self) -> Path:
        """The dbt project's docs as one page (``dbt docs generate --static``); beside it,
        ``project.sha256``, the digest of the project they were written from."""
        return self.root / "docs" / "dbt" / "index.html"

    # -- monitoring tables and reports -----------------------------------------------------
    def monitoring_table(self, table: str) -> Path:
        """``monitoring/<table>/``: drift, performance or retraining."""
        return self.monitoring / table

    def monitoring_partition(self, table: str, day: dt.date, kind: str | None = None) -> Path:
        """``monitoring/<table>/[kind=<kind>/]flight_date=D/part-0.parquet``."""
        folder = self.monitoring_table(table)
        if kind is not None:
            folder = folder / f"kind={kind}"
        return folder / f"flight_date={day.isoformat()}" / PART_FILE

    def monitoring_glob(self, table: str, kind: str | None = None) -> str:
        """Every partition of a monitoring table (of one ``kind``, or of all of them)."""
        folder = self.monitoring_table(table)
        if table == "performance":
            folder = folder / f"kind={'*' if kind is None else kind}"
        return partition_glob(folder, "flight_date")

    @property
    def drift_reports(self) -> Path:
        return self.reports / "drift"

    def drift_report(self, day: dt.date, suffix: str) -> Path:
        """The day's monitoring report, ``.html`` or ``.json``."""
        return self.drift_reports / f"drift_{day.isoformat()}{suffix}"

    def drift_report_pages(self) -> list[Path]:
        """Every day's monitoring page, oldest day first."""
        return sorted(self.drift_reports.glob("drift_*.html"))

    @property
    def validation_reports(self) -> Path:
        return self.reports / "validation"

    def validation_report(self, label: str, suffix: str) -> Path:
        """One validation run's result, ``.html`` or ``.json``."""
        return self.validation_reports / f"validation_{label}{suffix}"

    def validation_report_records(self) -> list[Path]:
        """Every validation run's ``.json`` record (unordered)."""
        return list(self.validation_reports.glob("validation_*.json"))

    @property
    def validation_index(self) -> Path:
        return self.validation_reports / "index.html"

    @property
    def backtest_reports(self) -> Path:
        return self.reports / "backtest"

    def backtest_report(self, label: str, suffix: str) -> Path:
        """A backtest run's (``<run_id>``) or a grid's (``grid-...``) page or record,
        ``.html`` or ``.json``."""
        return self.backtest_reports / f"{label}{suffix}"

    def backtest_report_pages(self) -> list[Path]:
        """Every backtest page, newest file first."""
        pages = self.backtest_reports.glob("*.html")
        return sorted(pages, key=lambda p: p.stat().st_mtime, reverse=True)

    def quarantine_day(self, label: str) -> Path:
        return self.quarantine / label

    def quarantine_reason(self, label: str, suite: str) -> Path:
        """Why a batch was quarantined: the failing suite's checks, as JSON."""
        return self.quarantine_day(label) / f"reason_{suite}.json"
