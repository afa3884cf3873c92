"""Transform: run the dbt project (staging, intermediate, marts) over the landing zone.

dbt runs in a child process: dbt keeps global state, so one invocation per process is
the reliable way to call it from a long-lived worker. Its own DuckDB file and target
folder live under the data folder, so runs for different data folders never collide.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ml.config import Settings
from ml.dates import window_label
from ml.errors import ConfigError, StorageError, TransformError
from ml.io import (
    TMP_SUFFIX,
    dir_mode,
    file_lock,
    file_sha256,
    read_json,
    reading,
    remove_stale_temporaries,
    replace_link,
    write_json,
    write_parquet,
    write_text,
)
from ml.landing import (
    keep_judged,
    link_candidate,
    publish_judged,
    quarantine_staged,
    staged_sources,
)
from ml.paths import DBT_PROJECT_DIR, PART_FILE, PUBLISHED_MARTS, partition_days
from ml.validate import validated_digests

log = logging.getLogger(__name__)


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment dbt runs with: the data folder, DuckDB's threads (the thread
    budget) and no telemetry."""
    env = dict(os.environ)
    env["ML_DATA_DIR"] = str(settings.data_dir)
    env["DUCKDB_THREADS"] = str(settings.cpu_threads)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env.setdefault("DBT_PARTIAL_PARSE", "true")
    return env


def run_dbt(settings: Settings, args: list[str], project_dir: Path = DBT_PROJECT_DIR) -> str:
    """Run one dbt command and return its output.

    Args:
        settings: Gives the data folder.
        args: The dbt command and its options, e.g. ``["build"]``.
        project_dir: The dbt project (the repository's ``dbt_project/`` by default).

    Raises:
        TransformError: dbt exited non-zero; the message lists the failing nodes.
    """
    with dbt_lock(settings):
        return _run_dbt(settings, args, project_dir)


@contextlib.contextmanager
def dbt_lock(settings: Settings) -> Iterator[None]:
    """One dbt run at a time per data folder, from its inputs to its outputs."""
    settings.paths.dbt.mkdir(parents=True, exist_ok=True)
    with file_lock(settings.paths.dbt_lock, timeout=DBT_LOCK_TIMEOUT_SECONDS):
        yield


def _run_dbt(settings: Settings, args: list[str], project_dir: Path) -> str:
    """:func:`run_dbt`, with :func:`dbt_lock` held by the caller."""
    command = [
        sys.executable,
        "-c",
        "from dbt.cli.main import cli; cli()",
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(settings.paths.dbt_target),
        "--log-path",
        str(settings.paths.dbt_logs),
    ]
    log.info("running dbt %s", " ".join(args))
    proc = subprocess.run(
        command,
        env=dbt_env(settings),
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_dying_with(os.getpid()),
    )
    output = _ANSI.sub("", proc.stdout + proc.stderr)  # dbt colours its output on a TTY
    for line in output.splitlines():
        log.info("dbt | %s", line)
    if proc.returncode != 0 and any(m in output for m in _DISK_FULL):
        raise StorageError(
            f"{settings.paths.dbt}: dbt ran out of disk space ({'; '.join(m for m in _DISK_FULL if m in output)}); "
            "free space on that disk and run the step again"
        )
    if proc.returncode != 0 and "Could not set lock on file" in output:
        raise StorageError(
            f"{settings.paths.dbt_database}: held by another process (a dbt run of another "
            "data folder user?); run the step again once it is done"
        )
    if proc.returncode != 0:
        failures = [
            line.split(" ", 1)[-1].strip()
            for line in output.splitlines()
            if (" ERROR " in line or " FAIL " in line or "Error" in line) and "Done." not in line
        ]
        summary = "; ".join(dict.fromkeys(failures)) or output.strip().rsplit("\n", 1)[-1]
        raise TransformError(f"dbt {' '.join(args)} failed in {project_dir}: {summary}")
    return output


# A terminal's colour and cursor sequences: not part of a message.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# How DuckDB and the OS say a disk is full, in dbt's output: a retry can succeed once
# space is freed, unlike a failed test.
_DISK_FULL = ("No space left on device", "Disk quota exceeded", "could not write all bytes")
# One dbt at a time per data folder (dbt's own DuckDB file allows one writer): a second
# run waits this long for the first, then fails with a line that says so.
DBT_LOCK_TIMEOUT_SECONDS = 600
_PR_SET_PDEATHSIG = 1


def _dying_with(parent: int):
    """A ``preexec_fn`` for a child to be killed when ``parent`` dies, so a killed step
    never leaves dbt holding its DuckDB lock against the retry (Linux; elsewhere None,
    and the lock's timeout bounds the wait).

    libc is loaded here, in the parent: the child, between fork and exec, only calls it.
    """
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the call: follow it now
            os._exit(1)

    return preexec


# A build folder left this long by a killed run is debris (a live one is published or
# quarantined within minutes).
STALE_BUILD_SECONDS = 6 * 3600


def build(settings: Settings, start: dt.date | None = None, end: dt.date | None = None) -> Path:
    """``dbt build`` the marts for flight dates ``start..end`` into ``marts/_build/``.

    Without dates every landed day is built. With them, dbt reads only the window plus
    the history its trailing features need (``feature_lookback_days``).

    Returns:
        The build folder, ``marts/_build/<window>/``.
    """
    paths = settings.paths
    label = window_label(start, end)
    build_dir = paths.mart_build_dir(label)
    if start is not None and end is not None and end < start:
        raise ConfigError(f"end {end} is before start {start}")
    # Read by the dbt project at run time (macros/build_window.sql): passed as --vars,
    # the dates would make dbt parse the whole project again for every new day.
    window = {
        "start_date": start and start.isoformat(),
        "end_date": end and end.isoformat(),
        "lookback_days": settings.feature_lookback_days,
    }
    _remove_stale_builds(paths.mart_builds)
    # A stale build must never be published as this run's, nor an older publish of the
    # same window be taken for this build's.
    shutil.rmtree(build_dir, ignore_errors=True)
    paths.mart_published_record(label).unlink(missing_ok=True)
    paths.mart_builds.mkdir(parents=True, exist_ok=True)
    with dbt_lock(settings):
        shutil.rmtree(paths.dbt_outputs, ignore_errors=True)
        paths.dbt_outputs.mkdir(parents=True)
        write_json(window, paths.dbt_window)
        staged = link_candidate(paths)  # the published raw, the staged files in their place
        (paths.dbt_target / "run_results.json").unlink(missing_ok=True)
        try:
            _run_dbt(settings, ["build"], DBT_PROJECT_DIR)
        except TransformError as exc:
            failures = failed_nodes(paths)
            if not failures:  # dbt failed before judging the data: nothing to blame
                raise
            moved = quarantine_staged(paths, label, "dbt build", failures)
            raise TransformError(
                f"dbt build of {label}: " + "; ".join(f["message"] for f in failures) + moved
            ) from exc
        from ml.lineage import emit_dbt_events  # OpenLineage's client: only when a build ran

        emit_dbt_events(settings, DBT_PROJECT_DIR, paths.dbt_target)
        if settings.dbt_docs:
            _write_docs_if_changed(settings)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{label}.", suffix=TMP_SUFFIX, dir=paths.mart_builds)
        )
        for mart in PUBLISHED_MARTS:
            os.replace(paths.dbt_outputs / f"{mart}.parquet", staging / f"{mart}.parquet")
        keep_judged(paths, staged, staging)
        scheduled = paths.build_scheduled(label).name
        write_json(scheduled_flights(paths.dbt_raw / "flights"), staging / scheduled)
        os.chmod(staging, dir_mode())
        shutil.rmtree(build_dir, ignore_errors=True)
        os.rename(staging, build_dir)
    return build_dir


def scheduled_flights(flights: Path) -> dict[str, int]:
    """Rows of each ``flight_date=D`` partition of ``flights``, from the files' footers."""
    import pyarrow.parquet as pq

    return {
        day.isoformat(): pq.read_metadata(
            flights / f"flight_date={day.isoformat()}" / PART_FILE
        ).num_rows
        for day in partition_days(flights)
    }


# dbt's staging models, one per source table: stg_nycflights__<table>.
_STAGING_PREFIX = "stg_nycflights__"


def failed_nodes(paths) -> list[dict[str, Any]]:
    """The tests and models of the last ``dbt build`` that failed, each as the source file
    (where the node reads one source table), the column, the check and a message naming
    them; empty when dbt left no results of this run."""
    target = paths.dbt_target
    try:
        results = read_json(target / "run_results.json", TransformError)["results"]
        nodes = read_json(target / "manifest.json", TransformError)["nodes"]
    except (TransformError, KeyError, TypeError):
        return []
    sources = staged_sources(paths)
    failures = []
    for result in results:
        if result.get("status") not in ("fail", "error"):
            continue
        node = nodes.get(result.get("unique_id"), {})
        test = node.get("test_metadata") or {}
        kwargs = test.get("kwargs") or {}
        # a test is attached to the model it checks (a relationships test also depends
        # on the model it refers to)
        attached = node.get("attached_node") or next(
            (n for n in (node.get("depends_on") or {}).get("nodes", []) if n.startswith("model.")),
            result.get("unique_id", "?"),
        )
        model = attached.rsplit(".", 1)[-1]
        table = model.removeprefix(_STAGING_PREFIX) if model.startswith(_STAGING_PREFIX) else None
        columns = kwargs.get("combination_of_columns") or [
            c for c in (kwargs.get("column_name") or kwargs.get("field"),) if c
        ]
        check = test.get("name") or node.get("resource_type", "node")
        source = sources.get(table) if table else None
        if source:  # the staging model renames: name the source file's columns
            sql = nodes.get(attached, {}).get("raw_code", "")
            columns = [_source_column(sql, c) for c in columns]
        column = ", ".join(columns) or None
        column_read = column
        where = source or f"dbt model {model}"
        what = (
            f"column {column_read!r}"
            if len(columns) == 1
            else f"columns {column_read!r}"
            if columns
            else node.get("name", "?")
        )
        rows = result.get("failures")
        failures.append(
            {
                "source_file": source,
                "model": model,
                "column": column_read,
                "check": check,
                "dbt_node": result.get("unique_id"),
                "failing_rows": rows,
                "message": f"{where}: {what} failed {check} ("
                + (f"{rows} row(s); " if rows else "")
                + f"check: dbt {node.get('name', result.get('unique_id'))} on {model})",
            }
        )
    return failures


def _source_column(model_sql: str, column: str) -> str:
    """The source column a staging model renames (``faa as airport_code``, or through a
    cast) to ``column``; ``column`` itself when it keeps its name or is computed."""
    renamed = re.search(
        rf"(?:cast\(\s*)?\b(\w+)(?:\s+as\s+\w+\s*\))?\s+as\s+{re.escape(column)}\b",
        model_sql,
        flags=re.IGNORECASE,
    )
    return renamed.group(1) if renamed else column


def _write_docs_if_changed(settings: Settings) -> None:
    """After a build (the dbt lock held): the docs again if the project has changed since
    they were written. Docs are not data: a failure is a warning, the build goes on."""
    paths = settings.paths
    digest = project_digest()
    stamp = paths.dbt_docs.with_name("project.sha256")
    try:
        if paths.dbt_docs.exists() and stamp.read_text(encoding="utf-8") == digest:
            return
    except OSError:
        pass  # no stamp, or an unreadable one: write them
    try:
        _write_docs(settings, digest)
    except (TransformError, StorageError) as exc:
        log.warning("dbt docs not written (the build goes on): %s", exc)


def _write_docs(settings: Settings, digest: str) -> Path:
    """``dbt docs generate --static`` (the dbt lock held), its one page published
    atomically to ``docs/dbt/index.html``, then the project's digest beside it."""
    paths = settings.paths
    _run_dbt(settings, ["docs", "generate", "--static"], DBT_PROJECT_DIR)
    written = paths.dbt_target / "static_index.html"
    try:
        page = written.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TransformError(f"{written}: dbt's docs page is unreadable: {exc}") from exc
    write_text(docs_page(page), paths.dbt_docs)
    write_text(digest, paths.dbt_docs.with_name("project.sha256"))
    log.info("dbt docs written to %s", paths.dbt_docs)
    return paths.dbt_docs


# dbt's docs app (AngularJS) puts its templates in the page before it compiles them: an
# icon's ``<use xlink:href="{{ ... }}">`` is first a URL of that literal text, which the
# browser tries to fetch (and, sandboxed, reports as an error on every page). Angular's
# ``ng-attr-`` prefix sets an attribute only once it is interpolated; an icon takes SVG 2's
# plain ``href``, which Angular can set (not the namespaced ``xlink:href``). Only the
# elements that fetch (use, img) are rewritten: the manifest in the page (models' SQL and
# descriptions) is left as dbt wrote it.
_UNCOMPILED_URL = re.compile(r"(<(?:use|img)\s(?:[^<>]*?\s)?)(xlink:href|src)=(\\?[\"']\{\{)")
_SET_ONCE_INTERPOLATED = {"xlink:href": "ng-attr-href", "src": "ng-attr-src"}
# Its favicon link is a bundler's placeholder that was never replaced
# (``href="${require('./assets/favicons/favicon.ico')}"``): a request for a file that
# does not exist. An empty data URL asks for nothing.
_UNBUILT_URL = re.compile(r"""(<link\s(?:[^<>]*?\s)?)href=(\\?["'])\$\{require\([^)]*\)\}\2""")
# How docs_page rewrites the page is part of what the docs show: a change writes them again.
_DOCS_PAGE_REWRITES = "\0".join(
    [_UNCOMPILED_URL.pattern, _UNBUILT_URL.pattern, *_SET_ONCE_INTERPOLATED.values()]
)


def docs_page(html: str) -> str:
    """dbt's static docs page with every URL attribute holding an Angular expression
    (``{{ ... }}``) set once it is interpolated, and every placeholder URL left by dbt's
    bundler made empty: no request for a URL that is not one."""
    html = _UNCOMPILED_URL.sub(lambda m: f"{m[1]}{_SET_ONCE_INTERPOLATED[m[2]]}={m[3]}", html)
    return _UNBUILT_URL.sub(lambda m: f"{m[1]}href={m[2]}data:,{m[2]}", html)


def project_digest(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """SHA-256 of the dbt project's files (names and contents) and of the way its docs
    page is written: what its docs show."""
    digest = hashlib.sha256(_DOCS_PAGE_REWRITES.encode() + b"\0")
    for path in sorted(p for p in project_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _remove_stale_builds(builds: Path) -> None:
    import time

    if not builds.is_dir():
        return
    for entry in builds.iterdir():
        if entry.name.endswith(".published.json"):
            continue  # a window's record: publishing that window again must stay a no-op
        if time.time() - entry.lstat().st_mtime > STALE_BUILD_SECONDS:
            log.info("removing the stale build %s", entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def publish(
    settings: Settings, start: dt.date | None = None, end: dt.date | None = None
) -> dict[str, list[str]]:
    """Write the window's validated build into the marts' date partitions, then drop the build.

    Publishing a window again after its build was dropped returns what was published
    (``marts/_build/<window>.published.json``); a new build of the window clears that.

    All or nothing per date: a date's partitions of every mart are written into a new
    generation folder, then one link is replaced to switch them together
    (:func:`switch_date`). A reader sees the date's old build or its new one, never a
    mix; a kill leaves the old one published. Dates outside the build are not touched.

    Returns:
        The dates published per mart.
    """
    import pyarrow.parquet as pq

    from ml.warehouse import refresh_catalog

    paths = settings.paths
    label = window_label(start, end)
    record = paths.mart_published_record(label)
    # One publish at a time per data folder, from reading the build to dropping it.
    with file_lock(paths.publish_lock):
        if not paths.mart_build_dir(label).exists() and record.exists():
            # A retry after the build was published and dropped: nothing left to do.
            log.info("the build %s was already published (%s)", label, record)
            refresh_catalog(settings)
            return read_json(record, TransformError)
        tables = {}
        validated = validated_digests(paths, label)
        for mart in PUBLISHED_MARTS:
            path = paths.mart_build(mart, label)
            with reading(path, "build the window again with `ml transform`"):
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != validated.get(mart):
                    raise TransformError(
                        f"{path}: not the file that passed validation (another run rebuilt "
                        "the window since); validate the window again, then publish"
                    )
                table = pq.read_table(pa.BufferReader(data))
            # Every column nullable: DuckDB marks a column required when the rows it
            # happened to build have no null, and a day's partition must not depend on
            # which other days were built with it.
            nullable = pa.schema(
                [f.with_nullable(True) for f in table.schema], metadata=table.schema.metadata
            )
            tables[mart] = table.cast(nullable).sort_by(
                [("flight_date", "ascending"), ("flight_id", "ascending")]
            )
        remove_stale_temporaries(paths.mart_dates, recursive=False)
        published: dict[str, list[str]] = {mart: [] for mart in PUBLISHED_MARTS}
        # the marts of each date first, then the raw files they were built from
        days = sorted({d for t in tables.values() for d in t.column("flight_date").to_pylist()})
        for day in days:
            parts = {}
            for mart, table in tables.items():
                mask = pc.equal(
                    table.column("flight_date"),
                    pa.scalar(day, type=table.schema.field("flight_date").type),
                )
                part = table.filter(mask)
                if part.num_rows:
                    parts[mart] = part.drop_columns(["flight_date"])
                    published[mart].append(day.isoformat())
            before = _digest(paths.mart_partition_dir("flight_features", day) / PART_FILE)
            switch_date(paths, day, parts)
            _mark_superseded(paths, day, before, label)
        publish_judged(paths, paths.mart_build_dir(label))
        refresh_catalog(settings)
        # Record what was published, then drop the build in one rename: a kill at any
        # point leaves either the build (publishing it again gives the same bytes) or
        # the record.
        write_json(published, record)
        dropped = paths.mart_builds / f".{label}.{os.getpid()}{TMP_SUFFIX}"
        os.replace(paths.mart_build_dir(label), dropped)
    shutil.rmtree(dropped, ignore_errors=True)
    log.info("published %s", {m: f"{len(d)} dates" for m, d in published.items()})
    return published


def _digest(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _mark_superseded(paths, day: dt.date, before: str | None, label: str) -> None:
    """When a day already predicted gets features of other bytes (its raw files, or those
    its trailing features read, were landed again with other content), record that its
    predictions were made from superseded inputs; ``predict`` clears it."""
    after = _digest(paths.mart_partition_dir("flight_features", day) / PART_FILE)
    if before is None or before == after or not paths.predictions_partition(day).exists():
        return
    write_json(
        {
            "flight_date": day.isoformat(),
            "reason": f"its features were rebuilt from new inputs by the publish of {label} "
            "after it was predicted",
            "features_predicted_from": before,
            "features_now": after,
            "rescore": f"ml predict --date {day}",
        },
        paths.superseded_predictions(day),
    )
    log.warning(
        "the predictions of %s were made from superseded inputs (publish of %s)", day, label
    )


def switch_date(paths, day: dt.date, parts: dict[str, pa.Table]) -> None:
    """Publish ``parts`` (mart to the rows of ``day``) as the date's new generation.

    1. write every mart's file into ``_dates/.D.<id>.tmp/`` (a folder for every mart,
       empty where the mart has no rows that day) and rename it to ``_dates/.D.<id>/``
       (a kill before this leaves only a temporary behind);
    2. the first time a date is published, point ``_dates/D`` at a generation of empty
       folders, so that the links of step 3 never dangle and the date appears in every
       mart at once in step 4 (if a mart still holds the date as a real folder, written
       without links, point it at the new generation instead: that mart's folder is then
       swapped for its link without the date ever going missing);
    3. make sure each ``marts/<mart>/flight_date=D`` is a link to ``_dates/D/<mart>``;
    4. replace the link ``_dates/D`` by one to the new generation: one rename;
    5. delete generations older than the one just replaced (a reader that resolved the
       previous one a moment ago can still open its files).
    """
    dates = paths.mart_dates
    dates.mkdir(parents=True, exist_ok=True)
    tag = f".{day.isoformat()}."
    generation = _generation(dates, tag, parts)
    link = paths.mart_date_link(day)
    if not link.is_symlink():
        copied = any(
            paths.mart_partition_dir(mart, day).is_dir()
            and not paths.mart_partition_dir(mart, day).is_symlink()
            for mart in PUBLISHED_MARTS
        )
        replace_link(link, (generation if copied else _generation(dates, tag, {})).name)
    for mart in PUBLISHED_MARTS:
        _link_partition(paths, mart, day)
    previous = os.readlink(link)
    replace_link(link, generation.name)
    for old in dates.glob(f"{tag}*"):
        if old.name not in (generation.name, previous) and not old.name.endswith(TMP_SUFFIX):
            shutil.rmtree(old, ignore_errors=True)


def _generation(dates: Path, tag: str, parts: dict[str, pa.Table]) -> Path:
    """A new generation folder ``_dates/.D.<id>/`` holding a folder per mart and the
    file of each mart in ``parts``; written under a temporary name, then renamed."""
    staging = Path(tempfile.mkdtemp(prefix=tag, suffix=TMP_SUFFIX, dir=dates))
    os.chmod(staging, dir_mode())
    try:
        for mart in PUBLISHED_MARTS:
            (staging / mart).mkdir(mode=dir_mode())
            if mart in parts:
                write_parquet(parts[mart], staging / mart / PART_FILE)
        generation = staging.with_name(staging.name.removesuffix(TMP_SUFFIX))
        os.replace(staging, generation)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return generation


def _link_partition(paths, mart: str, day: dt.date) -> None:
    """``marts/<mart>/flight_date=D`` as a link to ``../_dates/D/<mart>``."""
    folder = paths.mart_partition_dir(mart, day)
    target = os.path.join("..", paths.mart_dates.name, day.isoformat(), mart)
    if not (folder.is_symlink() and os.readlink(folder) == target):
        folder.parent.mkdir(parents=True, exist_ok=True)
        replace_link(folder, target, scratch=paths.mart_dates)
