"""The ML view in Chromium, as a user meets it: a real ``airflow api-server`` over a data
folder the pipeline wrote, the login page of the UI, the UI's ML entry, and then every
link and form of the view, followed page by page.

Every page must come back 200 (or, for the error pages, the intended status as a page
with a way back), log no console error, ask nothing of any other host, keep every chart
element inside its container and every text label of a chart clear of the others, and
show no table without rows. A screenshot of each is saved under
``test-results/browser/test_ml_view_pages/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.pages import (
    PageWatch,
    Visit,
    layout_problems,
    links,
    report,
    screenshot,
    settle,
    visit,
)
from tests.conftest import make_settings
from tests.e2e.airflow_stack import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e

# Every kind of page the view has (the whole path and query), and the fewest charts each
# must draw: the crawl must reach each kind.
DATE = r"\d{4}-\d\d-\d\d"
PAGE_KINDS = {
    "overview": (r"/ml/", 3),  # performance: log loss and AUC; drift: the heatmap
    "predictions": (rf"/ml/predictions\?date={DATE}", 0),
    "predictions of a role": (rf"/ml/predictions\?date={DATE}&role=(champion|challenger)", 0),
    "model card": (r"/ml/models/[^/?]+", 1),
    "comparison": (r"/ml/compare\?first=[^&]+&second=[^&]+", 0),
    "drift report": (rf"/ml/reports/drift/drift_{DATE}\.html", 2),
    "validation index": (r"/ml/reports/validation/index\.html", 0),
    "validation page": (r"/ml/reports/validation/validation_(raw|features)_[^/]+\.html", 0),
    "backtest grid": (r"/ml/reports/backtest/grid-[^/]+\.html", 2),
    "backtest run": (r"/ml/reports/backtest/(daily|weekly|monthly)-[^/]+\.html", 2),
    "dbt docs": (r"/ml/dbt-docs", 0),
    "dbt docs page": (r"/ml/dbt-docs/index\.html", 0),
}
# dbt's app routes in the fragment: a model's page, which the crawl (fragments dropped)
# would not reach.
DBT_MODEL_PAGE = "/ml/dbt-docs/index.html#!/model/model.flights.flight_features"


def log_in(page, base: str, then: str) -> list[str]:
    """Through the login page, as a person does; back at ``then`` afterwards. The login
    page's own problems."""
    page.goto(f"{base}{then}")
    page.wait_for_url(re.compile(r".*/auth/login.*"))
    page.get_by_label("Username").wait_for()
    problems = settle(page) + layout_problems(page)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{then}")
    return problems


# A canvas of the dbt docs' lineage graph with something drawn on it.
_DRAWN_GRAPH = """() => [...document.querySelectorAll('.launcher canvas')].some((canvas) => {
  const context = canvas.width && canvas.height && canvas.getContext('2d');
  if (!context) return false;
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  for (let alpha = 3; alpha < pixels.length; alpha += 4) if (pixels[alpha]) return true;
  return false;
})"""


def open_lineage_graph(page: Page, watch: PageWatch, output: Path, docs: Visit) -> Visit:
    """The lineage graph of ``docs``, the dbt docs page open in ``page``, from the launcher
    at its bottom right: it must draw the model's neighbours on its canvas, with nothing
    in the console. A click, not a load: its status is the docs page's."""
    page.locator(".launcher-btn").click()
    page.wait_for_function(_DRAWN_GRAPH)
    problems = settle(page) + layout_problems(page)
    shot = screenshot(page, output, "dbt-docs-lineage-graph")
    return Visit(page.url, docs.status, watch.take() + problems, 0, shot)


@pytest.fixture(scope="module")
def signed_in(api_server, open_context):
    """A page of a browser that logged in through the login page, and its watch."""
    context, watch = open_context(api_server.base_url)
    page = context.new_page()
    log_in(page, api_server.base_url, "/ml/")
    return page, watch


def test_the_ui_login_leads_to_the_ml_entry_and_the_view_inside_it(
    api_server, open_context, output
):
    base = api_server.base_url
    context, watch = open_context(base)
    page = context.new_page()
    # The UI's login page, not a JSON error: the view sends a browser without the
    # login there, and back to the page it asked for afterwards.
    problems = {"the login page": log_in(page, base, "/ml/") + watch.take()}
    assert page.get_by_role("heading", name="ML: flight-delay risk").is_visible()
    page.goto(f"{base}/")
    page.get_by_role("link", name="ML", exact=True).click()
    page.wait_for_url(f"{base}/plugin/ml**")
    frame = page.frame_locator("iframe[title='ML']")
    frame.get_by_role("heading", name="ML: flight-delay risk").wait_for()
    found = settle(page) + layout_problems(page)
    screenshot(page, output, f"{base}/airflow-ui-ml-entry")
    problems["the UI's ML entry"] = watch.take() + found
    problems = {where: lines for where, lines in problems.items() if lines}
    assert not problems, report(problems, output / "ui-entry")


def test_every_link_of_the_view_opens_a_sound_page(api_server, signed_in, output):
    from ml import registry

    page, watch = signed_in
    base = api_server.base_url
    queue, seen, visits = [f"{base}/ml/"], {f"{base}/ml/"}, []
    while queue:
        done = visit(page, watch, queue.pop(0), output)
        visits.append(done)
        for url in links(page):
            if url.startswith(f"{base}/ml/") and url not in seen:
                seen.add(url)
                queue.append(url)

    visits.append(visit(page, watch, f"{base}{DBT_MODEL_PAGE}", output, "dbt-docs-model"))
    assert page.get_by_text("flight_features").first.is_visible()
    visits.append(open_lineage_graph(page, watch, output, docs=visits[-1]))

    kinds = {
        kind: [v for v in visits if re.fullmatch(pattern, v.url.removeprefix(base))]
        for kind, (pattern, _) in PAGE_KINDS.items()
    }
    assert [kind for kind, found in kinds.items() if not found] == []
    unknown = [
        v.url for v in visits if not any(v in found for found in kinds.values())
    ]  # a page of a new kind: add it to PAGE_KINDS with its charts
    assert unknown == [f"{base}{DBT_MODEL_PAGE}"] * 2  # the model page, then its graph
    too_few = {
        v.url: f"{v.charts} charts, {least} expected"
        for kind, (_, least) in PAGE_KINDS.items()
        for v in kinds[kind]
        if v.charts < least
    }
    assert too_few == {}
    versions = registry.list_versions(make_settings(api_server.data))
    assert len(versions) >= 2
    cards = {v.url.removeprefix(base) for v in kinds["model card"]}
    assert cards == {f"/ml/models/{meta['version']}" for meta in versions}
    broken = {
        v.url: ([f"HTTP {v.status}"] if v.status != 200 else []) + v.problems
        for v in visits
        if v.status != 200 or v.problems
    }
    assert not broken, f"{len(broken)} of {len(visits)} pages:\n{report(broken, output)}"


@pytest.mark.parametrize(
    ("path", "status", "heading"),
    [
        ("/ml/models/no-such-version", 404, "Not found"),
        ("/ml/predictions?date=2013-01-02", 404, "Not found"),
        ("/ml/predictions?date=01/02/2013", 422, "Bad request"),
        ("/ml/compare?first=no-such-version&second=other", 404, "Not found"),
        ("/ml/reports/..%2Fmodels%2Faliases.json", 404, "Not found"),
    ],
)
def test_errors_are_pages_with_a_way_back(api_server, signed_in, output, path, status, heading):
    page, watch = signed_in
    done = visit(page, watch, f"{api_server.base_url}{path}", output)
    assert done.status == status
    assert page.get_by_role("heading", name=heading).is_visible()
    assert page.get_by_role("link", name="ML overview").get_attribute("href") == "/ml/"
    # Chromium reports the document's own status in the console; nothing else may appear.
    expected = (
        f"console error: Failed to load resource: the server responded with a status of {status}"
    )
    assert [p for p in done.problems if not p.startswith(expected)] == []
