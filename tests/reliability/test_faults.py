"""A kill at every write boundary of ingest, publish, predict, register and the catalog
refresh.

Every write of ours ends in a rename (``os.replace``, or one ``renameat2`` exchange of
two folders). A child process runs the step with those calls counted and exits hard
(``os._exit``: no handler, no cleanup, like ``kill -9``) just before the N-th one, for
every N the step makes. After each kill the published state must be the old one or the
new one, never a mix (per file, and per date across the marts); then a clean re-run
must leave exactly the bytes of an uninterrupted run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ml.paths import PUBLISHED_MARTS
from tests.conftest import REPO, make_settings
from tests.reliability.conftest import digests

KILLED = 137
# A server that imports the steps once, then forks a child per request: the child runs
# the step with the renames counted and dies hard at the N-th one. A fork starts in a
# millisecond where a new interpreter and its imports take seconds, and a kill point
# costs two runs (the killed one and the retry).
SERVER = """
import datetime as dt, json, os, signal, sys, tempfile, traceback
from ml import io as ml_io, registry
from ml.ingest import ingest
from ml.model_card import card_files
from ml.predict import predict
from ml.recalibration import recalibrate
from ml.transform import publish
from ml.warehouse import refresh_catalog
from tests.conftest import make_settings
# What the steps import on first use.
import great_expectations, lightgbm, xgboost, sklearn.linear_model, vl_convert  # noqa


def register_again(settings):
    # Register the champion's version again, from its own files, as a retrain of the
    # same as-of date with the same data does.
    version = registry.get_alias(settings, "champion")
    model, metadata = registry.load_model(settings, version)
    kept = {k: v for k, v in metadata.items() if k not in ("artifacts", "libraries", "git_commit")}
    registry.register(
        settings, model, kept, registry.load_metrics(settings, version),
        registry.load_profile(settings, version), documents=card_files,
    )


STEPS = {
    "publish": lambda settings, days: publish(settings, days[0], days[-1]),
    "predict": lambda settings, days: predict(settings, days[0]),
    "recalibrate": lambda settings, days: recalibrate(settings, days[0]),
    "ingest": lambda settings, days: ingest(settings, days[0], days[-1]),
    "register": lambda settings, days: register_again(settings),
    "refresh": lambda settings, days: refresh_catalog(settings),
}


def child(request):
    signal.alarm(600)  # a step that hangs ends here (SIGALRM), as a timeout would
    kill_at, calls = request["kill_at"], [0]

    def counted(real):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os._exit(137)
            return real(*args, **kwargs)
        return call

    os.replace = counted(os.replace)
    ml_io._renameat2_exchange = counted(ml_io._renameat2_exchange)
    settings = make_settings(request["data_dir"], raw_source=request["source"])
    STEPS[request["step"]](settings, [dt.date.fromisoformat(d) for d in request["days"]])
    print(f"RENAMES {calls[0]}", file=sys.stderr)


for line in sys.stdin:
    request = json.loads(line)
    with tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            os.dup2(err.fileno(), 2)
            code = 0
            try:
                child(request)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stderr.flush()
            os._exit(code)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    print(json.dumps({"returncode": status, "stderr": stderr}), flush=True)
"""
_server: subprocess.Popen | None = None


@pytest.fixture(scope="module", autouse=True)
def _step_server():
    yield
    global _server
    if _server is not None:
        _server.stdin.close()
        _server.wait(timeout=60)
        _server = None


def _step(data_dir: Path, step: str, days: list[dt.date], kill_at: int = 0, source: str = ""):
    """Run ``step`` in a child process (killed before its ``kill_at``-th rename, if any);
    its return code and standard error."""
    global _server
    if _server is None:
        _server = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    request = {
        "kill_at": kill_at,
        "data_dir": str(data_dir),
        "source": source,
        "step": step,
        "days": [d.isoformat() for d in days],
    }
    _server.stdin.write(json.dumps(request) + "\n")
    _server.stdin.flush()
    answer = json.loads(_server.stdout.readline())
    return subprocess.CompletedProcess(_server.args, answer["returncode"], "", answer["stderr"])


def _renames(proc) -> int:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stderr.rsplit("RENAMES ", 1)[1].split()[0])


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _date_state(data_dir: Path, day: dt.date) -> tuple:
    paths = make_settings(data_dir).paths
    return tuple(_sha(paths.mart_partition(mart, day)) for mart in PUBLISHED_MARTS)


def _catalog_readable(data_dir: Path) -> None:
    path = make_settings(data_dir).paths.warehouse
    if path.exists():
        with duckdb.connect(str(path), read_only=True) as con:
            names = [row[0] for row in con.execute("select name from catalog_views").fetchall()]
            assert names
            for name in names:  # every view answers: no dangling link, no half file
                con.execute(f"select count(*) from {name}").fetchall()


def _published(data_dir: Path) -> tuple[dict[str, str], dict[str, str] | None]:
    """The published files' digests, and the catalog's views with the folder's own path
    taken out (a DuckDB file's bytes depend on where its views point and when it was
    written, so the catalog is compared by what it holds), and the audit log's entries
    without their wall-clock times."""
    from ml.warehouse import catalog_views

    files = digests(data_dir)
    files.pop("warehouse.duckdb", None)
    audit = make_settings(data_dir).paths.model_audit_log
    if audit.exists():  # the entries, without when each was written
        entries = [{k: v for k, v in json.loads(line).items() if k != "at"}
                   for line in audit.read_text().splitlines() if line.strip()]  # fmt: skip
        files[str(audit.relative_to(data_dir))] = json.dumps(entries, sort_keys=True)
    views = catalog_views(make_settings(data_dir).paths.warehouse)
    if views is not None:
        views = {name: sql.replace(str(data_dir), "<data>") for name, sql in views.items()}
    return files, views


@pytest.fixture
def kill_everywhere(tmp_path, record_property):
    """``_kill_everywhere`` in the test's folder; the number of kill points is recorded
    as the test's ``kill_points`` property (RELIABILITY.md's figures come from it)."""

    def run(prepare, step: str, days: list[dt.date], check_between, source: str = "") -> int:
        total = _kill_everywhere(prepare, step, days, check_between, tmp_path, source)
        record_property("kill_points", total)
        return total

    return run


def _kill_everywhere(
    prepare, step: str, days: list[dt.date], check_between, tmp_path: Path, source: str = ""
) -> int:
    """Run ``step`` once through, then killed before each of its renames; returns the
    number of kill points."""
    clean = tmp_path / "clean"
    prepare(clean)
    old = clean.with_name("old")
    shutil.copytree(clean, old, symlinks=True)
    total = _renames(_step(clean, step, days, source=source))
    assert total >= 1
    finished = _published(clean)
    for kill_at in range(1, total + 1):
        data_dir = tmp_path / f"kill-{kill_at}"
        shutil.copytree(old, data_dir, symlinks=True)
        proc = _step(data_dir, step, days, kill_at, source=source)
        assert proc.returncode == KILLED, (kill_at, proc.stderr[-2000:])
        check_between(old, data_dir, clean)
        _catalog_readable(data_dir)
        _renames(_step(data_dir, step, days, source=source))  # the retry
        assert _published(data_dir) == finished, kill_at
        shutil.rmtree(data_dir)
    return total


D1, D2 = dt.date(2013, 3, 20), dt.date(2013, 3, 21)


def _links_resolve(data_dir: Path) -> None:
    """No partition link of a mart dangles (DuckDB's globs skip one; Polars' scan of the
    mart's folder fails on it)."""
    paths = make_settings(data_dir).paths
    for mart in PUBLISHED_MARTS:
        for entry in paths.mart(mart).glob("flight_date=*"):
            assert entry.exists(), f"{entry} -> {os.readlink(entry)} dangles"


def _unpublish(data_dir: Path, day: dt.date) -> None:
    """Make ``day`` a date never published: no link, no generation."""
    paths = make_settings(data_dir).paths
    link = paths.mart_date_link(day)
    shutil.rmtree(link.parent / os.readlink(link))
    link.unlink()
    for mart in PUBLISHED_MARTS:
        (paths.mart(mart) / f"flight_date={day}").unlink()


def _as_plain_folders(data_dir: Path, day: dt.date) -> None:
    """Make ``day`` as a copy without links (or an older layout) holds it: a real folder
    per mart, no link of the date."""
    paths = make_settings(data_dir).paths
    link = paths.mart_date_link(day)
    generation = link.parent / os.readlink(link)
    for mart in PUBLISHED_MARTS:
        partition = paths.mart(mart) / f"flight_date={day}"
        partition.unlink()
        shutil.copytree(generation / mart, partition)
    shutil.rmtree(generation)
    link.unlink()


@pytest.mark.parametrize("d2_before", ["published", "never published", "plain folders"])
def test_a_publish_killed_at_any_rename_leaves_each_date_whole(
    built_data, kill_everywhere, d2_before
):
    """D1 is published again from new raw data; D2 was published before, or is new, or
    is held as real folders (a copy made without links)."""
    from ml.transform import build
    from ml.validate import validate_features

    def prepare(data_dir: Path) -> None:
        shutil.copytree(built_data, data_dir, symlinks=True)
        settings = make_settings(data_dir)
        # New raw data for D1, so that the new build differs from the published one.
        raw = settings.paths.raw_partition("flights", D1)
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(raw)
        delays = pc.add(table.column("arr_delay"), 30)
        pq.write_table(
            table.set_column(table.schema.get_field_index("arr_delay"), "arr_delay", delays), raw
        )
        build(settings, D1, D2)
        validate_features(settings, D1, D2, built=True)
        if d2_before == "never published":
            _unpublish(data_dir, D2)
        elif d2_before == "plain folders":
            _as_plain_folders(data_dir, D2)

    def between(old: Path, killed: Path, new: Path) -> None:
        for day in (D1, D2):
            states = (_date_state(old, day), _date_state(new, day))
            if day == D2 and d2_before == "plain folders":
                # Folders without links switch mart by mart, the first time only; the
                # date never goes missing from any of them.
                for mart, state in enumerate(_date_state(killed, day)):
                    assert state in (states[0][mart], states[1][mart]) and state, mart
            else:
                assert _date_state(killed, day) in states, day
        _links_resolve(killed)

    kill_points = kill_everywhere(prepare, "publish", [D1, D2], between)
    assert kill_points >= 2 * (len(PUBLISHED_MARTS) + 1)


def test_a_predict_killed_at_any_rename_leaves_the_old_or_the_new_partition(
    trained_data, kill_everywhere
):
    from ml import registry

    def prepare(data_dir: Path) -> None:
        shutil.copytree(trained_data, data_dir, symlinks=True)
        settings = make_settings(data_dir)
        aliases = settings.paths.models / "aliases.json"
        saved = aliases.read_bytes()
        aliases.unlink()  # the published partition: yesterday's heuristic fallback
        proc = _step(data_dir, "predict", [D1])
        assert proc.returncode == 0, proc.stderr[-2000:]
        aliases.write_bytes(saved)
        assert registry.get_alias(settings, "champion")

    def between(old: Path, killed: Path, new: Path) -> None:
        path = make_settings(killed).paths.predictions_partition(D1)
        relative = path.relative_to(killed)
        assert _sha(path) in (_sha(old / relative), _sha(new / relative))

    kill_everywhere(prepare, "predict", [D1], between)


def test_a_recalibration_killed_at_any_rename_leaves_no_revision_or_the_whole_one(
    trained_data, kill_everywhere
):
    """The revision file, then the model card with it (Markdown and HTML), then the audit
    entry: after a kill each file is old or new, the audit log has no entry yet, and the
    retry completes them, the entry once."""
    day = D1 + dt.timedelta(days=4)  # 03-15..03-21 matured, 03-22 held back

    def prepare(data_dir: Path) -> None:
        shutil.copytree(trained_data, data_dir, symlinks=True)

    def between(old: Path, killed: Path, new: Path) -> None:
        before, after, now = digests(old), digests(new), digests(killed)
        for key in before.keys() | after.keys() | now.keys():
            if key != "models/audit.jsonl":
                assert now.get(key) in (before.get(key), after.get(key)), key
        assert now["models/audit.jsonl"] == before["models/audit.jsonl"]

    # four renames: the revision, the two cards, then the version's checksums (a kill
    # before the last leaves the revision unrecorded, so never used, until the retry)
    assert kill_everywhere(prepare, "recalibrate", [day], between) == 4


def test_an_ingest_killed_at_any_rename_leaves_every_file_old_or_new(
    tmp_path, package_source, kill_everywhere
):
    days = [dt.date(2013, 1, 1), dt.date(2013, 1, 2)]
    source = tmp_path / "source"

    def prepare(data_dir: Path) -> None:
        source.mkdir(exist_ok=True)
        for name in ("weather", "planes", "airports", "airlines"):
            shutil.copy(package_source / f"{name}.csv", source / f"{name}.csv")
        shutil.copy(package_source / "flights.csv.zip", source / "flights.csv.zip")
        settings = make_settings(data_dir, raw_source=str(source))
        from ml.ingest import ingest

        ingest(settings, days[0], days[-1])
        text = (source / "weather.csv").read_text()
        (source / "weather.csv").write_text(text.replace(",1012,10,", ",1012,9,", 5))

    def between(old: Path, killed: Path, new: Path) -> None:
        for relative in digests(new):
            assert _sha(killed / relative) in (_sha(old / relative), _sha(new / relative))

    kill_everywhere(prepare, "ingest", days, between, source=str(source))


def _stale(path: Path) -> Path:
    """A temporary as a writer killed two hours ago left it."""
    import os
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a file")
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    return path


def test_temporaries_of_killed_writers_do_not_survive_the_next_run(trained_copy):
    """What a kill mid-write leaves (``.part-0.parquet.<random>.tmp``, a generation
    folder never renamed) is removed by the next run of the step that owns the folder."""
    settings = make_settings(trained_copy)
    paths = settings.paths
    prediction = _stale(paths.predictions_partition(D1).with_name(".part-0.parquet.k1.tmp"))
    generation = _stale(paths.mart_dates / f".{D1}.k1.tmp" / "flights" / "part-0.parquet")
    catalog = _stale(paths.warehouse.with_name(".warehouse.duckdb.k1.tmp"))
    assert _renames(_step(trained_copy, "predict", [D1])) >= 1
    assert not prediction.exists() and not catalog.exists()
    from ml.transform import build, publish
    from ml.validate import validate_features

    build(settings, D1, D1)
    validate_features(settings, D1, D1, built=True)
    publish(settings, D1, D1)
    assert not generation.parent.parent.exists()
    fresh = paths.predictions_partition(D1).with_name(".part-0.parquet.live.tmp")
    fresh.write_bytes(b"a writer at work")  # young: another process may be writing it
    _renames(_step(trained_copy, "predict", [D1]))
    assert fresh.exists()


def test_a_registration_killed_at_any_rename_leaves_the_version_old_or_new(
    trained_data, kill_everywhere
):
    from ml import registry

    def prepare(data_dir: Path) -> None:
        shutil.copytree(trained_data, data_dir, symlinks=True)
        # The version as an older registration left it: a model card written differently.
        settings = make_settings(data_dir)
        folder = registry.version_dir(settings, registry.get_alias(settings, "champion"))
        card = folder / "model_card.md"
        card.write_text(card.read_text() + "\nAn older card.\n")

    def between(old: Path, killed: Path, new: Path) -> None:
        models = make_settings(killed).paths.models
        version = registry.get_alias(make_settings(killed), "champion")
        state = {k: v for k, v in digests(killed, ("models",)).items() if f"/{version}/" in k}
        choices = [
            {k: v for k, v in digests(root, ("models",)).items() if f"/{version}/" in k}
            for root in (old, new)
        ]
        assert state in choices
        assert registry.version_dir(make_settings(killed), version).parent == models

    kill_points = kill_everywhere(prepare, "register", [D1], between)
    assert kill_points >= 3  # the version's files, then the swap


def test_a_catalog_refresh_killed_at_its_rename_leaves_the_old_catalog(
    trained_data, kill_everywhere
):
    from ml.warehouse import _build_catalog, _views, catalog_views

    def prepare(data_dir: Path) -> None:
        shutil.copytree(trained_data, data_dir, symlinks=True)
        settings = make_settings(data_dir)
        # A catalog that lacks a view of the datasets on disk: the refresh must add it.
        views = _views(settings)
        _build_catalog(settings.paths.warehouse, {"flights": views["flights"]})

    def between(old: Path, killed: Path, new: Path) -> None:
        def held(root: Path):
            return _published(root)[1]

        assert held(killed) in (held(old), held(new))
        assert catalog_views(make_settings(killed).paths.warehouse) is not None

    assert kill_everywhere(prepare, "refresh", [D1], between) == 1


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_killed_transform_takes_its_dbt_child_with_it_and_the_retry_runs_at_once(
    built_data, tmp_path
):
    """``kill -9`` of ``ml transform`` while dbt runs: the dbt child dies too (it would
    otherwise hold dbt's DuckDB lock), and the same command, run at once, succeeds."""
    import os
    import signal
    import time

    from tests.reliability.conftest import ML, run_ml

    data_dir = tmp_path / "data"
    shutil.copytree(built_data, data_dir, symlinks=True)
    window = ["--start", str(D1), "--end", str(D2)]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(data_dir),
        "ML_DATA_DIR": str(data_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    step = subprocess.Popen([ML, "transform", *window], env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    dbt = []
    while not dbt and time.monotonic() < deadline:
        dbt = _children(step.pid)
        time.sleep(0.05)
    assert dbt, "dbt never started"
    time.sleep(0.5)  # dbt is starting (its imports alone take longer than the wait below)
    assert Path(f"/proc/{dbt[0]}").exists()
    os.kill(step.pid, signal.SIGKILL)
    step.wait(timeout=30)
    deadline = time.monotonic() + 1.0
    while Path(f"/proc/{dbt[0]}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    state = Path(f"/proc/{dbt[0]}/stat")
    assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    retry = run_ml("transform", *window, data_dir=data_dir)
    assert retry.returncode == 0, retry.stderr[-2000:]
