"""The README's command-line flows and the ML view, against `airflow standalone`.

The embedded default a user gets from `make airflow`: SQLite metadata database,
LocalExecutor, and the scheduler, DAG processor, triggerer and API server of
`airflow standalone`. A day is triggered by logical date, a range is backfilled, runs and
task states are listed, and the predictions are read with DuckDB and `ml predictions show`,
all with the commands the README shows. Then the ML view is read as a logged-in user and
as a stranger. The tests run in order and build on each other: one stack, one history.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import jwt
import pandas as pd
import pytest
from markupsafe import escape

from tests.conftest import (
    PUBLISHED,
    make_settings,
    published_files,
    run_daily_steps,
    run_training_steps,
    sha256,
)
from tests.e2e.airflow_stack import AIRFLOW, ML, run, run_json, standalone_stack
from tests.reliability.conftest import digests

pytestmark = pytest.mark.e2e

DAG = "flights_daily"
REPLAY = "flights_replay"
REPLAYED = [dt.date(2013, 3, 19), dt.date(2013, 3, 20)]  # days no other test runs
TRIGGERED = dt.date(2013, 3, 16)
BACKFILLED = [dt.date(2013, 3, 17), dt.date(2013, 3, 18)]
# Written into the audit log and a report's file name: the view must show them as text.
HOSTILE_REASON = "<script>alert('ml-view')</script>"
HOSTILE_FILE = "<img src=x onerror=alert(1)>"
DAILY_TASKS = {
    "ingest",
    "build",
    "validate_build",
    "publish",
    "recalibrate",
    "predict",
    "monitor",
    "decide_retraining",
    "request_retraining",
}


@pytest.fixture(scope="module")
def standalone(trained_data, tmp_path_factory):
    from ml import registry

    root = tmp_path_factory.mktemp("standalone")
    data = root / "data"
    shutil.copytree(trained_data, data)
    settings = make_settings(data)
    champion = registry.get_alias(settings, "champion")
    registry.set_alias(settings, "challenger", champion, reason=HOSTILE_REASON)
    hostile_report = data / "reports" / "backtest" / f"{HOSTILE_FILE}.html"
    hostile_report.parent.mkdir(parents=True, exist_ok=True)
    hostile_report.write_text("<p>a report</p>")
    outside = root / "outside.txt"
    outside.write_text("not a report")
    (data / "reports" / "escape.html").symlink_to(outside)

    # A deadline of three seconds: every daily run here misses it.
    with standalone_stack(root, data, DAG, ML_DAILY_DEADLINE_MINUTES="0.05") as stack:
        yield stack


def test_a_day_triggered_by_logical_date_runs_every_task_and_is_readable(standalone):
    run([AIRFLOW, "dags", "unpause", DAG], standalone.env)
    triggered = run_json(
        [AIRFLOW, "dags", "trigger", DAG, "--logical-date", f"{TRIGGERED}T00:00:00-04:00"],
        standalone.env,
        logs_first=True,
    )
    run_id = triggered[0]["dag_run_id"]
    standalone.wait_for_runs(DAG, count=1, timeout=600)

    listed = run_json([AIRFLOW, "dags", "list-runs", DAG], standalone.env)
    assert [(r["run_id"], r["state"]) for r in listed] == [(run_id, "success")]
    # The README's other forms: the table, and the JSON piped into a tool.
    table = run([AIRFLOW, "dags", "list-runs", DAG], standalone.env)
    assert DAG in table and "success" in table
    piped = subprocess.run(
        f"{AIRFLOW} dags list-runs {DAG} --output json | {sys.executable} -m json.tool",
        shell=True, env=standalone.env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert piped.returncode == 0 and f'"run_id": "{run_id}"' in piped.stdout, piped.stderr
    states = run_json([AIRFLOW, "tasks", "states-for-dag-run", DAG, run_id], standalone.env)
    assert {s["task_id"] for s in states} == DAILY_TASKS
    assert {s["state"] for s in states if s["task_id"] != "request_retraining"} == {"success"}
    # The run took longer than its deadline: the triggerer ran the alert's callback.
    misses = make_settings(standalone.data).paths.deadline_misses
    standalone.wait_for("the deadline miss", lambda: run_id in _read(misses), timeout=120)
    (late,) = [json.loads(line) for line in _read(misses).splitlines() if run_id in line]
    assert (late["dag_id"], late["state"]) == (DAG, "running") and late["deadline_at"]
    assert (late["flight_date"], late["run_type"]) == (TRIGGERED.isoformat(), "manual")

    rows = standalone.warehouse(
        "select flight_id, p_delayed from latest_predictions where flight_date = ? "
        "order by p_delayed desc, flight_id",
        [TRIGGERED],
    )
    assert len(rows) == standalone.scheduled_flights(TRIGGERED) == rows["flight_id"].nunique()
    shown = json.loads(
        run([ML, "predictions", "show", "--date", TRIGGERED.isoformat(), "--json"], standalone.env)
    )
    assert len(shown) > 0
    assert [r["p_delayed"] for r in shown] == sorted((r["p_delayed"] for r in shown), reverse=True)
    assert shown[0]["p_delayed"] == pytest.approx(rows["p_delayed"].iloc[0])


def test_a_backfilled_range_hands_one_run_per_day_to_the_scheduler(standalone):
    """Created while another writer holds the metadata database for longer than sqlite3's
    5 s default wait, as a busy scheduler can: the command waits its turn."""
    first, last = BACKFILLED[0], BACKFILLED[-1]
    with _WriterLock(Path(standalone.env["AIRFLOW_HOME"]) / "airflow.db", 20) as lock:
        output = run(
            [
                AIRFLOW,
                "backfill",
                "create",
                "--dag-id",
                DAG,
                "--max-active-runs",
                "2",
                "--from-date",
                f"{first}T00:00:00-04:00",
                "--to-date",
                f"{last}T00:00:00-04:00",
            ],
            standalone.env,
        )
        finished = time.monotonic()
    assert finished >= lock.released_at, "the command finished before the lock was let go"
    assert "database is locked" not in output
    runs = standalone.wait_for_runs(DAG, count=3, timeout=900)
    backfilled = sorted(r["logical_date"][:10] for r in runs if r["run_type"] == "backfill")
    assert backfilled == [d.isoformat() for d in BACKFILLED]

    listed = run_json([AIRFLOW, "dags", "list-runs", DAG], standalone.env)
    assert len(listed) == 3 and {r["state"] for r in listed} == {"success"}
    for day in BACKFILLED:
        counts = standalone.warehouse(
            "select count(*) as n, count(distinct flight_id) as ids from latest_predictions "
            "where flight_date = ?",
            [day],
        )
        assert counts["n"][0] == counts["ids"][0] == standalone.scheduled_flights(day)


class _WriterLock:
    """SQLite's one writer lock on a database, held by another connection for ``seconds``
    (readers go on: Airflow keeps the database in WAL mode)."""

    def __init__(self, database: Path, seconds: float):
        self.database, self.seconds = database, seconds
        self.released_at = float("inf")
        self._holding = threading.Event()
        self._holder = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        with contextlib.closing(sqlite3.connect(self.database, isolation_level=None)) as con:
            con.execute("begin immediate")
            self._holding.set()
            time.sleep(self.seconds)
            con.execute("commit")
            self.released_at = time.monotonic()

    def __enter__(self) -> _WriterLock:
        self._holder.start()
        assert self._holding.wait(30), f"could not take the writer lock of {self.database}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._holder.join()


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _day_files(data: Path, days: list[dt.date]) -> dict[str, str]:
    """SHA-256 of every published file of ``days`` but the model versions."""
    files = published_files(
        data, PUBLISHED[:-1], lambda key: any(f"={d}" in key or f"_{d}." in key for d in days)
    )
    return {key: sha256(path) for key, path in files.items()}


def test_the_ml_view_needs_the_ui_login_and_shows_models_reports_and_predictions(standalone):
    from ml import registry

    base = f"{standalone.base_url}/ml"
    assert httpx.get(f"{base}/").status_code == 401
    assert httpx.get(f"{base}/", cookies={"_token": "forged"}).status_code in (401, 403)
    # A browser without the login is sent to the auth manager's login page, and back after.
    browser = httpx.get(f"{base}/", headers={"accept": "text/html"})
    assert browser.status_code == 303, browser.text
    assert browser.headers["location"].startswith("/auth/login")
    assert "next=" in browser.headers["location"]
    # A token cookie that is no login, forged or signed with another key, sends a browser
    # to the login page too (the real API server answers such tokens 403), and HEAD is
    # answered as GET without a body.
    bad_signature = jwt.encode({"sub": "admin", "exp": 4102444800}, "not the server's key")
    for token in ("forged", bad_signature):
        browser = httpx.get(f"{base}/", headers={"accept": "text/html"}, cookies={"_token": token})
        assert browser.status_code == 303, (token, browser.status_code, browser.text[:200])
        assert browser.headers["location"].startswith("/auth/login")

    # The UI keeps the user's token in the `_token` cookie; the view accepts it as the
    # rest of the API server does.
    with httpx.Client(cookies={"_token": standalone.token()}, timeout=60) as client:
        overview = client.get(f"{base}/")
        assert overview.status_code == 200, overview.text
        for path in (
            "/",
            f"/predictions?date={TRIGGERED}",
            f"/reports/drift/drift_{TRIGGERED}.html",
        ):
            head, got = client.head(f"{base}{path}"), client.get(f"{base}{path}")
            assert head.status_code == got.status_code != 405, (path, head.status_code)
            assert (
                head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
            )
        settings = make_settings(Path(standalone.env["ML_DATA_DIR"]))
        champion = registry.get_alias(settings, "champion")
        assert f"champion: <a href='models/{champion}'>{champion}</a>" in overview.text
        assert "drift/drift_2013-03-18.html" in overview.text
        assert "<script>" not in overview.text and "<img" not in overview.text
        assert "&lt;img src=x onerror=alert(1)&gt;.html" in overview.text
        assert str(escape(HOSTILE_REASON)) in overview.text  # shown as text, as Jinja escapes it
        assert overview.headers["content-security-policy"].startswith("default-src 'none'")
        assert "Daily runs not done 0.05 minutes after they were queued" in overview.text

        card = client.get(f"{base}/models/{champion}")
        assert card.status_code == 200 and f"Model card: {champion}" in card.text
        assert client.get(f"{base}/models/aliases.json").status_code == 404

        preview = client.get(f"{base}/predictions", params={"date": TRIGGERED.isoformat()})
        assert preview.status_code == 200
        riskiest = standalone.warehouse(
            "select flight_id from latest_predictions where flight_date = ? "
            "order by p_delayed desc, flight_id limit 1",
            [TRIGGERED],
        )["flight_id"][0]
        assert f"<td>{riskiest}</td>" in preview.text
        assert client.get(f"{base}/predictions", params={"date": "2013-01-01"}).status_code == 404
        assert client.get(f"{base}/predictions", params={"date": "yesterday"}).status_code == 422

        report = client.get(f"{base}/reports/drift/drift_{TRIGGERED}.html")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        # The dbt project's docs, written by the run's build, behind the same login.
        assert client.get(f"{base}/dbt-docs").status_code == 200
        docs = client.get(f"{base}/dbt-docs/index.html")
        assert docs.status_code == 200 and "model.flights.flight_features" in docs.text
        assert httpx.get(f"{base}/dbt-docs/index.html").status_code == 401
        # Only the reports folder: no way out by dots, encoded dots, absolute paths or links.
        for attempt in (
            "reports/%2e%2e/%2e%2e/passwords.json",
            "reports/..%2F..%2Fpasswords.json",
            "reports//etc/passwd",
            "reports/escape.html",
            "reports/drift",
        ):
            response = client.get(f"{base}/{attempt}")
            assert response.status_code == 404, (attempt, response.status_code)
            assert "not a report" not in response.text and "admin" not in response.text

    plugins = standalone.api("plugins")["plugins"]
    views = [v for p in plugins if p["name"] == "ml_view" for v in p["external_views"]]
    assert views == [
        {
            **views[0],
            "name": "ML",
            "href": "/ml/",
            "url_route": "ml",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]


def test_a_replayed_range_leaves_the_partitions_day_by_day_runs_leave(standalone, tmp_path):
    """flights_replay over two new days, through the scheduler, against the daily DAG's
    steps for the same days in a copy of the folder as it stood before; then the same
    replay again, which finds both days run and changes nothing."""
    from ml import registry

    data = Path(standalone.env["ML_DATA_DIR"])
    reference = tmp_path / "day-by-day"
    shutil.copytree(data, reference, symlinks=True)
    settings = make_settings(reference)
    # As flights_daily and the flights_training runs its policy starts would: a training
    # the day before asked for comes first (the training DAG is paused in this stack).
    before = REPLAYED[0] - dt.timedelta(days=1)
    retraining = settings.paths.monitoring_partition("retraining", before)
    if pd.read_parquet(retraining)["retrain"].iloc[0] and not any(
        v["as_of"] == before.isoformat() for v in registry.list_versions(settings)
    ):
        run_training_steps(settings, before)
    for day in REPLAYED:
        if run_daily_steps(settings, day):
            run_training_steps(settings, day)

    run([AIRFLOW, "dags", "unpause", REPLAY], standalone.env)
    conf = json.dumps({"start": REPLAYED[0].isoformat(), "end": REPLAYED[-1].isoformat()})
    first = run_json(
        [AIRFLOW, "dags", "trigger", REPLAY, "--conf", conf], standalone.env, logs_first=True
    )
    standalone.wait_for_runs(REPLAY, count=1, timeout=900)
    expected, replayed = _day_files(reference, REPLAYED), _day_files(data, REPLAYED)
    assert len([k for k in expected if k.startswith("predictions/")]) == len(REPLAYED)
    assert len([k for k in expected if k.startswith("marts/")]) == 3 * len(REPLAYED)
    assert sorted(replayed) == sorted(expected)
    assert [k for k in expected if expected[k] != replayed[k]] == []
    assert _versions(data) == _versions(reference)  # the same trainings, the same models
    log = _task_log(standalone, REPLAY, first[0]["dag_run_id"], "replay_days")
    for number, day in enumerate(REPLAYED, 1):
        assert f"replay: {day} ({number}/{len(REPLAYED)}): " in log, log[-3000:]

    again = run_json(
        [AIRFLOW, "dags", "trigger", REPLAY, "--conf", conf], standalone.env, logs_first=True
    )
    standalone.wait_for_runs(REPLAY, count=2, timeout=900)
    assert _day_files(data, REPLAYED) == replayed
    log = _task_log(standalone, REPLAY, again[0]["dag_run_id"], "replay_days")
    assert "has been run already: nothing to do" in log, log[-3000:]


def _versions(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "models").iterdir() if p.is_dir())


def _task_log(stack, dag_id: str, run_id: str, task_id: str) -> str:
    folder = Path(stack.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    return "".join(p.read_text() for p in (folder / f"task_id={task_id}").glob("attempt=*.log"))


def test_the_readme_backtest_trigger_runs_once_the_dag_is_unpaused(standalone):
    """DAGs start paused and a paused DAG's runs wait: the README unpauses, then triggers."""
    conf = {"start": "2013-02-04", "end": "2013-02-10", "cadence": "weekly", "window_days": 30}
    run([AIRFLOW, "dags", "unpause", "backtest"], standalone.env)
    run([AIRFLOW, "dags", "trigger", "backtest", "-c", json.dumps(conf)], standalone.env)
    standalone.wait_for_runs("backtest", count=1, timeout=900)
    runs = standalone.warehouse("select run_id, folds from backtest_runs")
    assert runs.to_dict("records") == [
        {"run_id": "weekly-30d-20130204-20130210-lightgbm", "folds": 1}
    ]


def test_the_scheduler_fails_a_run_of_a_day_the_champion_learned_from(standalone):
    """Triggered through the scheduler for a day inside the champion's holdout: the run
    fails at ``predict`` on its first try (the error is not retryable), the tasks before
    it succeed, and no prediction of any day changes."""
    day = dt.date(2013, 3, 12)  # the champion, as of 2013-03-15, learned up to 2013-03-14
    tops = ("predictions", "models")
    before = digests(standalone.data, tops)
    run([AIRFLOW, "dags", "unpause", DAG], standalone.env)
    triggered = run_json(
        [AIRFLOW, "dags", "trigger", DAG, "--logical-date", f"{day}T00:00:00-04:00"],
        standalone.env,
        logs_first=True,
    )
    run_id = triggered[0]["dag_run_id"]

    def finished():
        (found,) = [r for r in standalone.dag_runs(DAG) if r["dag_run_id"] == run_id]
        return found if found["state"] in ("success", "failed") else None

    assert standalone.wait_for(f"the run {run_id}", finished, timeout=900)["state"] == "failed"
    tasks = {t["task_id"]: t for t in standalone.task_instances(DAG, run_id)}
    assert tasks["predict"]["state"] == "failed" and tasks["predict"]["try_number"] == 1
    assert {tasks[t]["state"] for t in ("ingest", "publish", "recalibrate")} == {"success"}
    assert tasks["monitor"]["state"] == "upstream_failed"
    log = _task_log(standalone, DAG, run_id, "predict")
    assert "learned from flights up to 2013-03-14 and must not score 2013-03-12" in log
    assert not (standalone.data / "predictions" / f"flight_date={day}").exists()
    assert digests(standalone.data, tops) == before
