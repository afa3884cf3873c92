"""The catalog refresh, three ways, beside DuckDB's own call.

Needs a data folder with published marts and predictions (``make demo`` leaves one).
On a copy of it, times:

- the floor: DuckDB opening ``warehouse.duckdb`` for writing and creating every view in
  place (what the pipeline did before; it fails while any reader holds the file);
- ``refresh_catalog`` when a dataset appears: the new catalog built in a temporary file
  beside the old one and renamed over it;
- ``refresh_catalog`` when nothing changed: the views read back read-only and compared,
  the file left alone (what every step but the first of a dataset pays);
- the same two with a reader holding the catalog open read-only in another process.

Usage:
    ML_DATA_DIR=data .venv/bin/python benchmarks/catalog_refresh.py --repeat 21
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from ml.config import load_settings
from ml.warehouse import _views, refresh_catalog

READER = "import sys, duckdb; con = duckdb.connect(sys.argv[1], read_only=True); print('ready', flush=True); sys.stdin.read()"


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    source = load_settings()
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        shutil.copytree(source.data_dir, data, symlinks=True)
        settings = load_settings(data_dir=data)
        path = settings.paths.warehouse
        views = _views(settings)

        def in_place() -> None:
            with duckdb.connect(str(path)) as con:
                for name, sql in views.items():
                    con.execute(f"create or replace view {name} as {sql}")

        def appears() -> None:
            path.unlink(missing_ok=True)  # as if a dataset were new: the views differ
            refresh_catalog(settings)

        def unchanged() -> None:
            refresh_catalog(settings)

        results = {"views": len(views), "repeat": args.repeat}
        results["floor_in_place_ms"] = 1000 * _median(in_place, args.repeat)
        path.unlink()
        results["rename_when_a_dataset_appears_ms"] = 1000 * _median(appears, args.repeat)
        results["unchanged_ms"] = 1000 * _median(unchanged, args.repeat)
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert reader.stdout.readline().strip() == b"ready"
        try:
            try:
                in_place()
                results["floor_with_a_reader"] = "succeeded"
            except duckdb.Error as exc:
                results["floor_with_a_reader"] = f"fails: {str(exc).splitlines()[0][:80]}"
            inode = os.stat(path).st_ino
            results["unchanged_with_a_reader_ms"] = 1000 * _median(unchanged, args.repeat)
            assert os.stat(path).st_ino == inode
            results["rename_with_a_reader_ms"] = 1000 * _median(appears, args.repeat)
        finally:
            reader.stdin.close()
            reader.wait()
    results["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    results["ratio_rename_to_floor"] = (
        results["rename_when_a_dataset_appears_ms"] / results["floor_in_place_ms"]
    )
    results["ratio_unchanged_to_floor"] = results["unchanged_ms"] / results["floor_in_place_ms"]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
