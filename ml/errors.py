"""The errors of the pipeline: one hierarchy, so that callers catch one base.

Every error the package raises on purpose is an :class:`MLError`. Its message is one
line that names what is wrong, where (the file, column and check) and what to do. The
``retryable`` flag says whether running the same step again can succeed without anyone
changing anything: a held lock or a busy disk can clear, a malformed file cannot. The
CLI prints the message of an ``MLError`` and exits 1; the DAGs turn a non-retryable one
into a failure without retries (``dags/pipeline_defaults.py``). Anything that is not an
``MLError`` is a bug and keeps its traceback.

The concrete classes also derive from the built-in exception they refine (``ValueError``,
``LookupError``, ``RuntimeError``, ``OSError``), so code written against those still works.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator

# C0 and C1 control characters (escape sequences start with one), DEL, and the Unicode
# line and paragraph separators: none belongs in a one-line message on a terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` safe to print on one terminal line: every control character (a newline,
    an escape that would retitle the window or move the cursor) shown as its escape,
    e.g. ``\\x1b``. For messages, and for any text from a person or a file we print."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


class MLError(Exception):
    """Base of every error the package raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(MLError, ValueError):
    """A setting, argument or option is missing, unknown or of the wrong type."""


class DataError(MLError, ValueError):
    """Input data is missing or malformed; the message names the file, column and check."""


class ValidationError(DataError):
    """A batch failed its expectation suite."""


class LeakageError(DataError):
    """A training or scoring split would use information from after its cutoff."""


class RegistryError(MLError, LookupError):
    """A model version or alias does not exist, or one of its files is unreadable."""


class TransformError(MLError, RuntimeError):
    """dbt failed; the message carries the failing models and tests."""


class StorageError(MLError, OSError):
    """A file of ours could not be read or written (disk full, lock held, corrupt file).

    Retryable unless said otherwise: a lock is released and space freed without a change
    to the code or the data.
    """

    retryable = True


# -- the one boundary ---------------------------------------------------------------------
# What the OS says, what to do, and whether the same step can succeed again unchanged.
_ERRNO_HINTS: dict[int, tuple[str, bool]] = {
    errno.ENOSPC: ("free space on that disk and run the step again", True),
    errno.EDQUOT: ("free space on that disk and run the step again", True),
    errno.EAGAIN: ("run the step again", True),
    errno.EBUSY: ("run the step again", True),
    errno.EINTR: ("run the step again", True),
    errno.EIO: ("check the disk, then run the step again", True),
    errno.EACCES: ("check the file's or folder's owner and permissions", False),
    errno.EPERM: ("check the file's or folder's owner and permissions", False),
    errno.EROFS: ("the disk is read-only; point ML_DATA_DIR at a writable folder", False),
    errno.ELOOP: ("a symbolic link points, through others, back to itself; fix the link", False),
    errno.ENOTDIR: ("a file stands where a folder is expected; move it away", False),
    errno.EISDIR: ("a folder stands where a file is expected; move it away", False),
    errno.ENAMETOOLONG: ("use a shorter path", False),
    errno.EMFILE: ("too many open files; raise the limit (ulimit -n) and run it again", True),
}


def os_error(exc: OSError, path: object = None, action: str = "use") -> StorageError:
    """One line for a failed read or write: the file, what failed, what to do, and
    whether a retry helps (a full disk can be freed; a permission stays as it is)."""
    where = path if path is not None else exc.filename
    # an error the OS did not number (a library's own OSError) is not known to clear
    unknown = ("check the file", False) if exc.errno is None else ("run the step again", True)
    hint, retryable = _ERRNO_HINTS.get(exc.errno, unknown)
    if exc.errno == errno.ENOENT:
        hint, retryable = "it was removed while the step ran, or never made; run it again", True
    what = exc.strerror or str(exc)
    prefix = f"{where}: " if where is not None else ""
    return StorageError(f"{prefix}could not {action} ({what}); {hint}", retryable=retryable)


# Decompression errors of the standard library (zlib, zip, gzip, bz2, lzma), by name so
# that this module imports none of them.
_DECOMPRESSION = ("error", "BadZipFile", "BadGzipFile", "LZMAError", "LargeZipFile")


def translated(exc: BaseException) -> MLError | None:
    """The :class:`MLError` an error of the OS, of memory or of decompression stands
    for, with the file where one is known; None for anything else (a bug, which keeps
    its traceback)."""
    if isinstance(exc, MLError):
        return exc
    if isinstance(exc, BrokenPipeError):  # the reader of our output left: the CLI's to handle
        return None
    if isinstance(exc, MemoryError):
        return MLError(
            "out of memory (a file larger than this machine can hold?); lower the input, "
            "raise ML_SOURCE_MAX_BYTES only with memory to match, or give the step more",
            retryable=False,
        )
    if type(exc).__name__ in _DECOMPRESSION and type(exc).__module__ in (
        "zlib",
        "zipfile",
        "gzip",
        "lzma",
        "_lzma",
        "bz2",
    ):
        return DataError(f"a compressed file could not be read ({exc}; check: compression)")
    if isinstance(exc, EOFError):  # what zlib, gzip and lzma raise for a file cut short
        return DataError(f"a compressed file ends early ({exc}; check: compression)")
    if isinstance(exc, OSError):
        return os_error(exc)
    return None


@contextlib.contextmanager
def boundary() -> Iterator[None]:
    """The one place where errors leave ``ml``: the CLI and every DAG task run their step
    inside it. An error of the OS, of memory or of decompression leaves as the
    :class:`MLError` it stands for (:func:`translated`), and every message as one line
    without control characters (:func:`printable`); anything else is a bug and keeps
    its traceback."""
    try:
        yield
    except Exception as exc:
        error = translated(exc)
        if error is None:
            raise
        message = printable(str(error).replace("\n", " "))
        if error is exc and message == str(exc):
            raise
        raise type(error)(message, retryable=error.retryable) from exc
