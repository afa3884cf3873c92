"""Daily transform cost against the length of history: 1x and Nx the real year.

The scale generator replicates 2013 into earlier synthetic years (each shifted back by a
multiple of 364 days, so weekdays line up) with jitter on delays and weather, and lands
them directly as the landing zone's Parquet partitions. Then it times the daily
transform of one day (dbt build of that day, validation, publication) on a data folder
holding only the real year, and on one holding N years.

Usage:
    .venv/bin/python benchmarks/scale_history.py --years 10 --day 2013-12-15 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl

from ml.config import load_settings
from ml.ingest import SCHEMAS, package_source, read_source_table, source_file
from ml.io import write_parquet
from ml.pipeline import transform
from ml.transform import build

SHIFT_DAYS = 364  # 52 weeks: a replicated day keeps its weekday


def _jittered(frame: pl.DataFrame, table: str, copy: int) -> pl.DataFrame:
    """Copy ``copy`` of the year: dates shifted back, delays and weather jittered."""
    shift = dt.timedelta(days=SHIFT_DAYS * copy)
    day = pl.date(pl.col("year"), pl.col("month"), pl.col("day")) - shift
    out = frame.with_columns(day.alias("flight_date"))
    out = out.with_columns(
        pl.col("flight_date").dt.year().cast(pl.Int32).alias("year"),
        pl.col("flight_date").dt.month().cast(pl.Int32).alias("month"),
        pl.col("flight_date").dt.day().cast(pl.Int32).alias("day"),
        (pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ") - shift)
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        .alias("time_hour"),
    )
    if copy == 0:
        return out
    seed = 1000 + copy
    n = out.height
    noise = pl.Series(pl.int_range(0, n, eager=True).hash(seed) % 11 - 5).cast(pl.Float64)
    if table == "flights":
        out = out.with_columns(
            (pl.col("arr_delay") + noise).alias("arr_delay"),
            (pl.col("dep_delay") + noise).alias("dep_delay"),
        )
    else:
        out = out.with_columns(
            (pl.col("temp") + noise / 5).alias("temp"),
            (pl.col("wind_speed") + noise.abs() / 5).alias("wind_speed"),
        )
    return out


def land_years(data_dir: Path, years: int) -> int:
    """Land ``years`` copies of 2013 as raw partitions; returns the flight rows landed."""
    settings = load_settings(env={}, data_dir=data_dir)
    folder = package_source()
    rows = 0
    for table in ("flights", "weather"):
        source = read_source_table(source_file(folder, table), table, settings.source_max_bytes)
        for copy in range(years):
            frame = _jittered(source, table, copy)
            for (day,), part in frame.partition_by("flight_date", as_dict=True).items():
                write_parquet(
                    part.drop("flight_date").select(list(SCHEMAS[table])).to_arrow(),
                    settings.paths.raw_partition(table, day),
                )
            if table == "flights":
                rows += frame.height
    for table in ("planes", "airports", "airlines"):
        frame = read_source_table(source_file(folder, table), table, settings.source_max_bytes)
        write_parquet(frame.to_arrow(), settings.paths.raw_reference(table))
    return rows


def time_daily(data_dir: Path, day: dt.date, repeat: int) -> dict[str, float]:
    """Median seconds of the day's dbt build alone and of the whole transform step."""
    settings = load_settings(env={}, data_dir=data_dir)
    transform(settings, day, day)  # warm: dbt's parse, file caches
    builds, totals = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        build(settings, day, day)
        builds.append(time.perf_counter() - start)
        start = time.perf_counter()
        transform(settings, day, day)
        totals.append(time.perf_counter() - start)
    return {"dbt_build_s": statistics.median(builds), "transform_s": statistics.median(totals)}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--day", type=dt.date.fromisoformat, default=dt.date(2013, 12, 15))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="scale-history-"))
    try:
        results = {}
        for years in (1, args.years):
            data_dir = root / f"{years}x"
            started = time.perf_counter()
            rows = land_years(data_dir, years)
            landed_s = time.perf_counter() - started
            timing = time_daily(data_dir, args.day, args.repeat)
            results[f"{years}x"] = {
                "flight_rows": rows,
                "land_s": round(landed_s, 1),
                **{k: round(v, 2) for k, v in timing.items()},
            }
            print(f"{years}x history ({rows:,} flights): {results[f'{years}x']}", flush=True)
        one, many = results["1x"], results[f"{args.years}x"]
        summary = {
            "machine": machine(),
            "day": args.day.isoformat(),
            "results": results,
            "ratio_transform": round(many["transform_s"] / one["transform_s"], 2),
            "ratio_dbt_build": round(many["dbt_build_s"] / one["dbt_build_s"], 2),
        }
        print(json.dumps(summary, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
