"""Registry: model versions as folders, aliases, and an append-only audit log.

``models/<version>/`` holds the artifact (the library's own model file, or JSON),
``preprocessing.json``, ``calibration.json``, ``metadata.json`` (as-of date, window,
input fingerprint, features and types, parameters, library versions, git commit),
``metrics.json`` (holdout metrics beside the baselines, slices, behavioural tests,
importance, the gate's checks), ``reference_profile.json`` (for drift) and the model
card, ``model_card.md`` and ``model_card.html``. ``models/aliases.json`` maps an alias
(``champion``, ``challenger``) to a version; ``models/audit.jsonl`` records every alias
change with its reason, and every calibration revision of the champion
(:mod:`ml.recalibration`, ``"event": "recalibration"``). A version's revisions are files of
its folder, ``calibration/<date>.json``, kept when the version is registered again.

The registry is the one writer of a version's folder. ``checksums.json`` records the
SHA-256 of every other file of the folder: the files written at registration, and each
file added later (a calibration revision, the model card rendered again with it), which
:func:`write_version_files` writes and records together under the registry's lock. A
file that fails its recorded checksum, or that no writer recorded, is never used: the
model is a :class:`RegistryError` (the day is scored by the heuristic), a revision is
skipped with a warning naming the file (:func:`read_version_file`).

A version folder is written beside its final place and renamed into it; re-registering
a version swaps the two folders in one call (:func:`ml.io.exchange_dirs`), so the version
is never missing; its revisions that still match their checksums are carried into the
new folder under the same lock, so none written meanwhile can be lost. Leftovers of a killed registration are removed, or restored, on the
next write (:func:`recover`). Every file the model's native library parses has its SHA-256
in ``metadata.json`` (``artifacts``) and is checked before it is loaded: a truncated or
altered file is a :class:`RegistryError`, never a crash inside the library. Every JSON
file that cannot be read is reported with its path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from ml.config import Settings
from ml.errors import RegistryError
from ml.io import (
    append_json_line,
    dir_mode,
    exchange_dirs,
    file_lock,
    file_sha256,
    read_json,
    read_json_lines,
    write_json,
    write_text,
    write_text_if_changed,
)
from ml.paths import MODEL_METADATA, MODEL_METRICS, MODEL_PROFILE, REPO_DIR

log = logging.getLogger(__name__)

ALIASES = ("champion", "challenger")
# Suffix of the folder a version is written into before it is renamed into place.
STAGING_SUFFIX = ".staging"
# A version's calibration revisions (ml.recalibration): kept when it is registered again.
REVISIONS_DIR = "calibration"
# SHA-256 of every other file of a version's folder, relative path to digest.
CHECKSUMS = "checksums.json"
TRACKED_LIBRARIES = (
    "lightgbm",
    "xgboost-cpu",
    "scikit-learn",
    "pandas",
    "numpy",
    "duckdb",
    "dbt-core",
)


def _read(path: Path) -> Any:
    return read_json(path, RegistryError)


def version_dir(settings: Settings, version: str) -> Path:
    if not version or "/" in version or version.startswith("."):
        raise RegistryError(f"{version!r} is not a model version")
    return settings.paths.model_version(version)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_DIR,
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


# Renders a version's documents from its metadata and metrics: file name to text.
Documents = Callable[[dict[str, Any], dict[str, Any]], dict[str, str]]


def register(
    settings: Settings,
    model: Any,
    metadata: dict[str, Any],
    metrics: dict[str, Any],
    profile: dict[str, Any],
    documents: Documents | None = None,
) -> None:
    """Store a trained model as a version folder.

    Args:
        documents: Renders the version's documents (e.g. the model card) from its full
            metadata (checksums included) and metrics, as file name to text; they are
            written into the folder before it is published. The registry stores them
            and knows nothing of how they are rendered.

    Re-registering a version (same as-of date, data and parameters) replaces its folder.
    Aliases are not touched: see :func:`apply_gate`.
    """
    version = metadata["version"]
    final = version_dir(settings, version)
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(settings.paths.models_lock):
        _recover(settings)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{version}.", suffix=STAGING_SUFFIX, dir=final.parent)
        )
        try:
            _write_version(staging, model, metadata, metrics, profile, documents)
            checksums = {
                path.relative_to(staging).as_posix(): file_sha256(path)
                for path in sorted(staging.rglob("*"))
                if path.is_file()
            }
            # the same model, registered again: its revisions still hold
            checksums.update(_carry_revisions(final, staging))
            write_json(checksums, staging / CHECKSUMS)
            if final.exists():
                exchange_dirs(staging, final)  # staging now holds the replaced version
            else:
                os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("registered model %s", version)


def _write_version(
    folder: Path,
    model: Any,
    metadata: dict[str, Any],
    metrics: dict[str, Any],
    profile: dict[str, Any],
    documents: Documents | None = None,
) -> None:
    """Fill a new version folder; the model's own files get their SHA-256 in the metadata."""
    os.chmod(folder, dir_mode())  # mkdtemp makes it 0700
    model.save(folder)
    artifacts = {f.name: file_sha256(f) for f in sorted(folder.iterdir()) if f.is_file()}
    full_metadata = {
        **metadata,
        "artifacts": artifacts,
        "libraries": _library_versions(),
        "git_commit": _git_commit(),
    }
    write_json(full_metadata, folder / MODEL_METADATA)
    write_json(metrics, folder / MODEL_METRICS)
    write_json(profile, folder / MODEL_PROFILE)
    for name, text in (documents(full_metadata, metrics) if documents else {}).items():
        write_text(text, folder / name)


def record_run(settings: Settings, version: str, record: dict[str, Any]) -> Path:
    """Write what varies from one training run of ``version`` to the next (durations)
    beside its folder (:meth:`ml.paths.Paths.model_run_record`), never in it."""
    version_dir(settings, version)  # refuses a name that is not a version's
    return write_json({"version": version, **record}, settings.paths.model_run_record(version))


def _carry_revisions(final: Path, staging: Path) -> dict[str, str]:
    """Copy the revisions of the version registered at ``final`` that match their recorded
    checksums into ``staging`` (the registry's lock held); their checksums. A revision
    that does not match, or that no writer recorded, is left behind with a warning."""
    kept = final / REVISIONS_DIR
    if not kept.is_dir():
        return {}
    recorded = _checksums(final)
    carried = {}
    for path in sorted(kept.iterdir()):
        name = f"{REVISIONS_DIR}/{path.name}"
        if path.is_file() and recorded.get(name) == file_sha256(path):
            (staging / REVISIONS_DIR).mkdir(mode=dir_mode(), exist_ok=True)
            shutil.copy2(path, staging / name)
            carried[name] = recorded[name]
        else:
            log.warning(
                "%s: not carried into the version registered again (check: recorded checksum)", path
            )
    return carried


def _checksums(folder: Path) -> dict[str, str]:
    """The version's recorded checksums; empty for a version registered before they were
    recorded (or an unreadable record, with a warning naming it)."""
    path = folder / CHECKSUMS
    if not path.exists():
        return {}
    try:
        recorded = read_json(path, RegistryError)
    except RegistryError as exc:
        log.warning("%s", exc)
        return {}
    if not isinstance(recorded, dict):
        log.warning("%s: not an object of file to SHA-256", path)
        return {}
    return recorded


def write_version_files(settings: Settings, version: str, files: dict[str, str]) -> list[str]:
    """Add or replace files of a registered version (relative path to text) and record
    their checksums, together, under the registry's lock: the one way a version's folder
    changes after registration. A file that already holds its text is left as it is.
    Returns the files written.

    Raises:
        RegistryError: The version is not registered, or a path leaves its folder.
    """
    folder = version_dir(settings, version)
    written = []
    with file_lock(settings.paths.models_lock):
        if not (folder / MODEL_METADATA).exists():
            raise RegistryError(f"model version {version!r} not found in {settings.paths.models}")
        checksums = _checksums(folder)
        for name, text in files.items():
            path = folder / name
            if ".." in Path(name).parts or Path(name).is_absolute() or name == CHECKSUMS:
                raise RegistryError(f"{path}: not a file a version may hold")
            path.parent.mkdir(mode=dir_mode(), parents=True, exist_ok=True)
            if write_text_if_changed(text, path):
                written.append(name)
            checksums[name] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if checksums != _checksums(folder):
            write_json(dict(sorted(checksums.items())), folder / CHECKSUMS)
    return written


def read_version_file(settings: Settings, version: str, name: str) -> str:
    """The text of a file of ``version`` added after registration, read once and checked
    against its recorded checksum.

    Raises:
        RegistryError: The file is unreadable, was never recorded by the registry, or
            does not match its checksum (altered by hand, or cut short).
    """
    folder = version_dir(settings, version)
    path = folder / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"{path}: unreadable ({exc.strerror or exc})") from exc
    expected = _checksums(folder).get(name)
    if expected is None:
        raise RegistryError(
            f"{path}: no checksum recorded (check: recorded checksum; written outside the "
            "registry, or by a version registered before checksums were recorded)"
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise RegistryError(
            f"{path}: SHA-256 {actual[:12]}... does not match the recorded {expected[:12]}... "
            "(check: recorded checksum; the file was altered or cut short)"
        )
    return data.decode("utf-8")


def verify_artifacts(folder: Path, metadata: dict[str, Any]) -> None:
    """Check every file the model's libraries will parse against its recorded SHA-256.

    Raises:
        RegistryError: A file is missing, altered or truncated, or the version was
            registered without checksums; the message names the file.
    """
    artifacts = metadata.get("artifacts")
    if not isinstance(artifacts, dict) or not artifacts:
        raise RegistryError(
            f"{folder / MODEL_METADATA}: no artifact checksums recorded "
            "(registered by an older version; retrain with `ml train --as-of D`)"
        )
    for name, expected in sorted(artifacts.items()):
        path = folder / name
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise RegistryError(f"{path}: artifact unreadable ({exc.strerror or exc})") from exc
        if actual != expected:
            raise RegistryError(
                f"{path}: SHA-256 {actual[:12]}... does not match the registered "
                f"{str(expected)[:12]}... (check: artifact checksum; the file was altered "
                "or truncated; re-register the version with `ml train`)"
            )


def recover(settings: Settings) -> list[str]:
    """Repair what a killed registration left, if no registration is running.

    Returns what it did, one line each (see :func:`_recover`).
    """
    if not settings.paths.models.is_dir():
        return []
    with file_lock(settings.paths.models_lock, blocking=False) as held:
        return _recover(settings) if held else []


def _recover(settings: Settings) -> list[str]:
    """Under the registry's lock: remove staging folders (``.<version>.<random>.staging``)
    and move back a version that an older registration moved aside (``.<version>.old``)
    and never replaced."""
    root = settings.paths.models
    done = []
    for folder in sorted(root.iterdir()):
        name = folder.name
        if not (name.startswith(".") and folder.is_dir()):
            continue
        if name.endswith(STAGING_SUFFIX):
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"removed the unfinished registration {folder}")
        elif name.endswith(".old"):
            version = name[1 : -len(".old")]
            if (root / version).exists():
                shutil.rmtree(folder, ignore_errors=True)
                done.append(f"removed the replaced copy {folder}")
            else:
                os.replace(folder, root / version)
                done.append(f"restored {root / version} from {folder}")
    for line in done:
        log.warning("registry: %s", line)
    return done


AWAITING_APPROVAL = "passed the promotion gate; awaiting approval"


def apply_gate(settings: Settings, version: str, decision, approval: str = "auto") -> bool:
    """Point the aliases as the promotion gate decided; return whether ``version`` is champion.

    With ``approval="manual"`` a version that passed the gate becomes challenger until a
    person approves it (:func:`record_approval`). A version that already is champion
    (training re-run for the same date) keeps it.
    """
    if get_alias(settings, "champion") == version:
        return True
    if decision.promote and approval == "manual":
        set_alias(settings, "challenger", version, reason=f"{AWAITING_APPROVAL}: {decision.reason}")
        return False
    if decision.promote:
        promote(settings, version, reason=decision.reason)
        return True
    log.warning("%s becomes challenger: %s", version, decision.reason)
    set_alias(settings, "challenger", version, reason=decision.reason)
    return False


def record_approval(
    settings: Settings, version: str, approved: bool, by: str, reason: str = ""
) -> bool:
    """A person's answer on a version that passed the gate and awaited approval: approved,
    it becomes champion; rejected, it stays challenger. Either way the audit log says who
    answered and why. Returns whether ``version`` is champion.

    An answer can come days after the request: it counts only while ``version`` is still
    the challenger and the champion is still the one the gate compared it with.

    Raises:
        RegistryError: The version is unknown, or no longer awaits this answer (nothing
            is changed; the message says what did).
    """
    aliases = read_aliases(settings)
    if aliases.get("challenger") != version:
        raise RegistryError(
            f"{settings.paths.model_aliases}: {version} no longer awaits approval (the "
            f"challenger is now {aliases.get('challenger')}); nothing changed. To serve it "
            f"anyway: `ml models promote {version}`"
        )
    why = f": {reason}" if reason else ""
    if approved:
        compared = load_metrics(settings, version).get("gate", {}).get("champion")
        if aliases.get("champion") != compared:
            raise RegistryError(
                f"{settings.paths.model_aliases}: the gate compared {version} with champion "
                f"{compared}, but the champion is now {aliases.get('champion')}; nothing "
                f"changed. Retrain, or promote it by hand: `ml models promote {version}`"
            )
        promote(settings, version, reason=f"approved by {by}{why}", by=by)
        return True
    append_event(
        settings,
        {
            "event": APPROVAL,
            "alias": "challenger",
            "from": version,
            "to": version,
            "reason": f"{version} rejected as champion by {by}{why}",
            "by": by,
        },
    )
    return False


def list_versions(settings: Settings) -> list[dict[str, Any]]:
    """Every readable version's metadata, newest as-of first, with its aliases.

    A version whose ``metadata.json`` cannot be read is left out with a warning naming
    the file; unreadable aliases leave every version without aliases, with a warning.
    """
    root = settings.paths.models
    if not root.exists():
        return []
    recover(settings)
    try:
        aliases = read_aliases(settings)
    except RegistryError as exc:
        log.warning("%s", exc)
        aliases = {}
    rows = []
    for folder in root.iterdir():
        if (
            folder.is_dir()
            and not folder.name.startswith(".")
            and (folder / MODEL_METADATA).exists()
        ):
            try:
                meta = load_metadata(settings, folder.name)
            except RegistryError as exc:
                log.warning("skipped version %s: %s", folder.name, exc)
                continue
            meta["aliases"] = [a for a, v in aliases.items() if v == folder.name]
            rows.append(meta)
    return sorted(rows, key=lambda m: (str(m["as_of"]), str(m["version"])), reverse=True)


def read_aliases(settings: Settings) -> dict[str, str]:
    """The aliases (``champion``, ``challenger``) and their versions.

    Raises:
        RegistryError: ``aliases.json`` exists but is not a JSON object of strings.
    """
    path = settings.paths.model_aliases
    if not path.exists():
        return {}
    aliases = _read(path)
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        raise RegistryError(f"{path}: not a JSON object of alias to version")
    return aliases


def get_alias(settings: Settings, alias: str) -> str | None:
    return read_aliases(settings).get(alias)


def set_alias(
    settings: Settings, alias: str, version: str, reason: str, by: str | None = None
) -> None:
    """Point ``alias`` at ``version`` and append the change to the audit log (with ``by``,
    the person who made it, where one did).

    An unreadable ``aliases.json`` is rebuilt from the audit log, with a warning.
    """
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias {alias!r} (expected one of {ALIASES})")
    if not (version_dir(settings, version) / MODEL_METADATA).exists():
        raise RegistryError(f"model version {version!r} not found in {settings.paths.models}")
    if alias == "champion" and load_metadata(settings, version).get("uses_oracle_forecast"):
        raise RegistryError(
            f"{version} uses the oracle-forecast group (weather observed after the cutoff): "
            "an upper bound, never champion; it can run in shadow as challenger"
        )
    with file_lock(settings.paths.models_lock):
        aliases = _aliases_or_rebuilt(settings)
        previous = aliases.get(alias)
        if previous == version:
            return
        aliases[alias] = version
        write_json(aliases, settings.paths.model_aliases)
        entry = {"alias": alias, "from": previous, "to": version, "reason": reason}
        _append_audit(settings, {**entry, **({"by": by} if by else {})})


def _aliases_or_rebuilt(settings: Settings) -> dict[str, str]:
    """The aliases (the registry's lock held); an unreadable ``aliases.json`` is rebuilt
    from the audit log, with a warning, by the change about to be written."""
    try:
        return read_aliases(settings)
    except RegistryError as exc:
        aliases = aliases_from_audit(settings)
        log.warning("%s; rebuilt from the audit log as %s", exc, aliases)
        return aliases


def aliases_from_audit(settings: Settings) -> dict[str, str]:
    """The aliases as the audit log's last readable change of each left them."""
    aliases: dict[str, str] = {}
    for entry in alias_changes(settings):
        if entry.get("to"):
            aliases[entry["alias"]] = entry["to"]
        else:  # cleared (clear_alias)
            aliases.pop(entry["alias"], None)
    return aliases


def _append_audit(settings: Settings, entry: dict[str, Any]) -> None:
    # The audit log records when a person or job changed an alias: wall-clock time is
    # the right stamp here; it never feeds a model or a prediction.
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **entry}
    append_json_line(entry, settings.paths.model_audit_log)


def append_event(settings: Settings, entry: dict[str, Any]) -> None:
    """Record a change to what an alias serves that is not a change of version (a
    calibration revision, say) in the audit log: ``entry`` has an ``event`` and the
    entries' keys but ``at``."""
    missing = {"event", *AUDIT_KEYS} - {"at"} - entry.keys()
    if missing:
        raise RegistryError(f"audit event {entry}: missing {sorted(missing)}")
    with file_lock(settings.paths.models_lock):
        _append_audit(settings, entry)


AUDIT_KEYS = ("at", "alias", "from", "to", "reason")
# An entry without "event" is an alias change (every entry was, before events).
ALIAS_CHANGE = "alias"
# A person's rejection of a version that awaited approval: no alias moves.
APPROVAL = "approval"


def audit_log(settings: Settings) -> list[dict[str, Any]]:
    """Every readable entry of the audit log, oldest first.

    A line that is not an entry (cut short by a kill, edited by hand) is left out with a
    warning that names the file and the line.
    """
    return read_json_lines(
        settings.paths.model_audit_log,
        "audit entry",
        lambda entry: all(key in entry for key in AUDIT_KEYS),
    )


def alias_changes(settings: Settings) -> list[dict[str, Any]]:
    """The audit log's alias changes, oldest first (its other events left out)."""
    return [e for e in audit_log(settings) if e.get("event", ALIAS_CHANGE) == ALIAS_CHANGE]


def promote(settings: Settings, version: str, reason: str, by: str | None = None) -> None:
    """Make ``version`` champion; the previous champion becomes challenger."""
    try:
        previous = get_alias(settings, "champion")
    except RegistryError:
        previous = aliases_from_audit(settings).get("champion")
    set_alias(settings, "champion", version, reason=reason, by=by)
    if previous and previous != version:
        set_alias(settings, "challenger", previous, reason=f"replaced as champion by {version}")
    elif get_alias(settings, "challenger") == version:  # a first champion was the challenger
        clear_alias(settings, "challenger", reason=f"{version} became champion", by=by)


def clear_alias(settings: Settings, alias: str, reason: str, by: str | None = None) -> None:
    """Point ``alias`` at no version, and append the change (``"to": null``) to the audit
    log; nothing happens when it points at none."""
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias {alias!r} (expected one of {ALIASES})")
    with file_lock(settings.paths.models_lock):
        aliases = _aliases_or_rebuilt(settings)
        previous = aliases.pop(alias, None)
        if previous is None:
            return
        write_json(aliases, settings.paths.model_aliases)
        entry = {"alias": alias, "from": previous, "to": None, "reason": reason}
        _append_audit(settings, {**entry, **({"by": by} if by else {})})


def rollback(settings: Settings, reason: str) -> str:
    """Point champion back at the version it held before its last change.

    Raises:
        RegistryError: There is no earlier champion, or the audit log's last champion
            change does not lead to the current champion (the log lost an entry): then
            say which version to promote instead.
    """
    history = [e for e in alias_changes(settings) if e["alias"] == "champion"]
    if not history or not history[-1].get("from"):
        raise RegistryError(
            f"{settings.paths.model_audit_log}: no earlier champion to roll back to"
        )
    try:
        current = get_alias(settings, "champion")
    except RegistryError:
        current = history[-1]["to"]
    if current != history[-1]["to"]:
        raise RegistryError(
            f"{settings.paths.model_audit_log}: the last champion change recorded is to "
            f"{history[-1]['to']}, but the champion is {current}; pick the version with "
            "`ml models promote VERSION`"
        )
    target = history[-1]["from"]
    set_alias(settings, "champion", target, reason=f"rollback: {reason}")
    return target


def load_metadata(settings: Settings, version: str) -> dict[str, Any]:
    path = version_dir(settings, version) / MODEL_METADATA
    if not path.exists():
        raise RegistryError(f"model version {version!r} not found in {settings.paths.models}")
    metadata = _read(path)
    if not isinstance(metadata, dict) or not {"version", "as_of", "algorithm"} <= metadata.keys():
        raise RegistryError(f"{path}: not a version's metadata (check: version, as_of, algorithm)")
    return metadata


def load_metrics(settings: Settings, version: str) -> dict[str, Any]:
    return _read(version_dir(settings, version) / MODEL_METRICS)


def load_profile(settings: Settings, version: str) -> dict[str, Any]:
    """The drift reference profile stored with ``version`` at training time."""
    from ml.drift import PROFILE_FORMAT

    path = version_dir(settings, version) / MODEL_PROFILE
    profile = _read(path)
    if not isinstance(profile, dict) or profile.get("format") != PROFILE_FORMAT:
        found = profile.get("format", 1) if isinstance(profile, dict) else "none"
        raise RegistryError(
            f"{path}: reference profile format {found}, expected "
            f"{PROFILE_FORMAT} (retrain the model with `ml train --as-of D`)"
        )
    return profile


def _verify_metadata(folder: Path) -> None:
    """Check ``metadata.json`` (it holds the risk bands and the artifacts' checksums)
    against the version's recorded checksums, where they were recorded.

    Raises:
        RegistryError: It was altered since registration.
    """
    expected = _checksums(folder).get(MODEL_METADATA)
    if expected is not None and file_sha256(folder / MODEL_METADATA) != expected:
        raise RegistryError(
            f"{folder / MODEL_METADATA}: does not match its recorded SHA-256 (check: recorded "
            "checksum; the file was altered; re-register the version with `ml train`)"
        )


def last_seen_day(metadata: dict[str, Any]) -> dt.date:
    """The last day a version learned from: the end of its fit period, of the holdout it
    stopped early on, and the day before its as-of date, whichever is latest. The version
    scores only days after it (:func:`load_model`).

    Raises:
        RegistryError: The metadata has no readable window.
    """
    try:
        window = metadata["window"]
        days = [
            dt.date.fromisoformat(str(metadata["as_of"])) - dt.timedelta(days=1),
            *(dt.date.fromisoformat(str(window[k])) for k in ("fit_end", "validation_end")),
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(
            f"{metadata.get('version', 'a version')}: metadata without a readable training "
            f"window ({exc!r}); the days it learned from are unknown, so it scores none "
            "(retrain with `ml train --as-of D`)"
        ) from exc
    return max(days)


def first_unseen_day(metadata: dict[str, Any]) -> dt.date:
    """The first day a version may score: the day after :func:`last_seen_day`."""
    return last_seen_day(metadata) + dt.timedelta(days=1)


def load_model(settings: Settings, version: str):
    """Load a version's classifier and metadata.

    The classifier refuses to score a flight of a day the version learned from
    (:func:`last_seen_day`; see :meth:`ml.models.CalibratedClassifier.check_unseen`): the
    registry is the one door to a registered model, so every path that scores with one
    is held to the point-in-time rule.

    Raises:
        RegistryError: The version is missing, a file fails its checksum, or its
            artifact cannot be read.
    """
    from ml.models import load_classifier

    folder = version_dir(settings, version)
    metadata = load_metadata(settings, version)
    verify_artifacts(folder, metadata)  # no native parser ever sees an unverified file
    _verify_metadata(folder)
    try:
        model = load_classifier(folder)
    except Exception as exc:  # any library's parse error means the same thing here
        raise RegistryError(f"{folder}: model artifact unreadable ({exc})") from exc
    model.version_ = version
    model.last_seen_day_ = last_seen_day(metadata)
    return model, metadata
