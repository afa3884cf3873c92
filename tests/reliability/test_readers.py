"""Readers never block the pipeline: a notebook or BI tool holding ``warehouse.duckdb``
open read-only while predict, monitor and the catalog refresh run."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from ml.warehouse import catalog_views, refresh_catalog
from tests.conftest import make_settings
from tests.reliability.conftest import Reader, error_lines, run_ml

DAY = dt.date(2013, 3, 20)
NEXT_DAY = dt.date(2013, 3, 21)


@pytest.fixture
def reader(trained_copy):
    settings = make_settings(trained_copy)
    refresh_catalog(settings)
    held = Reader(settings.paths.warehouse)
    yield held
    held.close()


def test_predict_and_monitor_succeed_while_a_reader_holds_the_catalog(trained_copy, reader):
    for command in (
        ("recalibrate", "--date", str(DAY)),
        ("predict", "--date", str(DAY)),
        ("monitor", "--date", str(DAY)),
        ("decide-retraining", "--date", str(DAY)),
    ):
        proc = run_ml(*command, data_dir=trained_copy)
        assert proc.returncode == 0, error_lines(proc) or proc.stderr[-1500:]
    # The reader's snapshot predates the predictions view; a new connection sees it.
    assert "predictions" in reader.query("select count(*) from predictions").get("error", "")
    settings = make_settings(trained_copy)
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from latest_predictions").fetchall()[0][0] > 0
        assert con.execute("select count(*) from retraining_decisions").fetchall() == [(1,)]
    # A reader that opened after the view appeared sees new partitions without a refresh.
    late = Reader(settings.paths.warehouse)
    try:
        before = late.query("select count(*) from predictions")["rows"][0][0]
        proc = run_ml("predict", "--date", str(NEXT_DAY), data_dir=trained_copy)
        assert proc.returncode == 0, proc.stderr[-1500:]
        after = late.query("select count(distinct flight_date) from predictions")["rows"][0][0]
        assert after == 2 and before > 0
    finally:
        late.close()


def test_the_catalog_is_replaced_by_a_rename_never_written_in_place(trained_copy):
    settings = make_settings(trained_copy)
    path = settings.paths.warehouse
    refresh_catalog(settings)
    inode = path.stat().st_ino
    refresh_catalog(settings)  # nothing new: the file is left as it is
    assert path.stat().st_ino == inode
    run_ml("predict", "--date", str(DAY), data_dir=trained_copy)  # a dataset appears
    assert path.stat().st_ino != inode
    assert "latest_predictions" in catalog_views(path)
    assert not [p for p in path.parent.iterdir() if p.name.endswith((".tmp", ".wal"))]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_an_unreadable_catalog_is_rebuilt_since_it_holds_only_views(trained_copy, damage):
    settings = make_settings(trained_copy)
    path = settings.paths.warehouse
    refresh_catalog(settings)
    data = path.read_bytes()
    path.write_bytes(
        {"garbage": b"not a database" * 100, "truncated": data[: len(data) // 3], "empty": b""}[
            damage
        ]
    )
    proc = run_ml("predict", "--date", str(DAY), data_dir=trained_copy)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "unreadable catalog, rebuilt" in proc.stderr
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select count(*) from flight_features").fetchall()[0][0] > 0


def test_a_stale_catalog_temporary_from_a_killed_refresh_is_removed(trained_copy):
    settings = make_settings(trained_copy)
    path = settings.paths.warehouse
    debris = [path.with_name(f".{path.name}.k1ll3d.tmp"), path.with_name(f".{path.name}.x.tmp.wal")]
    for item in debris:
        item.write_bytes(b"half a catalog")
    refresh_catalog(settings)
    assert not any(item.exists() for item in debris)
