"""What the gradient-boosted candidates share: native categoricals, early stopping on the
held-out rows, monotone constraints, training here or on a Dask cluster
(:mod:`ml.models.backend`), and a booster saved in the library's own format.

The boosted models are monotone in the delay rates and the weather before the cutoff
(see :func:`ml.features.monotone_direction`): left free, they learn that a stormy
yesterday means a calmer today, which no user would trust in a risk score.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.config import Settings
from ml.features import monotone_direction
from ml.models.backend import dask_client
from ml.models.base import BaseClassifier


class BoostedClassifier(BaseClassifier):
    """A gradient-boosted classifier; each library's subclass trains, predicts and stores
    its booster (:meth:`_train_local`, :meth:`_train_dask`, :meth:`_raw_predict`, :meth:`_gains`, :meth:`_read`).

    Args:
        spec, params, random_state: As for every candidate (:class:`BaseClassifier`).
        max_rounds: The most boosting rounds a fit may take.
        early_stopping_rounds: A fit stops when the held-out log loss has not improved
            for this many rounds, and keeps its best round.

    The two rounds settings shape a fit only; a fitted model keeps the round it stopped
    at (``best_iteration_``), and a loaded one takes the defaults for them.
    """

    # The booster's file in a model folder, in the library's own format.
    artifact: ClassVar[str]
    # The library's parameter for the threads of a fit (``n_jobs``, on this machine).
    thread_param: ClassVar[str]

    def __init__(
        self,
        spec,
        params: Mapping[str, Any] | None = None,
        random_state: int | None = None,
        n_jobs: int | None = None,
        max_rounds: int = 2000,
        early_stopping_rounds: int = 50,
    ) -> None:
        super().__init__(spec, params, random_state, n_jobs)
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds

    @classmethod
    def from_settings(
        cls, settings: Settings, spec, params: Mapping[str, Any] | None = None
    ) -> Self:
        """As :meth:`BaseClassifier.from_settings`, with the settings' boosting rounds."""
        return (
            super()
            .from_settings(settings, spec, params)
            .set_params(
                max_rounds=settings.boosting_max_rounds,
                early_stopping_rounds=settings.boosting_early_stopping_rounds,
            )
        )

    def local_params(self) -> dict[str, Any]:
        """:meth:`resolved_params` with ``n_jobs`` as the library's thread count (unless
        the parameters name one): what a fit in this process passes."""
        params = self.resolved_params()
        if self.n_jobs is not None:
            params.setdefault(self.thread_param, self.n_jobs)
        return params

    def _monotone_constraints(self, directions: list[int]) -> Any:
        """``directions`` (one per column) written as the library reads them."""
        raise NotImplementedError

    def _train(self, x_fit, y, rounds: int, x_eval=None, eval_y=None) -> tuple[Any, int]:
        """Train for at most ``rounds``, stopping early on ``x_eval`` if given; returns the
        booster and the number of rounds to use. Here, or on the Dask cluster of the
        training run (:mod:`ml.models.backend`); the booster comes back either way."""
        client = dask_client()
        if client is None:
            return self._train_local(x_fit, y, rounds, x_eval, eval_y)
        return self._train_dask(client, x_fit, y, rounds, x_eval, eval_y)

    def _train_local(self, x_fit, y, rounds: int, x_eval=None, eval_y=None) -> tuple[Any, int]:
        """:meth:`_train` in this process, with the library's own ``train``."""
        raise NotImplementedError

    def _train_dask(
        self, client, x_fit, y, rounds: int, x_eval=None, eval_y=None
    ) -> tuple[Any, int]:
        """:meth:`_train` on the cluster of ``client``, with the library's Dask interface."""
        raise NotImplementedError

    def _raw_predict(self, booster, matrix: pd.DataFrame, contrib: bool = False) -> np.ndarray:
        raise NotImplementedError

    def _gains(self) -> dict[str, float]:
        """Total split gain per feature name, over the rounds used."""
        raise NotImplementedError

    @classmethod
    def _read(cls, path: Path) -> Any:
        """The booster stored at ``path``."""
        raise NotImplementedError

    def resolved_params(self) -> dict[str, Any]:
        """``params`` with the monotone constraints (unless given) and the seed."""
        params = super().resolved_params()
        directions = [monotone_direction(c) for c in self.spec.numeric]
        directions += [0] * len(self.spec.categorical)
        params.setdefault("monotone_constraints", self._monotone_constraints(directions))
        if self.random_state is not None:
            params["seed"] = self.random_state
        return params

    def _matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns as float, categoricals with the categories learned at fit."""
        out = pd.DataFrame(index=frame.index)
        for column in self.spec.numeric:
            out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        for column in self.spec.categorical:
            values = frame[column].astype("object").where(frame[column].notna(), None)
            out[column] = pd.Categorical(values, categories=self.categories_[column])
        return out

    def _array(self, frame: pd.DataFrame) -> np.ndarray:
        """The booster's input for scoring, built once as one float64 array in its column
        order (column-major, as pandas hands the numeric block over; a library that
        wants rows contiguous copies it once): the numeric features as they are and each categorical as the
        code of its level among those learned at fit (missing or unseen: NaN), exactly as
        each library encodes the pandas categoricals of :meth:`_matrix` (the predictions
        are the same bits), without a per-column pandas conversion."""
        numeric = len(self.spec.numeric)
        out = np.empty((len(frame), len(self.spec.columns)), dtype=np.float64, order="F")
        if numeric:
            out[:, :numeric] = frame[list(self.spec.numeric)].to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        for offset, column in enumerate(self.spec.categorical, numeric):
            values = frame[column]
            levels = pa.array(self.categories_[column], type=pa.string())
            codes = pc.index_in(
                pa.array(values.astype(object) if values.dtype == object else values),
                value_set=levels,
            )
            out[:, offset] = pc.cast(codes, pa.float64()).fill_null(np.nan).to_numpy()
        return out

    def learn_categories(self, frame: pd.DataFrame) -> Self:
        """Learn the levels of each categorical feature in ``frame`` (``categories_``);
        other levels read as missing. The first step of :meth:`fit`."""
        self.categories_ = {
            column: sorted(str(v) for v in frame[column].dropna().unique())
            for column in self.spec.categorical
        }
        return self

    def fit(self, frame, y, eval_frame, eval_y) -> Self:
        """Fit on ``frame``, stopping early on the held-out ``eval_frame``."""
        self.learn_categories(frame)
        self.booster_, self.best_iteration_ = self._train(
            self._matrix(frame),
            y,
            self.max_rounds,
            self._matrix(eval_frame),
            eval_y,
        )
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return self._raw_predict(self.booster_, self._array(frame))

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return self._raw_predict(self.booster_, self._array(frame), contrib=True)[:, :-1]

    def cross_fitted(self, frame, y, folds) -> np.ndarray:
        """Out-of-fold probabilities, each fold's copy trained for ``best_iteration_`` rounds."""
        self._check_fitted()
        matrix = self._matrix(frame)
        out = np.zeros(len(frame))
        for fold in np.unique(folds):
            held = folds == fold
            booster, _ = self._train(matrix[~held], y[~held], self.best_iteration_)
            out[held] = self._raw_predict(booster, matrix[held])
        return out

    def gain_importance(self) -> dict[str, float]:
        """Total split gain per feature, as shares summing to one."""
        self._check_fitted()
        gains = self._gains()
        values = {c: float(gains.get(c, 0.0)) for c in self.spec.columns}
        total = sum(values.values()) or 1.0
        return {c: v / total for c, v in values.items()}

    def save(self, folder: Path) -> None:
        self._check_fitted()
        self.booster_.save_model(str(folder / self.artifact))
        self._write_state(
            folder,
            {
                "categories": self.categories_,
                "best_iteration": self.best_iteration_,
                "artifact": self.artifact,
            },
        )

    @classmethod
    def load(cls, folder: Path, state: dict[str, Any]) -> Self:
        model = cls._unfitted(state)
        model.categories_ = state["categories"]
        model.best_iteration_ = state["best_iteration"]
        model.booster_ = cls._read(folder / state["artifact"])
        return model
