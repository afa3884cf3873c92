"""A catalogue of bad input, each fed through ``ML_RAW_SOURCE`` to ``ml ingest``.

Every case starts from a landing zone that already holds a clean ingest of the same
days, changes one thing in a copy of the source files, and runs the command a user
runs. A refused case must exit 1 with one line naming the file, the column (where one is
at fault) and the check, put what its expectation suite rejected in quarantine, and
leave every published file byte for byte as it was. An accepted case (a byte-order
mark, CRLF, extra or reordered columns) must land exactly what the clean files land.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.conftest import FIRST, digests, error_lines, ingest_in_process, run_ml


# -- the cases ----------------------------------------------------------------------------
def edit(name: str, change: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        path.write_text(change(path.read_text()), newline="")

    return apply


def edit_bytes(name: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        path.write_bytes(change(path.read_bytes()))

    return apply


def replace_first(old: str, new: str, name: str = "flights.csv"):
    def change(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit(name, change)


def first_row(new: str):
    return replace_first(FIRST, new)


def header(change: Callable[[list[str]], list[str]], name: str = "flights.csv"):
    """Rewrite the header and every row through the same column change."""

    def apply(text: str) -> str:
        rows = [line.split(",") for line in text.splitlines()]
        return "\n".join(",".join(change(r)) for r in rows) + "\n"

    return edit(name, apply)


def zip_flights(make: Callable[[bytes], bytes]):
    def apply(folder: Path) -> None:
        data = (folder / "flights.csv").read_bytes()
        (folder / "flights.csv").unlink()
        (folder / "flights.csv.zip").write_bytes(make(data))

    return apply


def _zip(data: bytes, names=("flights.csv",)) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.writestr(name, data)
    return buffer.getvalue()


def remove(name: str):
    return lambda folder: (folder / name).unlink()


def weather_row(old_field: tuple[int, str] | None = None, duplicate: bool = False):
    """Change field ``i`` of the first weather row of 2013-01-01, or repeat that row."""

    def apply(text: str) -> str:
        lines = text.splitlines()
        fields = lines[1].split(",")
        if old_field is not None:
            fields[old_field[0]] = old_field[1]
        lines[1] = ",".join(fields)
        if duplicate:
            lines.insert(2, lines[1])
        return "\n".join(lines) + "\n"

    return edit("weather.csv", apply)


def truncate_last_line(text: str) -> str:
    lines = text.rstrip("\n").split("\n")
    return "\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 2]])


def ragged_middle(text: str) -> str:
    lines = text.splitlines()
    lines[10] += ",extra"
    return "\n".join(lines) + "\n"


def unterminated(text: str) -> str:
    lines = text.splitlines()
    lines[5] += ',"unterminated'
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Case:
    name: str
    apply: Callable[[Path], None]
    # None: accepted (exit 0, lands what the clean files land); else the error's pattern.
    error: str | None
    quarantined: str | None = None  # the suite whose reason lands in quarantine/2013-01-01


F, W = r"flights\.csv", r"weather\.csv"
CASES = [
    # accepted: the same rows in another dress
    Case("UTF-8 byte-order mark", edit_bytes("flights.csv", lambda b: b"\xef\xbb\xbf" + b), None),
    Case("CRLF line endings", edit_bytes("flights.csv", lambda b: b.replace(b"\n", b"\r\n")), None),
    Case("an extra column", header(lambda r: [*r, "x" if r[0] == "year" else "1"]), None),
    Case("reordered columns", header(lambda r: r[::-1]), None),
    Case("values padded with spaces", first_row(FIRST.replace(",UA,", ", UA ,")), None),
    Case("the source zipped", zip_flights(_zip), None),
    # structure
    Case(
        "a renamed column",
        replace_first("arr_delay", "arrival_delay"),
        rf"{F}: column 'arr_delay' is missing \(check: required columns",
    ),
    Case(
        "a missing column",
        header(lambda r: r[:11] + r[12:]),
        rf"{F}: column 'tailnum' is missing \(check: required columns",
    ),
    Case(
        "an empty file",
        edit("flights.csv", lambda t: ""),
        rf"{F}: empty file \(check: header line\)",
    ),
    Case(
        "a header and no rows",
        edit("flights.csv", lambda t: t.splitlines()[0] + "\n"),
        rf"{F}: no flights scheduled on 2013-01-01, the file has no flights \(check: non-empty day\)",
    ),
    Case(
        "the wrong delimiter",
        edit("flights.csv", lambda t: t.replace(",", ";")),
        rf"{F}: the header .* has one field \(check: comma-separated header\)",
    ),
    Case(
        "an unterminated quote",
        edit("flights.csv", unterminated),
        rf"{F}: malformed CSV from line \d+ .*check: quoting",
    ),
    Case(
        "a line with an extra field",
        edit("flights.csv", ragged_middle),
        rf"{F}: line 11 has 20 field\(s\), the header 19 \(check: complete rows",
    ),
    Case(
        "a truncated last line outside the range",
        edit("flights.csv", truncate_last_line),
        rf"{F}: line \d+ has \d+ field\(s\), the header 19 \(check: complete rows",
    ),
    Case(
        "a duplicated header column",
        header(lambda r: [*r, r[9]]),
        rf"{F}: column 'carrier' appears more than once in the header \(check: unique column names\)",
    ),
    Case(
        "a corrupt zip",
        zip_flights(lambda b: b"PK\x03\x04" + b[:500]),
        r"flights\.csv\.zip: not a valid zip file",
    ),
    Case(
        "a truncated zip",
        zip_flights(lambda b: _zip(b)[: len(_zip(b)) // 2]),
        r"flights\.csv\.zip: not a valid zip file",
    ),
    Case(
        "a zip of two files",
        zip_flights(lambda b: _zip(b, ("flights.csv", "more.csv"))),
        r"flights\.csv\.zip: expected one \.csv inside the zip",
    ),
    # encoding and types
    Case(
        "a latin-1 byte",
        edit_bytes("flights.csv", lambda b: b.replace(b"N14228", b"N1422\xe9", 1)),
        rf"{F}: line 2, column 'tailnum': byte 0xe9 is not UTF-8 \(check: encoding",
    ),
    Case(
        "a word for a number",
        first_row(FIRST.replace(",517,515,2,", ",517,515,two,")),
        rf"{F}: column 'dep_delay' has 1 value\(s\) that are not Float64 \(check: type; first at line 2: 'two'\)",
    ),
    Case(
        "a fraction for a flight number",
        first_row(FIRST.replace(",1545,", ",1545.5,")),
        rf"{F}: column 'flight' has 1 value\(s\) that are not Int32 \(check: type; first at line 2",
    ),
    Case(
        "a time that is not a time",
        first_row(FIRST.replace("2013-01-01T10:00:00Z", "notatime")),
        rf"{F}: column 'time_hour' has 1 value\(s\) that are not a UTC time .*\(check: timestamp; first at line 2: 'notatime'\)",
    ),
    # dates
    Case(
        "day 32",
        first_row(FIRST.replace("2013,1,1,", "2013,1,32,", 1)),
        rf"{F}: column 'year, month, day' has 1 value\(s\) that are not a calendar date \(check: date; first at line 2: '2013-1-32'\)",
    ),
    Case(
        "February 30",
        first_row(FIRST.replace("2013,1,1,", "2013,2,30,", 1)),
        rf"{F}: column 'year, month, day' .* not a calendar date \(check: date",
    ),
    Case(
        "month 13",
        first_row(FIRST.replace("2013,1,1,", "2013,13,1,", 1)),
        rf"{F}: column 'year, month, day' .* not a calendar date",
    ),
    Case(
        "a year outside the data's period",
        first_row(FIRST.replace("2013,1,1,", "2031,1,1,", 1)),
        rf"{F}: column 'year, month, day' has 1 value\(s\) that are outside the source's period 2013-01-01..2013-12-31 \(check: valid period",
    ),
    Case(
        "a missing day",
        first_row(FIRST.replace("2013,1,1,", "2013,1,NA,", 1)),
        rf"{F}: column 'year, month, day' .* missing \(check: date not null",
    ),
    # values: the expectation suites
    Case(
        "duplicated rows",
        edit("flights.csv", lambda t: t + "\n".join(t.splitlines()[1:4]) + "\n"),
        rf"{F}: expect_compound_columns_to_be_unique on column \['flight_date', 'carrier', 'flight', 'origin'\] failed",
        "raw_flights",
    ),
    Case(
        "a null carrier",
        first_row(FIRST.replace(",UA,", ",,")),
        rf"{F}: expect_column_values_to_not_be_null on column 'carrier' failed",
        "raw_flights",
    ),
    Case(
        "a null flight number",
        first_row(FIRST.replace(",1545,", ",NA,")),
        rf"{F}: expect_column_values_to_not_be_null on column 'flight' failed",
        "raw_flights",
    ),
    Case(
        "a null time_hour",
        first_row(FIRST.replace("2013-01-01T10:00:00Z", "NA")),
        rf"{F}: expect_column_values_to_not_be_null on column 'time_hour' failed",
        "raw_flights",
    ),
    Case(
        "an impossible distance",
        first_row(FIRST.replace(",227,1400,", ",227,91400,")),
        rf"{F}: expect_column_values_to_be_between on column 'distance' failed",
        "raw_flights",
    ),
    Case(
        "a negative distance",
        first_row(FIRST.replace(",227,1400,", ",227,-5,")),
        rf"{F}: expect_column_values_to_be_between on column 'distance' failed",
        "raw_flights",
    ),
    Case(
        "hour 25",
        first_row(FIRST.replace(",1400,5,15,", ",1400,25,15,")),
        rf"{F}: expect_column_values_to_be_between on column 'hour' failed",
        "raw_flights",
    ),
    Case(
        "minute 75",
        first_row(FIRST.replace(",1400,5,15,", ",1400,5,75,")),
        rf"{F}: expect_column_values_to_be_between on column 'minute' failed",
        "raw_flights",
    ),
    Case(
        "a delay of 70 days",
        first_row(FIRST.replace(",819,11,", ",819,99999,")),
        rf"{F}: expect_column_values_to_be_between on column 'arr_delay' failed",
        "raw_flights",
    ),
    Case(
        "a wrong airport",
        first_row(FIRST.replace(",EWR,IAH,", ",BOS,IAH,")),
        rf"{F}: expect_column_values_to_be_in_set on column 'origin' failed",
        "raw_flights",
    ),
    Case(
        "an unseen carrier code",
        first_row(FIRST.replace(",UA,", ",ua,")),
        rf"{F}: expect_column_values_to_match_regex on column 'carrier' failed",
        "raw_flights",
    ),
    Case(
        "a destination that is not a code",
        first_row(FIRST.replace(",IAH,", ",Houston,")),
        rf"{F}: expect_column_values_to_match_regex on column 'dest' failed",
        "raw_flights",
    ),
    Case(
        "markup in a tail number",
        first_row(FIRST.replace("N14228", "<script>alert(7)</script>")),
        rf"{F}: expect_column_values_to_match_regex on column 'tailnum' failed",
        "raw_flights",
    ),
    Case(
        "a NUL byte in a code",
        first_row(FIRST.replace(",UA,", ",U\x00,")),
        rf"{F}: expect_column_values_to_match_regex on column 'carrier' failed",
        "raw_flights",
    ),
    # the other files of the run: nothing lands if any of them is bad
    Case("weather.csv missing", remove("weather.csv"), rf"{W}: file not found"),
    Case(
        "planes.csv with tailnum renamed",
        replace_first("tailnum", "tail_number", "planes.csv"),
        r"planes\.csv: column 'tailnum' is missing \(check: required columns",
    ),
    Case("airports.csv missing", remove("airports.csv"), r"airports\.csv: file not found"),
    Case("an empty airlines.csv", edit("airlines.csv", lambda t: ""), r"airlines\.csv: empty file"),
    Case(
        "a temperature of 200 F",
        weather_row((5, "200")),
        rf"{W}: expect_column_values_to_be_between on column 'temp' failed",
        "raw_weather",
    ),
    Case(
        "a dew point above the temperature",
        weather_row((6, "60")),  # 39.02 F that hour: within the dew point's range
        rf"{W}: expect_column_pair_values_a_to_be_greater_than_b on column \['temp', 'dewp'\] failed",
        "raw_weather",
    ),
    Case(
        "a wind direction of 400",
        weather_row((8, "400")),
        rf"{W}: expect_column_values_to_be_between on column 'wind_dir' failed",
        "raw_weather",
    ),
    Case(
        "a station that does not exist",
        weather_row((0, "XXX")),
        rf"{W}: expect_column_values_to_be_in_set on column 'origin' failed",
        "raw_weather",
    ),
    Case(
        "a weather hour reported twice",
        weather_row(duplicate=True),
        rf"{W}: expect_compound_columns_to_be_unique on column \['origin', 'time_hour'\] failed",
        "raw_weather",
    ),
    Case(
        "a word for a pressure",
        weather_row((12, "high")),
        rf"{W}: column 'pressure' has 1 value\(s\) that are not Float64 \(check: type; first at line 2: 'high'\)",
    ),
]


def _ids(case: Case) -> str:
    return case.name.replace(" ", "-")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_bad_input_is_refused_by_name_and_changes_nothing_published(
    case, landing_copy, monkeypatch, capsys
):
    source, data_dir, before = landing_copy
    case.apply(source)
    code, stderr = ingest_in_process(data_dir, source, monkeypatch, capsys)
    lines = [line for line in stderr.splitlines() if line.startswith("ml ingest: error: ")]
    quarantine = data_dir / "quarantine"
    if case.error is None:
        assert code == 0, stderr[-2000:]
        assert not lines and not quarantine.exists()
    else:
        assert code == 1, stderr[-2000:]
        assert len(lines) == 1, stderr[-2000:]
        assert re.search(case.error, lines[0]), lines[0]
        assert str(source) in lines[0]  # the file, with its folder
        if case.quarantined:
            reason = json.loads(
                (quarantine / "2013-01-01" / f"reason_{case.quarantined}.json").read_text()
            )
            assert reason["bad_days"] == ["2013-01-01"]
            assert re.search(case.error.split(": ", 1)[1], reason["message"])
        else:
            assert not quarantine.exists()
    after = digests(data_dir, ("raw", "staging"))
    if case.error is None:  # landed again, from another source folder
        after.pop("staging/raw/sources.json"), before.pop("staging/raw/sources.json")
    assert after == before


def test_the_catalogue_holds_at_least_forty_kinds_of_bad_input():
    refused = [c for c in CASES if c.error is not None]
    assert len(refused) >= 40 and len({c.name for c in CASES}) == len(CASES)


def test_a_missing_weather_hour_lands_with_a_recorded_warning(clean_source, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(clean_source, source)
    path = source / "weather.csv"
    lines = path.read_text().splitlines()
    dropped = next(i for i, line in enumerate(lines) if line.startswith("JFK,2013,1,2,12,"))
    path.write_text("\n".join(lines[:dropped] + lines[dropped + 1 :]) + "\n")
    data_dir = tmp_path / "data"
    proc = run_ml(
        "ingest",
        "--start",
        "2013-01-02",
        "--end",
        "2013-01-02",
        data_dir=data_dir,
        ML_RAW_SOURCE=str(source),
    )
    assert proc.returncode == 0, error_lines(proc)
    report = json.loads(
        (data_dir / "reports" / "validation" / "validation_raw_2013-01-02.json").read_text()
    )
    missing = [w for w in report["warnings"] if "JFK on 2013-01-02" in w]
    assert len(missing) == 1 and "17:00" in missing[0]  # 12:00 in New York, winter time
    assert "check: hourly coverage, a warning" in missing[0]
    assert "JFK on 2013-01-02" in proc.stderr


def test_the_real_cli_refuses_a_bad_file_with_one_line(clean_source, clean_landing, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(clean_source, source)
    (source / "weather.csv").unlink()
    data_dir = tmp_path / "data"
    shutil.copytree(clean_landing, data_dir)
    before = digests(data_dir, ("raw", "staging"))
    proc = run_ml(
        "ingest",
        "--start",
        "2013-01-01",
        "--end",
        "2013-01-02",
        data_dir=data_dir,
        ML_RAW_SOURCE=str(source),
    )
    assert proc.returncode == 1
    assert error_lines(proc) == [
        f"ml ingest: error: {source}/weather.csv: file not found (nor weather.csv.zip)"
    ]
    assert "Traceback" not in proc.stderr
    assert digests(data_dir, ("raw", "staging")) == before
