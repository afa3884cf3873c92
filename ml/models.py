"""Models: the candidate classifiers, their calibration, and how they are saved.

Every classifier has the same small API, in scikit-learn style:

- ``fit(frame, y, eval_frame, eval_y)``: learn from ``frame``; the
  gradient-boosted ones stop early on the held-out ``eval_frame``;
- ``predict_proba(frame)``: the probability of delay for each row, shape ``(n,)``;
- ``contributions(frame)``: each feature's additive contribution to the log-odds, shape
  ``(n, n_features)``, in ``spec.columns`` order (the bias is left out);
- ``cross_fitted(frame, y, folds)``: out-of-fold probabilities over ``frame``, each fold
  predicted by a copy fitted on the other folds with the same settings;
- ``save(folder)`` and ``load(folder, state)``.

The boosted models are monotone in the delay rates and the weather before the cutoff
(see :func:`ml.features.monotone_direction`): left free, they learn that a stormy
yesterday means a calmer today, which no user would trust in a risk score.

Candidates: ``heuristic`` (the smoothed trailing carrier x origin delay rate, no fitting),
``logistic`` (L2 logistic regression on standardized numeric and one-hot categorical
features), ``lightgbm`` and ``xgboost`` (native categoricals, early stopping).

:class:`CalibratedClassifier` wraps any of them with Platt scaling on the log-odds,
fitted on out-of-fold predictions over the whole fit period (folds are blocks of whole
days, so a fold's days are never in the model that predicts them). Platt scaling is one
line in log-odds space, so the calibrated contributions stay additive: each is the base
contribution times the slope.

Nothing is pickled: every model is a library's own model file plus JSON.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.config import ALGORITHMS
from ml.errors import ConfigError, RegistryError
from ml.features import HEURISTIC_COLUMN, FeatureSpec, monotone_direction

log = logging.getLogger(__name__)

__all__ = ["ALGORITHMS", "CalibratedClassifier", "make_classifier"]
MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 50
PROBABILITY_EPS = 1e-6

# Class imbalance (about one flight in four is delayed) is handled by leaving the classes
# unweighted: re-weighting would raise the scores of the rare class and break the
# calibration that p_delayed promises, while the ranking (AUC) barely moves; the operating
# threshold, not the loss, decides how many flights are flagged.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "lightgbm": {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 2000,
        "feature_fraction": 0.5,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 10.0,
        "cat_smooth": 20,
        "num_threads": 2,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    },
    "xgboost": {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "learning_rate": 0.05,
        "max_depth": 4,
        "min_child_weight": 100,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "lambda": 1.0,
        "tree_method": "hist",
        "max_cat_to_onehot": 1,
        "nthread": 2,
    },
    "logistic": {"C": 1.0, "max_iter": 1000, "clip_sd": 5.0, "min_category_rows": 50},
    "heuristic": {},
}


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def day_folds(dates: pd.Series, n_folds: int) -> np.ndarray:
    """Fold number per row: the sorted distinct dates cut into ``n_folds`` contiguous blocks."""
    days = np.sort(dates.unique())
    block = {day: min(i * n_folds // len(days), n_folds - 1) for i, day in enumerate(days)}
    return dates.map(block).to_numpy()


class _Base:
    algorithm: str

    def __init__(
        self, spec: FeatureSpec, params: dict[str, Any] | None = None, random_state: int = 13
    ) -> None:
        self.spec = spec
        self.params = params
        self.random_state = random_state

    def resolved_params(self) -> dict[str, Any]:
        """The parameters used: the defaults, then ``params``, then the seed."""
        params = dict(DEFAULT_PARAMS[self.algorithm])
        if self.algorithm in ("lightgbm", "xgboost"):
            directions = [monotone_direction(c) for c in self.spec.numeric]
            directions += [0] * len(self.spec.categorical)
            params["monotone_constraints"] = (
                directions
                if self.algorithm == "lightgbm"
                else "(" + ",".join(str(d) for d in directions) + ")"
            )
        params.update(self.params or {})
        if self.algorithm in ("lightgbm", "xgboost"):
            params["seed"] = self.random_state
        return params

    def _state(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "spec": self.spec.to_dict(),
            "params": self.resolved_params(),
            "random_state": self.random_state,
        }

    def _write_state(self, folder: Path, extra: dict[str, Any]) -> None:
        state = {**self._state(), **extra}
        (folder / "preprocessing.json").write_text(
            json.dumps(state, indent=2, sort_keys=True), encoding="utf-8"
        )


class HeuristicClassifier(_Base):
    """The smoothed trailing carrier x origin delay rate, used as it is.

    It learns nothing but the training period's delay rate, which stands in where the
    rate is missing; its only contribution is the rate's log-odds against that prior.
    """

    algorithm = "heuristic"

    def __init__(self, spec: FeatureSpec | None = None, params=None, random_state: int = 13):
        super().__init__(spec or FeatureSpec((HEURISTIC_COLUMN,), ()), params, random_state)
        self.prior_ = 0.25

    def fit(self, frame, y, eval_frame=None, eval_y=None):
        self.prior_ = float(np.mean(y))
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        rate = pd.to_numeric(frame[HEURISTIC_COLUMN], errors="coerce").to_numpy(dtype=float)
        return np.clip(np.where(np.isnan(rate), self.prior_, rate), 0.0, 1.0)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        return (logit(self.predict_proba(frame)) - logit(self.prior_)).reshape(-1, 1)

    def cross_fitted(self, frame, y, folds) -> np.ndarray:
        return self.predict_proba(frame)

    def save(self, folder: Path) -> None:
        self._write_state(folder, {"prior": self.prior_})

    @classmethod
    def load(cls, folder: Path, state: dict[str, Any]) -> HeuristicClassifier:
        model = cls(FeatureSpec.from_dict(state["spec"]), random_state=state["random_state"])
        model.prior_ = state["prior"]
        return model


class LogisticClassifier(_Base):
    """L2 logistic regression: numeric features median-imputed, standardized and clipped;
    categoricals one-hot, with values rarer than ``min_category_rows`` in the fit period
    pooled with unseen ones. Stored as plain coefficients."""

    algorithm = "logistic"

    def _design(self, frame: pd.DataFrame) -> np.ndarray:
        clip = self.resolved_params()["clip_sd"]
        blocks = []
        if self.spec.numeric:
            x = frame[list(self.spec.numeric)].apply(pd.to_numeric, errors="coerce")
            x = x.astype("float64").to_numpy()
            x = np.where(np.isnan(x), self.medians_, x)
            blocks.append(np.clip((x - self.means_) / self.scales_, -clip, clip))
        for column in self.spec.categorical:
            values = frame[column].astype("object").to_numpy()
            levels = self.levels_[column]
            blocks.append(
                (values[:, None] == np.asarray(levels, dtype=object)[None, :]).astype(float)
            )
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def fit(self, frame, y, eval_frame=None, eval_y=None):
        from sklearn.linear_model import LogisticRegression

        params = self.resolved_params()
        numeric = frame[list(self.spec.numeric)].apply(pd.to_numeric, errors="coerce")
        numeric = numeric.astype("float64")
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
        estimator = LogisticRegression(
            C=params["C"], max_iter=params["max_iter"], solver="newton-cholesky"
        )
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
        terms = self._design(frame) * self.coef_
        return np.column_stack([terms[:, block].sum(axis=1) for block in self._column_blocks()])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return sigmoid(self._design(frame) @ self.coef_ + self.intercept_)

    def cross_fitted(self, frame, y, folds) -> np.ndarray:
        out = np.zeros(len(frame))
        for fold in np.unique(folds):
            held = folds == fold
            copy = LogisticClassifier(self.spec, self.params, self.random_state)
            copy.fit(frame[~held], y[~held])
            out[held] = copy.predict_proba(frame[held])
        return out

    def save(self, folder: Path) -> None:
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
        model = cls(FeatureSpec.from_dict(state["spec"]), random_state=state["random_state"])
        model.params = dict(state["params"])
        model.medians_ = np.asarray(state["medians"], dtype=float)
        model.means_ = np.asarray(state["means"], dtype=float)
        model.scales_ = np.asarray(state["scales"], dtype=float)
        model.levels_ = state["levels"]
        model.coef_ = np.asarray(state["coef"], dtype=float)
        model.intercept_ = float(state["intercept"])
        return model


class BoostedClassifier(_Base):
    """A LightGBM or XGBoost classifier with native categoricals and early stopping."""

    def __init__(
        self,
        algorithm: str,
        spec: FeatureSpec,
        params: dict[str, Any] | None = None,
        random_state: int = 13,
    ) -> None:
        if algorithm not in ("lightgbm", "xgboost"):
            raise ConfigError(f"unknown algorithm {algorithm!r} (expected lightgbm or xgboost)")
        self.algorithm = algorithm
        super().__init__(spec, params, random_state)

    def _matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns as float, categoricals with the categories learned at fit."""
        out = pd.DataFrame(index=frame.index)
        for column in self.spec.numeric:
            out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        for column in self.spec.categorical:
            values = frame[column].astype("object").where(frame[column].notna(), None)
            out[column] = pd.Categorical(values, categories=self.categories_[column])
        return out

    def _train(self, x_fit, y, rounds: int, x_eval=None, eval_y=None):
        """Train for at most ``rounds``, stopping early on ``x_eval`` if given; returns the
        booster and the number of rounds to use."""
        params = self.resolved_params()
        stop_early = x_eval is not None
        if self.algorithm == "lightgbm":
            import lightgbm as lgb

            train_set = lgb.Dataset(
                x_fit,
                label=y,
                categorical_feature=list(self.spec.categorical),
                free_raw_data=False,
            )
            early = (
                {
                    "valid_sets": [lgb.Dataset(x_eval, label=eval_y, reference=train_set)],
                    "callbacks": [lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
                }
                if stop_early
                else {}
            )
            booster = lgb.train(params, train_set, num_boost_round=rounds, **early)
            return booster, int(booster.best_iteration) if stop_early else rounds
        import xgboost as xgb

        dfit = xgb.DMatrix(x_fit, label=y, enable_categorical=True)
        early = (
            {
                "evals": [
                    (xgb.DMatrix(x_eval, label=eval_y, enable_categorical=True), "validation")
                ],
                "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
                "verbose_eval": False,
            }
            if stop_early
            else {}
        )
        booster = xgb.train(params, dfit, num_boost_round=rounds, **early)
        return booster, int(booster.best_iteration) + 1 if stop_early else rounds

    def learn_categories(self, frame: pd.DataFrame) -> None:
        """The levels of each categorical feature in ``frame``; other levels read as missing."""
        self.categories_ = {
            column: sorted(str(v) for v in frame[column].dropna().unique())
            for column in self.spec.categorical
        }

    def fit(self, frame, y, eval_frame, eval_y):
        """Fit on ``frame``, stopping early on the held-out ``eval_frame``."""
        self.learn_categories(frame)
        self.booster_, self.best_iteration_ = self._train(
            self._matrix(frame),
            y,
            MAX_ROUNDS,
            self._matrix(eval_frame),
            eval_y,
        )
        return self

    def _raw_predict(self, booster, matrix: pd.DataFrame, contrib: bool = False) -> np.ndarray:
        if self.algorithm == "lightgbm":
            return np.asarray(
                booster.predict(matrix, num_iteration=self.best_iteration_, pred_contrib=contrib)
            )
        import xgboost as xgb

        dmatrix = xgb.DMatrix(matrix, enable_categorical=True)
        return np.asarray(
            booster.predict(
                dmatrix, iteration_range=(0, self.best_iteration_), pred_contribs=contrib
            )
        )

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self._raw_predict(self.booster_, self._matrix(frame))

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        return self._raw_predict(self.booster_, self._matrix(frame), contrib=True)[:, :-1]

    def cross_fitted(self, frame, y, folds) -> np.ndarray:
        """Out-of-fold probabilities, each fold's copy trained for ``best_iteration_`` rounds."""
        matrix = self._matrix(frame)
        out = np.zeros(len(frame))
        for fold in np.unique(folds):
            held = folds == fold
            booster, _ = self._train(matrix[~held], y[~held], self.best_iteration_)
            out[held] = self._raw_predict(booster, matrix[held])
        return out

    def gain_importance(self) -> dict[str, float]:
        """Total split gain per feature, as shares summing to one."""
        if self.algorithm == "lightgbm":
            gains = dict(
                zip(
                    self.booster_.feature_name(),
                    self.booster_.feature_importance("gain", iteration=self.best_iteration_),
                    strict=True,
                )
            )
        else:
            gains = self.booster_.get_score(importance_type="total_gain")
        values = {c: float(gains.get(c, 0.0)) for c in self.spec.columns}
        total = sum(values.values()) or 1.0
        return {c: v / total for c, v in values.items()}

    def save(self, folder: Path) -> None:
        artifact = "model.txt" if self.algorithm == "lightgbm" else "model.json"
        self.booster_.save_model(str(folder / artifact))
        self._write_state(
            folder,
            {
                "categories": self.categories_,
                "best_iteration": self.best_iteration_,
                "artifact": artifact,
            },
        )

    @classmethod
    def load(cls, folder: Path, state: dict[str, Any]) -> BoostedClassifier:
        model = cls(
            state["algorithm"],
            FeatureSpec.from_dict(state["spec"]),
            random_state=state["random_state"],
        )
        model.categories_ = state["categories"]
        model.best_iteration_ = state["best_iteration"]
        artifact = folder / state["artifact"]
        if model.algorithm == "lightgbm":
            import lightgbm as lgb

            model.booster_ = lgb.Booster(model_file=str(artifact))
        else:
            import xgboost as xgb

            model.booster_ = xgb.Booster()
            model.booster_.load_model(str(artifact))
        return model


def make_classifier(
    algorithm: str, spec: FeatureSpec, params: dict[str, Any] | None = None, random_state: int = 13
):
    """A fresh, unfitted classifier of ``algorithm`` over ``spec``."""
    if algorithm == "heuristic":
        return HeuristicClassifier(random_state=random_state)
    if algorithm == "logistic":
        return LogisticClassifier(spec, params, random_state)
    if algorithm in ("lightgbm", "xgboost"):
        return BoostedClassifier(algorithm, spec, params, random_state)
    raise ConfigError(f"unknown algorithm {algorithm!r} (expected one of {', '.join(ALGORITHMS)})")


class CalibratedClassifier:
    """A classifier followed by Platt scaling: ``p = sigmoid(slope * logit(p_base) + intercept)``."""

    def __init__(self, base, slope: float = 1.0, intercept: float = 0.0) -> None:
        self.base = base
        self.slope = slope
        self.intercept = intercept

    @property
    def algorithm(self) -> str:
        return self.base.algorithm

    @property
    def spec(self) -> FeatureSpec:
        return self.base.spec

    def calibrate(self, frame: pd.DataFrame, y: np.ndarray, n_folds: int) -> np.ndarray:
        """Fit the scaling on out-of-fold predictions over ``frame``; return those predictions.

        The slope is constrained to be non-negative. If the out-of-fold predictions rank
        the flights backwards (a model fitted on a few weeks dominated by one storm, say),
        the best non-negative slope is zero: the model predicts the fit period's delay rate
        for every flight, which is honest about its lack of signal, instead of inverting
        its ranking.
        """
        from sklearn.linear_model import LogisticRegression

        oof = self.base.cross_fitted(frame, y, day_folds(frame["flight_date"], n_folds))
        scaler = LogisticRegression(C=1e6, max_iter=1000).fit(logit(oof)[:, None], y)
        self.slope = float(scaler.coef_[0][0])
        self.intercept = float(scaler.intercept_[0])
        if self.slope < 0:
            log.warning(
                "%s: out-of-fold predictions rank the fit period backwards (Platt slope %.3f); "
                "the model predicts the fit period's delay rate instead",
                self.algorithm,
                self.slope,
            )
            self.slope = 0.0
            self.intercept = float(logit(np.array([np.mean(y)]))[0])
        return oof

    def predict_uncalibrated(self, frame: pd.DataFrame) -> np.ndarray:
        return self.base.predict_proba(frame)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return sigmoid(self.slope * logit(self.base.predict_proba(frame)) + self.intercept)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        return self.slope * self.base.contributions(frame)

    def save(self, folder: Path) -> None:
        self.base.save(folder)
        (folder / "calibration.json").write_text(
            json.dumps(
                {"method": "platt", "slope": self.slope, "intercept": self.intercept}, indent=2
            ),
            encoding="utf-8",
        )

    @classmethod
    def load(cls, folder: Path) -> CalibratedClassifier:
        """Load a classifier saved by :meth:`save` (any algorithm)."""
        state = json.loads((folder / "preprocessing.json").read_text(encoding="utf-8"))
        kinds = {
            "heuristic": HeuristicClassifier,
            "logistic": LogisticClassifier,
            "lightgbm": BoostedClassifier,
            "xgboost": BoostedClassifier,
        }
        if state["algorithm"] not in kinds:
            raise RegistryError(f"{folder}: unknown algorithm {state['algorithm']!r}")
        base = kinds[state["algorithm"]].load(folder, state)
        calibration = json.loads((folder / "calibration.json").read_text(encoding="utf-8"))
        return cls(base, calibration["slope"], calibration["intercept"])
