"""LightGBM: gradient-boosted trees with native categoricals, stored as LightGBM's text model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import thread_budget
from ml.models.backend import cluster_params, to_cluster
from ml.models.boosted import BoostedClassifier


class LightGBMClassifier(BoostedClassifier):
    """LightGBM with native categoricals, early stopping and monotone constraints."""

    algorithm = "lightgbm"
    artifact = "model.txt"
    thread_param = "num_threads"

    def _monotone_constraints(self, directions: list[int]) -> list[int]:
        return directions

    def _train_local(self, x_fit, y, rounds: int, x_eval=None, eval_y=None) -> tuple[Any, int]:
        import lightgbm

        train_set = lightgbm.Dataset(
            x_fit,
            label=y,
            categorical_feature=list(self.spec.categorical),
            free_raw_data=False,
        )
        stop_early = x_eval is not None
        early = (
            {
                "valid_sets": [lightgbm.Dataset(x_eval, label=eval_y, reference=train_set)],
                "callbacks": [lightgbm.early_stopping(self.early_stopping_rounds, verbose=False)],
            }
            if stop_early
            else {}
        )
        booster = lightgbm.train(self.local_params(), train_set, num_boost_round=rounds, **early)
        return booster, int(booster.best_iteration) if stop_early else rounds

    def _train_dask(
        self, client, x_fit, y, rounds: int, x_eval=None, eval_y=None
    ) -> tuple[Any, int]:
        """``lightgbm.dask``: the workers grow each tree together (data-parallel).

        ``lightgbm.dask`` cannot stop early (its workers would stop at different rounds),
        so the rounds are grown in blocks of ``early_stopping_rounds``, each continuing the
        booster of the block before, and the holdout's log loss is read here after each
        block, round by round: training stops, and keeps its best round, exactly where
        LightGBM's own early stopping would (no improvement for ``early_stopping_rounds``),
        at the cost of at most one block grown past it.
        """
        import lightgbm

        features, labels = to_cluster(client, x_fit, y)
        params = cluster_params(self.resolved_params())
        seed = params.pop("seed", None)
        block = rounds if x_eval is None else min(self.early_stopping_rounds, rounds)
        eval_matrix = None if x_eval is None else _codes(x_eval)
        raw = None if x_eval is None else np.zeros(len(x_eval))
        losses: list[float] = []
        booster = None
        while True:
            grown = 0 if booster is None else booster.current_iteration()
            model = lightgbm.DaskLGBMClassifier(
                client=client,
                n_estimators=min(block, rounds - grown),
                # each block draws its own bags and feature samples
                **({"seed": seed + grown} if seed is not None else {}),
                **params,
            )
            booster = model.fit(
                features,
                labels,
                categorical_feature=list(self.spec.categorical),
                init_model=booster,
            ).booster_
            if x_eval is None:
                return booster, booster.current_iteration()
            for tree in range(grown, booster.current_iteration()):
                raw += booster.predict(
                    eval_matrix, start_iteration=tree, num_iteration=1, raw_score=True
                )
                losses.append(_log_loss(eval_y, raw))
            kept = rounds_kept(losses, self.early_stopping_rounds)
            if kept is not None:
                return booster, kept
            if len(losses) >= rounds:
                return booster, int(np.argmin(losses)) + 1

    def _raw_predict(self, booster, matrix, contrib: bool = False) -> np.ndarray:
        """Scores of ``matrix``: a frame of :meth:`_matrix` or an array of :meth:`_array`
        (LightGBM reads rows: handed over row-major, as it would copy it)."""
        if isinstance(matrix, np.ndarray):
            matrix = np.ascontiguousarray(matrix)
        return np.asarray(
            booster.predict(
                matrix,
                num_iteration=self.best_iteration_,
                pred_contrib=contrib,
                # this process's threads, not those the booster was trained with (its
                # file keeps them)
                num_threads=self.n_jobs or thread_budget(),
            )
        )

    def _gains(self) -> dict[str, float]:
        return dict(
            zip(
                self.booster_.feature_name(),
                self.booster_.feature_importance("gain", iteration=self.best_iteration_),
                strict=True,
            )
        )

    @classmethod
    def _read(cls, path: Path) -> Any:
        import lightgbm

        return lightgbm.Booster(model_file=str(path))


def rounds_kept(losses: Sequence[float], patience: int) -> int | None:
    """LightGBM's early stopping over the holdout loss of each round: at the first round
    ``patience`` rounds past the best (a best is a strictly lower loss), the rounds to
    keep, the best counted from 1; None while no round has come to that."""
    best = 0
    for number, loss in enumerate(losses):
        if loss < losses[best]:
            best = number
        elif number - best >= patience:
            return best + 1
    return None


def _log_loss(y: np.ndarray, raw: np.ndarray) -> float:
    """LightGBM's ``binary_logloss`` of raw scores (its clipping included)."""
    p = np.clip(1.0 / (1.0 + np.exp(-raw)), 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _codes(matrix) -> np.ndarray:
    """A frame of :meth:`~ml.models.boosted.BoostedClassifier._matrix` as the float array
    LightGBM makes of it (each categorical as its code, missing as NaN), made once."""
    out = np.empty(matrix.shape, dtype=np.float64)
    for index, column in enumerate(matrix.columns):
        values = matrix[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            out[:, index] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, index] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return out
