"""Models: the candidate classifiers, their calibration, and how they are saved.

Every candidate follows :class:`~ml.models.base.Classifier` in scikit-learn's style (no
logic in ``__init__``, ``fit`` returns ``self``, learned state ends in ``_``, the seed is
``random_state``):

- ``fit(frame, y, eval_frame, eval_y)``: learn from ``frame``; the gradient-boosted ones
  stop early on the held-out ``eval_frame``;
- ``predict_proba(frame)``: the probability of delay for each row, shape ``(n,)``;
- ``contributions(frame)``: each feature's additive contribution to the log-odds, shape
  ``(n, n_features)``, in ``spec.columns`` order (the bias is left out);
- ``cross_fitted(frame, y, folds)``: out-of-fold probabilities over ``frame``;
- ``save(folder)`` and ``load(folder, state)``.

Candidates, one module each: ``heuristic`` (the smoothed trailing carrier x origin delay
rate, no fitting), ``logistic`` (L2 logistic regression on standardized numeric and
one-hot categorical features), ``lightgbm`` and ``xgboost`` (native categoricals, early
stopping, monotone constraints; :mod:`ml.models.boosted`). Their hyperparameters are
``model_params`` in ``ml/defaults.yaml``. :class:`CalibratedClassifier`
(:mod:`ml.models.calibration`) wraps any of them with Platt scaling.

:data:`CLASSIFIERS` is the one table of algorithms: the factory, the loader and the
check of configured candidates all read it. Nothing is pickled: every model is a
library's own model file plus JSON, found again by the algorithm named in its state file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ml.config import Settings
from ml.errors import ConfigError, RegistryError
from ml.features import FeatureSpec
from ml.models.base import STATE_FILE, BaseClassifier, Classifier, day_folds
from ml.models.boosted import BoostedClassifier
from ml.models.calibration import CalibratedClassifier
from ml.models.heuristic import HEURISTIC_SPEC, HeuristicClassifier
from ml.models.lightgbm_model import LightGBMClassifier
from ml.models.logistic import LogisticClassifier
from ml.models.xgboost_model import XGBoostClassifier

__all__ = [
    "ALGORITHMS",
    "CLASSIFIERS",
    "HEURISTIC_SPEC",
    "BaseClassifier",
    "BoostedClassifier",
    "CalibratedClassifier",
    "Classifier",
    "HeuristicClassifier",
    "LightGBMClassifier",
    "LogisticClassifier",
    "XGBoostClassifier",
    "check_algorithms",
    "day_folds",
    "load_classifier",
    "make_classifier",
]

# Every algorithm a setting, a backtest or a stored model may name, and its class.
CLASSIFIERS: dict[str, type[BaseClassifier]] = {
    cls.algorithm: cls
    for cls in (HeuristicClassifier, LogisticClassifier, LightGBMClassifier, XGBoostClassifier)
}
ALGORITHMS = tuple(CLASSIFIERS)


def check_algorithms(name: str, values: Iterable[str]) -> None:
    """Raise ConfigError unless ``values`` is a non-empty list of known algorithms."""
    values = tuple(values)
    strange = [c for c in values if c not in CLASSIFIERS]
    if strange or not values:
        raise ConfigError(f"{name} {strange or '(none)'}: expected some of {list(ALGORITHMS)}")


def make_classifier(
    settings: Settings,
    algorithm: str,
    spec: FeatureSpec,
    params: Mapping[str, Any] | None = None,
) -> BaseClassifier:
    """A fresh, unfitted classifier of ``algorithm`` over ``spec``: the settings'
    ``model_params`` updated by ``params``, seeded with ``settings.random_state``."""
    check_algorithms("algorithm", [algorithm])
    unknown = sorted(set(settings.model_params) - set(CLASSIFIERS))
    if unknown:
        raise ConfigError(
            f"model_params {unknown}: hyperparameters of no algorithm (expected some of "
            f"{list(ALGORITHMS)})"
        )
    return CLASSIFIERS[algorithm].from_settings(settings, spec, params)


def load_classifier(folder: Path) -> CalibratedClassifier:
    """The calibrated classifier :meth:`CalibratedClassifier.save` wrote into ``folder``,
    whichever algorithm its state file names.

    Raises:
        RegistryError: The state file names no algorithm of :data:`CLASSIFIERS`.
    """
    state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    algorithm = state.get("algorithm")
    if algorithm not in CLASSIFIERS:
        raise RegistryError(
            f"{folder / STATE_FILE}: unknown algorithm {algorithm!r} "
            f"(expected one of {list(ALGORITHMS)})"
        )
    return CalibratedClassifier.load(folder, CLASSIFIERS[algorithm].load(folder, state))
