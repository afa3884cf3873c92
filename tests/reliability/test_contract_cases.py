"""Every rule of every source table's contract (:mod:`ml.contract`), broken on purpose.

For each column of each source table, the cases are made from the contract itself: a
value of the wrong type, a float that is not finite (spelled ``NaN``, ``inf``), a value
outside the column's range, a missing value where one is required, a value outside its
set, a misspelling, a value the referenced table does not hold, a repeated key, a year
after the data. Each goes through ``ml ingest`` as a user runs it, and must be refused
with one line naming the source file and the column, leaving every published and staged
file byte for byte as it was. A column added to the contract gets its cases here without
anyone writing them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from ml.contract import SOURCE_TABLES, TABLES, Column
from tests.reliability.conftest import digests, ingest_in_process

DATE_PARTS = ("year", "month", "day")


@dataclass(frozen=True)
class Bad:
    table: str
    column: str
    kind: str
    value: str | None  # None: repeat the first row instead of changing a value
    rows: str = "first"  # "first" row of the first day, or "day": every row of that day

    @property
    def id(self) -> str:
        return f"{self.table}-{self.column}-{self.kind}"


def _outside(column: Column) -> str:
    value = column.low - 1 if column.high is None else column.high * 10 + 1
    return str(int(value)) if column.dtype != pl.Float64 else f"{value:g}"


def cases() -> list[Bad]:
    """The bad values of every rule of every source table."""
    out = []
    for name in SOURCE_TABLES:
        table = TABLES[name]
        referenced = {ref.column: ref for ref in table.references}
        for i, c in enumerate(table.columns):
            numeric = c.dtype in (pl.Int32, pl.Int64, pl.Float64)
            if numeric:
                out.append(Bad(name, c.name, "type", "x1"))
            if c.dtype == pl.Float64:
                out.append(Bad(name, c.name, "non-finite", ("NaN", "inf", "-Infinity")[i % 3]))
            if c.low is not None:
                rows = "day" if c.tolerated else "first"
                out.append(Bad(name, c.name, "range", _outside(c), rows))
            if c.required:
                out.append(Bad(name, c.name, "null", "NA"))
            if c.values is not None:
                out.append(Bad(name, c.name, "values", "Q9"))
            if c.pattern is not None:
                out.append(Bad(name, c.name, "spelling", "a\x1b[31mb"))
            if c.until_period_end:
                out.append(Bad(name, c.name, "after the data", "2031"))
            if c.name in referenced:
                unknown = "ZZ" if c.name == "carrier" else "ZZZ"  # spelled right, unknown
                out.append(Bad(name, c.name, "reference", unknown))
        if table.key:
            out.append(Bad(name, "+".join(table.key), "key", None))
    return out


CASES = cases()


def _apply(case: Bad, folder: Path) -> None:
    path = folder / f"{case.table}.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    header, body = rows[0], rows[1:]
    if case.value is None:
        body.insert(1, list(body[0]))
    else:
        at = header.index(case.column)
        first_day = body[0][header.index("day")] if "day" in header else None
        for row in body if case.rows == "day" else body[:1]:
            if first_day is None or row[header.index("day")] == first_day:
                row[at] = case.value
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *body])
    path.write_text(buffer.getvalue(), newline="")


# How the line names the rule that refused each kind of case: the check of the reading,
# the expectation of the suite, or the date checks (for the parts of a date).
RULE_WORDS = {
    "type": ["(check: type"],
    "non-finite": ["(check: finite"],
    "range": ["expect_column_values_to_be_between", "(check: range", "(check: date;"],
    "null": ["expect_column_values_to_not_be_null", "(check: not null", "(check: date not null"],
    "values": ["expect_column_values_to_be_in_set", "(check: values"],
    "spelling": ["expect_column_values_to_match_regex", "(check: spelling", "(check: timestamp"],
    "reference": ["; a row of "],
    "key": ["expect_compound_columns_to_be_unique", "(check: key"],
    "after the data": ["(check: year built"],
}


def _named(line: str, case: Bad) -> bool:
    """Does the error line name the column at fault (a date part as part of the date)?"""
    names = (
        [f"'{case.column}'"] if case.kind != "key" else [f"'{k}'" for k in case.column.split("+")]
    )
    if case.column in DATE_PARTS:
        names.append("'year, month, day'")
    return any(name in line for name in names)


def test_every_rule_of_the_contract_has_cases():
    kinds = {case.kind for case in CASES}
    assert kinds == set(RULE_WORDS)
    assert kinds >= {"type", "non-finite", "range", "null", "values", "spelling", "reference"}
    assert kinds >= {"key", "after the data"}
    covered = {(case.table, case.column) for case in CASES}
    for name in SOURCE_TABLES:
        for column in TABLES[name].columns:
            assert (name, column.name) in covered, f"{name}.{column.name} has no rule to break"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_value_against_its_columns_contract_is_refused_and_changes_nothing(
    case, landing_copy, monkeypatch, capsys
):
    source, data_dir, before = landing_copy
    _apply(case, source)
    code, stderr = ingest_in_process(data_dir, source, monkeypatch, capsys)
    lines = [line for line in stderr.splitlines() if line.startswith("ml ingest: error: ")]
    assert code == 1, stderr[-2000:]
    assert len(lines) == 1, stderr[-2000:]
    assert str(source / case.table) in lines[0], lines[0]  # the file, with its folder
    assert _named(lines[0], case), lines[0]
    assert any(words in lines[0] for words in RULE_WORDS[case.kind]), lines[0]
    assert "\x1b" not in lines[0]
    assert digests(data_dir, ("raw", "staging")) == before
