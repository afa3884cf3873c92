"""Nothing is published before everything it feeds has passed, raw included.

Keys, references and impossible values are checked when a file is read (the contract of
each table, ml.contract), so such a file is refused by ``ml ingest`` with one line naming
the source file, the column and the check, and nothing is staged. dbt's tests hold the
same rules a second time, on the published raw with the staged files in place: a staged
file that breaks one (changed after ingest judged it) fails the build with one line that
names its source file, the column and the dbt test, goes to the quarantine with that
reason, and every published file, raw included, keeps its bytes. A correct file landed
afterwards succeeds with no cleanup.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import zipfile
from pathlib import Path

import polars as pl
import pytest

from ml.errors import DataError, TransformError
from ml.ingest import package_source as package_source_dir
from tests.conftest import make_settings
from tests.reliability.conftest import digests, error_lines, run_ml

DAY = dt.date(2013, 3, 20)  # published in the session's folder: its raw files are replaced
LABEL = str(DAY)  # the build window's label, ml.dates.window_label(DAY, DAY)


@pytest.fixture
def published(built_data, tmp_path) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(built_data, data_dir, symlinks=True)
    return data_dir


@pytest.fixture
def source(tmp_path, package_source) -> Path:
    """A source folder of the package's files (links), whose files a case rewrites."""
    folder = tmp_path / "source"
    folder.mkdir()
    for item in package_source.iterdir():
        if item.suffix in (".csv", ".zip"):
            (folder / item.name).symlink_to(item)
    return folder


def _rewrite(folder: Path, name: str, change) -> Path:
    """Replace ``name`` in the source folder with ``change(lines)``; flights are written
    as a plain CSV of the day's rows (the package ships them zipped)."""
    if name == "flights.csv":
        with zipfile.ZipFile(folder / "flights.csv.zip") as archive:
            lines = io.TextIOWrapper(archive.open("flights.csv"), "utf-8").read().splitlines()
        prefix = f"{DAY.year},{DAY.month},{DAY.day},"
        lines = [lines[0]] + [line for line in lines[1:] if line.startswith(prefix)]
        (folder / "flights.csv.zip").unlink()
    else:
        lines = (folder / name).read_text().splitlines()
        (folder / name).unlink()
    (folder / name).write_text("\n".join(change(lines)) + "\n")
    return folder / name


def _replace_field(lines: list[str], column: str, value: str, rows: int = 1) -> list[str]:
    header = lines[0].split(",")
    at = header.index(column)
    out = [lines[0]]
    for number, line in enumerate(lines[1:]):
        fields = line.split(",")
        if number < rows:
            fields[at] = value
        out.append(",".join(fields))
    return out


def _shift_hours(lines: list[str], hours: int) -> list[str]:
    """The day's rows stamped ``hours`` later (or earlier) than their local hour."""
    weather = f",{DAY.year},{DAY.month},{DAY.day},"
    flights = f"{DAY.year},{DAY.month},{DAY.day},"
    out = [lines[0]]
    for line in lines[1:]:
        if weather in line[:16] or line.startswith(flights):
            fields = line.split(",")
            stamp = dt.datetime.strptime(fields[-1], "%Y-%m-%dT%H:%M:%SZ")
            fields[-1] = (stamp + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
            line = ",".join(fields)
        out.append(line)
    return out


# (source file, how it is broken, the column and the check the message must name)
CASES = {
    "a repeated carrier": ("airlines.csv", lambda ls: [*ls, ls[1]], "carrier", "key"),
    "a repeated plane": ("planes.csv", lambda ls: [*ls, ls[5]], "tailnum", "key"),
    "a repeated airport": ("airports.csv", lambda ls: [*ls, ls[7]], "faa", "key"),
    "a destination that is no airport": (
        "flights.csv",
        lambda ls: _replace_field(ls, "dest", "ZZZ"),
        "dest",
        "expect_column_values_to_be_in_set",
    ),
    "a carrier that is no airline": (
        "flights.csv",
        lambda ls: _replace_field(ls, "carrier", "ZZ", rows=3),
        "carrier",
        "expect_column_values_to_be_in_set",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_key_repeated_or_a_reference_to_nothing_is_refused_at_ingest(published, source, case):
    name, breaks, column, check = CASES[case]
    path = _rewrite(source, name, breaks)
    line = _ingest_refused(published, source)
    assert str(path) in line and f"column {column!r}" in line and check in line, line


def _stage_repeated_carrier(settings) -> Path:
    """Land DAY cleanly, then change the staged airlines after ingest judged them (a
    repeated carrier): what only dbt's tests see. The source file it names."""
    import pyarrow.parquet as pq

    from ml.ingest import ingest

    ingest(settings, DAY, DAY)
    staged = settings.paths.raw_staged(settings.paths.raw_reference("airlines"))
    table = pq.read_table(staged)
    pq.write_table(
        pl.concat([pl.from_arrow(table), pl.from_arrow(table).head(1)]).to_arrow(), staged
    )
    return Path(json.loads(settings.paths.raw_staged_sources.read_text())["airlines"])


def test_a_staged_file_that_fails_dbt_quarantines_the_run_and_changes_no_published_file(
    published, source
):
    settings = make_settings(published, raw_source=str(source))
    before = digests(published)
    path = _stage_repeated_carrier(settings)
    assert digests(published) == before  # staged, not published
    proc = run_ml("transform", "--start", str(DAY), "--end", str(DAY), data_dir=published,
                  ML_RAW_SOURCE=str(source))  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = error_lines(proc)
    assert f"{path}: column 'carrier' failed unique" in line, line
    assert "quarantined" in line and "no published file changed" in line
    assert digests(published) == before
    folder = settings.paths.quarantine_day(LABEL) / "raw"
    reason = json.loads(settings.paths.quarantine_reason(LABEL, "raw").read_text())
    assert reason["source_files"]["airlines"] == str(path)
    assert any(
        f["source_file"] == str(path) and f["column"] == "carrier" and f["check"] == "unique"
        for f in reason["failures"]
    ), reason["failures"]
    assert (folder / "airlines").is_dir()
    assert not list(settings.paths.raw_staging.rglob("*.parquet"))


def test_a_correct_file_landed_after_a_rejected_one_publishes_with_no_cleanup(published, source):
    from ml.ingest import ingest
    from ml.pipeline import transform

    settings = make_settings(published, raw_source=str(source))
    _stage_repeated_carrier(settings)
    with pytest.raises(TransformError, match="airlines.csv: column 'carrier' failed unique"):
        transform(settings, DAY, DAY)
    # the next day's run reads the published raw, not the rejected file
    following = DAY + dt.timedelta(days=1)
    planes = settings.paths.raw_reference("planes")
    planes.write_bytes(planes.read_bytes())  # a published file the next run publishes again
    ingest(settings, following, following)
    transform(settings, following, following)
    assert not list(settings.paths.raw_staging.rglob("*.parquet"))
    assert settings.paths.raw_partition("flights", following).exists()
    # and the rejected day itself, landed again from the correct file
    ingest(settings, DAY, DAY)
    assert transform(settings, DAY, DAY)["flights"] == [DAY.isoformat()]
    # a file refused at ingest stages nothing: the next run needs no cleanup either
    _rewrite(source, "airlines.csv", lambda ls: [*ls, ls[1]])
    with pytest.raises(DataError, match="airlines.csv: column 'carrier' has 2 value"):
        ingest(settings, DAY, DAY)
    (source / "airlines.csv").unlink()
    (source / "airlines.csv").symlink_to(Path(package_source_dir()) / "airlines.csv")
    ingest(settings, DAY, DAY)
    assert transform(settings, DAY, DAY)["flights"] == [DAY.isoformat()]


def test_a_build_publishes_only_the_staged_files_it_read(published, source):
    """A file staged by another ingest after the build read the staging area waits for
    the next build: the publish moves exactly what was judged."""
    from ml.ingest import ingest
    from ml.pipeline import build, publish, validate_build

    settings = make_settings(published, raw_source=str(source))
    ingest(settings, DAY, DAY)
    build(settings, DAY, DAY)
    validate_build(settings, DAY, DAY)
    later = DAY + dt.timedelta(days=2)
    ingest(settings, later, later)  # staged after the build
    staged_later = settings.paths.raw_staged(settings.paths.raw_partition("flights", later))
    published_later = settings.paths.raw_partition("flights", later).read_bytes()
    staged_bytes = staged_later.read_bytes()
    publish(settings, DAY, DAY)
    assert staged_later.read_bytes() == staged_bytes  # still waiting
    assert settings.paths.raw_partition("flights", later).read_bytes() == published_later
    assert not settings.paths.raw_staged(settings.paths.raw_partition("flights", DAY)).exists()


def _ingest_refused(published: Path, source: Path) -> str:
    """``ml ingest`` of DAY from ``source``, which must fail with one line and change
    nothing, published or staged; the line."""
    before = digests(published)
    proc = run_ml("ingest", "--start", str(DAY), "--end", str(DAY), data_dir=published,
                  ML_RAW_SOURCE=str(source))  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = error_lines(proc)
    assert digests(published) == before
    assert not list(make_settings(published).paths.raw_staging.rglob("*.parquet"))
    return line


def _as_local(lines: list[str]) -> list[str]:
    """The day's weather stamped with its local hour written as if it were UTC."""
    prefix = f",{DAY.year},{DAY.month},{DAY.day},"
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split(",")
        if prefix in line[:16]:
            year, month, day, hour = (int(v) for v in fields[1:5])
            fields[-1] = dt.datetime(year, month, day, hour).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(",".join(fields))
    return out


TIME_CASES = {
    "weather shifted by five hours": ("weather.csv", lambda ls: _shift_hours(ls, 5)),
    "weather stamped in local time": ("weather.csv", _as_local),
    "flights an hour early": ("flights.csv", lambda ls: _shift_hours(ls, -1)),
}


@pytest.mark.parametrize("case", list(TIME_CASES))
def test_timestamps_of_another_time_zone_are_refused_at_ingest(published, source, case):
    """time_hour must be the UTC instant of the row's local hour: a file stamped in
    another zone or shifted passes every other check, and would move each observation
    to other hours of the features."""
    name, breaks = TIME_CASES[case]
    path = _rewrite(source, name, breaks)
    line = _ingest_refused(published, source)
    assert f"{path}: column 'time_hour' has" in line and "(check: local hour" in line, line
    assert "America/New_York" in line


def _set_on_day(column: str, value: str):
    """A change that sets ``column`` to ``value`` on the first of the day's rows."""

    def change(lines: list[str]) -> list[str]:
        header = lines[0].split(",")
        weather, flights = (
            f",{DAY.year},{DAY.month},{DAY.day},",
            f"{DAY.year},{DAY.month},{DAY.day},",
        )
        out, done = [lines[0]], False
        for line in lines[1:]:
            if not done and (weather in line[:16] or line.startswith(flights)):
                fields = line.split(",")
                fields[header.index(column)] = value
                line, done = ",".join(fields), True
            out.append(line)
        return out

    return change


# (source file, change, column, what the line says, the check)
VALUE_CASES = {
    "an infinite wind gust": ("weather.csv", _set_on_day("wind_gust", "inf"), "wind_gust", "not finite", "finite"),
    "NaN spelled as text in precip": ("weather.csv", _set_on_day("precip", "NaN"), "precip", "not finite", "finite"),
    "NaN spelled as text in dep_delay": ("flights.csv", _set_on_day("dep_delay", "NaN"), "dep_delay", "not finite", "finite"),
    "an airport at -Infinity": ("airports.csv", lambda ls: _replace_field(ls, "lat", "-Infinity"), "lat", "not finite", "finite"),
    "a plane built in 2031": ("planes.csv", lambda ls: _replace_field(ls, "year", "2031"), "year", "after the source's last year, 2013", "year built"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_impossible_values_are_refused_at_ingest_with_file_column_and_check(
    published, source, case
):
    name, change, column, what, check = VALUE_CASES[case]
    path = _rewrite(source, name, change)
    line = _ingest_refused(published, source)
    assert f"{path}: column {column!r} has 1 value(s) that are {what} (check: {check};" in line


def test_predictions_made_before_their_inputs_were_landed_again_are_marked_superseded(
    trained_copy, source
):
    """A day's weather landed again with other content rebuilds the features that read
    it (the next day's, never its own or an earlier one's: they are known before it):
    the next day's predictions, made before, are marked (``ml predictions show`` warns,
    naming the command that scores them again) until they are scored again."""
    from ml.ingest import ingest
    from ml.pipeline import predict, transform
    from ml.queries import superseded

    settings = make_settings(trained_copy, raw_source=str(source))
    earlier, following = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
    for day in (earlier, DAY, following):
        predict(settings, day)
    _rewrite(source, "weather.csv", _set_on_day("wind_speed", "48.3"))  # a gale at EWR
    ingest(settings, DAY, DAY)
    transform(settings, earlier, following)
    assert superseded(settings, following)
    assert superseded(settings, DAY) is None and superseded(settings, earlier) is None
    shown = run_ml("predictions", "show", "--date", str(following), data_dir=trained_copy)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert f"warning: the predictions of {following} were made from superseded inputs" in (
        shown.stderr
    )
    assert f"`ml predict --date {following}`" in shown.stderr
    quiet = run_ml("predictions", "show", "--date", str(DAY), data_dir=trained_copy)
    assert "superseded" not in quiet.stderr
    predict(settings, following)
    assert superseded(settings, following) is None
