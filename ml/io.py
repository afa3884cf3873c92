"""Atomic writes and reads of our own files: how files land (``ml.paths`` knows where).

Every write goes to a temporary file in the destination's folder and is then renamed
over the destination, so a reader sees the old file or the new one, never half of one.
A date partition is a folder holding one ``part-0.parquet``; replacing it is one rename.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ml.errors import DataError, MLError, StorageError, os_error

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# Every temporary file a writer of ours makes ends so (see remove_stale_temporaries).
TMP_SUFFIX = ".tmp"
# A temporary this old in a folder that several writers share is a killed writer's.
STALE_SECONDS = 3600


def _umask() -> int:
    """The process's umask (read without changing it where /proc tells it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a published file gets: 0666 minus the umask (0644 under the usual 0022).

    ``mkstemp`` and ``mkdtemp`` create 0600 files and 0700 folders whatever the umask, so
    without this another user or a container reading the tables could open none of them.
    """
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode a published folder gets: 0777 minus the umask (0755 under 0022)."""
    return 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it over ``dest`` if the block succeeds.

    The temporary is named ``.<name>.<random>.tmp`` (see :func:`remove_stale_temporaries`)
    and gets the umask's mode before the rename. An ``OSError`` (disk full, permissions)
    becomes a :class:`StorageError` naming ``dest``; ``dest`` is then unchanged.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TMP_SUFFIX, dir=dest.parent)
        os.close(fd)
    except OSError as exc:
        raise os_error(exc, dest, "write") from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, dest)
    except StorageError:
        raise
    except OSError as exc:  # pyarrow's and duckdb's IO errors are OSErrors too
        raise os_error(exc, dest, "write") from exc
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(
    folder: Path, *, prefix: str = ".", recursive: bool = True, older_than: float = 0
) -> list[Path]:
    """Delete the temporaries a killed writer left under ``folder``; returns them.

    Only names :func:`atomic_path` makes (``.<name>.<random>.tmp``, and DuckDB's
    ``.wal`` beside one) are touched. Call it from the step that owns the folder, under
    the step's lock; where writers of the folder may run at once without one, pass
    ``older_than`` (seconds): a live writer's temporary is younger than its step.
    """
    import time

    now = time.time()
    if not folder.is_dir():
        return []
    pattern = f"**/{prefix}*.tmp*" if recursive else f"{prefix}*.tmp*"
    removed = []
    for path in folder.glob(pattern):
        name = path.name
        if not (name.endswith(TMP_SUFFIX) or name.endswith(TMP_SUFFIX + ".wal")):
            continue
        if older_than and now - path.lstat().st_mtime < older_than:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info("removed %d stale temporary file(s) under %s", len(removed), folder)
    return removed


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks (model artifacts, dbt builds)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def reading(source: Path | str, hint: str) -> Iterator[None]:
    """Turn a failed read of our own files (DuckDB, Arrow, Polars or the OS) into one line.

    A truncated Parquet file, say, raises deep inside DuckDB; the step then fails with a
    :class:`DataError` that names ``source`` and says what to do (``hint``), instead of a
    traceback. Errors of ours pass through unchanged.
    """
    import duckdb
    import polars
    import pyarrow

    try:
        yield
    except MLError:
        raise
    except OSError as exc:  # the disk, not the file's content: worth a retry
        raise os_error(exc, Path(source), "read") from exc
    except (duckdb.Error, pyarrow.ArrowException, polars.exceptions.PolarsError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{source}: unreadable ({detail}); {hint}") from exc


# The type of each partition key our tables use; DuckDB would guess the rest.
PARTITION_TYPES = {"flight_date": "date", "run_id": "varchar"}


def has_files(pattern: str) -> bool:
    """Whether any file matches ``pattern`` (a glob from :class:`ml.paths.Paths`)."""
    import glob

    return bool(glob.glob(pattern))


def partitions_relation(files: str, partition: str = "flight_date") -> str:
    """The one DuckDB spelling of a hive-partitioned read of ``files`` (a Paths glob).

    The partition key comes back as a column of its declared type (``flight_date`` a
    date, ``run_id`` a string); parts written before a column was added read as null.
    """
    return (
        f"read_parquet('{files}', hive_partitioning = true, union_by_name = true, "
        f"hive_types = {{'{partition}': {PARTITION_TYPES[partition]}}})"
    )


def duckdb_connect(database: str | Path = ":memory:", read_only: bool = False):
    """A DuckDB connection with as many threads as the package's thread budget
    (:func:`ml.thread_budget`, ``ML_THREADS``), not one per core of the machine."""
    import duckdb

    from ml import thread_budget

    return duckdb.connect(str(database), read_only=read_only, config={"threads": thread_budget()})


def read_partitions(
    files: str, sql: str, params: list, partition: str = "flight_date", *, hint: str | None = None
) -> pd.DataFrame | None:
    """Run ``sql`` over hive-partitioned Parquet files; None when no file matches.

    ``{files}`` in ``sql`` stands for :func:`partitions_relation`. Reads the Parquet
    directly, not the warehouse file, so it never waits for the catalog's writer; a
    damaged file is a :class:`DataError` naming it and ``hint`` (what rebuilds it).
    """
    if not has_files(files):
        return None
    hint = hint or "re-run the step that writes it for the days concerned"
    with reading(files, hint), duckdb_connect() as con:
        return con.execute(
            sql.replace("{files}", partitions_relation(files, partition)), params
        ).df()


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True, timeout: float | None = None) -> Iterator[bool]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) during the block.

    Yields whether the lock is held: always True when blocking without a timeout; False
    when ``blocking=False`` and another process holds it. With a timeout, waits that long
    and then raises a retryable :class:`StorageError` naming the file. The lock dies with
    its process, so a killed writer never leaves it held.
    """
    import fcntl
    import time

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise os_error(exc, path, "open the lock") from exc
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        flags = fcntl.LOCK_EX if blocking and timeout is None else fcntl.LOCK_EX | fcntl.LOCK_NB
        while True:
            try:
                fcntl.flock(fd, flags)
                held = True
                break
            except BlockingIOError:
                if deadline is None:
                    held = False
                    break
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"{path}: still locked by another process after {timeout:.0f} s "
                        "(another run of this step?); run it again when that one is done"
                    ) from None
                time.sleep(0.1)
        yield held
    finally:
        os.close(fd)  # releases the lock


def replace_link(link: Path, target: str, scratch: Path | None = None) -> None:
    """Point the symbolic link ``link`` at ``target`` in one rename (readers see the old
    target or the new one).

    The new link is made in ``scratch`` (default: beside ``link``; pass a folder on the
    same disk that no reader's glob covers: DuckDB's ``*`` matches hidden names too). A
    real folder at ``link`` (a copy of the data made without links, or an older layout)
    is swapped for the link in one exchange, then deleted.
    """
    temporary = (scratch or link.parent) / f".{link.name}.{os.getpid()}.link{TMP_SUFFIX}"
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    if link.is_dir() and not link.is_symlink():
        exchange_dirs(temporary, link)
        shutil.rmtree(temporary, ignore_errors=True)
    else:
        os.replace(temporary, link)


def exchange_dirs(new: Path, current: Path) -> None:
    """Atomically swap two folders: ``current`` gets ``new``'s content and ``new`` the old.

    One ``renameat2(RENAME_EXCHANGE)`` on Linux, so at no moment is ``current`` missing.
    Where the call does not exist, falls back to two renames (a moment without
    ``current``, which the caller's recovery repairs).
    """
    if _renameat2_exchange(new, current):
        return
    old = current.with_name(f".{current.name}.swap{TMP_SUFFIX}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(current, old)
    os.replace(new, current)
    os.replace(old, new)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange(a: Path, b: Path) -> bool:
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is None:
        return False
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel or filesystem
        return False
    raise OSError(err, os.strerror(err), str(b))


def write_parquet(table: pa.Table, dest: Path) -> Path:
    """Write ``table`` to ``dest`` atomically (zstd-compressed Parquet)."""
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return dest


def write_text(text: str, dest: Path) -> Path:
    """Write ``text`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return dest


def write_text_if_changed(text: str, dest: Path) -> bool:
    """Write ``text`` to ``dest`` atomically unless ``dest`` holds it already (an
    unreadable ``dest`` is replaced); whether it wrote."""
    try:
        if dest.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text(text, dest)
    return True


def json_text(obj: Any) -> str:
    """``obj`` as the indented JSON :func:`write_json` writes."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def append_json_line(entry: dict[str, Any], dest: Path) -> None:
    """Append ``entry`` to the JSON Lines file ``dest`` as one line, flushed to disk. A
    line cut short by a kill stays a line of its own: the next entry starts anew."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write((json.dumps(entry, sort_keys=True, default=str) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def read_json_lines(
    path: Path, what: str, valid: Callable[[dict[str, Any]], bool] = lambda entry: True
) -> list[dict[str, Any]]:
    """The entries of the JSON Lines file ``path`` (none if it is missing), in order. A
    line that is not a ``valid`` object (cut short by a kill, edited by hand) is left out,
    with a warning that names the file, the line and ``what`` an entry is."""
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not valid(entry):
                raise ValueError(f"not a {what}")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.warning("%s line %d: unreadable %s skipped (%s)", path, number, what, exc)
            continue
        entries.append(entry)
    return entries


def write_json(obj: Any, dest: Path) -> Path:
    """Write ``obj`` as indented JSON to ``dest`` atomically."""
    return write_text(json_text(obj), dest)


def read_json(path: Path, error: type[MLError] = DataError) -> Any:
    """Read a JSON file; a missing or unparsable one raises ``error`` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: unreadable ({exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from exc
