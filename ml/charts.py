"""Charts as static SVG: Vega-Lite specifications rendered offline by ``vl-convert``.

Every function takes plain lists and returns one ``<svg>`` element to embed in a page:
text stays text (selectable, scaled with the page), nothing runs in the browser and
nothing is fetched (the renderer is told to refuse every URL). The SVG carries a
``viewBox`` and ``width="100%"``, so it shrinks to the box it is shown in; ``width`` is
the size it is drawn for, and it never grows past it.

The specifications are Vega-Lite JSON written as dictionaries rather than through Altair:
Altair builds the same JSON but spends longer validating it (about 40 ms a chart here)
than Vega takes to draw it. Dates are drawn in UTC, so a day is the day whatever the
machine's time zone. This module imports nothing from ``ml``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from typing import Any

VEGA_LITE = "6.4"
REFERENCE = "#9aa4b2"
CURRENT = "#2f6fdb"
PALETTE = [CURRENT, "#d9822b", REFERENCE, "#067647", "#b42318"]
FULL_WIDTH = 1000  # the pages' column (1100 px) less its padding
CARD_WIDTH = 320  # a card of the pages' grids at its narrowest, less its padding
# vl-convert lays a chart out with its text measured in the font it carries, Liberation
# Sans (Arial's metrics, and Helvetica's near enough), whatever family is named first: a
# family it lacks falls through the list, and a named family it finds on the machine costs
# twice the time per chart. The pages then draw that text in the first of these the
# viewer has, so the room measured fits it; a browser with none of them falls back to
# its own sans-serif, which may be wider (DejaVu Sans, about 10%).
CONFIG = {
    "background": None,
    "font": "Liberation Sans, Arial, Helvetica, sans-serif",
    "view": {"stroke": None},
    "axis": {"labelFontSize": 11, "titleFontSize": 11, "titleFontWeight": "normal"},
    "legend": {"labelFontSize": 11, "orient": "bottom", "title": None},
}
_PATH = re.compile(r' d="[^"]*"')
_DECIMALS = re.compile(r"-?\d+\.\d{2,}")
_ROOT = re.compile(r'<svg([^>]*?) width="([\d.]+)" height="([\d.]+)"')


def histogram(
    bins: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    current_label: str,
    categorical: bool,
    most: int = 15,
    width: int = CARD_WIDTH,
) -> str:
    """Shares of the reference and of the current batch per bin, one pair of bars per bin
    (horizontal, so every bin's label reads whole: bin edges or category names). Past
    ``most`` bins, the ``most - 1`` with the largest share in either batch are drawn in
    their order and the rest as one bar, "<n> others"."""
    labels, reference, current = _most([str(b) for b in bins], list(reference), list(current), most)
    rows = [
        {"bin": label, "share": _finite(share), "batch": batch}
        for batch, shares in (("reference", reference), (current_label, current))
        for label, share in zip(labels, shares, strict=True)
    ]
    spec = {
        "data": {"values": rows},
        "mark": "bar",
        "height": {"step": 8},  # of each bar: a bin is two bars and a gap
        "encoding": {
            "y": {
                "field": "bin",
                "type": "nominal",
                "sort": labels,
                "title": "category" if categorical else "value (reference decile bins)",
                # never cut a label short (and Vega skips measuring each one to decide)
                "axis": {"labelLimit": 0},
            },
            "yOffset": {"field": "batch", "sort": ["reference", current_label]},
            "x": {
                "field": "share",
                "type": "quantitative",
                "title": "share of flights",
                "axis": {"format": ".0%", "tickCount": 4},
            },
            "color": _colours("batch", ["reference", current_label], [REFERENCE, CURRENT]),
        },
    }
    return render(spec, width)


def _most(
    labels: list[str], reference: list[float], current: list[float], most: int
) -> tuple[list[str], list[float], list[float]]:
    if len(labels) <= most:
        return labels, reference, current
    size = [
        max(_finite(r) or 0.0, _finite(c) or 0.0) for r, c in zip(reference, current, strict=True)
    ]
    keep = sorted(sorted(range(len(labels)), key=lambda i: -size[i])[: most - 1])
    rest = [i for i in range(len(labels)) if i not in set(keep)]
    return (
        [labels[i] for i in keep] + [f"{len(rest)} others"],
        [reference[i] for i in keep] + [sum(_finite(reference[i]) or 0.0 for i in rest)],
        [current[i] for i in keep] + [sum(_finite(current[i]) or 0.0 for i in rest)],
    )


def lines(
    dates: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    y_title: str,
    x_title: str = "date",
    width: int = FULL_WIDTH,
    height: int = 180,
) -> str:
    """One line per named series over ISO dates (``None`` leaves a gap), with a legend."""
    rows = [
        {"date": day, "value": _finite(value), "series": name}
        for name, values in series.items()
        for day, value in zip(dates, values, strict=False)
    ]
    names = list(series)
    y_scale: dict[str, Any] = {"zero": False, "nice": True, "padding": 8}
    drawn = {row["value"] for row in rows if row["value"] is not None}
    if len(drawn) == 1:  # one value (a first day): a scale around it, not a point domain
        (value,) = drawn
        half = max(abs(value) * 0.05, 0.01)
        y_scale["domain"] = [value - half, value + half]
    spec = {
        "data": {"values": rows},
        "height": height,
        "encoding": {
            "x": {
                "field": "date",
                "type": "temporal",
                "title": x_title,
                # A UTC scale formats its labels in UTC (and "formatType": "utc" beside
                # a format makes Vega-Lite 6.4 drop the format). Ticks on the data's own
                # dates (weekly data: on its Mondays), as many as fit.
                "scale": {"type": "utc", "padding": 12},
                "axis": {"format": "%b %-d", "values": _thin(dates, width // 80)},
            },
            "y": {
                "field": "value",
                "type": "quantitative",
                "title": y_title,
                # Room above and below the extreme values, so that no point sits on the
                # plot's edge.
                "scale": y_scale,
                "axis": {"tickCount": 5},
            },
            "color": _colours("series", names, PALETTE),
        },
        "layer": [
            {"mark": {"type": "line", "invalid": "break-paths-show-domains"}},
            {"mark": {"type": "point", "filled": True, "size": 24}},
        ],
    }
    return render(spec, width)


def grouped_bars(
    groups: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    x_title: str,
    y_title: str,
    width: int | None = None,
    height: int = 200,
) -> str:
    """Bars per group (x, in the order given) and series (colour), from zero: a value
    below zero is a bar under the axis. As wide as its bars need, up to ``FULL_WIDTH``."""
    names = list(series)
    width = width or min(FULL_WIDTH, 160 + 60 * len(groups) * max(len(names), 1))
    rows = [
        {"group": str(group), "value": _finite(value), "series": name}
        for name, values in series.items()
        for group, value in zip(groups, values, strict=False)
    ]
    spec = {
        "data": {"values": rows},
        "mark": "bar",
        "height": height,
        "encoding": {
            "x": {
                "field": "group",
                "type": "nominal",
                "sort": [str(g) for g in groups],
                "title": x_title,
                "axis": {"labelAngle": 0},
            },
            "xOffset": {"field": "series", "sort": names},
            "y": {"field": "value", "type": "quantitative", "title": y_title},
            "color": _colours("series", names, PALETTE),
        },
    }
    return render(spec, width)


def calibration(bins: Sequence[dict[str, Any]], *, size: int = 360) -> str:
    """Observed rate against mean prediction per bin (each point's area follows its rows),
    with the diagonal of perfect calibration."""
    rows = [
        {
            "predicted": b["mean_prediction"],
            "observed": b["observed_rate"],
            "flights": b["rows"],
            "bin": f"{b['low']:.1f}-{b['high']:.1f}",
        }
        for b in bins
    ]
    axis = {"format": ".1f", "values": [0, 0.2, 0.4, 0.6, 0.8, 1]}
    spec = {
        "height": size - 70,
        "layer": [
            {
                "data": {"values": [{"p": 0}, {"p": 1}]},
                "mark": {"type": "line", "color": REFERENCE, "strokeDash": [4, 3]},
                "encoding": {
                    "x": {"field": "p", "type": "quantitative"},
                    "y": {"field": "p", "type": "quantitative"},
                },
            },
            {
                "data": {"values": rows},
                "encoding": {
                    "x": {
                        "field": "predicted",
                        "type": "quantitative",
                        "title": "mean predicted probability",
                        "scale": {"domain": [0, 1]},
                        "axis": axis,
                    },
                    "y": {
                        "field": "observed",
                        "type": "quantitative",
                        "title": "observed delay rate",
                        "scale": {"domain": [0, 1]},
                        "axis": axis,
                    },
                },
                "layer": [
                    {"mark": {"type": "line", "color": CURRENT}},
                    {
                        "mark": {
                            "type": "circle",
                            "color": CURRENT,
                            "opacity": 0.6,
                        },
                        "encoding": {
                            "size": {
                                "field": "flights",
                                "type": "quantitative",
                                "scale": {"zero": False, "range": [16, 400]},
                                "legend": {"title": "flights", "orient": "right", "tickCount": 3},
                            }
                        },
                    },
                ],
            },
        ],
    }
    return render(spec, size)


def bars(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    x_title: str,
    y_title: str,
    width: int = 720,
) -> str:
    """Horizontal bars, one per label in the order given, each with its value written."""
    order = [str(label) for label in labels]
    rows = [{"label": k, "value": _finite(v)} for k, v in zip(order, values, strict=True)]
    y = {
        "field": "label",
        "type": "nominal",
        "sort": order,
        "title": y_title,
        "axis": {"labelLimit": 0},
    }
    x = {"field": "value", "type": "quantitative", "title": x_title, "axis": {"tickCount": 6}}
    top = max((r["value"] for r in rows if r["value"] is not None), default=None)
    if top is not None and top > 0:
        # room right of the longest bar for its written value (0.0616: about 11 % of it)
        x["scale"] = {"domainMax": top * 1.15}
    spec = {
        "data": {"values": rows},
        "height": {"step": 18},
        "encoding": {"y": y, "x": x},
        "layer": [
            {"mark": {"type": "bar", "color": CURRENT}},
            {
                "mark": {"type": "text", "align": "left", "dx": 3, "fontSize": 10},
                "encoding": {"text": {"field": "value", "format": ".4f"}},
            },
        ],
    }
    return render(spec, width)


def heatmap(
    dates: Sequence[str],
    rows: Sequence[str],
    values: Sequence[Sequence[float | None]],
    flagged: Sequence[Sequence[bool]],
    *,
    value_title: str,
    flag_title: str,
    y_title: str,
    clip: tuple[float, float],
    width: int = FULL_WIDTH,
) -> str:
    """A cell per row (in the order given) and ISO date, coloured by its value clipped to
    ``clip`` (``None``: no cell); a dot marks each flagged cell. ``values[i][j]`` and
    ``flagged[i][j]`` are row i on date j."""
    low, high = clip
    cells = [
        {"date": day, "row": row, "value": min(max(value, low), high), "flag": bool(flag)}
        for row, row_values, row_flags in zip(rows, values, flagged, strict=True)
        for day, value, flag in zip(dates, row_values, row_flags, strict=True)
        if _finite(value) is not None
    ]
    x = {
        "field": "date",
        "type": "ordinal",
        "title": "date",
        "sort": list(dates),
        "scale": {"domain": list(dates)},
        "axis": {
            "values": _thin(dates, width // 70),
            "labelExpr": "utcFormat(toDate(datum.value), '%b %-d')",
            "labelAngle": 0,
        },
    }
    y = {
        "field": "row",
        "type": "nominal",
        "sort": list(rows),
        "scale": {"domain": list(rows)},
        "title": y_title,
        "axis": {"labelLimit": 0},
    }
    spec = {
        "data": {"values": cells},
        "height": {"step": 14},
        "encoding": {"x": x, "y": y},
        "layer": [
            {
                "mark": {"type": "rect", "aria": False},
                "encoding": {
                    "color": {
                        "field": "value",
                        "type": "quantitative",
                        "title": value_title,
                        "scale": {"domain": [low, high], "scheme": "blues"},
                        "legend": {
                            "orient": "bottom",
                            "title": value_title,
                            "titleLimit": 0,
                            "gradientLength": 240,
                        },
                    }
                },
            },
            {
                "transform": [{"filter": "datum.flag"}],
                "mark": {
                    "type": "point",
                    "filled": True,
                    "size": 30,
                    "color": PALETTE[1],
                    "stroke": "white",
                    "strokeWidth": 0.5,
                    "aria": False,
                },
                "encoding": {
                    "shape": {
                        "datum": flag_title,
                        "type": "nominal",
                        "scale": {"range": ["circle"]},
                        "legend": {"orient": "bottom", "title": None},
                    }
                },
            },
        ],
    }
    return render(spec, width)


def render(spec: dict[str, Any], width: int) -> str:
    """``spec`` drawn ``width`` pixels wide in all (axes and legend included), as an SVG
    element that scales down to its container and never past ``width``."""
    full = {
        "$schema": f"https://vega.github.io/schema/vega-lite/v{VEGA_LITE.split('.')[0]}.json",
        "width": width,
        "autosize": {"type": "fit-x", "contains": "padding"},
        **spec,
        "config": CONFIG,
    }
    return _drawn(json.dumps(full))


@functools.lru_cache(maxsize=256)
def _drawn(spec: str) -> str:
    """A Vega-Lite specification (JSON) as a responsive SVG. Drawing is a pure function of
    the specification, so a page drawn again in the same process (a day's drift page,
    once by monitoring and again with the retraining decision) reuses its charts."""
    import vl_convert

    svg = vl_convert.vegalite_to_svg(json.loads(spec), vl_version=VEGA_LITE, allowed_base_urls=[])
    return _responsive(svg)


def _responsive(svg: str) -> str:
    """The root element sized by its ``viewBox``: full width of its box, at most its own;
    path coordinates to a tenth of a pixel (Vega writes 15 digits: a heatmap's cells
    would cost twice the bytes for nothing visible)."""
    bare = svg.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "", 1)
    if "xlink:" not in bare:  # declared, never used: one address fewer in the page
        svg = bare
    svg = _PATH.sub(lambda m: _DECIMALS.sub(_tenth, m.group(0)), svg)
    return _ROOT.sub(
        lambda m: (
            f'<svg{m.group(1)} role="img" width="100%" '
            f'style="max-width:{m.group(2)}px;height:auto;display:block"'
        ),
        svg,
        count=1,
    )


def _tenth(match: re.Match[str]) -> str:
    return f"{float(match.group(0)):.1f}".removesuffix(".0")


def _thin(values: Sequence[str], most: int) -> list[str]:
    """Every k-th of ``values``, at most ``most`` of them, the first always."""
    step = max(1, math.ceil(len(values) / max(most, 1)))
    return list(values[::step])


def _colours(field: str, domain: list[str], colours: list[str]) -> dict[str, Any]:
    """A colour per name of ``domain``, in that order, with a legend."""
    return {
        "field": field,
        "type": "nominal",
        "sort": domain,
        "scale": {"domain": domain, "range": colours[: len(domain)]},
    }


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
