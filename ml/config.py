"""Configuration: one YAML file of defaults, each key overridable by an ``ML_*`` variable.

Settings are data. :func:`load_settings` reads ``ml/defaults.yaml`` and the environment
once and returns a frozen :class:`Settings`, which every stage receives explicitly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ml import thread_budget
from ml.errors import ConfigError
from ml.paths import Paths

ENV_PREFIX = "ML_"
# Who promotes a candidate that passed the gate (``promotion_approval``).
APPROVALS = ("auto", "manual")
# Where the boosted candidates train (``train_backend``; ml.models.backend).
TRAIN_BACKENDS = ("local", "dask")
# Separates the levels of a nested setting in its variable: ML_MODEL_PARAMS__LIGHTGBM__NUM_LEAVES.
ENV_NESTING = "__"
# How often a backtest retrains: every day, every 7 days, on the 1st of each month, or once.
CADENCES = ("daily", "weekly", "monthly", "once")


@dataclass(frozen=True)
class Settings:
    """Every tunable of the system, built by :func:`load_settings`: the defaults and
    what each one means are in ``ml/defaults.yaml``, and only there."""

    data_dir: Path
    raw_source: str
    source_first_day: str
    source_last_day: str
    source_max_bytes: int
    feature_lookback_days: int
    dbt_docs: bool
    use_oracle_forecast: bool
    feature_exclude: tuple[str, ...]
    train_window_days: int
    validation_days: int
    candidates: tuple[str, ...]
    calibration_folds: int
    boosting_max_rounds: int
    boosting_early_stopping_rounds: int
    train_backend: str
    dask_scheduler: str
    threads: str
    backtest_candidates: tuple[str, ...]
    random_state: int
    # algorithm -> its hyperparameters (read-only mappings), one entry per algorithm of
    # ml.models.CLASSIFIERS; the candidate lists are checked against its keys.
    model_params: Mapping[str, Mapping[str, Any]]
    risk_band_low_max: float
    risk_band_high_min: float
    risk_high_precision: float
    risk_low_delay_rate: float
    risk_band_min_flights: int
    gate_log_loss_margin: float
    gate_slice_min_rows: int
    gate_slice_tolerance: float
    gate_max_ece: float
    promotion_approval: str
    daily_deadline_minutes: float
    label_maturity_days: int
    recalibration_enabled: bool
    recalibration_days: int
    recalibration_min_rows: int
    drift_window_days: int
    retrain_every_days: int
    retrain_persistence_days: int
    retrain_degradation_margin: float
    drift_small_batch_rows: int
    drift_family_alpha: float

    @property
    def operating_threshold(self) -> float:
        """The probability from which a flight is counted as flagged in precision and recall:
        the settings' fixed start of the high band (a version's own bands are in ml.risk)."""
        return self.risk_band_high_min

    @property
    def source_period(self) -> tuple[dt.date | None, dt.date | None]:
        """The first and last day the raw source may hold (None: unbounded)."""
        return tuple(
            dt.date.fromisoformat(str(v)) if v else None
            for v in (self.source_first_day, self.source_last_day)
        )

    @property
    def cpu_threads(self) -> int:
        """The threads each library may start (the ``threads`` setting resolved)."""
        return thread_budget(self.threads)

    @property
    def paths(self) -> Paths:
        """The one place that knows where every file lives."""
        return Paths(self.data_dir)


def _coerce(name: str, raw: str, like: Any) -> Any:
    """Convert an environment string to the type of the default it overrides."""
    try:
        if isinstance(like, bool):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, list | tuple):
            return [item.strip() for item in raw.split(",") if item.strip()]
    except ValueError as exc:
        raise ConfigError(
            f"environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a valid "
            f"{type(like).__name__}"
        ) from exc
    return raw


def _override_nested(key: str, defaults: Mapping[str, Any], env: Mapping[str, str]) -> dict:
    """``defaults`` with every ``ML_<KEY>__<LEVEL>__...`` variable applied, each converted
    to the type of the default it replaces; a variable naming no default is an error."""
    values = {k: dict(v) if isinstance(v, Mapping) else v for k, v in defaults.items()}
    prefix = f"{ENV_PREFIX}{key.upper()}{ENV_NESTING}"
    if f"{ENV_PREFIX}{key.upper()}" in env:
        raise ConfigError(
            f"environment variable {ENV_PREFIX}{key.upper()}: {key} is a group; set one value "
            f"with {prefix}<NAME>..."
        )
    for env_key in sorted(k for k in env if k.startswith(prefix)):
        *parents, leaf = env_key[len(prefix) :].split(ENV_NESTING)
        level = values
        for part in parents:
            level = level.get(_named(level, part, env_key, key))
            if not isinstance(level, dict):
                raise ConfigError(f"environment variable {env_key}: {part} is not a group")
        name = _named(level, leaf, env_key, key)
        if isinstance(level[name], dict):
            raise ConfigError(f"environment variable {env_key}: {leaf} is a group, not a value")
        level[name] = _coerce(env_key[len(ENV_PREFIX) :], env[env_key], level[name])
    return values


def _named(level: Mapping[str, Any], part: str, env_key: str, key: str) -> str:
    """The key of ``level`` that ``part`` names, in any case (``C`` is ``..._C``)."""
    for name in level:
        if name.upper() == part.upper():
            return name
    raise ConfigError(
        f"environment variable {env_key}: no setting {part.lower()!r} in {key} "
        f"(known: {sorted(level)})"
    )


def _read_only(tree: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(
        {k: _read_only(v) if isinstance(v, Mapping) else v for k, v in tree.items()}
    )


def load_defaults() -> dict[str, Any]:
    """Return the defaults shipped with the package."""
    text = resources.files("ml").joinpath("defaults.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def data_dir_origin(data_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """The data folder in use and where it came from, for errors about missing data: a
    command run from another folder, or a shell without ``ML_DATA_DIR``, reads another
    folder than the user thinks."""
    env = os.environ if env is None else env
    key = f"{ENV_PREFIX}DATA_DIR"
    if key in env:
        return f"data folder {data_dir}, from {key}"
    return f"data folder {data_dir}: {key} is not set, so ./data under the working directory"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from the YAML defaults, the environment and explicit overrides.

    Args:
        env: The environment to read ``ML_*`` variables from; ``os.environ`` by default.
        **overrides: Values that win over both (used by tests and the CLI).

    Returns:
        The frozen settings, with ``data_dir`` made absolute.
    """
    env = os.environ if env is None else env
    values = load_defaults()
    for key, default in list(values.items()):
        env_key = f"{ENV_PREFIX}{key.upper()}"
        if isinstance(default, Mapping):
            values[key] = _override_nested(key, default, env)
        elif env_key in env:
            values[key] = _coerce(key, env[env_key], default)
    known = {f.name for f in dataclasses.fields(Settings)}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = value
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown keys in defaults.yaml: {sorted(unknown)}")
    values["data_dir"] = Path(values["data_dir"]).expanduser().resolve()
    for key in ("candidates", "backtest_candidates"):
        values[key] = tuple(values[key])
        if not values[key]:
            raise ConfigError(f"{key}: name at least one algorithm")
    if not isinstance(values["model_params"], Mapping) or not all(
        isinstance(v, Mapping) for v in values["model_params"].values()
    ):
        raise ConfigError("model_params: expected a mapping of algorithm to its parameters")
    values["model_params"] = _read_only(values["model_params"])
    values["feature_exclude"] = tuple(values["feature_exclude"] or ())
    # Every algorithm has its (possibly empty) hyperparameters in model_params, whose keys
    # are the names of ml.models.CLASSIFIERS (a test holds the two together): a candidate
    # list is checked here, where the setting is read, not when a run first needs it.
    algorithms = list(values["model_params"])
    for key in ("candidates", "backtest_candidates"):
        strange = [name for name in values[key] if name not in algorithms]
        if strange:
            raise ConfigError(f"{key} {strange}: expected some of {algorithms}")
    values["threads"] = str(values["threads"])
    try:
        thread_budget(values["threads"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if values["train_backend"] not in TRAIN_BACKENDS:
        raise ConfigError(
            f"train_backend {values['train_backend']!r}: expected one of {TRAIN_BACKENDS}"
        )
    if values["promotion_approval"] not in APPROVALS:
        raise ConfigError(
            f"promotion_approval {values['promotion_approval']!r}: expected one of {APPROVALS}"
        )
    for key in ("recalibration_days", "recalibration_min_rows", "risk_band_min_flights"):
        if values[key] < 1:
            raise ConfigError(f"{key} must be at least 1")
    if not 0 <= values["risk_low_delay_rate"] < values["risk_high_precision"] <= 1:
        raise ConfigError(
            "risk_low_delay_rate and risk_high_precision: expected 0 <= low rate < high "
            f"precision <= 1, got {values['risk_low_delay_rate']} and {values['risk_high_precision']}"
        )
    if values["boosting_early_stopping_rounds"] < 1:
        raise ConfigError("boosting_early_stopping_rounds must be at least 1")
    if values["calibration_folds"] < 2:
        raise ConfigError("calibration_folds must be at least 2")
    if not 0 < values["drift_family_alpha"] < 1:
        raise ConfigError("drift_family_alpha must be between 0 and 1")
    if values["source_max_bytes"] < 1:
        raise ConfigError("source_max_bytes must be at least 1")
    if values["drift_window_days"] < 1:
        raise ConfigError("drift_window_days must be at least 1")
    for key in ("source_first_day", "source_last_day"):
        if values[key]:
            try:
                dt.date.fromisoformat(str(values[key]))
            except ValueError as exc:
                raise ConfigError(f"{key} {values[key]!r}: expected an ISO date or empty") from exc
    if values["validation_days"] >= values["train_window_days"]:
        raise ConfigError("validation_days must be smaller than train_window_days")
    return Settings(**values)
