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

import re

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
