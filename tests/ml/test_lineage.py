"""ml.lineage.trace: from a day's predictions back through the OpenLineage events file.

The events here are written by hand in the shape Airflow's provider writes them; the
end-to-end test (tests/e2e/test_airflow_dags.py) reads the ones the real DAG writes.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ml.cli import main
from ml.errors import DataError
from ml.lineage import events_file, trace

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
    path = events_file(settings)
    path.parent.mkdir(parents=True)
    lines = [json.dumps(e) for e in events]
    if garbage is not None:
        lines.insert(1, garbage)
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
    assert main(["lineage", "--date", DAY.isoformat(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == found


def test_a_day_no_run_has_written_is_one_line_that_says_how_to_record_it(settings):
    with pytest.raises(
        DataError, match=r"no completed run wrote .*flight_date=2013-03-15.*flights_daily"
    ):
        trace(settings, DAY)
