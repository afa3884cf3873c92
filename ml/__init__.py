"""Batch ML for flight-delay risk: ingest, validate, features, train, predict, monitor.

Every stage is a module usable as a library and through the ``ml`` CLI. Importing any
module does no work: paths and parameters come from :func:`ml.config.load_settings`.

The one exception is what the native libraries read from the environment when they load,
which must be in place before any of them is imported, so it is set here, where every
path (the CLI, the DAGs' tasks, the tests, a notebook) enters the package; a variable
already set wins:

- ``OMP_WAIT_POLICY=PASSIVE``: OpenMP's threads (LightGBM, XGBoost, scikit-learn) sleep
  while they wait instead of spinning; beside two busy processes the spinning took the
  CPU the working threads needed, and a boosted fit took 4.4 to 5 times its idle time
  against 1.9 to 2.1 (an idle fit pays 1.2 times; BENCHMARKS.md);
- the thread pools of OpenMP, OpenBLAS and Polars sized to :func:`thread_budget`, the
  CPUs this process may use, not the machine's.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__version__ = "0.1.0"

# The environment variable of the ``threads`` setting (ml/defaults.yaml): a number, or
# "auto" for the CPUs the process may use.
THREADS_VARIABLE = "ML_THREADS"
_CGROUP = Path("/sys/fs/cgroup")


def available_cpus() -> int:
    """The CPUs this process may use: its affinity mask, bounded by its cgroup's CPU
    quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), as a container limit sets it;
    ``os.cpu_count()`` sees the whole machine."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else max(1, cpus)


def _cgroup_quota() -> float | None:
    """CPUs the cgroup's quota allows (None: no quota, or none readable)."""
    try:
        quota, period = (_CGROUP / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in (_CGROUP / "cpu", _CGROUP / "cpu,cpuacct"):
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota <= 0 or period <= 0 else quota / period
    return None


def thread_budget(value: str | int | None = None) -> int:
    """The threads each library may start: ``value`` (the ``threads`` setting; by
    default ``ML_THREADS``), a positive number, or ``auto`` (:func:`available_cpus`).

    Raises:
        ValueError: ``value`` is neither.
    """
    raw = os.environ.get(THREADS_VARIABLE, "auto") if value is None else value
    if str(raw).strip().lower() == "auto":
        return available_cpus()
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"threads {raw!r}: expected a positive number or 'auto'")
    return threads


def _configure_native_libraries() -> None:
    try:
        threads = str(thread_budget())
    except ValueError:  # the settings say so, in one line, when they are loaded
        threads = str(available_cpus())
    for key, value in {
        "OMP_WAIT_POLICY": "PASSIVE",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "POLARS_MAX_THREADS": threads,
    }.items():
        os.environ.setdefault(key, value)


_configure_native_libraries()
