"""Transform: run the dbt project (staging, intermediate, marts) over the landing zone.

dbt runs in a child process: dbt keeps global state, so one invocation per process is
the reliable way to call it from a long-lived worker. Its own DuckDB file and target
folder live under the data folder, so runs for different data folders never collide.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from ml.config import Settings

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"


class TransformError(RuntimeError):
    """dbt failed; the message carries the failing models and tests."""


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
    dbt_dir = settings.data_dir / "dbt"
    dbt_dir.mkdir(parents=True, exist_ok=True)
    settings.paths.marts.mkdir(parents=True, exist_ok=True)
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
        summary = "; ".join(dict.fromkeys(failures)) or output.strip().splitlines()[-1:]
        raise TransformError(f"dbt {' '.join(args)} failed in {project_dir}: {summary}")
    return output


def transform(settings: Settings) -> Path:
    """Build and test every dbt model, then refresh the warehouse catalog.

    Returns:
        The folder of the marts' Parquet files.
    """
    from ml.warehouse import refresh_catalog

    run_dbt(settings, ["build"])
    refresh_catalog(settings)
    return settings.paths.marts
