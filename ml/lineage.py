"""Lineage: which files each step read and wrote, as OpenLineage events, and the way back
from a day's predictions to the raw partitions and the model versions behind them.

Three sources write OpenLineage events to the data folder's ``lineage/`` folder, one file
per day, ``openlineage-<YYYY-MM-DD>.jsonl``, named by each event's own ``eventTime`` (UTC)
and written by :class:`DailyFiles`, a transport of the OpenLineage client (one JSON event
per line; with ``OPENLINEAGE_URL`` set, as for the Marquez profile of docker-compose, the
package sends dbt's to that server instead):

- Airflow's OpenLineage provider, as each task starts and ends (configured by
  ``AIRFLOW__OPENLINEAGE__TRANSPORT``, which ``make``, the e2e stack and docker-compose
  point at this file);
- the tasks of ``flights_daily`` add to their events the partitions they read and wrote,
  named by :func:`step_datasets`;
- every dbt build adds one run per dbt model, with the model's inputs and outputs
  (:func:`emit_dbt_events`, through ``openlineage-dbt``), the raw sources named by their
  folders under ``raw/``.

A dataset is a file or folder of the data folder, in the ``file`` namespace, named by its
absolute path, as Airflow names a ``file://`` asset. :func:`trace` walks the events back
from ``predictions/flight_date=D``: the run that wrote it, the files that run read, the
runs that wrote those, down to the source files that ingest read. ``ml lineage --date D`` prints it.
It reads the day files newest first, and stops as soon as every dataset on the way has
its writer: a year of daily runs costs a trace the files since the oldest run it needs.
A ``lineage/openlineage.jsonl`` of an earlier layout is read as the oldest file.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ml.config import Settings
from ml.dates import window_label
from ml.paths import PUBLISHED_MARTS

log = logging.getLogger(__name__)

NAMESPACE = "file"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/dbt"
# Where a dbt source's files are: the path inside its read_parquet('...') location.
_READ_PATH = re.compile(r"read_parquet\(\s*'([^']+)'")


EVENTS_PREFIX = "openlineage-"
# The one file of events of the earlier layout, read after every day file.
LEGACY_EVENTS = "openlineage.jsonl"


def events_folder(settings: Settings) -> Path:
    return settings.paths.root / "lineage"


def events_file(settings: Settings, day: dt.date) -> Path:
    """The file of the events whose ``eventTime`` falls on ``day`` (UTC)."""
    return _day_file(events_folder(settings), day.isoformat())


def _day_file(folder: Path | str, day: str) -> Path:
    return Path(folder) / f"{EVENTS_PREFIX}{day}.jsonl"


def event_files(folder: Path) -> list[Path]:
    """The events files of ``folder``, newest first (the earlier layout's file last)."""
    days = sorted(folder.glob(f"{EVENTS_PREFIX}????-??-??.jsonl"), reverse=True)
    legacy = folder / LEGACY_EVENTS
    return days + ([legacy] if legacy.exists() else [])


@functools.cache
def _transport() -> tuple[type, type]:
    """:class:`DailyFiles` and its config, defined on first use: they subclass the
    OpenLineage client's, whose import (half a second) only the emitting processes pay,
    and they already have it loaded."""
    import attr
    from openlineage.client.serde import Serde
    from openlineage.client.transport.transport import Config, Transport

    @attr.define
    class DailyFilesConfig(Config):
        """Where :class:`DailyFiles` writes: ``folder``, the data folder's ``lineage/``."""

        folder: str

        @classmethod
        def from_dict(cls, params: dict[str, Any]) -> DailyFilesConfig:
            if "folder" not in params:
                raise RuntimeError("`folder` key not passed to DailyFilesConfig")
            return cls(folder=str(params["folder"]))

    class DailyFiles(Transport):
        """An OpenLineage transport that appends each event, one line, to the file of the
        day of its ``eventTime``, ``<folder>/openlineage-<YYYY-MM-DD>.jsonl``. Airflow's
        provider takes it by its dotted name:
        ``AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "ml.lineage.DailyFiles", "folder": ...}'``.
        One ``write`` per line, in append mode, as the client's file transport does, so
        that the tasks of several processes can share a file."""

        kind = "ml_daily_files"
        config_class = DailyFilesConfig

        def __init__(self, config: DailyFilesConfig) -> None:
            self.config = config

        def emit(self, event: Any) -> None:
            text = Serde.to_json(event)
            path = _day_file(self.config.folder, _event_day(event.eventTime))
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as file:
                file.write(text + "\n")

    DailyFiles.__module__ = DailyFilesConfig.__module__ = __name__
    return DailyFiles, DailyFilesConfig


def __getattr__(name: str) -> Any:
    """``DailyFiles`` and ``DailyFilesConfig``, as ``ml.lineage.DailyFiles`` names them."""
    if name in ("DailyFiles", "DailyFilesConfig"):
        return {cls.__name__: cls for cls in _transport()}[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _event_day(moment: str) -> str:
    """The UTC day of an event's ``eventTime`` (every OpenLineage event has one)."""
    return _moment(moment).astimezone(dt.UTC).date().isoformat()


def partition(folder_file: Path) -> Path:
    """The folder of a partition's file (``.../flight_date=D/part-0.parquet``)."""
    return folder_file.parent


def step_datasets(
    settings: Settings, step: str, day: dt.date, result: dict[str, Any] | None = None
) -> tuple[list[Path], list[Path]]:
    """The files and folders the daily DAG's ``step`` read and wrote for ``day``.

    Args:
        step: ``ingest`` (also the training DAG's ``ingest_history`` and the replay's
            ``ingest_range``), ``build``, ``publish`` or ``predict``.
        result: What the step returned (``ingest``: ``landed``, table to the days it
            wrote, and ``references``, the reference tables it wrote; ``predict``:
            ``versions``, role to version).
    """
    from ml.ingest import DAILY_TABLES as RAW_TABLES
    from ml.ingest import REFERENCE_TABLES

    paths = settings.paths
    if step == "ingest":
        from ml.ingest import source_dir, source_file

        source = source_dir(settings).resolve()
        inputs = [source_file(source, table) for table in (*RAW_TABLES, *REFERENCE_TABLES)]
        if result is None:  # what every daily ingest writes: the day, the reference tables
            landed = {t: [day.isoformat()] for t in RAW_TABLES}
            references = list(REFERENCE_TABLES)
        else:  # the days it wrote, the missing history it landed included
            landed, references = result["landed"], result["references"]
        return inputs, [
            partition(paths.raw_partition(t, dt.date.fromisoformat(d)))
            for t, days in landed.items()
            for d in days
        ] + [paths.raw_reference(t).parent for t in references]
    if step == "build":
        first = day - dt.timedelta(days=settings.feature_lookback_days)
        days = [first + dt.timedelta(days=n) for n in range((day - first).days + 1)]
        raw = [
            partition(paths.raw_partition(t, d))
            for t in RAW_TABLES
            for d in days
            if paths.raw_partition(t, d).exists()
        ]
        raw += [paths.raw_reference(t).parent for t in REFERENCE_TABLES]
        return raw, [paths.mart_build_dir(_label(day))]
    if step == "publish":
        return [paths.mart_build_dir(_label(day))], [
            paths.mart_partition_dir(m, day) for m in PUBLISHED_MARTS
        ]
    if step == "predict":
        # the versions that scored the day, by role; the heuristic fallback has no folder
        versions = sorted(set(((result or {}).get("versions") or {}).values()))
        return [paths.mart_partition_dir("flight_features", day)] + [
            paths.model_version(v) for v in versions if paths.model_version(v).exists()
        ], [partition(paths.predictions_partition(day))]
    raise ValueError(f"no lineage for step {step!r}")


def _label(day: dt.date) -> str:
    return window_label(day, day)


def client(settings: Settings):
    """The OpenLineage client the package emits with: ``OPENLINEAGE_URL`` if set (e.g.
    Marquez), otherwise the events files of the data folder (:class:`DailyFiles`)."""
    from openlineage.client import OpenLineageClient

    if os.environ.get("OPENLINEAGE_URL"):
        return OpenLineageClient()
    daily, config = _transport()
    return OpenLineageClient(transport=daily(config(folder=str(events_folder(settings)))))


def emit_dbt_events(settings: Settings, project_dir: Path, target_path: Path) -> int:
    """One OpenLineage run per dbt model and test of the last ``dbt build`` (its artifacts
    in ``target_path``), the dbt sources named by their folders under ``raw/``. Returns
    the number of events.

    Lineage is a record, not data: a failure is logged and the build goes on."""
    try:
        import attr
        from openlineage.common.provider.dbt.local import DbtLocalArtifactProcessor

        processor = DbtLocalArtifactProcessor(
            producer=PRODUCER,
            job_namespace=os.environ.get("AIRFLOW__OPENLINEAGE__NAMESPACE", "flights"),
            project_dir=str(project_dir),
            target_path=str(target_path),
            dbt_command_line=["dbt", "build", "--profiles-dir", str(project_dir)],
            skip_errors=True,
        )
        # profiles.yml reads ML_DATA_DIR, as dbt did in its own process (transform.dbt_env)
        previous = os.environ.get("ML_DATA_DIR")
        os.environ["ML_DATA_DIR"] = str(settings.data_dir)
        try:
            events = processor.parse().events()
        finally:
            if previous is None:
                del os.environ["ML_DATA_DIR"]
            else:
                os.environ["ML_DATA_DIR"] = previous
        # dbt reads raw/ through dbt/raw/ (ml.landing): name the published folders
        candidate, published = str(settings.paths.dbt_raw), str(settings.paths.raw)
        files = {
            key: published + folder.removeprefix(candidate)
            if folder.startswith(candidate)
            else folder
            for key, folder in _source_folders(processor).items()
        }

        def as_file(dataset):
            folder = files.get((dataset.namespace, dataset.name))
            return (
                dataset
                if folder is None
                else attr.evolve(dataset, namespace=NAMESPACE, name=folder)
            )

        emitter = client(settings)
        for event in events:
            emitter.emit(
                attr.evolve(
                    event,
                    inputs=[as_file(d) for d in event.inputs],
                    outputs=[as_file(d) for d in event.outputs],
                )
            )
        return len(events)
    except Exception as exc:  # noqa: BLE001 - lineage never fails a build
        log.warning("dbt lineage not written (the build goes on): %s", exc)
        return 0


def _source_folders(processor) -> dict[tuple[str, str], str]:
    """(dbt's dataset namespace, name) of each source -> the folder its files are in."""
    out = {}
    for source in processor.manifest["sources"].values():
        location = (source.get("meta") or {}).get("external_location") or (
            (source.get("config") or {}).get("meta") or {}
        ).get("external_location")
        match = location and _READ_PATH.search(location)
        if match:
            folder = match.group(1).split("*", 1)[0].rstrip("/")
            name = f"{source['database']}.{source['schema']}.{source['name']}"
            out[(processor.dataset_namespace, name)] = folder
    return out


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event of one events file; a line that is not an event is skipped, named
    (:func:`ml.io.read_json_lines`)."""
    from ml.io import read_json_lines

    return read_json_lines(path, "OpenLineage event", _is_event)


class _Writers:
    """The completed runs that wrote each dataset, and when each run started, read from
    the events files newest first, one more file each time a question needs it."""

    def __init__(self, folder: Path) -> None:
        self.unread = event_files(folder)
        self.read: list[Path] = []
        self.writers: dict[str, list[tuple[dt.datetime, dict[str, Any]]]] = {}
        self.started: dict[str, dt.datetime] = {}

    def _more(self) -> bool:
        if not self.unread:
            return False
        path = self.unread.pop(0)
        self.read.append(path)
        for event in read_events(path):
            moment = _moment(event["eventTime"])
            if event["eventType"] == "START":
                self.started[event["run"]["runId"]] = moment
            elif event["eventType"] == "COMPLETE":
                for name in _names(event.get("outputs") or []):
                    self.writers.setdefault(name, []).append((moment, event))
        return True

    def newest(self, name: str, before: dt.datetime | None) -> dict[str, Any] | None:
        """The newest completed run that wrote ``name`` at or before ``before``: the files
        not read yet hold only older events, so the first file with one has the newest."""
        while True:
            done = [(m, e) for m, e in self.writers.get(name, []) if before is None or m <= before]
            if done:
                return max(done, key=lambda pair: pair[0])[1]
            if not self._more():
                return None

    def start(self, event: dict[str, Any]) -> dt.datetime:
        """When ``event``'s run started: its START event, read from the files of the days
        before its end where needed (a run across midnight started in the day before's
        file), as far back as ``START_WITHIN_DAYS``; else the event's own time."""
        run_id, ended = event["run"]["runId"], _moment(event["eventTime"])
        oldest = ended.astimezone(dt.UTC).date() - dt.timedelta(days=START_WITHIN_DAYS)
        while run_id not in self.started and self.unread and _file_day(self.unread[0]) >= oldest:
            self._more()
        return self.started.get(run_id, ended)


# How many days before its end a run's START is looked for (a task runs for minutes).
START_WITHIN_DAYS = 2


def _file_day(path: Path) -> dt.date:
    """The day of an events file (the earlier layout's one file: before any)."""
    stem = path.stem.removeprefix(EVENTS_PREFIX)
    return dt.date.min if path.name == LEGACY_EVENTS else dt.date.fromisoformat(stem)


def _moment(text: str) -> dt.datetime:
    """An event's time, aware (a time without a zone is UTC, as the specification's are)."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _is_event(entry: dict[str, Any]) -> bool:
    if not all(key in entry for key in ("eventType", "eventTime", "run", "job")):
        return False
    try:
        _moment(entry["eventTime"])
    except (TypeError, ValueError):
        return False
    return True


def _names(datasets: Iterable[dict[str, Any]]) -> list[str]:
    return [d["name"] for d in datasets if d.get("namespace") == NAMESPACE]


def trace(settings: Settings, day: dt.date) -> dict[str, Any]:
    """The way back from ``day``'s predictions: the newest completed run that wrote them,
    then, for each dataset a run read, the newest completed run that wrote it before that
    run started; every run on the way (job, run id, time, inputs, outputs), the model
    versions, the raw partitions and the source files.

    Raises:
        DataError: No completed run wrote the day's predictions.
    """
    from ml.errors import DataError

    writers = _Writers(events_folder(settings))
    start = str(partition(settings.paths.predictions_partition(day)))
    if writers.newest(start, None) is None:
        raise DataError(
            f"{events_folder(settings)}: no completed run wrote {start}; lineage is recorded "
            "by the flights_daily DAG's tasks (run it for that day)"
        )
    paths = settings.paths
    runs: list[dict[str, Any]] = []
    seen: set[str] = set()
    datasets: list[str] = []
    todo: list[tuple[str, dt.datetime | None]] = [(start, None)]
    while todo:
        name, before = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        datasets.append(name)
        # the leaves, whose writers no recorded step names: a file outside the data folder
        # (a source, only ever read) and a model version (the training DAG's train)
        leaf = not Path(name).is_relative_to(paths.root) or Path(name).parent == paths.models
        event = None if leaf else writers.newest(name, before)
        if event is None or event["run"]["runId"] in {r["run_id"] for r in runs}:
            continue
        run_id = event["run"]["runId"]
        inputs = _names(event.get("inputs") or [])
        runs.append(
            {
                "job": event["job"]["name"],
                "run_id": run_id,
                "time": event["eventTime"],
                "inputs": inputs,
                "outputs": _names(event.get("outputs") or []),
            }
        )
        read_from = writers.start(event)
        todo.extend((name, read_from) for name in inputs)
    return {
        "predictions": start,
        "runs": runs,
        "model_versions": sorted(Path(n).name for n in datasets if Path(n).parent == paths.models),
        "raw_partitions": sorted(
            n for n in datasets if Path(n).is_relative_to(paths.raw) and "=" in Path(n).name
        ),
        # the files read from outside the data folder: the raw source
        "sources": sorted(n for n in datasets if not Path(n).is_relative_to(paths.root)),
        "events_files_read": [path.name for path in writers.read],
    }
