"""What every column of every table may hold: one contract per table, written once.

The source files (``flights``, ``weather``, ``planes``, ``airports``, ``airlines``) and
the feature mart (``flight_features``) each have a :class:`Table`: every column's type,
whether it may be null, its plausible range with the reason for it, its allowed values
or spelling, the table's key and its references to other tables. Everything that checks
a column is made from it:

- ``ingest`` reads each source column as the contract's type and refuses a value that is
  not of it, and any float that is not finite (``NaN`` spelled as text included);
- the reference tables, which have no days to quarantine, are refused whole at the first
  value outside their contract (:func:`violations`), naming the file, column and check;
- the expectation suites of the daily tables and of the feature mart get one expectation
  per rule (:func:`expectations`), on top of the checks across columns and rows that
  their files in ``expectations/`` hold;
- dbt's tests of keys and references are checked against :data:`TABLES` by the tests.

A column added to a source table or to the mart without its rules here fails a test
(``tests/ml/test_contract.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl

# A name or a label shown in pages and terminals: printable, no control characters.
TEXT = r"^[^\x00-\x1f\x7f]{1,200}$"
TEXT_WHY = "text shown in pages and terminals: 1 to 200 characters, no control characters"


@dataclass(frozen=True)
class Column:
    """One column and what it may hold.

    Attributes:
        name: The column's name.
        dtype: Its type; a source value that does not parse as it is refused.
        required: Never null.
        present: Share of a batch's rows that must be non-null (a column often missing).
        low: Smallest plausible value (inclusive); numbers only.
        high: Largest plausible value (inclusive).
        why: Where the range, the set or the spelling comes from.
        tolerated: Share of a batch's readings (its non-null values) allowed outside
            ``low..high``: only for a reading the real record is known to get wrong,
            named in ``why``, and read as missing downstream.
        values: The only values allowed.
        pattern: A regular expression every non-null value matches.
        until_period_end: A year that cannot be after the data's last year.
    """

    name: str
    dtype: Any
    required: bool = False
    present: float | None = None
    low: float | None = None
    high: float | None = None
    why: str = ""
    tolerated: float = 0.0
    values: tuple[Any, ...] | None = None
    pattern: str | None = None
    until_period_end: bool = False


@dataclass(frozen=True)
class Reference:
    """``column`` of this table names a row of ``table`` by its ``key``, except the
    values in ``unlisted`` (known to be missing from the other table, see ``why``)."""

    column: str
    table: str
    key: str
    unlisted: tuple[str, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    references: tuple[Reference, ...] = ()
    # Checked per day by an expectation suite (a bad day is quarantined), rather than
    # refused whole when read.
    daily: bool = False
    notes: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def schema(self) -> dict[str, Any]:
        return {c.name: c.dtype for c in self.columns}


def _date_parts(required: bool = True) -> tuple[Column, ...]:
    return (
        Column("year", pl.Int32, required=required, low=1900, high=2100, why="a calendar year"),
        Column("month", pl.Int32, required=required, low=1, high=12, why="a calendar month"),
        Column("day", pl.Int32, required=required, low=1, high=31, why="a day of a month"),
    )


HOUR = "an hour of the local day"
TIME_HOUR = Column(
    "time_hour",
    pl.String,
    required=True,
    pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:00:00Z$",
    why="the row's hour as a UTC instant, 2013-01-01T05:00:00Z",
)
CARRIER = Column(
    "carrier", pl.String, required=True, pattern=r"^[A-Z0-9]{2}$", why="two-character IATA codes"
)
TAILNUM_PATTERN = r"^[A-Z0-9]{2,10}$"
TAILNUM_WHY = "registration marks: letters and digits only (N14228)"
FAA = r"^[A-Z0-9]{3,4}$"
NYC_AIRPORTS = ("EWR", "JFK", "LGA")
HHMM = "a clock time as hhmm (2400 is midnight at the day's end)"
# Wind: the strongest gust measured at the surface, 253 mph (Barrow Island, 1996).
WIND_MPH = 253.0
WIND_WHY = "the strongest surface gust ever measured is 253 mph"
DELAY_WHY = "minutes: more than two hours early or a day late is a recording error"
TEMP_WHY = "degrees Fahrenheit: beyond New York's records (-15 F, 106 F) with room"
DEWPOINT_WHY = "degrees Fahrenheit: a dew point is never above the temperature"
HUMIDITY_WHY = "relative humidity, a percentage"
PRESSURE_WHY = "millibars at sea level: the world's records are 870 and 1084"
VISIBILITY_WHY = "statute miles; stations report 10 for 10 or more"
PRECIP_HOUR_WHY = "inches in an hour: New York's wettest hours gave about 3"
PRECIP_DAY_WHY = "inches in a day: the US record is 42"
WIND_DIR_WHY = "degrees from north (0 when calm)"

FLIGHTS = Table(
    "flights",
    daily=True,
    columns=(
        *_date_parts(),
        Column("dep_time", pl.Int32, present=0.4, low=1, high=2400, why=HHMM),
        Column("sched_dep_time", pl.Int32, required=True, low=0, high=2359, why=HHMM),
        Column("dep_delay", pl.Float64, low=-120, high=1440, why=DELAY_WHY),
        Column("arr_time", pl.Int32, low=1, high=2400, why=HHMM),
        Column("sched_arr_time", pl.Int32, required=True, low=0, high=2400, why=HHMM),
        Column("arr_delay", pl.Float64, low=-120, high=1440, why=DELAY_WHY),
        CARRIER,
        Column("flight", pl.Int32, required=True, low=1, high=9999, why="flight numbers"),
        Column("tailnum", pl.String, pattern=TAILNUM_PATTERN, why=TAILNUM_WHY),
        Column("origin", pl.String, required=True, values=NYC_AIRPORTS, why="New York's airports"),
        Column("dest", pl.String, required=True, pattern=FAA, why="FAA airport codes"),
        Column(
            "air_time", pl.Float64, low=10, high=720, why="minutes airborne: twelve hours at most"
        ),
        Column(
            "distance",
            pl.Float64,
            required=True,
            low=1,
            high=6000,
            why="miles: Honolulu, the farthest destination, is 4,983 miles from New York",
        ),
        Column("hour", pl.Int32, required=True, low=0, high=23, why=HOUR),
        Column("minute", pl.Int32, required=True, low=0, high=59, why="a minute of the hour"),
        TIME_HOUR,
    ),
    key=("flight_date", "carrier", "flight", "origin"),
    references=(
        Reference("carrier", "airlines", "carrier"),
        Reference("origin", "airports", "faa"),
        Reference(
            "dest",
            "airports",
            "faa",
            unlisted=("BQN", "PSE", "SJU", "STT"),
            why="the FAA extract has no airport of Puerto Rico or the US Virgin Islands",
        ),
    ),
    notes={"key": "a flight number leaves an origin once a day; a repeated row fails here"},
)

WEATHER = Table(
    "weather",
    daily=True,
    columns=(
        Column("origin", pl.String, required=True, values=NYC_AIRPORTS, why="New York's airports"),
        *_date_parts(),
        Column("hour", pl.Int32, required=True, low=0, high=23, why=HOUR),
        Column("temp", pl.Float64, present=0.9, low=-40, high=130, why=TEMP_WHY),
        Column("dewp", pl.Float64, low=-60, high=90, why=DEWPOINT_WHY),
        Column("humid", pl.Float64, low=0, high=100, why=HUMIDITY_WHY),
        Column("wind_dir", pl.Float64, low=0, high=360, why=WIND_DIR_WHY),
        Column(
            "wind_speed",
            pl.Float64,
            low=0,
            high=WIND_MPH,
            tolerated=0.02,
            why=WIND_WHY + "; the 2013 record holds one faulty reading (1048 mph at EWR "
            "on 2013-02-12): up to 2 % of a batch's readings may be beyond, and dbt's "
            "staging reads them as missing",
        ),
        Column("wind_gust", pl.Float64, low=0, high=WIND_MPH, why=WIND_WHY),
        Column("precip", pl.Float64, low=0, high=5, why=PRECIP_HOUR_WHY),
        Column("pressure", pl.Float64, low=870, high=1085, why=PRESSURE_WHY),
        Column("visib", pl.Float64, low=0, high=10, why=VISIBILITY_WHY),
        TIME_HOUR,
    ),
    key=("origin", "time_hour"),
    notes={"key": "one observation per station and hour"},
)

PLANES = Table(
    "planes",
    columns=(
        Column("tailnum", pl.String, required=True, pattern=TAILNUM_PATTERN, why=TAILNUM_WHY),
        Column(
            "year",
            pl.Int32,
            low=1903,
            why="the year built: not before the first powered flight, nor after the data",
            until_period_end=True,
        ),
        Column(
            "type",
            pl.String,
            required=True,
            values=("Fixed wing multi engine", "Fixed wing single engine", "Rotorcraft"),
            why="the FAA registry's aircraft types",
        ),
        Column("manufacturer", pl.String, required=True, pattern=TEXT, why=TEXT_WHY),
        Column("model", pl.String, required=True, pattern=TEXT, why=TEXT_WHY),
        Column("engines", pl.Int32, required=True, low=1, high=8, why="engines on an airframe"),
        Column(
            "seats",
            pl.Int32,
            required=True,
            low=1,
            high=853,
            why="seats: the largest airliner is certified for 853",
        ),
        Column("speed", pl.Float64, low=30, high=800, why="cruising speed in mph, of any airliner"),
        Column(
            "engine",
            pl.String,
            required=True,
            values=(
                "4 Cycle",
                "Reciprocating",
                "Turbo-fan",
                "Turbo-jet",
                "Turbo-prop",
                "Turbo-shaft",
            ),
            why="the FAA registry's engine types",
        ),
    ),
    key=("tailnum",),
)

AIRPORTS = Table(
    "airports",
    columns=(
        Column("faa", pl.String, required=True, pattern=FAA, why="FAA airport codes"),
        Column("name", pl.String, required=True, pattern=TEXT, why=TEXT_WHY),
        Column("lat", pl.Float64, required=True, low=-90, high=90, why="degrees of latitude"),
        Column("lon", pl.Float64, required=True, low=-180, high=180, why="degrees of longitude"),
        Column(
            "alt",
            pl.Float64,
            required=True,
            low=-1400,
            high=15000,
            why="feet above sea level: airports lie between the Dead Sea's and Tibet's",
        ),
        Column(
            "tz",
            pl.Float64,
            required=True,
            low=-12,
            high=14,
            why="hours from UTC: time zones span -12 to +14",
        ),
        Column(
            "dst",
            pl.String,
            required=True,
            values=("A", "N", "U"),
            why="daylight saving: A (US rules), N (none), U (unknown)",
        ),
        Column("tzone", pl.String, pattern=r"^[A-Za-z_]+(/[A-Za-z_+\-]+)+$", why="IANA names"),
    ),
    key=("faa",),
)

AIRLINES = Table(
    "airlines",
    columns=(CARRIER, Column("name", pl.String, required=True, pattern=TEXT, why=TEXT_WHY)),
    key=("carrier",),
)

RATE_WHY = "a share of flights"
COUNT_WHY = "flights counted"


def _rates(prefix: str, windows: tuple[str, ...], kinds=("delay", "cancel", "dep_delay")):
    return tuple(
        Column(f"{prefix}_{kind}_rate_{w}", pl.Float64, required=True, low=0, high=1, why=RATE_WHY)
        for w in windows
        for kind in kinds
    )


def _weather_features(prefix: str) -> tuple[Column, ...]:
    f = pl.Float64
    if prefix == "origin":
        daily = (
            Column(
                f"{prefix}_max_wind_speed_mph_1d",
                f,
                present=0.95,
                low=0,
                high=WIND_MPH,
                why=WIND_WHY,
            ),
            Column(f"{prefix}_max_wind_gust_mph_1d", f, low=0, high=WIND_MPH, why=WIND_WHY),
            Column(f"{prefix}_min_visibility_miles_1d", f, low=0, high=10, why=VISIBILITY_WHY),
            Column(f"{prefix}_total_precip_in_1d", f, low=0, high=50, why=PRECIP_DAY_WHY),
            Column(f"{prefix}_max_hourly_precip_in_1d", f, low=0, high=5, why=PRECIP_HOUR_WHY),
            Column(f"{prefix}_min_temp_f_1d", f, low=-40, high=130, why=TEMP_WHY),
            Column(f"{prefix}_max_temp_f_1d", f, low=-40, high=130, why=TEMP_WHY),
            Column(f"{prefix}_last_temp_f", f, low=-40, high=130, why=TEMP_WHY),
            Column(f"{prefix}_last_wind_speed_mph", f, low=0, high=WIND_MPH, why=WIND_WHY),
            Column(f"{prefix}_last_visibility_miles", f, low=0, high=10, why=VISIBILITY_WHY),
            Column(f"{prefix}_last_pressure_mb", f, low=870, high=1085, why=PRESSURE_WHY),
            Column(f"{prefix}_last_humidity_pct", f, low=0, high=100, why=HUMIDITY_WHY),
            Column(f"{prefix}_last_dewpoint_f", f, low=-60, high=90, why=DEWPOINT_WHY),
        )
    else:
        daily = ()
    tail = ("_last_wind_dir_deg", "_max_dewpoint_f_1d") if prefix == "origin" else ()
    return (
        *daily,
        *(
            Column(
                f"{prefix}{name}",
                f,
                low=0 if name.endswith("deg") else -60,
                high=360 if name.endswith("deg") else 90,
                why=WIND_DIR_WHY if name.endswith("deg") else DEWPOINT_WHY,
            )
            for name in tail
        ),
        Column(
            f"{prefix}_last_dewpoint_spread_f",
            f,
            low=0,
            high=150,
            why="degrees Fahrenheit of temperature above the dew point, never below it",
        ),
        Column(
            f"{prefix}_pressure_change_12h_mb",
            f,
            low=-80,
            high=80,
            why="millibars in 12 hours: the deepest storms fall about 50",
        ),
        Column(f"{prefix}_evening_mean_dewpoint_f", f, low=-60, high=90, why=DEWPOINT_WHY),
        Column(f"{prefix}_evening_mean_humidity_pct", f, low=0, high=100, why=HUMIDITY_WHY),
        Column(f"{prefix}_evening_total_precip_in", f, low=0, high=50, why=PRECIP_DAY_WHY),
        Column(f"{prefix}_evening_min_visibility_miles", f, low=0, high=10, why=VISIBILITY_WHY),
        Column(f"{prefix}_evening_max_wind_gust_mph", f, low=0, high=WIND_MPH, why=WIND_WHY),
    )


_DAYS_1_7_28 = ("1d", "7d", "28d")
FLIGHT_FEATURES = Table(
    "flight_features",
    columns=(
        Column("flight_id", pl.String, required=True, pattern=TEXT, why="the flight's key"),
        Column("flight_date", pl.Date, required=True),
        Column("sched_dep_at", pl.Datetime("us", "UTC"), required=True),
        Column("carrier", pl.String, required=True, pattern=r"^[A-Z0-9]{2}$", why=CARRIER.why),
        Column("flight_number", pl.Int32, required=True, low=1, high=9999, why="flight numbers"),
        Column("tailnum", pl.String, pattern=TAILNUM_PATTERN, why=TAILNUM_WHY),
        Column("origin", pl.String, required=True, values=NYC_AIRPORTS, why="New York's airports"),
        Column("dest", pl.String, required=True, pattern=FAA, why="FAA airport codes"),
        Column("is_delayed", pl.Boolean, required=True, values=(True, False)),
        Column("sched_dep_hour", pl.Int32, required=True, low=0, high=23, why=HOUR),
        Column("day_of_week", pl.Int64, required=True, low=1, high=7, why="ISO weekday"),
        Column("day_of_year", pl.Int64, required=True, low=1, high=366, why="day of the year"),
        Column("week_of_year", pl.Int64, required=True, low=1, high=53, why="ISO week"),
        Column("distance_miles", pl.Float64, required=True, low=1, high=6000, why="miles flown"),
        Column("origin_departures_day", pl.Int64, required=True, low=1, high=2000, why=COUNT_WHY),
        Column("origin_departures_hour", pl.Int64, required=True, low=1, high=200, why=COUNT_WHY),
        Column("origin_departures_3h", pl.Int64, required=True, low=1, high=600, why=COUNT_WHY),
        Column(
            "dest_arrivals_from_nyc_hour", pl.Int64, required=True, low=1, high=200, why=COUNT_WHY
        ),
        Column("plane_earlier_legs_day", pl.Int64, low=0, high=20, why="legs flown that day"),
        Column(
            "plane_age_years",
            pl.Int64,
            present=0.7,
            low=0,
            high=120,
            why="years since the plane was built: never negative",
        ),
        Column("seat_count", pl.Int32, low=1, high=853, why=PLANES.column("seats").why),
        Column("engine_count", pl.Int32, low=1, high=8, why="engines on an airframe"),
        Column("engine_type", pl.String, values=PLANES.column("engine").values, why="engine"),
        Column("days_to_next_holiday", pl.Int64, low=0, high=60, why="days"),
        Column("days_since_last_holiday", pl.Int64, low=0, high=60, why="days"),
        *_rates("network", ("28d",), ("delay", "cancel")),
        *_rates("network", ("1d",), ("dep_delay",)),
        *_rates("carrier", _DAYS_1_7_28),
        *_rates("origin", _DAYS_1_7_28),
        *_rates("route", _DAYS_1_7_28),
        *_rates("carrier_origin", _DAYS_1_7_28),
        Column("carrier_origin_flights_28d", pl.Int32, low=0, high=100_000, why=COUNT_WHY),
        *_rates("flight_number", ("7d", "28d"), ("delay",)),
        *_rates("flight_number", ("28d",), ("dep_delay",)),
        *_rates("origin_hour", ("7d", "28d"), ("delay",)),
        *_rates("origin_hour", ("28d",), ("dep_delay",)),
        *_rates("origin_evening", ("1d",), ("dep_delay",)),
        Column(
            "origin_evening_dep_delay_minutes_1d",
            pl.Float64,
            present=0.95,
            low=-60,
            high=1440,
            why=DELAY_WHY,
        ),
        *_weather_features("origin"),
        *_weather_features("nyc"),
        Column("latest_source_date", pl.Date, required=True),
        Column("label_known_date", pl.Date, required=True),
    ),
    key=("flight_id",),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (FLIGHTS, WEATHER, PLANES, AIRPORTS, AIRLINES, FLIGHT_FEATURES)
}
SOURCE_TABLES = ("flights", "weather", "planes", "airports", "airlines")


def reference_parameter(reference: Reference) -> str:
    """The suite parameter that carries the values ``reference.column`` may take."""
    return f"{reference.column}_in_{reference.table}_{reference.key}"


def reference_values(reference: Reference, referenced: pl.DataFrame) -> list[str]:
    """The keys of the referenced table's rows, and the values known to be missing there."""
    keys = referenced[reference.key].drop_nulls().unique().to_list()
    return sorted(set(keys) | set(reference.unlisted))


def expectations(table: Table) -> list[dict[str, Any]]:
    """The expectations of ``table``'s rules, in Great Expectations' configuration form."""

    def expectation(kind: str, column: str | None, why: str = "", **kwargs) -> dict[str, Any]:
        kwargs = {"column": column, **kwargs} if column else kwargs
        config: dict[str, Any] = {"type": kind, "kwargs": kwargs}
        if why:
            config["meta"] = {"notes": why}
        return config

    out = []
    for c in table.columns:
        if c.required:
            out.append(expectation("expect_column_values_to_not_be_null", c.name))
        elif c.present is not None:
            out.append(
                expectation(
                    "expect_column_values_to_not_be_null",
                    c.name,
                    f"at least {c.present:.0%} of the rows have one",
                    mostly=c.present,
                )
            )
        if c.low is not None:
            bounds = {"min_value": c.low, "max_value": c.high}
            if c.tolerated:
                bounds["mostly"] = 1 - c.tolerated
            out.append(expectation("expect_column_values_to_be_between", c.name, c.why, **bounds))
        if c.values is not None:
            out.append(
                expectation(
                    "expect_column_values_to_be_in_set", c.name, c.why, value_set=list(c.values)
                )
            )
        if c.pattern is not None:
            out.append(
                expectation("expect_column_values_to_match_regex", c.name, c.why, regex=c.pattern)
            )
    if len(table.key) > 1:
        out.append(
            expectation(
                "expect_compound_columns_to_be_unique",
                None,
                table.notes.get("key", ""),
                column_list=list(table.key),
            )
        )
    elif table.key:
        out.append(expectation("expect_column_values_to_be_unique", table.key[0]))
    for ref in table.references:
        why = f"a row of {ref.table} ({ref.key})" + (f"; {ref.why}" if ref.why else "")
        out.append(
            expectation(
                "expect_column_values_to_be_in_set",
                ref.column,
                why,
                value_set={"$PARAMETER": reference_parameter(ref)},
            )
        )
    return out


def violations(
    frame: pl.DataFrame, table: Table, last_year: int | None = None
) -> Iterator[tuple[pl.Series, pl.Series, str, str]]:
    """Every rule of ``table`` that rows of ``frame`` break, as (the column's values, rows
    at fault, what the values are, the check), in the order of the columns, then the key
    (its columns' values together). ``last_year`` is the data's last year, for the
    columns that cannot be after it."""
    for c in table.columns:
        values = frame[c.name]
        null = values.is_null()
        if c.required:
            yield values, null, "missing", "not null"
        if c.low is not None and not c.tolerated:
            outside = values < c.low
            if c.high is not None:
                outside = outside | (values > c.high)
            what = f"before {c.low:g}" if c.high is None else f"outside {c.low:g}..{c.high:g}"
            yield values, outside.fill_null(False), what, f"range; {c.why}"
        if c.until_period_end and last_year is not None:
            late = ~null & (values > last_year)
            yield values, late, f"after the source's last year, {last_year}", "year built"
        if c.values is not None:
            yield values, ~null & ~values.is_in(list(c.values)), "not allowed", f"values; {c.why}"
        if c.pattern is not None:
            bad = ~null & ~values.str.contains(c.pattern)
            yield values, bad, f"not like {c.pattern}", f"spelling; {c.why}"
    if table.key:
        keys = frame.select(table.key)
        shown = (
            keys.to_series()
            if len(table.key) == 1
            else keys.select(
                pl.concat_str(pl.all(), separator=", ", ignore_nulls=True).alias(
                    ", ".join(table.key)
                )
            ).to_series()
        )
        yield shown, keys.is_duplicated(), "repeated", "key"
