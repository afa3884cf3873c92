"""Dates: the project's time zone, ISO dates, date ranges, prediction cutoffs and streaks.

The ground floor: imports nothing from ``ml`` but its errors. Every rule about calendar
time is written here once; a module that spells the time zone or a cutoff itself is a
defect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

from ml.errors import ConfigError

TIME_ZONE = "America/New_York"
# The flights are New York's: days, schedules and the prediction cutoff are local time.
LOCAL_TZ = ZoneInfo(TIME_ZONE)


def parse_date(value: str | dt.date) -> dt.date:
    """Parse an ISO date, with an error that says what was expected."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from exc


def as_dates(values: Iterable) -> list[dt.date]:
    """Dates read back from a Parquet date column (dates, timestamps or ISO strings)."""
    out = []
    for value in values:
        if isinstance(value, str):
            out.append(parse_date(value))
        elif isinstance(value, dt.datetime):
            out.append(value.date())
        elif isinstance(value, dt.date):
            out.append(value)
        else:  # numpy.datetime64 and pandas.Timestamp
            import pandas as pd

            out.append(pd.Timestamp(value).date())
    return out


def window_label(start: dt.date | None, end: dt.date | None) -> str:
    """A date window's name in folders: ``2013-07-01``, ``2013-04-02_2013-06-30`` or ``all``."""
    if start is None or end is None:
        return "all"
    return start.isoformat() if start == end else f"{start.isoformat()}_{end.isoformat()}"


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end``, both included."""
    if end < start:
        raise ConfigError(f"end {end} is before start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def cutoff_at(day: dt.date) -> dt.datetime:
    """The prediction cutoff for flights scheduled on ``day``: 00:00 America/New_York."""
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=LOCAL_TZ)


def consecutive_days(days_flagged: Mapping[dt.date, bool], last: dt.date) -> int:
    """How many consecutive days up to ``last`` are flagged (a missing day ends the run)."""
    count, day = 0, last
    while days_flagged.get(day):
        count += 1
        day -= dt.timedelta(days=1)
    return count
