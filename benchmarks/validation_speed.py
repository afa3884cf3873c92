"""Validation of a day and of the whole year beside Great Expectations' own call.

``validate_build`` runs the ``flight_features`` suite on dbt's build of a window: it reads
the build's rows, counts the scheduled flights in the raw partitions, runs the suite, and
checks that the build did not change meanwhile. Its floor is the library's call alone:
``Batch.validate`` of the same suite on the same frame, in the same process, with the
context, suite and batch definition already made.

Each is timed ``--repeat`` times, interleaved, on one day (2013-07-04) and on the year;
the figures are medians. Needs 2013 landed in ``ML_DATA_DIR`` (``--prepare`` lands it);
the script builds the day and the year itself.

Usage:
    ML_DATA_DIR=... .venv/bin/python benchmarks/validation_speed.py --prepare
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

from ml import pipeline
from ml.config import load_settings
from ml.features import load_features
from ml.validate import RESULT_FORMAT, _batch_definition, load_suite

YEAR = (dt.date(2013, 1, 1), dt.date(2013, 12, 31))
DAY = (dt.date(2013, 7, 4), dt.date(2013, 7, 4))


def gx_floor(settings, start: dt.date, end: dt.date) -> float:
    """Seconds of the library's validation alone on the window's built rows."""
    frame = load_features(settings, start, end, built=True)
    frame = frame.assign(
        **{
            c: frame[c].astype(str)
            for c in ("flight_date", "latest_source_date", "label_known_date")
        }
    ).reset_index(drop=True)
    batch = _batch_definition("flight_features").get_batch(batch_parameters={"dataframe": frame})
    suite = load_suite("flight_features")
    parameters = {"scheduled_flights": len(frame), "last_day": end.isoformat()}
    started = time.perf_counter()
    batch.validate(suite, expectation_parameters=parameters, result_format=RESULT_FORMAT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true", help="land 2013 first")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings()
    if args.prepare:
        from ml.ingest import ingest

        ingest(settings, *YEAR)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    for name, (start, end) in (("one day", DAY), ("the year", YEAR)):
        pipeline.build(settings, start, end)
        pipeline.validate_build(settings, start, end)  # imports, context, suite: once
        ours, floor = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            pipeline.validate_build(settings, start, end)
            ours.append(time.perf_counter() - started)
            floor.append(gx_floor(settings, start, end))
        rows = len(load_features(settings, start, end, built=True))
        ours_s, floor_s = statistics.median(ours), statistics.median(floor)
        print(
            f"{name} ({rows:,} rows): validate_build {ours_s:.2f} s, "
            f"Great Expectations' validate alone {floor_s:.2f} s, "
            f"the rest (reads, counts, digests) {ours_s - floor_s:.2f} s; "
            f"runs {', '.join(f'{s:.2f}' for s in ours)}"
        )


if __name__ == "__main__":
    main()
