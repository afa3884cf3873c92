"""Registry: model versions as folders, aliases, and an append-only audit log.

``models/<version>/`` holds the artifact (the library's own model file, or JSON),
``preprocessing.json``, ``calibration.json``, ``metadata.json`` (as-of date, window,
input fingerprint, features and types, parameters, library versions, git commit),
``metrics.json`` (holdout metrics beside the baselines, slices, behavioural tests,
importance, the gate's checks), ``reference_profile.json`` (for drift) and the model
card, ``model_card.md`` and ``model_card.html``. ``models/aliases.json`` maps an alias
(``champion``, ``challenger``) to a version; ``models/audit.jsonl`` records every alias
change with its reason. A version folder is written beside its final place and renamed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from ml.config import Settings
from ml.io import read_json, write_json

log = logging.getLogger(__name__)

ALIASES = ("champion", "challenger")
TRACKED_LIBRARIES = (
    "lightgbm",
    "xgboost-cpu",
    "scikit-learn",
    "pandas",
    "numpy",
    "duckdb",
    "dbt-core",
)


class RegistryError(LookupError):
    """A version or alias does not exist, or its files are unreadable."""


def _aliases_path(settings: Settings) -> Path:
    return settings.paths.models / "aliases.json"


def _audit_path(settings: Settings) -> Path:
    return settings.paths.models / "audit.jsonl"


def version_dir(settings: Settings, version: str) -> Path:
    if not version or "/" in version or version.startswith("."):
        raise RegistryError(f"{version!r} is not a model version")
    return settings.paths.models / version


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def register(
    settings: Settings,
    model: Any,
    metadata: dict[str, Any],
    metrics: dict[str, Any],
    profile: dict[str, Any],
) -> bool:
    """Store a trained model as a version folder, with its model card.

    Re-registering a version (same as-of date, data and parameters) replaces its folder.
    Aliases are not touched: see :func:`apply_gate`.
    """
    from ml.model_card import render_html, render_markdown

    version = metadata["version"]
    final = version_dir(settings, version)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=final.parent))
    try:
        model.save(staging)
        full_metadata = {**metadata, "libraries": _library_versions(), "git_commit": _git_commit()}
        write_json(full_metadata, staging / "metadata.json")
        write_json(metrics, staging / "metrics.json")
        write_json(profile, staging / "reference_profile.json")
        (staging / "model_card.md").write_text(
            render_markdown(full_metadata, metrics), encoding="utf-8"
        )
        (staging / "model_card.html").write_text(
            render_html(full_metadata, metrics), encoding="utf-8"
        )
        if final.exists():
            trash = final.with_name(f".{version}.old")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(staging, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("registered model %s", version)


def apply_gate(settings: Settings, version: str, decision) -> bool:
    """Point the aliases as the promotion gate decided; return whether ``version`` is champion.

    A version that already is champion (training re-run for the same date) keeps it.
    """
    if get_alias(settings, "champion") == version:
        return True
    if decision.promote:
        promote(settings, version, reason=decision.reason)
        return True
    log.warning("%s becomes challenger: %s", version, decision.reason)
    set_alias(settings, "challenger", version, reason=decision.reason)
    return False


def list_versions(settings: Settings) -> list[dict[str, Any]]:
    """Every version's metadata, newest as-of first, with its aliases."""
    root = settings.paths.models
    if not root.exists():
        return []
    aliases = read_aliases(settings)
    rows = []
    for folder in root.iterdir():
        if (
            folder.is_dir()
            and not folder.name.startswith(".")
            and (folder / "metadata.json").exists()
        ):
            meta = read_json(folder / "metadata.json")
            meta["aliases"] = [a for a, v in aliases.items() if v == folder.name]
            rows.append(meta)
    return sorted(rows, key=lambda m: (m["as_of"], m["version"]), reverse=True)


def read_aliases(settings: Settings) -> dict[str, str]:
    path = _aliases_path(settings)
    return read_json(path) if path.exists() else {}


def get_alias(settings: Settings, alias: str) -> str | None:
    return read_aliases(settings).get(alias)


def set_alias(settings: Settings, alias: str, version: str, reason: str) -> None:
    """Point ``alias`` at ``version`` and append the change to the audit log."""
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias {alias!r} (expected one of {ALIASES})")
    if not (version_dir(settings, version) / "metadata.json").exists():
        raise RegistryError(f"model version {version!r} not found in {settings.paths.models}")
    if alias == "champion" and load_metadata(settings, version).get("uses_oracle_forecast"):
        raise RegistryError(
            f"{version} uses the oracle-forecast group (weather observed after the cutoff): "
            "an upper bound, never champion; it can run in shadow as challenger"
        )
    aliases = read_aliases(settings)
    previous = aliases.get(alias)
    if previous == version:
        return
    aliases[alias] = version
    write_json(aliases, _aliases_path(settings))
    _append_audit(settings, {"alias": alias, "from": previous, "to": version, "reason": reason})


def _append_audit(settings: Settings, entry: dict[str, Any]) -> None:
    # The audit log records when a person or job changed an alias: wall-clock time is
    # the right stamp here; it never feeds a model or a prediction.
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **entry}
    path = _audit_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def audit_log(settings: Settings) -> list[dict[str, Any]]:
    path = _audit_path(settings)
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def promote(settings: Settings, version: str, reason: str) -> None:
    """Make ``version`` champion; the previous champion becomes challenger."""
    previous = get_alias(settings, "champion")
    set_alias(settings, "champion", version, reason=reason)
    if previous and previous != version:
        set_alias(settings, "challenger", previous, reason=f"replaced as champion by {version}")


def rollback(settings: Settings, reason: str) -> str:
    """Point champion back at the version it held before its last change."""
    history = [e for e in audit_log(settings) if e["alias"] == "champion"]
    if not history or not history[-1].get("from"):
        raise RegistryError("no earlier champion to roll back to")
    target = history[-1]["from"]
    set_alias(settings, "champion", target, reason=f"rollback: {reason}")
    return target


def load_metadata(settings: Settings, version: str) -> dict[str, Any]:
    path = version_dir(settings, version) / "metadata.json"
    if not path.exists():
        raise RegistryError(f"model version {version!r} not found in {settings.paths.models}")
    return read_json(path)


def load_metrics(settings: Settings, version: str) -> dict[str, Any]:
    return read_json(version_dir(settings, version) / "metrics.json")


def load_profile(settings: Settings, version: str) -> dict[str, Any]:
    """The drift reference profile stored with ``version`` at training time."""
    from ml.drift import PROFILE_FORMAT

    path = version_dir(settings, version) / "reference_profile.json"
    profile = read_json(path)
    if profile.get("format") != PROFILE_FORMAT:
        raise RegistryError(
            f"{path}: reference profile format {profile.get('format', 1)}, expected "
            f"{PROFILE_FORMAT} (retrain the model with `ml train --as-of D`)"
        )
    return profile


def load_model(settings: Settings, version: str):
    """Load a version's classifier and metadata.

    Raises:
        RegistryError: The version is missing or its artifact cannot be read.
    """
    from ml.models import CalibratedClassifier

    metadata = load_metadata(settings, version)
    try:
        model = CalibratedClassifier.load(version_dir(settings, version))
    except Exception as exc:  # any library's parse error means the same thing here
        raise RegistryError(
            f"{version_dir(settings, version)}: model artifact unreadable ({exc})"
        ) from exc
    return model, metadata
