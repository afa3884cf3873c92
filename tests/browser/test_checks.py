"""The browser tier's checks find what they must: each kind of broken page is caught,
with a line naming it, and a sound page passes. The pages are files written here, one
defect each, opened in the same Chromium as the rest of the tier."""

from __future__ import annotations

import pytest

from ml import charts
from tests.browser.pages import visit

pytestmark = pytest.mark.e2e

STYLE = "<style>body{margin:0;width:800px} .chart{width:400px;overflow:hidden}</style>"
LINE_CHART = charts.lines(
    ["2013-03-16", "2013-03-17", "2013-03-18"],
    {"estimated": [0.6, 0.61, 0.62], "realized": [0.62, 0.6, 0.63]},
    y_title="log loss",
    width=400,
)


def svg(body: str, width: int = 300, height: int = 100) -> str:
    return (
        f"<div class='chart'><svg class='marks' xmlns='http://www.w3.org/2000/svg' "
        f"width='{width}' height='{height}' viewBox='0 0 {width} {height}'>{body}</svg></div>"
    )


PAGES = {
    "sound": (
        "<h2>fine</h2>"
        + svg("<text x='10' y='20'>first</text><text x='10' y='50'>second</text>")
        + f"<div class='chart'>{LINE_CHART}</div><table><tr><th>a</th></tr><tr><td>1</td></tr></table>",
        [],
    ),
    # A real chart whose width was broken: wider than the box that shows it.
    "chart too wide": (
        "<h2>wide</h2>"
        + f"<div class='chart'>{LINE_CHART.replace('max-width:400px', 'min-width:900px')}</div>",
        ["spills out of div.chart"],
    ),
    # A real chart drawn three times wider than its box: scaled down to a third, text too.
    "chart drawn too wide": (
        "<h2>small</h2>"
        + "<div class='chart'>"
        + charts.lines(
            ["2013-03-16", "2013-03-17"], {"estimated": [0.6, 0.61]}, y_title="log loss", width=1200
        )
        + "</div>",
        ["too small to read"],
    ),
    "labels overlap": (
        "<h2>overlap</h2>"
        + svg("<text x='10' y='20'>carrier_origin</text><text x='30' y='22'>series</text>"),
        ['labels "carrier_origin" and "series" overlap'],
    ),
    # Rotated labels whose upright boxes overlap but whose glyphs do not.
    "rotated labels apart": (
        "<h2>rotated</h2>"
        + svg(
            "<text x='20' y='140' font-size='10' transform='rotate(-45 20 140)'>0.0249 to 0.0336</text>"
            "<text x='50' y='140' font-size='10' transform='rotate(-45 50 140)'>0.0336 to 0.0388</text>",
            height=150,
        ),
        [],
    ),
    "label outside": (
        "<h2>outside</h2>" + svg("<text x='280' y='20'>cut off at the edge</text>"),
        ['label "cut off at the edge" lies outside the chart'],
    ),
    "vertical line outside": (
        "<h2>rule</h2>" + svg("<line x1='350' y1='0' x2='350' y2='90' stroke='black'/>"),
        ["line lies outside the chart"],
    ),
    "section unavailable": (
        "<p class='error'>Unavailable: models/aliases.json: not JSON</p>",
        ['a section shows "Unavailable: models/aliases.json'],
    ),
    "empty table": ("<table><tr><th>flight</th><th>p</th></tr></table>", ["has no rows"]),
    "console error": ("<script>console.error('broken')</script>", ["console error: broken"]),
    "another host": (
        "<img src='https://cdn.example.com/logo.png'>",
        ["request to another host: image https://cdn.example.com/logo.png"],
    ),
    "missing image": ("<img src='no-such-image.png' alt='logo'>", ['image "logo" did not load']),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_the_checks_find_each_defect_and_pass_a_sound_page(name, tmp_path, open_context):
    html, expected = PAGES[name]
    path = tmp_path / "page.html"
    path.write_text(f"<!doctype html><html><head>{STYLE}</head><body>{html}</body></html>")
    context, watch = open_context(tmp_path.as_uri())
    done = visit(context.new_page(), watch, path.as_uri(), tmp_path / "shots")
    if expected:
        for part in expected:
            assert any(part in problem for problem in done.problems), done.problems
    else:
        assert done.problems == []
    assert done.shot.stat().st_size > 0
