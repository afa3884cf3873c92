"""The heuristic baseline: the smoothed trailing carrier x origin delay rate, used as it is."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.features import HEURISTIC_COLUMN, FeatureSpec
from ml.metrics import logit
from ml.models.base import BaseClassifier

# The one feature the heuristic reads, whatever the other candidates read.
HEURISTIC_SPEC = FeatureSpec((HEURISTIC_COLUMN,), ())


class HeuristicClassifier(BaseClassifier):
    """The smoothed trailing carrier x origin delay rate, used as it is.

    It learns nothing but the fit period's delay rate, ``prior_``, which stands in where
    the rate is missing; its only contribution is the rate's log-odds against that prior.

    Args:
        spec: The features it reads: :data:`HEURISTIC_SPEC`.
        params: Unused (the heuristic has no parameters); kept for the common signature.
        random_state, n_jobs: Unused; stored with the model like every candidate's.
        prior: The delay rate to use where the trailing rate is missing; ``None`` learns it
            at ``fit`` as the mean of ``y``. A baseline scored beside a model passes the
            model's fit-period rate here.
    """

    algorithm = "heuristic"

    def __init__(
        self,
        spec: FeatureSpec = HEURISTIC_SPEC,
        params: Mapping[str, Any] | None = None,
        random_state: int | None = None,
        n_jobs: int | None = None,
        prior: float | None = None,
    ) -> None:
        super().__init__(spec, params, random_state, n_jobs)
        self.prior = prior

    @classmethod
    def from_settings(
        cls, settings: Settings, spec: FeatureSpec, params: Mapping[str, Any] | None = None
    ) -> Self:
        """The heuristic reads its own column, whatever ``spec`` the other candidates get."""
        return super().from_settings(settings, HEURISTIC_SPEC, params)

    def fit(self, frame, y, eval_frame=None, eval_y=None) -> Self:
        self.prior_ = float(np.mean(y)) if self.prior is None else float(self.prior)
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        rate = pd.to_numeric(frame[HEURISTIC_COLUMN], errors="coerce").to_numpy(dtype=float)
        return np.clip(np.where(np.isnan(rate), self.prior_, rate), 0.0, 1.0)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        return (logit(self.predict_proba(frame)) - logit(self.prior_)).reshape(-1, 1)

    def cross_fitted(self, frame, y, folds) -> np.ndarray:
        """The heuristic fits nothing a fold could leak: its own predictions."""
        return self.predict_proba(frame)

    def save(self, folder: Path) -> None:
        self._check_fitted()
        self._write_state(folder, {"prior": self.prior_})

    @classmethod
    def load(cls, folder: Path, state: dict[str, Any]) -> HeuristicClassifier:
        model = cls._unfitted(state)
        model.prior_ = state["prior"]
        return model
