"""The ML view's app on its own, without the API server: what it shows and what it refuses.

The login it requires is tested against a real API server in tests/e2e/test_cli_flows.py;
here the app's access check is replaced by a stand-in so the pages can be read directly.
"""

from __future__ import annotations

import datetime as dt
import sys

import pytest
from fastapi.testclient import TestClient

from tests.conftest import REPO, make_settings

HOSTILE = "<script>alert(1)</script>"
DAY = dt.date(2013, 3, 16)


@pytest.fixture
def view(trained_copy):
    from ml import registry
    from ml.predict import predict

    sys.path.insert(0, str(REPO / "plugins"))
    import ml_view

    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    registry.set_alias(settings, "challenger", champion, reason=HOSTILE)
    predict(settings, DAY)
    (trained_copy / "reports" / "backtest").mkdir(parents=True, exist_ok=True)
    (trained_copy / "reports" / "backtest" / "run.html").write_text("<p>backtest</p>")
    (trained_copy.parent / "secret.txt").write_text("outside")
    (trained_copy / "reports" / "link.html").symlink_to(trained_copy.parent / "secret.txt")

    access_check = ml_view.app.router.dependencies[0].dependency
    ml_view.app.dependency_overrides = {
        access_check: lambda: None,
        ml_view.settings: lambda: settings,
    }
    try:
        yield TestClient(ml_view.app), settings, champion
    finally:
        ml_view.app.dependency_overrides = {}
        sys.path.remove(str(REPO / "plugins"))


def test_the_overview_lists_roles_versions_reports_and_escapes_the_audit_log(view):
    client, _, champion = view
    page = client.get("/")
    assert page.status_code == 200
    assert f"champion: <a href='models/{champion}'>{champion}</a>" in page.text
    assert "reports/backtest/run.html" in page.text
    assert "value='2013-03-16'" in page.text  # the predictions picker defaults to the latest date
    assert HOSTILE not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_predictions_preview_is_riskiest_first_and_validates_its_query(view):
    import duckdb

    client, settings, _ = view
    page = client.get("/predictions", params={"date": "2013-03-16", "limit": 5})
    assert page.status_code == 200
    top = duckdb.execute(
        "select flight_id from read_parquet(?) where model_role = 'champion' "
        "order by p_delayed desc, flight_id limit 5",
        [str(settings.paths.predictions_partition(DAY))],
    ).fetchall()
    positions = [page.text.index(f"<td>{flight_id}</td>") for (flight_id,) in top]
    assert positions == sorted(positions)
    assert client.get("/predictions", params={"date": "2013-03-17"}).status_code == 404
    assert client.get("/predictions", params={"date": "3/16/2013"}).status_code == 422
    assert client.get("/predictions", params={"date": "2013-03-16", "role": "x"}).status_code == 422


def test_files_are_served_from_the_reports_folder_only(view):
    client, settings, champion = view
    assert client.get("/reports/backtest/run.html").text == "<p>backtest</p>"
    for path in (
        "/reports/%2e%2e/models/aliases.json",
        "/reports/..%2Fmodels%2Faliases.json",
        "/reports//etc/hostname",
        "/reports/link.html",
        "/reports/backtest",
    ):
        assert client.get(path).status_code == 404, path
    assert client.get(f"/models/{champion}").status_code == 200
    assert client.get("/models/aliases.json").status_code == 404
    assert client.get("/models/..%2Faliases.json").status_code == 404


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("truncated audit line", "audit.jsonl"),
        ("missing challenger folder", "challenger"),
        ("truncated aliases", "aliases.json"),
        ("corrupt metrics", "metrics.json"),
        ("garbage metadata", "metadata.json"),
    ],
)
def test_one_bad_registry_file_degrades_its_section_not_the_page(view, damage, named):
    import json
    import shutil

    from ml import registry

    client, settings, champion = view
    models = settings.paths.models
    if damage == "truncated audit line":
        with (models / "audit.jsonl").open("a") as handle:
            handle.write('{"at": "2013-03-16", "ali')
    elif damage == "missing challenger folder":
        other = f"{champion}-copy"
        shutil.copytree(models / champion, models / other)
        meta = json.loads((models / other / "metadata.json").read_text())
        (models / other / "metadata.json").write_text(json.dumps({**meta, "version": other}))
        registry.set_alias(settings, "challenger", other, reason="test")
        shutil.rmtree(models / other)
    elif damage == "truncated aliases":
        text = (models / "aliases.json").read_text()
        (models / "aliases.json").write_text(text[: len(text) // 2])
    elif damage == "corrupt metrics":
        (models / champion / "metrics.json").write_text('{"holdout": ')
    else:
        (models / champion / "metadata.json").write_text("<<garbage>>")
    page = client.get("/")
    assert page.status_code == 200
    if damage == "truncated audit line":
        # The cut line is skipped; the log's whole lines still show (the fixture's
        # challenger change, its hostile reason escaped).
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert '{"at": "2013-03-16", "ali' not in page.text
    else:
        assert "Unavailable: " in page.text and named in page.text
    for section in ("Serving", "Predictions", "Reports", "Model versions", "Audit log"):
        assert f">{section}</h2>" in page.text  # every other section still renders
    assert "value='2013-03-16'" in page.text


def test_errors_are_pages_with_a_way_back_and_pages_are_not_framed_or_cached(view):
    client, _, _ = view
    for path, status in (
        ("/predictions?date=2013-03-17", 404),
        ("/predictions?date=3/16/2013", 422),
        ("/models/nothing", 404),
        ("/reports/none.html", 404),
    ):
        page = client.get(path)
        assert page.status_code == status, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert "href='/ml/'" in page.text, path
    page = client.get("/")
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/reports/backtest/run.html").headers["cache-control"] == "no-store"


def test_a_browser_that_is_not_logged_in_is_sent_to_the_login_page(view):
    import ml_view
    from fastapi import HTTPException

    client, settings, _ = view

    def refuse():
        raise HTTPException(status_code=401, detail="Not authenticated")

    access_check = ml_view.app.router.dependencies[0].dependency
    ml_view.app.dependency_overrides[access_check] = refuse
    browser = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303
    assert "login" in browser.headers["location"] and "next=" in browser.headers["location"]
    script = client.get("/", headers={"accept": "application/json"}, follow_redirects=False)
    assert script.status_code == 401


def test_a_corrupt_prediction_partition_is_an_error_page_naming_the_file(view):
    client, settings, _ = view
    path = settings.paths.predictions_partition(DAY)
    path.write_bytes(path.read_bytes()[:100])
    page = client.get("/predictions", params={"date": DAY.isoformat()})
    assert page.status_code == 500
    assert str(path) in page.text and "href='/ml/'" in page.text


def _section(page: str, heading_id: str) -> str:
    """The overview's section from its ``<h2 id=...>`` to the next heading."""
    start = page.index(f"<h2 id='{heading_id}'>")
    return page[start : page.index("<h2", start + 1)]


def test_every_page_leads_back_to_the_overview_the_pipelines_pages_included(view):
    from ml import pipeline

    client, settings, champion = view
    pipeline.monitor(settings, DAY)  # writes the day's drift and performance report
    for path in (
        "/",
        f"/predictions?date={DAY}",
        f"/models/{champion}",
        f"/compare?first={champion}&second={champion}",
        f"/reports/drift/drift_{DAY}.html",
        "/reports/validation/index.html",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.text.count("<a href='/ml/'>ML overview</a>") == 1, path
    # On disk the report stands alone: the view adds its way back as it serves it.
    report = (settings.paths.drift_reports / f"drift_{DAY}.html").read_text()
    assert "/ml/" not in report


def test_the_overview_plots_performance_and_drift_over_the_days_on_file(view):
    from ml import pipeline

    client, settings, _ = view
    page = client.get("/").text
    assert "No day monitored yet." in page and "No day checked for drift yet." in page
    pipeline.monitor(settings, DAY)
    page = client.get("/").text
    performance = _section(page, "performance")
    assert performance.count("<svg") == 2  # log loss beside the prior rate's, and AUC
    assert "log loss (lower is better)" in performance and "prior rate (realized)" in performance
    drift = _section(page, "drift")
    drifted = pipeline_drifted(settings)
    assert f"{len(drifted)} of " in drift
    assert drift.count("<svg") == (1 if drifted else 0)
    for series in drifted:
        assert f">{series}</text>" in drift  # a row label of the heatmap


def pipeline_drifted(settings) -> set[str]:
    import duckdb

    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        rows = con.execute("select distinct feature from monitoring_drift where is_drifted")
        return {name for (name,) in rows.fetchall()}


def test_two_versions_side_by_side_and_the_challengers_rows_only_when_there_are_some(view):
    from ml import registry
    from ml.predict import predict
    from ml.train import train

    client, settings, champion = view
    # The fixture's challenger is the champion: no shadow rows, so no link to them.
    page = client.get("/predictions", params={"date": DAY.isoformat()}).text
    assert "role=challenger" not in page
    heuristic = make_settings(settings.data_dir, candidates=["heuristic"])
    other = train(heuristic, DAY).version  # learned up to the day before DAY: scores it
    registry.set_alias(settings, "challenger", other, reason="compare")
    predict(settings, DAY)
    page = client.get("/predictions", params={"date": DAY.isoformat()}).text
    assert f"predictions?date={DAY}&amp;role=challenger" in page

    overview = client.get("/").text
    assert "<form action='compare' method='get'>" in overview
    assert f"<option value='{other}'" in overview and f"<option value='{champion}'" in overview
    page = client.get("/compare", params={"first": champion, "second": other})
    assert page.status_code == 200
    text = page.text
    assert f"{champion} beside {other}" in text
    assert "Each on its own holdout days" in text  # as of different days
    assert "<td>algorithm</td><td>lightgbm</td><td>heuristic</td>" in text
    assert "Set only in the first: " in text  # LightGBM's parameters
    first = registry.load_metrics(settings, champion)["holdout"]["model"]["log_loss"]
    second = registry.load_metrics(settings, other)["holdout"]["model"]["log_loss"]
    assert f"<td class='num'>{second - first:.4f}</td>" in text
    same = client.get("/compare", params={"first": champion, "second": champion}).text
    assert "Both on the same holdout days" in same
    assert client.get("/compare", params={"first": champion, "second": "nope"}).status_code == 404


def test_the_dbt_docs_are_framed_below_the_navigation_or_said_to_be_missing(view):
    client, settings, _ = view
    missing = client.get("/dbt-docs")
    assert missing.status_code == 404 and "they are written after a build" in missing.text
    settings.paths.dbt_docs.parent.mkdir(parents=True)
    settings.paths.dbt_docs.write_text("<html><body><script>var docs = 1;</script></body></html>")

    framed = client.get("/dbt-docs")
    assert framed.status_code == 200
    assert "<a href='/ml/'>ML overview</a>" in framed.text
    assert "<iframe src='/ml/dbt-docs/index.html' title='dbt docs' sandbox='allow-scripts'" in (
        framed.text
    )
    assert "frame-src 'self'" in framed.headers["content-security-policy"]
    assert "script-src" not in framed.headers["content-security-policy"]
    docs = client.get("/dbt-docs/index.html")
    assert docs.text == settings.paths.dbt_docs.read_text()  # as dbt wrote it
    policy = docs.headers["content-security-policy"]
    # dbt's app runs its own inline scripts; it may still fetch nothing from anywhere.
    assert "script-src 'unsafe-inline'" in policy and "default-src 'none'" in policy
    assert "sandbox allow-scripts" in policy  # an origin of its own: the UI is out of reach
    assert "connect-src" not in policy and docs.headers["x-frame-options"] == "SAMEORIGIN"


def test_runs_that_missed_their_deadline_are_listed_newest_first(view, monkeypatch):
    import asyncio

    from ml.orchestration import deadline_missed

    client, settings, _ = view
    assert "No daily run has missed its deadline (60 minutes" in client.get("/").text
    for day in ("2013-03-16", "2013-03-17"):
        context = {  # what Airflow's deadline alert passes its callback
            "dag_run": {
                "dag_id": "flights_daily",
                "dag_run_id": f"scheduled__{day}",
                "logical_date": f"{day}T04:00:00Z",
                "queued_at": f"{day}T04:00:01Z",
                "state": "running",
                "conf": {},
            },
            "deadline": {"id": "1", "deadline_time": f"{day}T05:00:01Z"},
        }
        monkeypatch.setenv("ML_DATA_DIR", str(settings.data_dir))  # as the triggerer has it
        asyncio.run(deadline_missed(context=context))
    page = client.get("/").text
    late = _section(page, "late")
    assert late.index("scheduled__2013-03-17") < late.index("scheduled__2013-03-16")
    assert "<td>2013-03-17T05:00:01Z</td>" in late and "<td>running</td>" in late
    assert "<td>scheduled__2013-03-17</td><td>2013-03-17</td>" in late  # the flight date


def test_predictions_made_from_superseded_inputs_say_so_until_scored_again(view):
    from ml.io import write_json
    from ml.predict import predict

    client, settings, _ = view
    assert "superseded" not in client.get("/predictions", params={"date": str(DAY)}).text
    reason = "its features were rebuilt from new inputs by the publish of <b>2013-03-15</b>"
    write_json(
        {"reason": reason, "rescore": f"ml predict --date {DAY}"},
        settings.paths.superseded_predictions(DAY),
    )
    page = client.get("/predictions", params={"date": str(DAY)}).text
    assert "<p class='warning'>Made from superseded inputs: its features were rebuilt" in page
    assert (
        "&lt;b&gt;2013-03-15&lt;/b&gt;" in page and f"<code>ml predict --date {DAY}</code>" in page
    )
    predict(settings, DAY)
    assert "superseded" not in client.get("/predictions", params={"date": str(DAY)}).text


@pytest.mark.parametrize(
    ("status", "detail", "browser_goes_to_login"),
    [(403, "Invalid JWT token", True), (401, "Token Expired", True), (403, "Forbidden", False)],
)
def test_a_browser_with_a_token_that_is_not_a_login_goes_to_the_login_page(
    view, status, detail, browser_goes_to_login
):
    """A forged or foreign token cookie is no login (Airflow answers 403 "Invalid JWT
    token"): the browser goes to the login page; a user who is logged in but not allowed
    keeps the 403 page."""
    import ml_view
    from fastapi import HTTPException

    client, _, _ = view

    def refuse():
        raise HTTPException(status_code=status, detail=detail)

    access_check = ml_view.app.router.dependencies[0].dependency
    ml_view.app.dependency_overrides[access_check] = refuse
    try:
        browser = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
    finally:
        ml_view.app.dependency_overrides.clear()
    if browser_goes_to_login:
        assert browser.status_code == 303 and "login" in browser.headers["location"]
    else:
        assert browser.status_code == 403 and "Not allowed" in browser.text


@pytest.mark.parametrize(
    "path", ["/", f"/predictions?date={DAY}", "/reports/drift/nothing.html", "/dbt-docs"]
)
def test_head_answers_as_get_without_a_body(view, path):
    client, _, _ = view
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code != 405
    assert head.content == b""
    assert head.headers.get("content-type") == got.headers.get("content-type")
