"""``ml lineage --date D`` over a year of daily runs: one file per day against one file.

Writes, in a temporary data folder, the OpenLineage events of ``--days`` daily runs in
the shape the daily DAG leaves them (an ingest, a dbt build with one run per model, each
with its compiled SQL as dbt's facets carry it, a publish and a predict per day, the
model version changing weekly), about 0.8 MB a day as the README measures. Then times, each in its own process
(so that its peak memory is its own), the trace of the last day:

- with the events in one file per day (``lineage/openlineage-<day>.jsonl``, what
  :class:`ml.lineage.DailyFiles` writes): the files read newest first, as far as needed;
- with the same events in the one file of the earlier layout (``lineage/openlineage.jsonl``),
  which the trace must read whole: the floor of any layout that keeps one file.

Usage:
    .venv/bin/python benchmarks/lineage_trace.py --days 365 --repeat 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DBT_MODELS = 40  # runs per build: the models and their tests, START and COMPLETE each
SQL_BYTES = 4_000  # compiled SQL carried in a dbt run's facets
TRACE = """
import datetime as dt, json, resource, sys, time
from ml.config import load_settings
from ml.lineage import trace
settings = load_settings(env={}, data_dir=sys.argv[1])
started = time.perf_counter()
found = trace(settings, dt.date.fromisoformat(sys.argv[2]))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "runs": len(found["runs"]),
                  "files_read": len(found["events_files_read"])}))
"""


def _event(job: str, run: str, moment: dt.datetime, inputs, outputs, kind="COMPLETE", sql=""):
    facets = {"sql": {"query": sql}} if sql else {}
    return {
        "eventType": kind,
        "eventTime": moment.isoformat(),
        "producer": "benchmarks/lineage_trace.py",
        "job": {"namespace": "flights", "name": job, "facets": facets},
        "run": {"runId": run, "facets": {}},
        "inputs": [{"namespace": "file", "name": str(p)} for p in inputs],
        "outputs": [{"namespace": "file", "name": str(p)} for p in outputs],
    }


def day_events(settings, flight_day: dt.date, run_at: dt.datetime, model: Path) -> list[dict]:
    """One daily run's events, as the DAG's tasks and the dbt build write them."""
    paths = settings.paths
    key = flight_day.isoformat()
    source = settings.data_dir.parent / "source" / "flights.csv.zip"
    raw = [paths.raw_partition(t, flight_day).parent for t in ("flights", "weather")]
    history = [
        paths.raw_partition(t, flight_day - dt.timedelta(days=n)).parent
        for t in ("flights", "weather")
        for n in range(1, 32)
    ]
    build = paths.mart_build_dir(key)
    features = paths.mart_partition_dir("flight_features", flight_day)
    predictions = paths.predictions_partition(flight_day).parent
    tick = iter(range(10_000))

    def at() -> dt.datetime:
        return run_at + dt.timedelta(seconds=next(tick))

    events = [
        _event("flights_daily.ingest", f"ingest-{key}", at(), [source], raw, "START"),
        _event("flights_daily.ingest", f"ingest-{key}", at(), [source], raw),
    ]
    for number in range(DBT_MODELS):
        name = f"flights.main.model_{number}.build.run"
        sql = f"select * from model_{number - 1} -- " + "x" * SQL_BYTES
        for kind in ("START", "COMPLETE"):
            events.append(
                _event(name, f"dbt-{key}-{number}", at(), raw + history, [build], kind, sql)
            )
    events += [
        _event("flights_daily.build", f"build-{key}", at(), raw + history, [build]),
        _event("flights_daily.publish", f"publish-{key}", at(), [build], [features]),
        _event("flights_daily.predict", f"predict-{key}", at(), [features, model], [predictions]),
    ]
    return events


def write_history(settings, last: dt.date, days: int, one_file: bool) -> int:
    """The events of ``days`` daily runs up to ``last``, in day files or in one file;
    their bytes."""
    folder = settings.paths.root / "lineage"
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    model = settings.paths.model_version("initial")
    for offset in range(days - 1, -1, -1):
        flight_day = last - dt.timedelta(days=offset)
        run_at = dt.datetime.combine(
            flight_day + dt.timedelta(days=4757), dt.time(6), tzinfo=dt.UTC
        )  # the runs of 2026 for the flights of 2013, one a day
        if offset % 7 == 0:  # a weekly retrain's version scores the week
            model = settings.paths.model_version(f"{flight_day:%Y%m%d}-lightgbm")
        events = day_events(settings, flight_day, run_at, model)
        text = "".join(json.dumps(e) + "\n" for e in events)
        name = "openlineage.jsonl" if one_file else f"openlineage-{run_at.date()}.jsonl"
        with open(folder / name, "a", encoding="utf-8") as file:
            file.write(text)
        total += len(text.encode())
    return total


def run_trace(data_dir: Path, day: dt.date) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", TRACE, str(data_dir), day.isoformat()],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from ml.config import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    last = dt.date(2013, 12, 31)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for layout, one_file in (("day files", False), ("one file", True)):
            data_dir = Path(scratch) / layout.replace(" ", "-") / "data"
            settings = load_settings(env={}, data_dir=data_dir)
            started = time.perf_counter()
            size = write_history(settings, last, args.days, one_file)
            written = time.perf_counter() - started
            runs = [run_trace(data_dir, last) for _ in range(args.repeat)]
            results[layout] = {
                "events_mb": round(size / 1e6, 1),
                "written_s": round(written, 1),
                "trace_s": statistics.median(r["seconds"] for r in runs),
                "peak_mb": statistics.median(r["peak_mb"] for r in runs),
                "runs": runs[0]["runs"],
                "files_read": runs[0]["files_read"],
            }
    day, one = results["day files"], results["one file"]
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for layout, r in results.items():
        print(
            f"{layout:>9}: {r['events_mb']} MB of events; trace of {last}: "
            f"{r['trace_s']:.3f} s (median of {args.repeat}), peak {r['peak_mb']:.0f} MB, "
            f"{r['runs']} runs, {r['files_read']} file(s) read"
        )
    print(
        f"day files against one file: {day['trace_s'] / one['trace_s']:.3f}x the time, "
        f"{day['peak_mb'] / one['peak_mb']:.2f}x the peak memory"
    )


if __name__ == "__main__":
    main()
