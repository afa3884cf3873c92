"""Lineage: which files each step read and wrote, as OpenLineage events, and the way back
from a day's predictions to the raw partitions and the model versions behind them.

Three sources write OpenLineage events to one file, ``lineage/openlineage.jsonl`` under
the data folder (one JSON event per line; with ``OPENLINEAGE_URL`` set, as for the
Marquez profile of docker-compose, the package sends dbt's to that server instead):

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
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ml.config import Settings
from ml.dates import window_label
from ml.ingest import DAILY_TABLES as RAW_TABLES
from ml.ingest import REFERENCE_TABLES
from ml.io import read_json_lines
from ml.paths import PUBLISHED_MARTS

log = logging.getLogger(__name__)

NAMESPACE = "file"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/dbt"
# Where a dbt source's files are: the path inside its read_parquet('...') location.
_READ_PATH = re.compile(r"read_parquet\(\s*'([^']+)'")


def events_file(settings: Settings) -> Path:
    return settings.paths.root / "lineage" / "openlineage.jsonl"


def partition(folder_file: Path) -> Path:
    """The folder of a partition's file (``.../flight_date=D/part-0.parquet``)."""
    return folder_file.parent


def step_datasets(
    settings: Settings, step: str, day: dt.date, result: dict[str, Any] | None = None
) -> tuple[list[Path], list[Path]]:
    """The files and folders the daily DAG's ``step`` read and wrote for ``day``.

    Args:
        step: ``ingest``, ``build``, ``publish`` or ``predict``.
        result: What the step returned (``predict``: ``versions``, role to version).
    """
    paths = settings.paths
    if step == "ingest":
        from ml.ingest import source_dir, source_file

        source = source_dir(settings).resolve()
        inputs = [source_file(source, table) for table in (*RAW_TABLES, *REFERENCE_TABLES)]
        # the day's partitions and the reference tables, rewritten by every ingest (the
        # missing days of history it may land are not named)
        return inputs, [partition(paths.raw_partition(t, day)) for t in RAW_TABLES] + [
            paths.raw_reference(t).parent for t in REFERENCE_TABLES
        ]
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
    Marquez), otherwise the events file of the data folder."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    if os.environ.get("OPENLINEAGE_URL"):
        return OpenLineageClient()
    path = events_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    return OpenLineageClient(
        transport=FileTransport(FileConfig(log_file_path=str(path), append=True))
    )


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


def read_events(settings: Settings) -> list[dict[str, Any]]:
    """Every event of the events file; a line that is not an event is skipped, named
    (:func:`ml.io.read_json_lines`)."""
    return read_json_lines(events_file(settings), "OpenLineage event", _is_event)


def _is_event(entry: dict[str, Any]) -> bool:
    return all(key in entry for key in ("eventType", "eventTime", "run", "job"))


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

    writers: dict[str, list[tuple[dt.datetime, dict[str, Any]]]] = {}
    started: dict[str, dt.datetime] = {}
    for event in read_events(settings):
        moment = dt.datetime.fromisoformat(event["eventTime"])
        if event["eventType"] == "START":
            started[event["run"]["runId"]] = moment
        elif event["eventType"] == "COMPLETE":
            for name in _names(event.get("outputs") or []):
                writers.setdefault(name, []).append((moment, event))

    def writer(name: str, before: dt.datetime | None) -> dict[str, Any] | None:
        done = [(m, e) for m, e in writers.get(name, []) if before is None or m <= before]
        return max(done, key=lambda pair: pair[0])[1] if done else None

    start = str(partition(settings.paths.predictions_partition(day)))
    if writer(start, None) is None:
        raise DataError(
            f"{events_file(settings)}: no completed run wrote {start}; lineage is recorded by "
            "the flights_daily DAG's tasks (run it for that day)"
        )
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
        event = writer(name, before)
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
        read_from = started.get(run_id, dt.datetime.fromisoformat(event["eventTime"]))
        todo.extend((name, read_from) for name in inputs)
    paths = settings.paths
    return {
        "predictions": start,
        "runs": runs,
        "model_versions": sorted(Path(n).name for n in datasets if Path(n).parent == paths.models),
        "raw_partitions": sorted(
            n for n in datasets if Path(n).is_relative_to(paths.raw) and "=" in Path(n).name
        ),
        # the files read from outside the data folder: the raw source
        "sources": sorted(n for n in datasets if not Path(n).is_relative_to(paths.root)),
    }
