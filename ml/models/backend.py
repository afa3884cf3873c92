"""Where the boosted candidates train: in this process, or on a Dask cluster.

``train_backend: local`` (the default) fits LightGBM and XGBoost with ``lightgbm.train``
and ``xgboost.train`` here. ``train_backend: dask`` fits them with ``lightgbm.dask`` and
``xgboost.dask`` on the cluster at ``dask_scheduler`` (empty: a ``LocalCluster`` started
for the run, one single-threaded worker per core). Everything else is the same code
path: the features, the early stopping on the holdout, the out-of-fold refits that
calibration needs (:meth:`ml.models.boosted.BoostedClassifier.cross_fitted`), the
calibration itself, the assessment and the registration, which all take the fitted
booster back in this process. The heuristic and logistic candidates are cheap and fit
here either way.

:func:`training_backend` opens the cluster's client for the length of a training run
and :func:`dask_client` hands it to the models, so a model object never holds a client
(it is cloned and saved as plain parameters).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

    from ml.config import Settings

log = logging.getLogger(__name__)

# The column the label travels in, beside the features, so that each partition of the
# cluster's frame keeps its rows and their labels together.
_LABEL = "__label__"
# The thread settings of each library: left out on the cluster, where each worker uses
# the threads it was started with.
THREAD_PARAMS = ("num_threads", "nthread", "n_jobs")
# How long a training run waits for the scheduler, and for the workers to come up.
CONNECT_TIMEOUT_S = 30

_client: ContextVar[Client | None] = ContextVar("ml_dask_client", default=None)


def dask_client() -> Client | None:
    """The cluster the boosted models train on, inside :func:`training_backend`; None
    means this process."""
    return _client.get()


def describe(settings: Settings) -> dict[str, Any]:
    """Where a run's boosted candidates trained, for the version's metadata."""
    client = dask_client()
    if client is None:
        return {"backend": "local"}
    return {
        "backend": "dask",
        "scheduler": settings.dask_scheduler or "LocalCluster",
        "workers": len(client.scheduler_info(n_workers=-1)["workers"]),
    }


@contextlib.contextmanager
def training_backend(settings: Settings) -> Iterator[None]:
    """Train the boosted candidates on ``settings.train_backend`` for the block's length.

    Raises:
        ConfigError: The scheduler cannot be reached, or has no worker, within
            ``CONNECT_TIMEOUT_S`` seconds.
    """
    if settings.train_backend == "local" or dask_client() is not None:
        yield
        return
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if settings.dask_scheduler:
            try:
                client = stack.enter_context(
                    Client(settings.dask_scheduler, timeout=CONNECT_TIMEOUT_S)
                )
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:  # TimeoutError included
                raise ConfigError(
                    f"dask_scheduler {settings.dask_scheduler!r}: cannot reach the scheduler, "
                    f"or it has no worker ({exc}); start them, or set ML_TRAIN_BACKEND=local"
                ) from exc
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=settings.cpu_threads,
                    threads_per_worker=1,
                    # a daemonic process (a Celery worker's child) cannot start processes
                    processes=not multiprocessing.current_process().daemon,
                    dashboard_address=None,
                    silence_logs=logging.WARNING,
                )
            )
            client = stack.enter_context(Client(cluster))
        log.info("training the boosted candidates on Dask: %s", client)
        token = _client.set(client)
        try:
            with warnings.catch_warnings():
                # Said of every fit: the frames travel in the task graph (see
                # to_cluster), and lightgbm.dask sets the threads of each worker itself.
                warnings.filterwarnings("ignore", message="Sending large graph")
                warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
                yield
        finally:
            _client.reset(token)


def cluster_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the thread counts, which each worker sets from its own."""
    return {k: v for k, v in params.items() if k not in THREAD_PARAMS}


def to_cluster(client: Client, matrix: pd.DataFrame, y: np.ndarray | None = None):
    """``matrix`` (and ``y``) as Dask collections of one partition per worker, in their
    order. Returns ``(X, y)``; ``y`` is None when not given.

    The partitions travel in the task graph of the one call that reads them, which Dask
    warns about for large frames. Scattering them first (``client.scatter``) gave
    ``xgboost.dask`` a different holdout loss from its first round on, and persisting
    them can leave a worker without holdout rows, which XGBoost refuses for categorical
    features; data read by the workers themselves (``dd.read_parquet``) is the way past
    one machine's memory, see BENCHMARKS.md."""
    import dask.dataframe as dd

    workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    frame = matrix.reset_index(drop=True)
    if y is not None:
        frame[_LABEL] = np.asarray(y)
    # Each worker gets a seeded random share of the rows, not a block of days: LightGBM
    # builds each feature's bins from the rows of one worker, so a worker holding the
    # first weeks only would bin the whole window by them.
    frame = frame.iloc[np.random.default_rng(0).permutation(len(frame))]
    cluster_frame = dd.from_pandas(frame, npartitions=min(workers, len(frame)), sort=False)
    if y is None:
        return cluster_frame, None
    return cluster_frame.drop(columns=_LABEL), cluster_frame[_LABEL]
