"""Shared pieces of the reliability tier: the CLI in a child process, file digests, and
a registry holding a version of every algorithm.

Every test here breaks something on purpose (a file, a process, a reader holding a
lock) and asserts what the promises of RELIABILITY.md say: one clear line, a named
fallback, and nothing published changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import AS_OF, make_settings

ML = str(Path(sys.executable).parent / "ml")

# -- a small source folder, and a data folder holding its clean ingest --------------------
SOURCE_DAYS = [dt.date(2013, 1, 1), dt.date(2013, 1, 2), dt.date(2013, 1, 3)]
# The ingested range; the files also hold the third day.
START, END = SOURCE_DAYS[0], SOURCE_DAYS[1]
FIRST = "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z"


@pytest.fixture(scope="session")
def clean_source(tmp_path_factory, package_source) -> Path:
    """Three days of the real files, as plain CSV, and the reference files."""
    folder = tmp_path_factory.mktemp("clean_source")
    with zipfile.ZipFile(package_source / "flights.csv.zip") as archive:
        lines = archive.read("flights.csv").decode().splitlines()
    prefixes = tuple(f"{d.year},{d.month},{d.day}," for d in SOURCE_DAYS)
    (folder / "flights.csv").write_text(
        "\n".join([lines[0]] + [x for x in lines[1:] if x.startswith(prefixes)]) + "\n"
    )
    weather = (package_source / "weather.csv").read_text().splitlines()
    days = tuple(f",{d.year},{d.month},{d.day}," for d in SOURCE_DAYS)
    (folder / "weather.csv").write_text(
        "\n".join([weather[0]] + [w for w in weather[1:] if any(p in w[:20] for p in days)]) + "\n"
    )
    for name in ("planes", "airports", "airlines"):
        shutil.copy(package_source / f"{name}.csv", folder / f"{name}.csv")
    assert FIRST in (folder / "flights.csv").read_text()
    return folder


@pytest.fixture(scope="session")
def clean_landing(clean_source, tmp_path_factory) -> Path:
    """A data folder holding the clean ingest of START..END."""
    from ml.ingest import ingest

    data_dir = tmp_path_factory.mktemp("clean_landing") / "data"
    ingest(make_settings(data_dir, raw_source=str(clean_source)), START, END)
    return data_dir


@pytest.fixture
def landing_copy(clean_source, clean_landing, tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """Copies of the clean source folder and of its clean landing, for a case to change,
    and the digests of the landing's published and staged files before it does."""
    source = tmp_path / "source"
    shutil.copytree(clean_source, source)
    data_dir = tmp_path / "data"
    shutil.copytree(clean_landing, data_dir)
    return source, data_dir, digests(data_dir, ("raw", "staging"))


def ingest_in_process(data_dir: Path, source: Path, monkeypatch, capsys) -> tuple[int, str]:
    """``ml ingest`` of START..END from ``source`` into ``data_dir``, in this process (so
    a test can patch what it reaches): the exit code and what it printed on stderr."""
    from ml.cli import main

    monkeypatch.setenv("ML_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ML_RAW_SOURCE", str(source))
    code = main(["ingest", "--start", START.isoformat(), "--end", END.isoformat()])
    return code, capsys.readouterr().err


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


# src=, href=, url(...), @import and srcset pointing at a scheme or a protocol-relative
# host; the SVG namespace is a name, never fetched.
EXTERNAL = re.compile(
    r"""(?:src|href|srcset|action|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:https?:)?//""",
    re.IGNORECASE,
)


def external_references(html: str) -> list[str]:
    return [m.group(0) for m in EXTERNAL.finditer(html)]


def digests(data_dir: Path, roots: tuple[str, ...] = PUBLISHED) -> dict[str, str]:
    """SHA-256 of every file a reader finds under ``data_dir``, following links as readers
    do, and leaving out hidden names (temporaries, locks, generations behind links)."""
    out = {}
    for root in roots:
        base = data_dir / root
        if base.is_file():
            out[root] = hashlib.sha256(base.read_bytes()).hexdigest()
            continue
        for folder, dirs, files in os.walk(base, followlinks=True):
            # Hidden names and dbt's unpublished builds are not what readers read.
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "_build"]
            for name in files:
                if not name.startswith("."):
                    path = Path(folder) / name
                    key = str(path.relative_to(data_dir))
                    out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return dict(sorted(out.items()))


READER = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("ready", flush=True)
for sql in sys.stdin:
    try:
        print(json.dumps({"rows": con.execute(sql).fetchall()}, default=str), flush=True)
    except Exception as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
"""


class Reader:
    """Another process holding the catalog open read-only, answering queries on stdin."""

    def __init__(self, path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def query(self, sql: str):
        self.proc.stdin.write(sql.replace("\n", " ") + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def every_algorithm(trained_data, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy of the trained folder with one registered version per algorithm.

    Each candidate that production's selection fitted is registered through
    ``registry.register`` (so each has its recorded checksums), under the champion's
    metadata with its own algorithm. Returns the folder and algorithm to version.
    """
    import shutil

    from ml import registry
    from ml.model_card import card_files
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
            documents=card_files,
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
