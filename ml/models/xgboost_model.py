"""XGBoost: gradient-boosted trees with native categoricals, stored as XGBoost's JSON model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml.models.backend import cluster_params, to_cluster
from ml.models.boosted import BoostedClassifier


class XGBoostClassifier(BoostedClassifier):
    """XGBoost (``hist``) with native categoricals, early stopping and monotone constraints."""

    algorithm = "xgboost"
    artifact = "model.json"
    thread_param = "nthread"

    def _monotone_constraints(self, directions: list[int]) -> str:
        return "(" + ",".join(str(d) for d in directions) + ")"

    def _train_local(self, x_fit, y, rounds: int, x_eval=None, eval_y=None) -> tuple[Any, int]:
        import xgboost

        dfit = xgboost.DMatrix(x_fit, label=y, enable_categorical=True)
        stop_early = x_eval is not None
        early = (
            {
                "evals": [
                    (xgboost.DMatrix(x_eval, label=eval_y, enable_categorical=True), "validation")
                ],
                "early_stopping_rounds": self.early_stopping_rounds,
                "verbose_eval": False,
            }
            if stop_early
            else {}
        )
        booster = xgboost.train(self.local_params(), dfit, num_boost_round=rounds, **early)
        # best_iteration counts from 0; the rounds to use count from 1
        return booster, int(booster.best_iteration) + 1 if stop_early else rounds

    def _train_dask(
        self, client, x_fit, y, rounds: int, x_eval=None, eval_y=None
    ) -> tuple[Any, int]:
        """``xgboost.dask.train``: each worker builds its part of the histograms, and early
        stopping reads the log loss over the whole holdout, as :meth:`_train_local` does."""
        from xgboost import dask as dxgb

        features, labels = to_cluster(client, x_fit, y)
        dfit = dxgb.DaskDMatrix(client, features, labels, enable_categorical=True)
        early = {}
        if x_eval is not None:
            eval_features, eval_labels = to_cluster(client, x_eval, eval_y)
            dvalidation = dxgb.DaskDMatrix(
                client, eval_features, eval_labels, enable_categorical=True
            )
            early = {
                "evals": [(dvalidation, "validation")],
                "early_stopping_rounds": self.early_stopping_rounds,
                "verbose_eval": False,
            }
        output = dxgb.train(
            client,
            cluster_params(self.resolved_params()),
            dfit,
            num_boost_round=rounds,
            **early,
        )
        booster = output["booster"]
        return booster, int(booster.best_iteration) + 1 if early else rounds

    def _raw_predict(self, booster, matrix, contrib: bool = False) -> np.ndarray:
        """Scores of ``matrix``: a frame of :meth:`_matrix`, or an array of :meth:`_array`
        (scored in place, without a DMatrix, unless contributions are asked for)."""
        import xgboost

        rounds = (0, self.best_iteration_)
        if isinstance(matrix, np.ndarray) and not contrib:
            return np.asarray(booster.inplace_predict(matrix, iteration_range=rounds))
        if isinstance(matrix, np.ndarray):
            types = ["q"] * len(self.spec.numeric) + ["c"] * len(self.spec.categorical)
            dmatrix = xgboost.DMatrix(
                matrix,
                feature_names=list(self.spec.columns),
                feature_types=types,
                enable_categorical=True,
            )
        else:
            dmatrix = xgboost.DMatrix(matrix, enable_categorical=True)
        return np.asarray(booster.predict(dmatrix, iteration_range=rounds, pred_contribs=contrib))

    def _gains(self) -> dict[str, float]:
        return self.booster_.get_score(importance_type="total_gain")

    @classmethod
    def _read(cls, path: Path) -> Any:
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(path))
        return booster
