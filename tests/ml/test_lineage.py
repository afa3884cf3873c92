"""ml.lineage.trace: from a day's predictions back through the OpenLineage events files.

The events here are written by hand in the shape Airflow's provider writes them; the
end-to-end test (tests/e2e/test_airflow_dags.py) reads the ones the real DAG writes.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ml.cli import main
from ml.errors import DataError
from ml.lineage import LEGACY_EVENTS, events_file, events_folder, trace

DAY = dt.date(2013, 3, 15)


def _event(job: str, run: str, time: str, inputs, outputs, kind="COMPLETE") -> dict:
    return {
        "eventType": kind,
        "eventTime": time,
        "job": {"namespace": "flights", "name": job},
        "run": {"runId": run, "facets": {}},
        "inputs": [{"namespace": "file", "name": str(p)} for p in inputs],
        "outputs": [{"namespace": "file", "name": str(p)} for p in outputs],
    }


def _write(settings, events, garbage: str | None = None) -> None:
    """The events in the files of their days, as ml.lineage.DailyFiles writes them; the
    ``garbage`` line second in the first file."""
    by_day: dict[str, list[str]] = {}
    for event in events:
        by_day.setdefault(event["eventTime"][:10], []).append(json.dumps(event))
    if garbage is not None:
        by_day[min(by_day)].insert(1, garbage)
    for day, lines in by_day.items():
        path = events_file(settings, dt.date.fromisoformat(day))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def test_trace_follows_the_newest_writer_of_each_dataset_back_to_the_sources(
    settings, caplog, capsys, monkeypatch
):
    paths = settings.paths
    source = settings.data_dir.parent / "flights.csv.zip"
    raw = paths.raw_partition("flights", DAY).parent
    history = paths.raw_partition("flights", DAY - dt.timedelta(days=1)).parent
    build = paths.mart_build_dir("2013-03-15")
    features = paths.mart_partition_dir("flight_features", DAY)
    model = paths.model_version("20130315-lightgbm-1f977c54")
    predictions = paths.predictions_partition(DAY).parent
    events = [
        _event("flights_daily.ingest", "i1", "2026-01-01T00:00:00Z", [source], [raw]),
        _event("flights_daily.build", "b1", "2026-01-01T00:01:00Z", [raw, history], [build]),
        _event("flights_daily.publish", "p1", "2026-01-01T00:02:00Z", [build], [features]),
        # an older predict, from another model, and a START of the newest: neither counts
        _event(
            "flights_daily.predict",
            "old",
            "2025-12-31T00:00:00Z",
            [features, paths.model_version("older")],
            [predictions],
        ),
        _event(
            "flights_daily.predict",
            "new",
            "2026-01-01T00:03:00Z",
            [features, model],
            [predictions],
            "START",
        ),
        _event(
            "flights_daily.predict", "new", "2026-01-01T00:03:30Z", [features, model], [predictions]
        ),
        # the day landed again after those predictions: not what they came from
        _event("flights_daily.ingest", "later", "2026-01-02T00:00:00Z", [source], [raw]),
    ]
    _write(settings, events, garbage='{"half an event": ')

    found = trace(settings, DAY)

    assert found["predictions"] == str(predictions)
    assert [r["job"] for r in found["runs"]] == [
        "flights_daily.predict",
        "flights_daily.publish",
        "flights_daily.build",
        "flights_daily.ingest",
    ]
    assert [r["run_id"] for r in found["runs"]] == ["new", "p1", "b1", "i1"]
    assert found["model_versions"] == ["20130315-lightgbm-1f977c54"]
    assert found["raw_partitions"] == sorted([str(raw), str(history)])
    # read from outside the data folder
    assert found["sources"] == [str(source)]
    assert "line 2: unreadable OpenLineage event skipped" in caplog.text

    # the README's two forms of `ml lineage`
    monkeypatch.setenv("ML_DATA_DIR", str(settings.data_dir))
    assert main(["lineage", "--date", DAY.isoformat()]) == 0
    shown = capsys.readouterr().out
    assert "model versions: 20130315-lightgbm-1f977c54" in shown
    assert f"    {raw}" in shown and "flights_daily.ingest  (run i1)" in shown
    assert "events files read, newest first: 3 (openlineage-2026-01-02.jsonl to" in shown
    assert main(["lineage", "--date", DAY.isoformat(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == found


def test_a_day_no_run_has_written_is_one_line_that_says_how_to_record_it(settings):
    with pytest.raises(
        DataError, match=r"no completed run wrote .*flight_date=2013-03-15.*flights_daily"
    ):
        trace(settings, DAY)


def test_trace_reads_the_day_files_newest_first_and_only_as_far_as_it_needs(settings):
    """A year of older files and a file of the earlier layout are left unread when the
    runs behind a day's predictions are all in the last days' files."""
    paths = settings.paths
    source = settings.data_dir.parent / "flights.csv.zip"
    raw = paths.raw_partition("flights", DAY).parent
    features = paths.mart_partition_dir("flight_features", DAY)
    model = paths.model_version("20130315-lightgbm-1f977c54")
    predictions = paths.predictions_partition(DAY).parent
    _write(
        settings,
        [
            _event("flights_daily.ingest", "i1", "2026-01-09T00:00:00+00:00", [source], [raw]),
            _event("flights_daily.publish", "p1", "2026-01-10T00:02:00+00:00", [raw], [features]),
            _event(
                "flights_daily.predict",
                "n1",
                "2026-01-10T00:03:00+00:00",
                [features, model],
                [predictions],
            ),
            # older days: earlier runs of the same datasets, never the newest
            *[
                _event(
                    "flights_daily.ingest",
                    f"old{n}",
                    f"2025-{m:02d}-01T00:00:00+00:00",
                    [source],
                    [raw],
                )
                for n, m in enumerate(range(1, 13))
            ],
        ],
    )
    (events_folder(settings) / LEGACY_EVENTS).write_text(
        json.dumps(
            _event("flights_daily.ingest", "legacy", "2024-01-01T00:00:00+00:00", [source], [raw])
        )
        + "\n"
    )

    found = trace(settings, DAY)

    assert [r["run_id"] for r in found["runs"]] == ["n1", "p1", "i1"]
    # a model version is a leaf: no recorded step names its writer
    assert found["model_versions"] == [model.name]
    assert found["events_files_read"] == [
        "openlineage-2026-01-10.jsonl",
        "openlineage-2026-01-09.jsonl",
    ]


def test_the_transport_airflow_is_given_writes_each_event_to_its_utc_day(settings):
    """The provider builds its transport from AIRFLOW__OPENLINEAGE__TRANSPORT through the
    client's factory: the dotted name the Makefile and docker-compose give."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

    folder = events_folder(settings)
    client = OpenLineageClient(
        config={"transport": {"type": "ml.lineage.DailyFiles", "folder": str(folder)}}
    )
    times = {
        "a": "2026-01-01T23:59:59.500000+00:00",
        "b": "2026-01-01T20:30:00-05:00",  # 01:30 on the 2nd in UTC
        "c": "2026-01-02T08:00:00Z",
    }
    for run, moment in times.items():
        client.emit(
            RunEvent(
                eventType=RunState.COMPLETE,
                eventTime=moment,
                run=Run(runId=f"01941f29-7c00-7000-8000-00000000000{ord(run) - 96}"),
                job=Job(namespace="flights", name=f"job-{run}"),
            )
        )

    def jobs(day: str) -> list[str]:
        path = folder / f"openlineage-{day}.jsonl"
        return [json.loads(line)["job"]["name"] for line in path.read_text().splitlines()]

    assert jobs("2026-01-01") == ["job-a"]
    assert jobs("2026-01-02") == ["job-b", "job-c"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "openlineage-2026-01-01.jsonl",
        "openlineage-2026-01-02.jsonl",
    ]


def test_an_ingest_names_every_partition_it_wrote_the_history_it_landed_included(settings):
    """The days a daily ingest, the training DAG's or the replay's landed (their result),
    so that every raw partition's writer is on record."""
    from ml.ingest import IngestResult
    from ml.lineage import step_datasets

    history = IngestResult({"flights": ["2013-03-13"], "weather": ["2013-03-13"]}, [], {})
    today = IngestResult(
        {"flights": ["2013-03-15"], "weather": ["2013-03-15"]}, ["planes"], {"flights": 9}
    )
    both = history + today
    landed = {"landed": both.partitions, "references": both.reference_tables}

    _, outputs = step_datasets(settings, "ingest", DAY, landed)

    raw = settings.paths.raw
    assert sorted(p.relative_to(raw).as_posix() for p in outputs) == [
        "flights/flight_date=2013-03-13",
        "flights/flight_date=2013-03-15",
        "planes",
        "weather/flight_date=2013-03-13",
        "weather/flight_date=2013-03-15",
    ]


def test_a_run_across_midnight_reads_back_from_its_start_and_times_without_a_zone_are_utc(
    settings, caplog
):
    """The publish that read the raw started at 23:59 (in the day before's file) and ended
    after midnight; an ingest that finished meanwhile is not what it read. An event time
    without a zone is UTC; one that is no time at all is skipped, named."""
    paths = settings.paths
    source = settings.data_dir.parent / "flights.csv.zip"
    raw = paths.raw_partition("flights", DAY).parent
    features = paths.mart_partition_dir("flight_features", DAY)
    predictions = paths.predictions_partition(DAY).parent
    _write(
        settings,
        [
            _event("flights_daily.ingest", "i1", "2026-01-01T23:00:00", [source], [raw]),
            _event(
                "flights_daily.publish", "p1", "2026-01-01T23:59:00Z", [raw], [features], "START"
            ),
            _event("flights_daily.ingest", "i2", "2026-01-02T00:00:10+00:00", [source], [raw]),
            _event("flights_daily.publish", "p1", "2026-01-02T00:01:00+00:00", [raw], [features]),
            _event(
                "flights_daily.predict",
                "n1",
                "2026-01-02T00:02:00+00:00",
                [features],
                [predictions],
            ),
        ],
    )
    with events_file(settings, dt.date(2026, 1, 2)).open("a") as file:
        file.write(json.dumps(_event("flights_daily.ingest", "bad", "later", [source], [raw])))

    found = trace(settings, DAY)

    assert [r["run_id"] for r in found["runs"]] == ["n1", "p1", "i1"]
    assert "unreadable OpenLineage event skipped" in caplog.text
