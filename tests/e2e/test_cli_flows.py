"""The README's command-line flows and the ML view, against `airflow standalone`.

The embedded default a user gets from `make airflow`: SQLite metadata database,
LocalExecutor, and the scheduler, DAG processor, triggerer and API server of
`airflow standalone`. A day is triggered by logical date, a range is backfilled, runs and
task states are listed, and the predictions are read with DuckDB and `ml predictions show`,
all with the commands the README shows. Then the ML view is read as a logged-in user and
as a stranger. The tests run in order and build on each other: one stack, one history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from markupsafe import escape

from tests.conftest import make_settings
from tests.e2e.airflow_stack import (
    AIRFLOW,
    ML,
    Stack,
    base_env,
    free_port,
    init_metadata,
    run,
    run_json,
)

pytestmark = pytest.mark.e2e

DAG = "flights_daily"
REPLAY = "flights_replay"
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

    env = {**base_env(root, data, free_port()), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    init_metadata(env)
    stack = Stack(root, env)
    stack.start("standalone", "standalone")
    try:
        stack.wait_until_ready(DAG)
        yield stack
    finally:
        stack.stop()


def test_a_day_triggered_by_logical_date_runs_every_task_and_is_readable(standalone):
    run([AIRFLOW, "dags", "unpause", DAG], standalone.env)
    triggered = run_json(
        [AIRFLOW, "dags", "trigger", DAG, "--logical-date", f"{TRIGGERED}T00:00:00-04:00"],
        standalone.env,
    )
    run_id = triggered[0]["dag_run_id"]
    standalone.wait_for_runs(DAG, count=1, timeout=600)

    listed = run_json([AIRFLOW, "dags", "list-runs", DAG], standalone.env)
    assert [(r["run_id"], r["state"]) for r in listed] == [(run_id, "success")]
    states = run_json([AIRFLOW, "tasks", "states-for-dag-run", DAG, run_id], standalone.env)
    assert {s["task_id"] for s in states} == DAILY_TASKS
    assert {s["state"] for s in states if s["task_id"] != "request_retraining"} == {"success"}

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
    first, last = BACKFILLED[0], BACKFILLED[-1]
    run(
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


def _day_files(data: Path, days: list[dt.date]) -> dict[str, str]:
    """SHA-256 of every published file of ``days``: raw and mart partitions (through the
    marts' links), predictions, monitoring tables and the drift reports."""
    digests = {}
    for top in ("raw", "marts", "predictions", "monitoring", "reports/drift"):
        for folder, dirs, files in os.walk(data / top, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith("_")]  # builds and generations
            for name in files:
                path = Path(folder) / name
                key = str(path.relative_to(data))
                if any(f"={day}" in key or f"_{day}." in key for day in days):
                    digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def test_a_replayed_range_leaves_the_partitions_its_day_by_day_runs_left(standalone):
    """flights_replay over days the triggered and backfilled runs did, through the
    scheduler: every partition of those days comes back byte for byte."""
    days = [TRIGGERED, BACKFILLED[0]]
    data = Path(standalone.env["ML_DATA_DIR"])
    before = _day_files(data, days)
    assert len([k for k in before if k.startswith("predictions/")]) == 2
    assert len([k for k in before if k.startswith("marts/")]) == 6
    run([AIRFLOW, "dags", "unpause", REPLAY], standalone.env)
    conf = json.dumps({"start": days[0].isoformat(), "end": days[-1].isoformat()})
    triggered = run_json([AIRFLOW, "dags", "trigger", REPLAY, "--conf", conf], standalone.env)
    run_id = triggered[0]["dag_run_id"]
    standalone.wait_for_runs(REPLAY, count=1, timeout=900)
    after = _day_files(data, days)
    assert sorted(after) == sorted(before)
    assert [k for k in before if before[k] != after[k]] == []
    # One line per day in the task log.
    logs = Path(standalone.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={REPLAY}"
    (log,) = (logs / f"run_id={run_id}" / "task_id=replay_days").glob("attempt=*.log")
    text = log.read_text()
    assert f"replay: {days[0]} (1/2): " in text and f"replay: {days[1]} (2/2): " in text


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

    # The UI keeps the user's token in the `_token` cookie; the view accepts it as the
    # rest of the API server does.
    with httpx.Client(cookies={"_token": standalone.token()}, timeout=60) as client:
        overview = client.get(f"{base}/")
        assert overview.status_code == 200, overview.text
        settings = make_settings(Path(standalone.env["ML_DATA_DIR"]))
        champion = registry.get_alias(settings, "champion")
        assert f"champion: <a href='models/{champion}'>{champion}</a>" in overview.text
        assert "drift/drift_2013-03-18.html" in overview.text
        assert "<script>" not in overview.text and "<img" not in overview.text
        assert "&lt;img src=x onerror=alert(1)&gt;.html" in overview.text
        assert str(escape(HOSTILE_REASON)) in overview.text  # shown as text, as Jinja escapes it
        assert overview.headers["content-security-policy"].startswith("default-src 'none'")

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
