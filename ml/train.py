"""Train: stateless retraining on a trailing window of matured labels before the as-of date.

The window is ``[as_of - train_window_days, as_of - 1]``; labels of day D mature when D
ends, so every label in it is known at the as-of cutoff. Its last ``validation_days``
are held out: candidates stop early on them and the best log loss there wins. The model
is stored in the registry and becomes champion when there is none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.evaluate import binary_metrics, prior_log_loss
from ml.features import (
    HEURISTIC_COLUMN,
    LABEL,
    ORACLE_LABEL,
    FeatureSpec,
    frame_fingerprint,
    infer_spec,
    load_features,
)
from ml.io import DataError

log = logging.getLogger(__name__)

MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 100

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "lightgbm": {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 200,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
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
        "max_depth": 6,
        "min_child_weight": 20,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "lambda": 1.0,
        "tree_method": "hist",
        "max_cat_to_onehot": 1,
        "nthread": 2,
    },
}


class DelayClassifier:
    """A gradient-boosted delay classifier over a :class:`FeatureSpec`, in scikit-learn style.

    Args:
        algorithm: ``"lightgbm"`` or ``"xgboost"``.
        spec: The features, in order, with their kinds.
        params: Library parameters; :data:`DEFAULT_PARAMS` by default.
        random_state: Seed for row and feature sampling.
    """

    def __init__(
        self,
        algorithm: str,
        spec: FeatureSpec,
        params: dict[str, Any] | None = None,
        random_state: int = 13,
    ) -> None:
        self.algorithm = algorithm
        self.spec = spec
        self.params = params
        self.random_state = random_state

    # -- preprocessing ---------------------------------------------------------------
    def _matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns as float, categoricals with the categories learned at fit."""
        out = pd.DataFrame(index=frame.index)
        for column in self.spec.numeric:
            out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        for column in self.spec.categorical:
            values = frame[column].astype("object").where(frame[column].notna(), None)
            out[column] = pd.Categorical(values, categories=self.categories_[column])
        return out

    def resolved_params(self) -> dict[str, Any]:
        """The library parameters used: the defaults, then ``params``, then the seed."""
        params = dict(DEFAULT_PARAMS[self.algorithm])
        params.update(self.params or {})
        params["seed"] = self.random_state
        return params

    # -- estimator API -----------------------------------------------------------------
    def fit(
        self, frame: pd.DataFrame, y: np.ndarray, eval_frame: pd.DataFrame, eval_y: np.ndarray
    ) -> DelayClassifier:
        """Fit on ``frame``, stopping early on the held-out ``eval_frame``."""
        self.categories_ = {
            column: sorted(str(v) for v in frame[column].dropna().unique())
            for column in self.spec.categorical
        }
        x_fit, x_eval = self._matrix(frame), self._matrix(eval_frame)
        params = self.resolved_params()
        if self.algorithm == "lightgbm":
            import lightgbm as lgb

            train_set = lgb.Dataset(
                x_fit, label=y, categorical_feature=list(self.spec.categorical), free_raw_data=False
            )
            eval_set = lgb.Dataset(x_eval, label=eval_y, reference=train_set)
            self.booster_ = lgb.train(
                params,
                train_set,
                num_boost_round=MAX_ROUNDS,
                valid_sets=[eval_set],
                callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
            )
            self.best_iteration_ = int(self.booster_.best_iteration)
        elif self.algorithm == "xgboost":
            import xgboost as xgb

            dfit = xgb.DMatrix(x_fit, label=y, enable_categorical=True)
            deval = xgb.DMatrix(x_eval, label=eval_y, enable_categorical=True)
            self.booster_ = xgb.train(
                params,
                dfit,
                num_boost_round=MAX_ROUNDS,
                evals=[(deval, "validation")],
                early_stopping_rounds=EARLY_STOPPING_ROUNDS,
                verbose_eval=False,
            )
            self.best_iteration_ = int(self.booster_.best_iteration) + 1
        else:
            raise ValueError(f"unknown algorithm {self.algorithm!r} (expected lightgbm or xgboost)")
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of delay for each row (shape ``(n,)``)."""
        matrix = self._matrix(frame)
        if self.algorithm == "lightgbm":
            return np.asarray(self.booster_.predict(matrix, num_iteration=self.best_iteration_))
        import xgboost as xgb

        dmatrix = xgb.DMatrix(matrix, enable_categorical=True)
        return np.asarray(self.booster_.predict(dmatrix, iteration_range=(0, self.best_iteration_)))

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Each feature's additive contribution to the log-odds (shape ``(n, n_features)``)."""
        matrix = self._matrix(frame)
        if self.algorithm == "lightgbm":
            contrib = self.booster_.predict(
                matrix, num_iteration=self.best_iteration_, pred_contrib=True
            )
        else:
            import xgboost as xgb

            dmatrix = xgb.DMatrix(matrix, enable_categorical=True)
            contrib = self.booster_.predict(
                dmatrix, iteration_range=(0, self.best_iteration_), pred_contribs=True
            )
        return np.asarray(contrib)[:, :-1]  # the last column is the bias

    # -- persistence -------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """Write the booster and its preprocessing state into ``folder``."""
        artifact = folder / ("model.txt" if self.algorithm == "lightgbm" else "model.json")
        self.booster_.save_model(str(artifact))
        state = {
            "algorithm": self.algorithm,
            "spec": self.spec.to_dict(),
            "params": self.resolved_params(),
            "random_state": self.random_state,
            "categories": self.categories_,
            "best_iteration": self.best_iteration_,
            "artifact": artifact.name,
        }
        (folder / "preprocessing.json").write_text(
            json.dumps(state, indent=2, sort_keys=True), encoding="utf-8"
        )
        return artifact

    @classmethod
    def load(cls, folder: Path) -> DelayClassifier:
        """Load a classifier saved by :meth:`save`."""
        state = json.loads((folder / "preprocessing.json").read_text(encoding="utf-8"))
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


@dataclass(frozen=True)
class TrainingWindow:
    """The days a model learns from; ``fit`` and ``validation`` never overlap."""

    as_of: dt.date
    fit_start: dt.date
    fit_end: dt.date
    validation_start: dt.date
    validation_end: dt.date

    @classmethod
    def before(cls, as_of: dt.date, window_days: int, validation_days: int) -> TrainingWindow:
        return cls(
            as_of=as_of,
            fit_start=as_of - dt.timedelta(days=window_days),
            fit_end=as_of - dt.timedelta(days=validation_days + 1),
            validation_start=as_of - dt.timedelta(days=validation_days),
            validation_end=as_of - dt.timedelta(days=1),
        )

    def to_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class TrainingResult:
    version: str
    algorithm: str
    metrics: dict[str, Any]
    became_champion: bool


class LeakageError(DataError):
    """Training data would see what it is evaluated on, or what came after the cutoff."""


def check_splits(window: TrainingWindow, fit: pd.DataFrame, validation: pd.DataFrame) -> None:
    """The leakage checks every training run passes before it fits anything.

    - the fit period ends before the validation period starts, and both before the as-of date;
    - no flight is in both splits;
    - no feature of any row read a day on or after that row's own date (``latest_source_date``).

    Raises:
        LeakageError: naming the check that failed.
    """
    if not window.fit_end < window.validation_start <= window.validation_end < window.as_of:
        raise LeakageError(f"training window overlaps itself or the as-of date: {window.to_dict()}")
    if not fit.empty and fit["flight_date"].max() > window.fit_end:
        raise LeakageError(f"fit rows after {window.fit_end} (check: fit period)")
    if not validation.empty and (
        validation["flight_date"].min() < window.validation_start
        or validation["flight_date"].max() >= window.as_of
    ):
        raise LeakageError(
            f"validation rows outside {window.validation_start}..{window.validation_end}"
        )
    shared = set(fit["flight_id"]) & set(validation["flight_id"])
    if shared:
        raise LeakageError(
            f"{len(shared)} flight(s) in both fit and validation, e.g. {sorted(shared)[:3]}"
        )
    for name, split in (("fit", fit), ("validation", validation)):
        late = split[split["latest_source_date"] >= split["flight_date"]]
        if not late.empty:
            raise LeakageError(
                f"{len(late)} {name} row(s) with features read on or after their own flight date, "
                f"e.g. {late['flight_id'].iloc[0]} (check: latest_source_date < flight_date)"
            )


def train(settings: Settings, as_of: dt.date) -> TrainingResult:
    """Train every candidate as of ``as_of``, register the best, and return it.

    Raises:
        DataError: The window has no rows, or only one class.
    """
    from ml import registry

    window = TrainingWindow.before(as_of, settings.train_window_days, settings.validation_days)
    oracle = settings.use_oracle_forecast
    if oracle:
        log.warning("training with the %s", ORACLE_LABEL)
    frame = load_features(settings, window.fit_start, window.validation_end, oracle=oracle)
    fit = frame[frame["flight_date"] <= window.fit_end]
    validation = frame[frame["flight_date"] >= window.validation_start]
    check_splits(window, fit, validation)
    if fit.empty or validation.empty:
        raise DataError(
            f"training window {window.fit_start}..{window.validation_end}: no rows in the fit "
            f"({len(fit)}) or validation ({len(validation)}) period; ingest and transform that history first"
        )
    y_fit = fit[LABEL].astype(int).to_numpy()
    y_val = validation[LABEL].astype(int).to_numpy()
    if len(np.unique(y_fit)) < 2:
        raise DataError(
            f"training window {window.fit_start}..{window.fit_end}: the label has one class only"
        )
    spec = infer_spec(frame)

    prior = float(y_fit.mean())
    baselines = {
        "prior_rate": {"log_loss": prior_log_loss(y_val, prior)},
        "heuristic": binary_metrics(y_val, validation[HEURISTIC_COLUMN].to_numpy(dtype=float)),
    }
    candidates: dict[str, tuple[DelayClassifier, dict[str, float]]] = {}
    for algorithm in settings.candidates:
        model = DelayClassifier(algorithm, spec, random_state=settings.random_state)
        model.fit(fit, y_fit, validation, y_val)
        scores = binary_metrics(y_val, model.predict_proba(validation))
        log.info("candidate %s: %s (best iteration %d)", algorithm, scores, model.best_iteration_)
        candidates[algorithm] = (model, scores)
    best = min(candidates, key=lambda name: candidates[name][1]["log_loss"])
    model, scores = candidates[best]

    fingerprint = frame_fingerprint(frame[[*spec.columns, LABEL, "flight_id"]])
    config_hash = hashlib.sha256(
        json.dumps(
            {"params": model.resolved_params(), "window": window.to_dict(), "spec": spec.to_dict()},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    digest = hashlib.sha256((fingerprint + config_hash).encode()).hexdigest()[:8]
    version = f"{as_of:%Y%m%d}-{best}{'-oracle' if oracle else ''}-{digest}"
    metrics = {
        "validation": scores,
        "baselines": baselines,
        "candidates": {name: s for name, (_, s) in candidates.items()},
        "rows": {"fit": int(len(fit)), "validation": int(len(validation))},
        "prior_rate": prior,
    }
    metadata = {
        "version": version,
        "algorithm": best,
        "as_of": as_of.isoformat(),
        "window": window.to_dict(),
        "input_fingerprint": fingerprint,
        "features": spec.to_dict(),
        "best_iteration": model.best_iteration_,
        "uses_oracle_forecast": oracle,
        **({"oracle_note": ORACLE_LABEL} if oracle else {}),
    }
    from ml.drift import reference_profile

    profile = reference_profile(fit, spec, model.predict_proba(fit), settings.drift_psi_threshold)
    became_champion = registry.register(settings, model, metadata, metrics, profile)
    return TrainingResult(
        version=version, algorithm=best, metrics=metrics, became_champion=became_champion
    )
