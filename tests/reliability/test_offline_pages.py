"""No page the project writes references another host: every HTML file under the data
folder after a daily run (drift reports, model cards, validation pages, backtest
reports) is checked for URLs, scripts and styles that would be fetched from elsewhere."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ml.monitor import monitor
from ml.predict import predict
from ml.validate import validate_day
from tests.conftest import make_settings
from tests.reliability.conftest import external_references

DAY = dt.date(2013, 3, 20)


def test_the_checker_finds_what_it_must_and_only_that():
    assert external_references("<script src='https://cdn.example.com/x.js'></script>")
    assert external_references('<link href="//cdn.example.com/x.css">')
    assert external_references("<style>@import 'https://x/y.css';</style>")
    assert external_references("<div style=\"background:url('http://x/y.png')\">")
    assert not external_references("<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    assert not external_references("<a href='reports/drift/drift_2013-03-20.html'>")


def test_no_page_we_produce_references_another_host(trained_copy):
    settings = make_settings(trained_copy)
    predict(settings, DAY)
    monitor(settings, DAY)
    validate_day(settings, DAY)
    pages = sorted(Path(trained_copy).rglob("*.html"))
    kinds = {p.parent.name for p in pages}
    assert {"drift", "validation"} <= kinds and any(p.name == "model_card.html" for p in pages)
    offending = {
        str(p.relative_to(trained_copy)): external_references(p.read_text(errors="replace"))
        for p in pages
    }
    assert {k: v for k, v in offending.items() if v} == {}
    for page in pages:
        assert "<script" not in page.read_text(errors="replace").lower(), page
