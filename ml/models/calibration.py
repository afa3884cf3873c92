"""Platt scaling of any classifier, fitted on its out-of-fold predictions.

:class:`CalibratedClassifier` fits a copy of its classifier, then Platt scaling on the
log-odds of out-of-fold predictions over the whole fit period (folds are blocks of whole
days, so a fold's days are never in the model that predicts them). Platt scaling is one
line in log-odds space, so the calibrated contributions stay additive: each is the base
contribution times the slope.

A model the registry hands out carries the last day it learned from
(``last_seen_day_``: its fit, early-stopping holdout and calibration days, set by
:func:`ml.registry.load_model`) and refuses to score any flight of that day or before
(:meth:`CalibratedClassifier.check_unseen`, in ``predict_proba`` and ``contributions``,
the only outputs that reach a table, a report or a comparison). Every path that scores
with a registered model (the daily prediction, the challenger's shadow rows, monitoring,
evaluation, the promotion gate's champion) goes through them, so none can publish or
compare a score of a day the model saw. A model fitted in memory (training's own holdout report,
the backtest) carries none.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ml.errors import LeakageError
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

    def check_unseen(self, frame: pd.DataFrame) -> None:
        """Refuse ``frame`` if one of its flights is of a day this model learned from.

        Raises:
            LeakageError: A row's ``flight_date`` is on or before ``last_seen_day_``; the
                message names the version, the day and the last day it saw.
        """
        last_seen = getattr(self, "last_seen_day_", None)
        if last_seen is None or not len(frame):
            return
        if "flight_date" not in frame:
            raise LeakageError(
                f"{getattr(self, 'version_', 'this model')}: rows without flight_date cannot "
                "be checked against the days it learned from (check: point in time)"
            )
        first = frame["flight_date"].min()
        first = first.date() if isinstance(first, dt.datetime) else first
        if first <= last_seen:
            raise LeakageError(
                f"{getattr(self, 'version_', 'this model')} learned from flights up to "
                f"{last_seen} and must not score {first} (check: point in time; a model "
                f"scores only days after the last it saw: from "
                f"{last_seen + dt.timedelta(days=1)} on)"
            )

    def predict_uncalibrated(self, frame: pd.DataFrame) -> np.ndarray:
        """The classifier's own scores, before Platt scaling: what a calibration map is
        fitted on (:mod:`ml.recalibration` refits one on the version's holdout and the
        days it served). An input to learning, never a prediction: nothing publishes or
        compares it, so it is not held to :meth:`check_unseen`."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(frame)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        self.check_unseen(frame)
        uncalibrated = self.estimator_.predict_proba(frame)
        return sigmoid(self.slope_ * logit(uncalibrated) + self.intercept_)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        self.check_unseen(frame)
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
