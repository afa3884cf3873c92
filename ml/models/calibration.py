"""Platt scaling of any classifier, fitted on its out-of-fold predictions.

:class:`CalibratedClassifier` fits a copy of its classifier, then Platt scaling on the
log-odds of out-of-fold predictions over the whole fit period (folds are blocks of whole
days, so a fold's days are never in the model that predicts them). Platt scaling is one
line in log-odds space, so the calibrated contributions stay additive: each is the base
contribution times the slope.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ml.features import FeatureSpec
from ml.metrics import logit, sigmoid
from ml.models.base import Classifier, day_folds

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
# Platt scaling is unregularised: one slope and one intercept over thousands of flights.
PLATT_C = 1e6
PLATT_MAX_ITER = 1000


def platt(log_odds: np.ndarray, y: np.ndarray, what: str = "calibration") -> tuple[float, float]:
    """Platt scaling: the slope and intercept of ``sigmoid(slope * log_odds + intercept)``
    that fit ``y`` best, the slope constrained to be non-negative.

    If the scores rank the flights backwards, the best non-negative slope is zero: every
    flight gets the observed delay rate, which is honest about the lack of signal, instead
    of an inverted ranking.
    """
    from sklearn.linear_model import LogisticRegression

    scaler = LogisticRegression(C=PLATT_C, max_iter=PLATT_MAX_ITER).fit(log_odds[:, None], y)
    slope, intercept = float(scaler.coef_[0][0]), float(scaler.intercept_[0])
    if slope < 0:
        log.warning(
            "%s: the scores rank the flights backwards (Platt slope %.3f); "
            "predicting the observed delay rate instead",
            what,
            slope,
        )
        return 0.0, float(logit(np.array([np.mean(y)]))[0])
    return slope, intercept


class CalibratedClassifier(BaseEstimator):
    """A classifier followed by Platt scaling: ``p = sigmoid(slope_ * logit(p_base) + intercept_)``.

    Args:
        estimator: The unfitted classifier; :meth:`fit` fits a copy, ``estimator_``.
        n_folds: The blocks of whole days the out-of-fold predictions are cut into.
    """

    def __init__(self, estimator: Classifier, n_folds: int = 3) -> None:
        self.estimator = estimator
        self.n_folds = n_folds

    @property
    def algorithm(self) -> str:
        return self.estimator.algorithm

    @property
    def spec(self) -> FeatureSpec:
        return self.estimator.spec

    def fit(
        self,
        frame: pd.DataFrame,
        y: np.ndarray,
        eval_frame: pd.DataFrame | None = None,
        eval_y: np.ndarray | None = None,
    ) -> Self:
        """Fit a copy of the classifier on ``frame`` (stopping early on ``eval_frame``), then
        the scaling on its out-of-fold predictions over ``frame``.

        The slope is constrained to be non-negative. If the out-of-fold predictions rank
        the flights backwards (a model fitted on a few weeks dominated by one storm, say),
        the best non-negative slope is zero: the model predicts the fit period's delay rate
        for every flight, which is honest about its lack of signal, instead of inverting
        its ranking.
        """
        self.estimator_ = clone(self.estimator).fit(frame, y, eval_frame, eval_y)
        oof = self.estimator_.cross_fitted(frame, y, day_folds(frame["flight_date"], self.n_folds))
        self.slope_, self.intercept_ = platt(logit(oof), y, what=self.algorithm)
        return self

    def predict_uncalibrated(self, frame: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        return self.estimator_.predict_proba(frame)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        uncalibrated = self.predict_uncalibrated(frame)  # refuses an unfitted model first
        return sigmoid(self.slope_ * logit(uncalibrated) + self.intercept_)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        return self.slope_ * self.estimator_.contributions(frame)

    def save(self, folder: Path) -> None:
        check_is_fitted(self)
        self.estimator_.save(folder)
        (folder / CALIBRATION_FILE).write_text(
            json.dumps(
                {"method": "platt", "slope": self.slope_, "intercept": self.intercept_}, indent=2
            ),
            encoding="utf-8",
        )

    @classmethod
    def load(cls, folder: Path, estimator: Classifier) -> Self:
        """The calibrated model saved in ``folder`` around its loaded, fitted ``estimator``
        (use :func:`ml.models.load_classifier`, which finds the estimator's class)."""
        calibration: dict[str, Any] = json.loads(
            (folder / CALIBRATION_FILE).read_text(encoding="utf-8")
        )
        model = cls(estimator)
        model.estimator_ = estimator
        model.slope_ = calibration["slope"]
        model.intercept_ = calibration["intercept"]
        return model
