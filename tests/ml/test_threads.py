"""The thread budget: the CPUs a process may use, from its affinity and its cgroup's quota,
or the ``threads`` setting; and what the package sets for the native libraries."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import ml
from ml.config import load_settings
from ml.errors import ConfigError


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 2),  # v2: 1.5 CPUs, rounded up
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "max 100000\n"}, None),  # no quota: the affinity's count
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup files at all
    ],
)
def test_available_cpus_is_the_affinity_bounded_by_the_cgroup_quota(
    files, expected, tmp_path, monkeypatch
):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(ml, "_CGROUP", tmp_path)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert ml.available_cpus() == (4 if expected is None else expected)


def test_the_threads_setting_is_a_positive_number_or_auto(monkeypatch):
    monkeypatch.setattr(ml, "available_cpus", lambda: 3)
    assert load_settings(env={}).cpu_threads == 3
    assert load_settings(env={"ML_THREADS": "AUTO"}).cpu_threads == 3
    assert load_settings(env={"ML_THREADS": "2"}).cpu_threads == 2
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ConfigError, match=f"threads '{bad}': expected a positive number"):
            load_settings(env={"ML_THREADS": bad})


def test_importing_the_package_sizes_the_native_libraries_and_keeps_what_is_set():
    """OpenMP's wait policy and the pools read when each library loads: set by the
    import, before any of them; a variable already set wins."""
    code = (
        "import os, ml; print(*(os.environ.get(k) for k in ("
        "'OMP_WAIT_POLICY', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'POLARS_MAX_THREADS')))"
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "OPENBLAS_", "POLARS_"))
    }

    def run(**extra: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert run(ML_THREADS="3") == ["PASSIVE", "3", "3", "3"]
    assert run(ML_THREADS="3", OMP_WAIT_POLICY="ACTIVE", POLARS_MAX_THREADS="1") == [
        "ACTIVE",
        "3",
        "3",
        "1",
    ]
    auto = str(ml.available_cpus())
    assert run(ML_THREADS="auto") == ["PASSIVE", auto, auto, auto]


def test_duckdb_connections_take_the_thread_budget(monkeypatch):
    from ml.io import duckdb_connect

    for threads in (1, 3):  # not the machine's count, whatever it is
        monkeypatch.setenv("ML_THREADS", str(threads))
        with duckdb_connect() as con:
            assert con.execute("select current_setting('threads')").fetchone()[0] == threads
