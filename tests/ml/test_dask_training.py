"""Training on a Dask cluster (``train_backend: dask``): a real ``distributed.LocalCluster``
of two worker processes, the same window, holdout and code path as a local run.

A boosted model is not bit-for-bit the same on two workers: XGBoost merges the workers'
quantile sketches, LightGBM bins each feature from one worker's rows, and both draw their
row samples per worker. How far that may move the holdout AUC is measured here, not
assumed: by the spread of local models fitted on the same rows in other orders (the
order alone changes which rows each round samples). The Dask model must land within
0.005 of that range.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ml import registry
from ml.models import load_classifier
from ml.models.backend import dask_client, training_backend
from ml.train import select_model, split_window, train
from tests.conftest import AS_OF, make_settings

distributed = pytest.importorskip("distributed")

BOOSTED = ("lightgbm", "xgboost")
TOLERANCE = 0.005
ROW_ORDERS = 5


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40
    ) as local:
        yield local


def _local_auc_range(settings) -> dict[str, tuple[float, float]]:
    """Per algorithm, the lowest and highest holdout AUC of local fits on the window's
    rows in their own order and in ``ROW_ORDERS - 1`` shuffled ones."""
    _, fit, validation = split_window(settings, AS_OF)
    aucs: dict[str, list[float]] = {name: [] for name in BOOSTED}
    for order in range(ROW_ORDERS):
        rows = fit if order == 0 else fit.sample(frac=1.0, random_state=order)
        _, fitted = select_model(settings, rows, validation, BOOSTED, progress=lambda _: None)
        for name, candidate in fitted.items():
            aucs[name].append(candidate.scores["auc"])
    return {name: (min(values), max(values)) for name, values in aucs.items()}


def test_training_on_dask_registers_a_model_as_good_as_a_local_one(built_data, tmp_path, cluster):
    data_dir = tmp_path / "data"
    shutil.copytree(built_data, data_dir)
    local = make_settings(data_dir, candidates=BOOSTED)
    on_dask = make_settings(
        data_dir, candidates=BOOSTED, train_backend="dask", dask_scheduler=cluster.scheduler_address
    )
    lines: list[str] = []
    result = train(on_dask, AS_OF, progress=lines.append)

    assert dask_client() is None  # the run let go of its client; the cluster stays up
    assert "boosted ones on Dask, 2 workers" in lines[0]
    metadata = registry.load_metadata(on_dask, result.version)
    assert metadata["trained_on"] == {
        "backend": "dask",
        "scheduler": cluster.scheduler_address,
        "workers": 2,
    }
    # registered through the same code path: a champion with its card, loadable and scoring
    assert result.became_champion and registry.get_alias(on_dask, "champion") == result.version
    folder = on_dask.paths.model_version(result.version)
    assert "Dask, 2 workers" in on_dask.paths.model_card(result.version).read_text()
    model = load_classifier(folder)
    _, _, validation = split_window(local, AS_OF)
    scores = model.predict_proba(validation)
    assert np.all((scores > 0) & (scores < 1))

    lowest_highest = _local_auc_range(local)
    for name in BOOSTED:
        auc = registry.load_metrics(on_dask, result.version)["candidates"][name]["auc"]
        low, high = lowest_highest[name]
        assert low - TOLERANCE <= auc <= high + TOLERANCE, (name, auc, low, high)


def test_a_scheduler_that_cannot_be_reached_is_one_clear_error(settings, monkeypatch):
    from ml.errors import ConfigError
    from ml.models import backend

    monkeypatch.setattr(backend, "CONNECT_TIMEOUT_S", 2)
    unreachable = make_settings(
        settings.data_dir, train_backend="dask", dask_scheduler="tcp://127.0.0.1:9"
    )
    with (
        pytest.raises(
            ConfigError,
            match=r"dask_scheduler 'tcp://127.0.0.1:9': cannot reach the scheduler, or it has no worker",
        ),
        training_backend(unreachable),
    ):
        pass


def test_an_unknown_backend_is_refused_where_the_setting_is_read(tmp_path):
    from ml.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train_backend 'spark': expected one of"):
        make_settings(tmp_path, train_backend="spark")


def _lightgbm_keeps(losses: list[float], patience: int) -> int:
    """The rounds ``lightgbm.train`` keeps with its own early stopping, fed these holdout
    losses round by round (a custom metric over a tiny data set)."""
    import lightgbm

    x, y = np.arange(40, dtype=float)[:, None], np.arange(40) % 2
    data = lightgbm.Dataset(x, y)
    given = iter(losses)
    booster = lightgbm.train(
        {"objective": "binary", "metric": "None", "verbosity": -1, "min_data_in_leaf": 1},
        data,
        num_boost_round=len(losses),
        valid_sets=[lightgbm.Dataset(x, y, reference=data)],
        feval=lambda _preds, _data: ("given", next(given), False),
        callbacks=[lightgbm.early_stopping(patience, verbose=False)],
    )
    return booster.best_iteration


def test_the_block_wise_early_stopping_keeps_the_rounds_lightgbm_would():
    """lightgbm.dask cannot stop early; the backend grows blocks and stops by this rule."""
    from ml.models.lightgbm_model import rounds_kept

    assert rounds_kept([5, 3, 4, 4, 4, 2], 3) == 2  # stops before the later best
    assert rounds_kept([5, 3, 4], 3) is None  # not yet
    rng = np.random.default_rng(0)
    for _ in range(100):
        steps = rng.normal(0, 1, int(rng.integers(2, 40)))
        losses = [float(v) for v in np.round(5 + 0.1 * steps.cumsum(), 1)]  # ties too
        patience = int(rng.integers(1, 6))
        kept = rounds_kept(losses, patience)
        # the end of training without a stop keeps the best round, as LightGBM does
        ours = kept if kept is not None else int(np.argmin(losses)) + 1
        assert ours == _lightgbm_keeps(losses, patience), (losses, patience)
