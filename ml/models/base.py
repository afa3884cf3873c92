"""What every classifier shares: the :class:`Classifier` protocol, the scikit-learn-style
base class (the log-odds helpers are in :mod:`ml.metrics`).

A classifier is a scikit-learn estimator in everything but two places, both kept because
the rest of the pipeline is built on them: ``fit`` also takes the held-out rows the
boosted models stop early on, and ``predict_proba`` returns the probability of delay
alone, shape ``(n,)``, not one column per class.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ml.config import Settings, load_defaults
from ml.features import FeatureSpec

# The file beside a model's artifact that holds its algorithm, features, parameters and
# learned state; the loader reads the algorithm from it.
STATE_FILE = "preprocessing.json"


def day_folds(dates: pd.Series, n_folds: int) -> np.ndarray:
    """Fold number per row: the sorted distinct dates cut into ``n_folds`` contiguous blocks."""
    days = np.sort(dates.unique())
    block = {day: min(i * n_folds // len(days), n_folds - 1) for i, day in enumerate(days)}
    return dates.map(block).to_numpy()


@runtime_checkable
class Classifier(Protocol):
    """What training, calibration, prediction and the registry use of a candidate."""

    algorithm: ClassVar[str]
    spec: FeatureSpec

    @classmethod
    def from_settings(
        cls, settings: Settings, spec: FeatureSpec, params: Mapping[str, Any] | None = None
    ) -> Self:
        """An unfitted classifier over ``spec`` with the settings' parameters and seed."""
        ...

    def fit(
        self,
        frame: pd.DataFrame,
        y: np.ndarray,
        eval_frame: pd.DataFrame | None = None,
        eval_y: np.ndarray | None = None,
    ) -> Self:
        """Learn from ``frame``; the boosted models stop early on ``eval_frame``."""
        ...

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The probability of delay of each row, shape ``(n,)``."""
        ...

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Each feature's additive contribution to the log-odds, shape ``(n, n_features)``,
        in ``spec.columns`` order (the bias left out)."""
        ...

    def cross_fitted(self, frame: pd.DataFrame, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
        """Out-of-fold probabilities over ``frame``, each fold predicted by a copy fitted on
        the other folds with the same settings."""
        ...

    def resolved_params(self) -> dict[str, Any]:
        """The parameters the library receives."""
        ...

    def save(self, folder: Path) -> None:
        """Write the fitted model into ``folder``: :data:`STATE_FILE` and any artifact."""
        ...

    @classmethod
    def load(cls, folder: Path, state: dict[str, Any]) -> Self:
        """The fitted model that :meth:`save` wrote, given its :data:`STATE_FILE`."""
        ...


class BaseClassifier(BaseEstimator):
    """Parameters, their resolution and the state file; each algorithm adds the rest.

    Args:
        spec: The features the model reads.
        params: The library's parameters; ``None`` takes those in ``ml/defaults.yaml``.
        random_state: The seed (``None``: the library's own default).
        n_jobs: The threads a fit may start (``None``: the library's default, which
            the package sizes when it is imported; see :mod:`ml`). A property of the
            run, not of the model: it is not one of ``params``, and the model learned is
            the same for any count.
    """

    algorithm: ClassVar[str]

    def __init__(
        self,
        spec: FeatureSpec,
        params: Mapping[str, Any] | None = None,
        random_state: int | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.spec = spec
        self.params = params
        self.random_state = random_state
        self.n_jobs = n_jobs

    @classmethod
    def from_settings(
        cls, settings: Settings, spec: FeatureSpec, params: Mapping[str, Any] | None = None
    ) -> Self:
        """An unfitted classifier over ``spec``: the settings' parameters for this algorithm
        updated by ``params``, seeded with ``settings.random_state``, fitting with
        ``settings.cpu_threads`` threads."""
        model = cls(
            spec=spec,
            params={**settings.model_params.get(cls.algorithm, {}), **(params or {})},
            random_state=settings.random_state,
        )
        model.n_jobs = settings.cpu_threads
        return model

    def resolved_params(self) -> dict[str, Any]:
        """The parameters used: ``params``, or the package's defaults."""
        if self.params is None:
            return dict(load_defaults()["model_params"][self.algorithm])
        return dict(self.params)

    def _check_fitted(self) -> None:
        check_is_fitted(self)

    def _state(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "spec": self.spec.to_dict(),
            "params": self.resolved_params(),
            "random_state": self.random_state,
        }

    def _write_state(self, folder: Path, learned: dict[str, Any]) -> None:
        state = {**self._state(), **learned}
        (folder / STATE_FILE).write_text(
            json.dumps(state, indent=2, sort_keys=True), encoding="utf-8"
        )

    @classmethod
    def _unfitted(cls, state: dict[str, Any]) -> Self:
        """The unfitted model a state file describes, before its learned state is set."""
        return cls(
            spec=FeatureSpec.from_dict(state["spec"]),
            params=dict(state["params"]),
            random_state=state["random_state"],
        )
