"""Shared pieces of the reliability tier: the CLI in a child process, file digests, and
a registry holding a version of every algorithm.

Every test here breaks something on purpose (a file, a process, a reader holding a
lock) and asserts what the promises of RELIABILITY.md say: one clear line, a named
fallback, and nothing published changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AS_OF, make_settings

ML = str(Path(sys.executable).parent / "ml")
# What tests in this tier check outside the data folder they break: the published data.
PUBLISHED = ("raw", "marts", "predictions", "monitoring", "models", "warehouse.duckdb")


def run_ml(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the ``ml`` console script as a user would, in its own process."""
    environment = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(data_dir),
        "ML_DATA_DIR": str(data_dir),
        "ML_TRAIN_WINDOW_DAYS": "30",
        "ML_VALIDATION_DAYS": "7",
        "GX_ANALYTICS_ENABLED": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **env,
    }
    return subprocess.run(
        [ML, *args], capture_output=True, text=True, env=environment, check=False, timeout=600
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The lines the CLI printed as its error (``ml <command>: error: ...``)."""
    return [line for line in proc.stderr.splitlines() if line.startswith("ml ")]


def digests(data_dir: Path, roots: tuple[str, ...] = PUBLISHED) -> dict[str, str]:
    """SHA-256 of every published file under ``data_dir`` (temporaries and locks aside)."""
    out = {}
    for root in roots:
        base = data_dir / root
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if path.name.startswith(".") or "/." in str(path.relative_to(data_dir)):
                continue
            out[str(path.relative_to(data_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def every_algorithm(trained_data, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy of the trained folder with one registered version per algorithm.

    Each candidate that production's selection fitted is registered through
    ``registry.register`` (so each has its recorded checksums), under the champion's
    metadata with its own algorithm. Returns the folder and algorithm to version.
    """
    import shutil

    from ml import registry
    from ml.train import select_model, split_window

    data_dir = tmp_path_factory.mktemp("every_algorithm") / "data"
    shutil.copytree(trained_data, data_dir, symlinks=True)
    settings = make_settings(data_dir)
    champion = registry.get_alias(settings, "champion")
    metadata = registry.load_metadata(settings, champion)
    metrics = registry.load_metrics(settings, champion)
    profile = registry.load_profile(settings, champion)
    _, fit, validation = split_window(settings, AS_OF)
    _, candidates = select_model(settings, fit, validation)
    versions = {}
    for algorithm, candidate in candidates.items():
        version = f"{champion}-{algorithm}"
        meta = {
            key: value
            for key, value in metadata.items()
            if key not in ("artifacts", "libraries", "git_commit")
        }
        registry.register(
            settings,
            candidate.model,
            {**meta, "version": version, "algorithm": algorithm},
            metrics,
            profile,
        )
        versions[algorithm] = version
    return data_dir, versions


@pytest.fixture
def algorithms_copy(every_algorithm, tmp_path) -> tuple[Path, dict[str, str]]:
    import shutil

    data_dir, versions = every_algorithm
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy, symlinks=True)
    return copy, versions


def umask_is(mask: int):
    """Context: run a block under ``mask`` (restored afterwards)."""
    import contextlib

    @contextlib.contextmanager
    def _ctx():
        previous = os.umask(mask)
        try:
            yield
        finally:
            os.umask(previous)

    return _ctx()
