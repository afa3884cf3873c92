"""L2 logistic regression over standardized numeric and one-hot categorical features."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import clone

from ml.metrics import sigmoid
from ml.models.base import BaseClassifier


def _numeric(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The numeric features as float64, missing values as NaN."""
    values = frame[list(columns)].to_numpy(dtype="float64", na_value=np.nan)
    return pd.DataFrame(values, columns=list(columns), index=frame.index)


class LogisticClassifier(BaseClassifier):
    """L2 logistic regression: numeric features median-imputed, standardized and clipped to
    ``clip_sd`` standard deviations; categoricals one-hot, with values rarer than
    ``min_category_rows`` in the fit period pooled with unseen ones. Stored as plain
    coefficients (parameters ``C``, ``max_iter``, ``clip_sd``, ``min_category_rows``)."""

    algorithm = "logistic"

    def _design(self, frame: pd.DataFrame) -> np.ndarray:
        clip = self.resolved_params()["clip_sd"]
        blocks = []
        if self.spec.numeric:
            x = _numeric(frame, self.spec.numeric).to_numpy()
            x = np.where(np.isnan(x), self.medians_, x)
            blocks.append(np.clip((x - self.means_) / self.scales_, -clip, clip))
        for column in self.spec.categorical:
            levels = self.levels_[column]
            codes = pd.Index(levels, dtype=object).get_indexer(frame[column].astype("object"))
            block = np.zeros((len(frame), len(levels)))
            rows = np.flatnonzero(codes >= 0)  # a rare, unseen or missing value: all zeros
            block[rows, codes[rows]] = 1.0
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def fit(self, frame, y, eval_frame=None, eval_y=None) -> Self:
        """Fit on ``frame``; the held-out rows are not used (no early stopping)."""
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        params = self.resolved_params()
        numeric = _numeric(frame, self.spec.numeric)
        self.medians_ = np.nan_to_num(numeric.median().to_numpy(), nan=0.0)
        filled = numeric.fillna(pd.Series(self.medians_, index=numeric.columns))
        self.means_ = filled.mean().to_numpy()
        spread = filled.std().to_numpy()
        self.scales_ = np.where(spread > 0, spread, 1.0)
        self.levels_ = {}
        for column in self.spec.categorical:
            counts = frame[column].astype("object").value_counts()
            self.levels_[column] = sorted(
                str(v) for v, n in counts.items() if n >= params["min_category_rows"]
            )
        # newton-cholesky is deterministic: no seed to pass
        estimator = LogisticRegression(
            C=params["C"], max_iter=params["max_iter"], solver="newton-cholesky"
        )
        with threadpool_limits(limits=self.n_jobs):  # the BLAS's threads (None: as they are)
            estimator.fit(self._design(frame), np.asarray(y, dtype=int))
        self.coef_ = estimator.coef_[0].astype(float)
        self.intercept_ = float(estimator.intercept_[0])
        return self

    def _column_blocks(self) -> list[slice]:
        blocks, start = [], 0
        for _ in self.spec.numeric:
            blocks.append(slice(start, start + 1))
            start += 1
        for column in self.spec.categorical:
            width = len(self.levels_[column])
            blocks.append(slice(start, start + width))
            start += width
        return blocks

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        terms = self._design(frame) * self.coef_
        return np.column_stack([terms[:, block].sum(axis=1) for block in self._column_blocks()])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return sigmoid(self._design(frame) @ self.coef_ + self.intercept_)

    def cross_fitted(self, frame, y, folds) -> np.ndarray:
        out = np.zeros(len(frame))
        for fold in np.unique(folds):
            held = folds == fold
            out[held] = clone(self).fit(frame[~held], y[~held]).predict_proba(frame[held])
        return out

    def save(self, folder: Path) -> None:
        self._check_fitted()
        self._write_state(
            folder,
            {
                "medians": self.medians_.tolist(),
                "means": self.means_.tolist(),
                "scales": self.scales_.tolist(),
                "levels": self.levels_,
                "coef": self.coef_.tolist(),
                "intercept": self.intercept_,
            },
        )

    @classmethod
    def load(cls, folder: Path, state: dict[str, Any]) -> LogisticClassifier:
        model = cls._unfitted(state)
        model.medians_ = np.asarray(state["medians"], dtype=float)
        model.means_ = np.asarray(state["means"], dtype=float)
        model.scales_ = np.asarray(state["scales"], dtype=float)
        model.levels_ = state["levels"]
        model.coef_ = np.asarray(state["coef"], dtype=float)
        model.intercept_ = float(state["intercept"])
        return model
