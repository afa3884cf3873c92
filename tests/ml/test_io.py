import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.dates import cutoff_at, date_range, parse_date
from ml.io import atomic_path, write_parquet, write_text


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    dest = tmp_path / "part" / "part-0.parquet"
    write_parquet(pa.table({"x": [1, 2]}), dest)
    write_parquet(pa.table({"x": [3]}), dest)
    assert pq.read_table(dest).column("x").to_pylist() == [3]
    assert [p.name for p in dest.parent.iterdir()] == ["part-0.parquet"]


def test_a_failed_write_keeps_the_published_file(tmp_path):
    dest = tmp_path / "report.html"
    write_text("published", dest)
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("crash mid-write")
    assert dest.read_text() == "published"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [
        (dt.date(2013, 1, 15), 5),
        (dt.date(2013, 7, 15), 4),
        (dt.date(2013, 3, 10), 5),
        (dt.date(2013, 11, 3), 4),
    ],
)
def test_cutoff_is_local_midnight_across_daylight_saving(day, utc_hour):
    cutoff = cutoff_at(day).astimezone(dt.UTC)
    assert (cutoff.date(), cutoff.hour, cutoff.minute) == (day, utc_hour, 0)


def test_dates_parse_and_ranges_include_both_ends():
    assert date_range(parse_date("2013-02-27"), parse_date("2013-03-01")) == [
        dt.date(2013, 2, 27),
        dt.date(2013, 2, 28),
        dt.date(2013, 3, 1),
    ]
    with pytest.raises(ValueError, match="ISO date"):
        parse_date("03/01/2013")
    with pytest.raises(ValueError, match="before start"):
        date_range(dt.date(2013, 3, 2), dt.date(2013, 3, 1))
