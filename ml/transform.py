"""Transform: run the dbt project (staging, intermediate, marts) over the landing zone.

dbt runs in a child process: dbt keeps global state, so one invocation per process is
the reliable way to call it from a long-lived worker. Its own DuckDB file and target
folder live under the data folder, so runs for different data folders never collide.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ml.config import Settings
from ml.errors import ConfigError, TransformError
from ml.io import window_label

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment dbt runs with: the data folder and no telemetry."""
    env = dict(os.environ)
    env["ML_DATA_DIR"] = str(settings.data_dir)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env.setdefault("DBT_PARTIAL_PARSE", "true")
    return env


def run_dbt(settings: Settings, args: list[str], project_dir: Path = DBT_PROJECT_DIR) -> str:
    """Run one dbt command and return its output.

    Args:
        settings: Gives the data folder.
        args: The dbt command and its options, e.g. ``["build"]``.
        project_dir: The dbt project (the repository's ``dbt_project/`` by default).

    Raises:
        TransformError: dbt exited non-zero; the message lists the failing nodes.
    """
    dbt_dir = settings.paths.dbt
    dbt_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-c",
        "from dbt.cli.main import cli; cli()",
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(dbt_dir / "target"),
        "--log-path",
        str(dbt_dir / "logs"),
    ]
    log.info("running dbt %s", " ".join(args))
    proc = subprocess.run(
        command, env=dbt_env(settings), capture_output=True, text=True, check=False
    )
    output = proc.stdout + proc.stderr
    for line in output.splitlines():
        log.info("dbt | %s", line)
    if proc.returncode != 0:
        failures = [
            line.split(" ", 1)[-1].strip()
            for line in output.splitlines()
            if (" ERROR " in line or " FAIL " in line or "Error" in line) and "Done." not in line
        ]
        summary = "; ".join(dict.fromkeys(failures)) or output.strip().rsplit("\n", 1)[-1]
        raise TransformError(f"dbt {' '.join(args)} failed in {project_dir}: {summary}")
    return output


PUBLISHED_MARTS = ("flights", "flight_features", "flight_oracle_weather")


def build(settings: Settings, start: dt.date | None = None, end: dt.date | None = None) -> Path:
    """``dbt build`` the marts for flight dates ``start..end`` into ``marts/_build/``.

    Without dates every landed day is built. With them, dbt reads only the window plus
    the history its trailing features need (``feature_lookback_days``).

    Returns:
        The build folder, ``marts/_build/<window>/``.
    """
    build_dir = settings.paths.mart_build_dir(window_label(start, end))
    window: dict[str, object] = {"build_dir": str(build_dir)}
    if start is not None and end is not None:
        if end < start:
            raise ConfigError(f"end {end} is before start {start}")
        window |= {
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "lookback_days": settings.feature_lookback_days,
        }
    args = ["build", "--vars", json.dumps(window)]
    # A stale build must never be published as this run's.
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    run_dbt(settings, args)
    return build_dir


def publish(
    settings: Settings, start: dt.date | None = None, end: dt.date | None = None
) -> dict[str, list[str]]:
    """Write the window's validated build into the marts' date partitions, then drop the build.

    One atomic write per date: a date's partition is replaced whole; dates outside the
    build are not touched.

    Returns:
        The dates published per mart.
    """
    import pyarrow.parquet as pq

    from ml.io import write_parquet
    from ml.warehouse import refresh_catalog

    label = window_label(start, end)
    published: dict[str, list[str]] = {}
    for mart in PUBLISHED_MARTS:
        path = settings.paths.mart_build(mart, label)
        if not path.exists():
            raise TransformError(
                f"{path}: no build of mart {mart!r} to publish (run the build first)"
            )
        table = pq.read_table(path).sort_by(
            [("flight_date", "ascending"), ("flight_id", "ascending")]
        )
        days = sorted(set(table.column("flight_date").to_pylist()))
        for day in days:
            mask = pc.equal(
                table.column("flight_date"),
                pa.scalar(day, type=table.schema.field("flight_date").type),
            )
            write_parquet(
                table.filter(mask).drop_columns(["flight_date"]),
                settings.paths.mart_partition(mart, day),
            )
        published[mart] = [d.isoformat() for d in days]
    shutil.rmtree(settings.paths.mart_build_dir(label), ignore_errors=True)
    refresh_catalog(settings)
    log.info("published %s", {m: f"{len(d)} dates" for m, d in published.items()})
    return published


def transform(
    settings: Settings, start: dt.date | None = None, end: dt.date | None = None
) -> dict[str, list[str]]:
    """Build, validate and publish the marts for ``start..end`` (every landed day by default).

    A build whose features fail validation is quarantined and nothing is published.
    """
    from ml.validate import validate_features

    build(settings, start, end)
    validate_features(settings, start, end, built=True)
    return publish(settings, start, end)
