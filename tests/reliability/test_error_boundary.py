"""The one boundary (ml.errors.boundary): every error of the OS, of memory or of
decompression leaves ``ml`` as one line naming the file, what happened, whether a retry
helps and what to do; never as a traceback, never with a terminal's control characters.

Some cases are real files (a symbolic link loop, a gzip file named ``.csv``, a zip whose
member is far larger than the zip); the others raise, at a point of the step, the error
the OS would (a permission, a read-only disk, memory): the suite runs as root here, and
root reads and writes through any permission.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from ml.cli import main
from ml.errors import MLError, StorageError, boundary, printable
from tests.reliability.conftest import (
    END,
    START,
    digests,
    error_lines,
    ingest_in_process,
    run_ml,
)


def _one_line(code: int, stderr: str, command: str = "ingest") -> str:
    assert code == 1, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith(f"ml {command}: error: ")]
    assert len(lines) == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    assert printable(lines[0]) == lines[0]
    return lines[0]


def test_a_symbolic_link_loop_is_named_as_one(landing_copy, capsys, monkeypatch):
    source, data_dir, before = landing_copy
    (source / "weather.csv").unlink()
    (source / "weather.csv").symlink_to(source / "loop.csv")
    (source / "loop.csv").symlink_to(source / "weather.csv")
    line = _one_line(*ingest_in_process(data_dir, source, monkeypatch, capsys))
    assert f"{source / 'weather.csv'}: could not read the source file" in line
    assert "symbolic link" in line and "not found" not in line
    assert "retryable" not in line
    assert digests(data_dir, ("raw", "staging")) == before


def test_a_gzip_file_named_csv_is_named_as_one_not_printed(landing_copy, capsys, monkeypatch):
    source, data_dir, before = landing_copy
    path = source / "airlines.csv"
    path.write_bytes(gzip.compress(path.read_bytes() * 20))
    line = _one_line(*ingest_in_process(data_dir, source, monkeypatch, capsys))
    assert f"{path}: a gzip archive, not CSV text" in line
    assert len(line) < 400 + len(str(path)), line
    assert digests(data_dir, ("raw", "staging")) == before


@pytest.mark.parametrize("declared", ["honest", "plain file"])
def test_a_source_over_the_size_cap_is_refused_before_it_is_read(
    landing_copy, capsys, monkeypatch, declared
):
    """A zip of a few hundred kilobytes can hold gigabytes: the member's size is checked
    against ``source_max_bytes`` before it is read, and the read is bounded too."""
    source, data_dir, before = landing_copy
    flights = (source / "flights.csv").read_bytes()
    padded = flights + b"\n" * (64 * 2**20)  # 64 MiB once uncompressed
    if declared == "honest":
        (source / "flights.csv").unlink()
        with zipfile.ZipFile(source / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("flights.csv", padded)
        assert (source / "flights.csv.zip").stat().st_size < 2**20
        name = "flights.csv.zip"
    else:
        (source / "flights.csv").write_bytes(padded)
        name = "flights.csv"
    monkeypatch.setenv("ML_SOURCE_MAX_BYTES", str(16 * 2**20))
    line = _one_line(*ingest_in_process(data_dir, source, monkeypatch, capsys))
    assert f"{source / name}:" in line and "is larger than 16,777,216 bytes" in line, line
    assert "ML_SOURCE_MAX_BYTES" in line
    assert digests(data_dir, ("raw", "staging")) == before


def test_the_cap_holds_in_a_process_of_its_own(landing_copy):
    """Through the console script, its peak memory well under the member's size."""
    source, data_dir, before = landing_copy
    (source / "flights.csv").unlink()
    with (
        zipfile.ZipFile(source / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("flights.csv", "w", force_zip64=True) as member,
    ):
        block = b"0" * 2**20
        for _ in range(256):  # 256 MiB of zeros, about 256 kB compressed
            member.write(block)
    proc = run_ml(
        "ingest", "--start", str(START), "--end", str(END), data_dir=data_dir,
        ML_RAW_SOURCE=str(source), ML_SOURCE_MAX_BYTES=str(2**26),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = error_lines(proc)
    assert "is larger than 67,108,864 bytes" in line and "Traceback" not in proc.stderr
    assert digests(data_dir, ("raw", "staging")) == before


def _raising_on(monkeypatch, target: object, name: str, number: int, path: Path | None = None):
    """Make ``target.name`` raise the OSError ``number`` (for ``path``, where given)."""
    original = getattr(target, name)

    def refuse(*args, **kwargs):
        where = path if path is not None else (args[0] if args else None)
        if path is None or any(str(path) in str(a) for a in (*args, *kwargs.values())):
            raise OSError(number, os.strerror(number), str(where))
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, refuse)


def test_a_source_file_without_read_permission(landing_copy, capsys, monkeypatch):
    source, data_dir, before = landing_copy
    path = source / "planes.csv"
    _raising_on(monkeypatch, Path, "open", errno.EACCES, path)
    line = _one_line(*ingest_in_process(data_dir, source, monkeypatch, capsys))
    assert f"{path}: could not read the source file (Permission denied)" in line
    assert "owner and permissions" in line and "retryable" not in line
    assert digests(data_dir, ("raw", "staging")) == before


def test_a_read_only_data_folder_in_ingest(landing_copy, capsys, monkeypatch):
    source, data_dir, before = landing_copy
    _raising_on(monkeypatch, tempfile, "mkstemp", errno.EROFS)
    line = _one_line(*ingest_in_process(data_dir, source, monkeypatch, capsys))
    assert "Read-only file system" in line and "point ML_DATA_DIR at a writable folder" in line
    assert "retryable" not in line
    assert digests(data_dir, ("raw", "staging")) == before


def test_the_day_split_removed_while_it_is_written_is_retryable(landing_copy, capsys, monkeypatch):
    source, data_dir, before = landing_copy
    shutil.rmtree(data_dir / "source_index", ignore_errors=True)
    original = os.rename

    def remove_then_rename(src, dst, *args, **kwargs):
        if "source_index" in str(dst):
            shutil.rmtree(Path(dst).parent)
        return original(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", remove_then_rename)
    line = _one_line(*ingest_in_process(data_dir, source, monkeypatch, capsys))
    assert "could not write the day split" in line and line.endswith("(retryable: run it again)")
    monkeypatch.setattr(os, "rename", original)
    assert digests(data_dir, ("raw", "staging")) == before
    code, stderr = ingest_in_process(data_dir, source, monkeypatch, capsys)
    assert code == 0, stderr[-2000:]


def test_out_of_memory_is_one_line(landing_copy, capsys, monkeypatch):
    import ml.ingest

    source, data_dir, before = landing_copy

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(ml.ingest, "check_text", exhausted)
    line = _one_line(*ingest_in_process(data_dir, source, monkeypatch, capsys))
    assert "out of memory" in line and "ML_SOURCE_MAX_BYTES" in line
    assert digests(data_dir, ("raw", "staging")) == before


def test_a_read_only_registry_in_models_promote(trained_copy, capsys, monkeypatch):
    """``ml models promote`` takes the registry's lock first: a read-only disk there."""
    from ml.registry import read_aliases
    from tests.conftest import make_settings

    settings = make_settings(trained_copy)
    version = read_aliases(settings)["champion"]
    before = digests(trained_copy, ("models",))
    _raising_on(monkeypatch, os, "open", errno.EROFS, settings.paths.models)
    monkeypatch.setenv("ML_DATA_DIR", str(trained_copy))
    code = main(["models", "promote", version])
    line = _one_line(code, capsys.readouterr().err, "models")
    assert f"{settings.paths.models}" in line and "the disk is read-only" in line
    assert "retryable" not in line
    assert digests(trained_copy, ("models",)) == before


@pytest.mark.parametrize(
    ("raised", "kind", "retryable", "words"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/d/f"),
            StorageError,
            True,
            "free space",
        ),
        (PermissionError(errno.EACCES, "Permission denied", "/d/f"), StorageError, False, "owner"),
        (
            OSError(errno.ELOOP, "Too many levels of symbolic links", "/d/f"),
            StorageError,
            False,
            "link",
        ),
        (MemoryError(), MLError, False, "out of memory"),
        (EOFError("Compressed file ended"), MLError, False, "ends early"),
        (zipfile.BadZipFile("File is not a zip file"), MLError, False, "compressed"),
        (gzip.BadGzipFile("Not a gzipped file (b'ab')"), MLError, False, "compressed"),
    ],
)
def test_the_boundary_maps_each_kind_of_error(raised, kind, retryable, words):
    with pytest.raises(kind) as caught, boundary():
        raise raised
    assert caught.value.retryable is retryable
    assert words in str(caught.value)
    assert caught.value.__cause__ is raised


def test_the_boundary_keeps_a_bugs_traceback_and_cleans_every_message():
    with pytest.raises(KeyError), boundary():
        raise KeyError("a bug")
    with pytest.raises(MLError) as caught, boundary():
        raise MLError("a name from a file: \x1b]0;owned\x07 and a\nsecond line")
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)
    assert "\\x1b]0;owned" in str(caught.value)


@pytest.mark.airflow
def test_airflow_tasks_run_inside_the_same_boundary(monkeypatch):
    """A permission error in a task fails it at once (no retry can heal it); a full disk
    keeps Airflow's retries."""
    from airflow.exceptions import AirflowFailException

    monkeypatch.syspath_prepend(str(Path(__file__).parents[2] / "dags"))
    sys.modules.pop("pipeline_defaults", None)
    from pipeline_defaults import failing_fast

    with pytest.raises(AirflowFailException, match="owner and permissions"), failing_fast():
        raise PermissionError(errno.EACCES, "Permission denied", "/data/marts")
    with pytest.raises(StorageError, match="free space"), failing_fast():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/marts")


def _encrypted(data: bytes) -> bytes:
    """``data`` (a zip) with its member marked encrypted, as a password-protected zip."""
    raw = bytearray(data)
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    raw[local + 6] |= 0x01
    raw[central + 8] |= 0x01
    return bytes(raw)


def _corrupt_bzip2(folder: Path) -> bytes:
    buffer = zipfile.ZipFile(folder / "bz.zip", "w", zipfile.ZIP_BZIP2)
    buffer.writestr("flights.csv", (folder / "flights.csv").read_bytes())
    buffer.close()
    raw = bytearray((folder / "bz.zip").read_bytes())
    (folder / "bz.zip").unlink()
    start = raw.find(b"BZh")
    raw[start + 10 : start + 60] = b"\x00" * 50  # the stream's first block, damaged
    return bytes(raw)


@pytest.mark.parametrize("kind", ["encrypted", "bzip2 damaged"])
def test_a_zip_this_reader_cannot_open_is_named(landing_copy, capsys, monkeypatch, kind):
    source, data_dir, before = landing_copy
    if kind == "encrypted":
        plain = source / "plain.zip"
        with zipfile.ZipFile(plain, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(source / "flights.csv", "flights.csv")
        data = _encrypted(plain.read_bytes())
        plain.unlink()
    else:
        data = _corrupt_bzip2(source)
    (source / "flights.csv").unlink()
    (source / "flights.csv.zip").write_bytes(data)
    line = _one_line(*ingest_in_process(data_dir, source, monkeypatch, capsys))
    assert f"{source / 'flights.csv.zip'}: " in line and "zip" in line
    assert "retryable" not in line
    assert digests(data_dir, ("raw", "staging")) == before


def test_a_reader_that_leaves_is_not_an_error_of_ours():
    """``ml predictions show ... | head``: the CLI ends quietly with 141, as a shell does."""
    with pytest.raises(BrokenPipeError), boundary():
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")
