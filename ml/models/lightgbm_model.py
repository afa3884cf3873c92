"""LightGBM: gradient-boosted trees with native categoricals, stored as LightGBM's text model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml.models.boosted import BoostedClassifier


class LightGBMClassifier(BoostedClassifier):
    """LightGBM with native categoricals, early stopping and monotone constraints."""

    algorithm = "lightgbm"
    artifact = "model.txt"

    def _monotone_constraints(self, directions: list[int]) -> list[int]:
        return directions

    def _train(self, x_fit, y, rounds: int, x_eval=None, eval_y=None) -> tuple[Any, int]:
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
        booster = lightgbm.train(self.resolved_params(), train_set, num_boost_round=rounds, **early)
        return booster, int(booster.best_iteration) if stop_early else rounds

    def _raw_predict(self, booster, matrix, contrib: bool = False) -> np.ndarray:
        """Scores of ``matrix``: a frame of :meth:`_matrix` or an array of :meth:`_array`
        (LightGBM reads rows: handed over row-major, as it would copy it)."""
        if isinstance(matrix, np.ndarray):
            matrix = np.ascontiguousarray(matrix)
        return np.asarray(
            booster.predict(matrix, num_iteration=self.best_iteration_, pred_contrib=contrib)
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
