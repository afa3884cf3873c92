"""Pages for people: one Jinja2 environment over ``ml/templates``, and the formatters.

Every page the project writes or serves (drift and performance reports, validation
pages, model cards, backtest reports, the ML view of the Airflow UI) is a template here,
rendered from one context (a dictionary of plain data) by :func:`render`. HTML templates
are autoescaped: a value is text unless a template says otherwise, and the only markup a
template lets through unescaped is a chart's SVG (``| safe``), drawn by :mod:`ml.charts`.
A Markdown template (``*.md``) is not escaped; it formats table cells with ``md``.

The formatters are the one way numbers are written for people, in pages and on the
command line alike: :func:`number` (a dash for a missing or non-finite value: the AUC of
a day with one class is NaN), :func:`percent`, :func:`cell` (what a table cell shows)
and :func:`format_reasons`.
"""

from __future__ import annotations

import math
from functools import cache
from numbers import Integral, Real
from typing import Any

import jinja2

from ml import charts

MISSING = "-"


def number(value: Any, digits: int = 3, style: str = "f") -> str:
    """``value`` to ``digits`` places (``style`` ``f``), significant digits (``g``), or as
    a percentage (``%``); ``+`` before the style writes the sign. A dash for ``None``, NaN,
    an infinity or anything that is not a number; an integer with thousands separators."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return MISSING
    if isinstance(value, Integral) and style in ("f", "g"):
        return f"{int(value):,}"
    value = float(value)
    if not math.isfinite(value):
        return MISSING
    sign, kind = ("+", style[1:]) if style.startswith("+") else ("", style)
    return f"{value:{sign}.{digits}{kind}}"


def percent(value: Any, digits: int = 1) -> str:
    """``value`` (a share, 0..1) as a percentage: ``0.305`` is ``30.5%``."""
    return number(value, digits, "%")


def cell(value: Any, digits: int = 4) -> str:
    """What a table cell shows: numbers by :func:`number`, booleans as yes or no,
    ``None`` as a dash, anything else as its text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or isinstance(value, Real):
        return number(value, digits)
    return str(value)


def format_reasons(reasons: list[dict] | None) -> str:
    """A prediction's ``top_reasons`` as text: ``feature +0.12, ...`` (log-odds)."""
    if reasons is None:  # DuckDB returns a list as a NumPy array: no truth value
        return ""
    return ", ".join(f"{r['feature']} {number(r['contribution'], 2, '+f')}" for r in reasons)


def md(value: Any, digits: int = 4) -> str:
    """A Markdown table cell: :func:`cell`, on one line, its pipes escaped."""
    return " ".join(cell(value, digits).split()).replace("|", "\\|")


def pick(mapping: dict[str, Any], keys: list[str]) -> list[Any]:
    """The values of ``keys`` in ``mapping``, in that order: a record as a table row."""
    return [mapping[key] for key in keys]


def is_number(value: Any) -> bool:
    """A number to align right in a table (not a boolean)."""
    return isinstance(value, Real) and not isinstance(value, bool)


@cache
def environment() -> jinja2.Environment:
    """The one environment: the package's templates, autoescaped but for Markdown,
    undefined names an error, the formatters as filters and the charts as ``charts``."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ml", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        number=number, percent=percent, cell=cell, md=md, reasons=format_reasons, pick=pick
    )
    env.tests["numeric"] = is_number
    env.globals["charts"] = charts
    return env


def render(template: str, /, **context: Any) -> str:
    """``template`` (a path under ``ml/templates``) rendered with ``context``."""
    return environment().get_template(template).render(**context)
