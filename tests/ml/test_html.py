"""Pages for people: the formatters, the templates' escaping, and the charts they embed."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from ml import charts
from ml.html import cell, format_reasons, md, number, percent, render
from tests.reliability.conftest import external_references

HOSTILE = "<script>alert('x')</script>&\""


@pytest.mark.parametrize(
    ("value", "args", "text"),
    [
        (0.61234, (), "0.612"),
        (0.61234, (4,), "0.6123"),
        (np.float64(0.5), (2,), "0.50"),
        (21133, (), "21,133"),
        (np.int64(21133), (), "21,133"),
        (float("nan"), (), "-"),
        (math.inf, (), "-"),
        (None, (), "-"),
        ("0.5", (), "-"),
        (True, (), "-"),
        (0.0123, (2, "+f"), "+0.01"),
        (1234.5, (3, "g"), "1.23e+03"),
        (0.305, (1, "%"), "30.5%"),
    ],
)
def test_one_formatter_writes_every_number_and_a_dash_for_what_is_not_one(value, args, text):
    assert number(value, *args) == text


def test_cells_percentages_reasons_and_markdown_cells_use_the_same_formatter():
    assert percent(0.0335) == "3.4%" and percent(None) == "-"
    assert [cell(v) for v in (True, False, None, 0.5, 7, "x")] == [
        "yes",
        "no",
        "-",
        "0.5000",
        "7",
        "x",
    ]
    assert md("a | b\nc") == "a \\| b c"
    reasons = [
        {"feature": "carrier", "contribution": 0.123},
        {"feature": "dest", "contribution": -0.5},
    ]
    assert format_reasons(reasons) == "carrier +0.12, dest -0.50" and format_reasons(None) == ""


def test_templates_escape_every_value_and_markdown_templates_do_not():
    page = render(
        "validation_index.html",
        title=HOSTILE,
        runs=[
            {"page": HOSTILE, "batch": HOSTILE, "success": True, "suites": [HOSTILE], "warnings": 0}
        ],
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&#39;" in page  # a quote cannot close the single-quoted href
    card = render("model_card.md", version="v|1", sections=[], calibration=[], importance=[])
    assert card.startswith("# Model card: v|1")


def _chart_texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_a_histogram_labels_its_axes_and_bins_and_escapes_them():
    svg = charts.histogram(
        ["9E", HOSTILE, "other"],
        [0.2, 0.3, 0.5],
        [0.1, 0.6, 0.3],
        current_label="2013-03-20",
        categorical=True,
    )
    texts = _chart_texts(svg)
    assert {"category", "share of flights", "9E", "reference", "2013-03-20"} <= set(texts)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'width="100%"' in svg and "viewBox=" in svg and "max-width:320px" in svg


def test_a_histogram_of_many_categories_keeps_the_largest_and_sums_the_rest():
    bins = [f"c{i:02d}" for i in range(40)]
    shares = [1 / 40] * 40
    shares[7] = 0.3
    svg = charts.histogram(bins, shares, shares, current_label="day", categorical=True, most=5)
    texts = _chart_texts(svg)
    assert "c07" in texts and "36 others" in texts and "c39" not in texts


def test_a_line_chart_writes_dates_as_dates_and_has_a_legend_and_a_y_axis():
    dates = [f"2013-03-{d:02d}" for d in range(1, 29)]
    svg = charts.lines(
        dates, {"estimated AUC": [0.6] * 28, "realized AUC": [None, *([0.7] * 27)]}, y_title="AUC"
    )
    texts = _chart_texts(svg)
    assert "Mar 1" in texts and "AUC" in texts and "date" in texts
    assert {"estimated AUC", "realized AUC"} <= set(texts)
    assert not any(re.search(r"\d\d:\d\d|T00|2013-", t) for t in texts)


def test_a_line_chart_of_one_value_puts_its_ticks_around_it():
    """A first day's history is one point: its axis brackets the value (a scale whose
    domain is one point labelled an AUC of 0.632 as "1")."""
    svg = charts.lines(
        ["2013-03-15"], {"estimated AUC": [0.632], "realized AUC": [None]}, y_title="AUC"
    )
    ticks = [float(t) for t in _chart_texts(svg) if re.fullmatch(r"\d+(\.\d+)?", t)]
    assert len(ticks) >= 2 and min(ticks) < 0.632 < max(ticks) <= 0.7, ticks


def test_charts_are_offline_deterministic_and_self_contained():
    make = lambda: charts.calibration(  # noqa: E731
        [
            {
                "low": 0.1 * i,
                "high": 0.1 * (i + 1),
                "mean_prediction": 0.1 * i + 0.05,
                "observed_rate": 0.1 * i,
                "rows": 100 + i,
            }
            for i in range(5)
        ]
    )
    svg = make()
    assert svg == make()
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert external_references(svg) == [] and "<script" not in svg and " id=" not in svg
    with pytest.raises(ValueError, match="not allowed"):
        charts.render({"data": {"url": "https://example.com/x.csv"}, "mark": "point"}, 100)
