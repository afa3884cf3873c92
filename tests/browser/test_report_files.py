"""The pages the pipeline writes, opened from disk as users open them (``file://``):
drift and performance reports, validation pages and their index, backtest reports and
grids, model cards, and dbt's docs. The same checks as the view's pages (no console
error, no request leaving the data folder, charts inside their boxes with no labels
overlapping, no empty table), and every link to another file leads to one that exists.
A screenshot of each is saved under ``test-results/browser/test_report_files/``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.browser.conftest import HEURISTIC_DAY
from tests.browser.pages import links, report, visit

pytestmark = pytest.mark.e2e


def test_every_page_on_disk_opens_sound_from_a_file_url(site_data, open_context, output):
    pages = sorted(
        [
            *site_data.glob("reports/**/*.html"),
            *site_data.glob("models/*/model_card.html"),
            site_data / "docs" / "dbt" / "index.html",
        ]
    )
    kinds = {p.parent.name for p in pages}
    assert {"drift", "validation", "backtest", "dbt"} <= kinds, kinds
    assert sum(p.name == "model_card.html" for p in pages) >= 2
    # a day served by the heuristic, before any model passed the gate: no drift tested
    heuristic = site_data / "reports" / "drift" / f"drift_{HEURISTIC_DAY}.html"
    assert "No model is champion (none has passed the promotion gate" in heuristic.read_text()
    context, watch = open_context(site_data.as_uri())
    page = context.new_page()
    broken = {}
    for path in pages:
        name = str(path.relative_to(site_data))
        done = visit(page, watch, path.as_uri(), output, name)
        missing = [
            f"link to a missing file: {url}"
            for url in links(page)
            if url.startswith("file:") and not Path(unquote(urlsplit(url).path)).exists()
        ]
        if done.problems or missing:
            broken[name] = done.problems + missing
    assert not broken, f"{len(broken)} of {len(pages)} pages:\n{report(broken, output)}"
