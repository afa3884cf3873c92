"""Drift on 1M rows x 30 columns: ml.drift against Evidently's DataDriftPreset, same frames.

Both tools read the same two Parquet files (reference and current: 20 numeric and 10
categorical columns, 7 of them shifted in the current frame) in their own process, so
each one's peak memory is its own. Evidently takes whole pandas frames; ml.drift works
column by column, so it reads one column of each file at a time. Evidently runs in a separate virtual environment
used only here (it needs pandas < 3; ``make bench-drift`` creates it from
``benchmarks/requirements-evidently.txt``).

On frames this large both tools choose the same tests (normalised Wasserstein for
numeric columns, Jensen-Shannon for categorical ones), so their statistics and verdicts
can be compared column by column at Evidently's default threshold (0.1). ``ml`` times
two things: the whole job from the raw frames (profile the reference, then test the
current frame), and the daily path, which reads the stored profile instead of the
reference.

Usage:
    make bench-drift        # or:
    python benchmarks/drift_vs_evidently.py --evidently-python benchmarks/.venv-evidently/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THRESHOLD = 0.1  # Evidently's default for both distances


def _rss_kb(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def make_frames(folder: Path, rows: int, seed: int = 13) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def frame(shifted: bool) -> pd.DataFrame:
        columns = {}
        for i in range(20):
            kind = i % 4
            if kind == 0:
                values = rng.normal(50, 10, rows)
            elif kind == 1:
                values = rng.gamma(2.0, 3.0, rows)
            elif kind == 2:
                values = rng.integers(0, 24, rows).astype(float)
            else:
                values = np.where(rng.random(rows) < 0.7, 0.0, rng.exponential(0.3, rows))
            if shifted and i in (0, 1, 5, 9, 14):
                values = values * 1.15 + (values.std() * 0.3)
            columns[f"num_{i:02d}"] = values
        for j in range(10):
            levels = [f"L{k}" for k in range(3 + j * 2)]
            p = np.linspace(1, 2, len(levels))
            if shifted and j in (2, 7):
                p = p[::-1] ** 3
            columns[f"cat_{j:02d}"] = rng.choice(levels, rows, p=p / p.sum())
        return pd.DataFrame(columns)

    frame(False).to_parquet(folder / "reference.parquet")
    frame(True).to_parquet(folder / "current.parquet")


def run_ml(folder: Path) -> dict:
    """Profile the reference and test the current frame with ml.drift, a column at a time.

    ml.drift works per column, so it never needs both whole frames in memory: each column
    is read from Parquet, profiled or tested, and dropped.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    from ml import drift

    reference = pq.ParquetFile(folder / "reference.parquet")
    current = pq.ParquetFile(folder / "current.parquet")
    names = [n for n in reference.schema_arrow.names if not n.startswith("__")]
    loaded_kb = _rss_kb("VmRSS")  # nothing read yet: columns are read one at a time

    def column(source: pq.ParquetFile, name: str) -> pd.Series:
        return source.read(columns=[name]).column(name).to_pandas()

    started = time.perf_counter()
    profile = {}
    for name in names:
        values = column(reference, name)
        kind = "numeric" if pd.api.types.is_numeric_dtype(values.dtype) else "categorical"
        profile[name] = drift._profile_series(values, kind)
    profiled = time.perf_counter()
    columns = {}
    for name, entry in profile.items():
        values = column(current, name)
        test = drift.choose_test(entry["kind"], len(values), 1000)
        value = drift.TESTS[test](entry, values)
        columns[name] = {"test": test, "value": value, "drift": value >= THRESHOLD}
    done = time.perf_counter()
    return {
        "tool": "ml.drift",
        "seconds": done - started,
        "profile_seconds": profiled - started,
        "daily_seconds": done - profiled,
        "loaded_rss_mb": loaded_kb / 1024,
        "peak_rss_mb": _rss_kb("VmHWM") / 1024,
        "columns": columns,
    }


def run_evidently(folder: Path) -> dict:
    """DataDriftPreset on the same frames (run inside Evidently's own environment)."""
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(folder / "reference.parquet")
    current = pd.read_parquet(folder / "current.parquet")
    loaded_kb = _rss_kb("VmRSS")
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    result = snapshot.dict()
    done = time.perf_counter()
    columns = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            columns[config["column"]] = {
                "test": config["method"],
                "value": float(metric["value"]),
                "drift": float(metric["value"]) >= config["threshold"],
            }
    return {
        "tool": f"evidently {evidently.__version__}",
        "seconds": done - started,
        "loaded_rss_mb": loaded_kb / 1024,
        "peak_rss_mb": _rss_kb("VmHWM") / 1024,
        "columns": columns,
    }


def _child(python: str, tool: str, folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(
        [python, __file__, "--child", tool, "--folder", str(folder)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--evidently-python", default="benchmarks/.venv-evidently/bin/python")
    parser.add_argument("--child", choices=["ml", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_ml(args.folder) if args.child == "ml" else run_evidently(args.folder)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_frames(folder, args.rows)
        runs = {"ml": [], "evidently": []}
        for _ in range(args.repeat):
            runs["ml"].append(_child(sys.executable, "ml", folder))
            runs["evidently"].append(_child(args.evidently_python, "evidently", folder))
    best = {tool: min(r, key=lambda x: x["seconds"]) for tool, r in runs.items()}
    ours, theirs = best["ml"], best["evidently"]
    agree = [
        c for c in ours["columns"] if ours["columns"][c]["drift"] == theirs["columns"][c]["drift"]
    ]
    print(f"{args.rows:,} rows x {len(ours['columns'])} columns, best of {args.repeat}")
    for result in (ours, theirs):
        extra = (
            f" (profile {result['profile_seconds']:.2f} s + daily test {result['daily_seconds']:.2f} s)"
            if "profile_seconds" in result
            else ""
        )
        print(
            f"  {result['tool']:18s} {result['seconds']:7.2f} s{extra}; peak RSS "
            f"{result['peak_rss_mb']:.0f} MB ({result['loaded_rss_mb']:.0f} MB before the computation)"
        )
    print(
        f"  time ratio (evidently / ml): {theirs['seconds'] / ours['seconds']:.1f}x whole job, "
        f"{theirs['seconds'] / ours['daily_seconds']:.1f}x daily path"
    )
    print(
        f"  peak memory ratio (ml / evidently): {ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}"
    )
    print(f"  verdicts agree on {len(agree)} of {len(ours['columns'])} columns")
    print(
        "  column   ml test           ml value  drift | evidently test               value  drift"
    )
    for column in ours["columns"]:
        a, b = ours["columns"][column], theirs["columns"][column]
        print(
            f"  {column}  {a['test']:16s} {a['value']:8.4f}  {str(a['drift']):5s} | "
            f"{b['test']:28s} {b['value']:6.4f}  {b['drift']}"
        )
    print(
        json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()})
    )


if __name__ == "__main__":
    main()
