"""Landing: raw files are staged, and published only with the marts built from them.

``ingest`` checks a run's source files (types, dates, the raw suites) and writes their
partitions to ``staging/raw/`` (:meth:`ml.paths.Paths.raw_staging`), not to ``raw/``. dbt
reads ``dbt/raw/``: the layout of ``raw/`` in which every file is a link to its staged
version where one waits and to the published one otherwise (:func:`link_candidate`). So
dbt's tests (keys, uniqueness, relationships, the leakage test) and the feature suite
judge the raw files before anyone else sees them:

- when they pass, ``publish`` moves the staged files the build read into ``raw/`` (one
  rename each) right after it switches the marts built from them; the build keeps links
  to exactly those files (:func:`keep_judged`, :func:`publish_judged`), so a file staged
  by another ingest meanwhile waits for the next build;
- when one fails, the staged files go to ``quarantine/<window>/raw/`` with a reason that
  names the source file each came from, and the check that failed
  (:func:`quarantine_staged`): every published file, raw included, stays as it was, and
  the next run reads the published raw again, so a correct file landed later succeeds
  with no cleanup.

The staging area is one per data folder: a build reads every staged file, whichever
ingest staged it; a failed build quarantines them all.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ml.errors import MLError
from ml.io import TMP_SUFFIX, file_lock, read_json, write_json
from ml.paths import PART_FILE, Paths

log = logging.getLogger(__name__)


def staged_files(paths: Paths) -> dict[Path, Path]:
    """Every staged raw file and the published file it replaces, in path order."""
    root = paths.raw_staging
    if not root.is_dir():
        return {}
    return {
        staged: paths.raw / staged.relative_to(root)
        for staged in sorted(root.rglob(PART_FILE))
        if not any(part.startswith(".") for part in staged.relative_to(root).parts)
    }


def record_source(paths: Paths, table: str, source: Path) -> None:
    """Remember which source file ``table``'s staged files were read from."""
    paths.raw_staging.mkdir(parents=True, exist_ok=True)
    with file_lock(paths.raw_staging / ".lock"):
        sources = staged_sources(paths)
        if sources.get(table) != str(source):
            write_json({**sources, table: str(source)}, paths.raw_staged_sources)


def staged_sources(paths: Paths) -> dict[str, str]:
    """Table to the source file its staged files were read from (empty when unknown)."""
    path = paths.raw_staged_sources
    if not path.exists():
        return {}
    try:
        sources = read_json(path)
    except MLError as exc:  # a record only: the staged files themselves count
        log.warning("%s: unreadable (%s); the staged files' sources are not named", path, exc)
        return {}
    return sources if isinstance(sources, dict) else {}


def _link(target: Path, link: Path) -> None:
    """``link`` as a hard link to ``target`` (the bytes stay those of this moment even if
    ``target`` is replaced), or a symbolic one across file systems."""
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(target, link)
    except OSError:
        os.symlink(target.resolve(), link)


def link_candidate(paths: Paths) -> dict[Path, Path]:
    """Rebuild ``dbt/raw/`` (the caller holds dbt's lock): ``raw/``'s layout with each file
    linked to its staged version, or to the published one. Returns the staged files the
    build reads: published path to staged path."""
    root = paths.dbt_raw
    shutil.rmtree(root, ignore_errors=True)
    files = {
        path: path
        for path in (sorted(paths.raw.rglob(PART_FILE)) if paths.raw.is_dir() else [])
        if not any(part.startswith((".", "_")) for part in path.relative_to(paths.raw).parts)
    }
    staged = {published: staged for staged, published in staged_files(paths).items()}
    files.update(staged)
    for published, target in files.items():
        _link(target, root / published.relative_to(paths.raw))
    return staged


def keep_judged(paths: Paths, staged: dict[Path, Path], build: Path) -> None:
    """Link the staged files a build read into ``<build>/raw/``: what its publish
    publishes, byte for byte, even if another ingest stages newer files meanwhile."""
    for published in staged:
        _link(
            paths.dbt_raw / published.relative_to(paths.raw),
            build / "raw" / published.relative_to(paths.raw),
        )


def publish_judged(paths: Paths, build: Path) -> list[str]:
    """Move the raw files a build read from the staging area (``<build>/raw/``) into
    ``raw/``, one rename each, and take them out of the staging area (a newer file staged
    since stays there, for the next build). The caller holds the publish lock and has
    just published the marts built from them. Returns the files, relative to the data
    folder."""
    judged = build / "raw"
    if not judged.is_dir():
        return []
    moved = []
    for path in sorted(judged.rglob(PART_FILE)):
        published = paths.raw / path.relative_to(judged)
        published.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, published)
        staged = paths.raw_staged(published)
        if staged.exists() and os.path.samefile(staged, published):
            staged.unlink()
        moved.append(str(published.relative_to(paths.root)))
    if moved and not staged_files(paths):
        paths.raw_staged_sources.unlink(missing_ok=True)
    log.info("published %d raw file(s) with the marts built from them", len(moved))
    return moved


def quarantine_staged(paths: Paths, label: str, check: str, failures: list[dict[str, Any]]) -> str:
    """Move every staged file to ``quarantine/<label>/raw/`` with ``reason_raw.json``:
    the source file each table came from, the check, and each failure (its source file,
    column and check where one is known). Returns a sentence for the error message
    (empty when nothing was staged)."""
    files = staged_files(paths)
    if not files:
        return ""
    sources = staged_sources(paths)
    folder = paths.quarantine_day(label) / "raw"
    staging = folder.with_name(f".raw.{os.getpid()}{TMP_SUFFIX}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for staged, published in files.items():
        dest = staging / published.relative_to(paths.raw)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, dest)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    tables = sorted({published.relative_to(paths.raw).parts[0] for published in files.values()})
    reason = {
        "batch": label,
        "check": check,
        "source_files": {table: sources.get(table) for table in tables},
        "failures": failures,
        "files": sorted(str(p.relative_to(paths.raw)) for p in files.values()),
    }
    write_json(reason, paths.quarantine_reason(label, "raw"))
    paths.raw_staged_sources.unlink(missing_ok=True)
    log.error("quarantined %d staged raw file(s) in %s: %s", len(files), folder, check)
    named = ", ".join(f"{t} from {sources.get(t, 'an unknown source')}" for t in tables)
    return (
        f"; the staged raw files ({named}) were quarantined in {folder}, and no published "
        "file changed"
    )
