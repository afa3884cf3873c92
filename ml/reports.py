"""Reports: self-contained HTML pages (inline CSS and SVG, no network needed)."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem}
.muted{color:#5b6475} table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e3e6ec} th{background:#f5f7fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b42318;font-weight:600} .ok{color:#067647}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1rem}
.card{border:1px solid #e3e6ec;border-radius:8px;padding:.6rem .8rem}
.card h3{font-size:.95rem;margin:.1rem 0 .4rem}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""
REF_COLOUR = "#9aa4b2"
CUR_COLOUR = "#2f6fdb"


def page(title: str, body: str) -> str:
    """A complete HTML document with the shared inline style."""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def bar_chart_svg(
    labels: list[str],
    reference: list[float],
    current: list[float],
    width: int = 310,
    height: int = 130,
) -> str:
    """Paired bars (reference grey, current blue) per bin, as inline SVG."""
    n = max(len(labels), 1)
    top = max([*reference, *current, 1e-9])
    slot = (width - 10) / n
    bar = max(slot / 2 - 1, 1)
    plot_h = height - 22
    parts = [
        f"<svg width='{width}' height='{height}' role='img' xmlns='http://www.w3.org/2000/svg'>"
    ]
    for i, (label, ref, cur) in enumerate(zip(labels, reference, current, strict=False)):
        x = 5 + i * slot
        for j, (value, colour) in enumerate(((ref, REF_COLOUR), (cur, CUR_COLOUR))):
            h = plot_h * value / top
            parts.append(
                f"<rect x='{x + j * bar:.1f}' y='{plot_h - h + 2:.1f}' width='{bar:.1f}' height='{h:.1f}' "
                f"fill='{colour}'><title>{escape(str(label))}: {value:.3f}</title></rect>"
            )
        if n <= 12:
            parts.append(
                f"<text x='{x + slot / 2:.1f}' y='{height - 4}' font-size='8' text-anchor='middle'>"
                f"{escape(str(label))[:7]}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def drift_report_html(summary: dict[str, Any]) -> str:
    """The daily drift page: the verdict first, then every feature's distribution."""
    drifted = summary["drifted_features"]
    verdict = (
        f"<p class='bad'>{len(drifted)} of {len(summary['features'])} monitored series drifted "
        f"(PSI above its threshold): {escape(', '.join(drifted))}</p>"
        if drifted
        else "<p class='ok'>No drift: every feature and the score stay under their thresholds.</p>"
    )
    rows = "".join(
        f"<tr><td>{escape(f['feature'])}</td><td>{escape(f['kind'])}</td><td class='num'>{f['psi']:.3f}</td><td class='num'>{f['threshold']:.3f}</td>"
        f"<td class='{'bad' if f['is_drifted'] else 'ok'}'>{'drifted' if f['is_drifted'] else 'stable'}</td></tr>"
        for f in summary["features"]
    )
    cards = "".join(
        f"<div class='card'><h3>{escape(f['feature'])} <span class='muted'>PSI {f['psi']:.3f}</span></h3>"
        f"{bar_chart_svg(f['bins'] if f['kind'] == 'categorical' else [str(i) for i in range(len(f['reference_shares']))], f['reference_shares'], f['current_shares'])}</div>"
        for f in summary["features"]
    )
    body = (
        f"<h1>Drift report, {escape(summary['flight_date'])}</h1>"
        f"<p class='muted'>Flights scheduled on {escape(summary['flight_date'])} ({summary['current_rows']} rows) "
        f"against the training reference of model {escape(summary['model_version'])} "
        f"({summary['reference_rows']} rows). Population stability index per feature; numeric "
        f"features in the reference's decile bins. Each threshold is calibrated on the reference period: the largest PSI any single reference day showed, plus 25%.</p>{verdict}"
        f"<h2>Summary</h2><table><tr><th>feature</th><th>kind</th><th>PSI</th><th>threshold</th><th>verdict</th></tr>{rows}</table>"
        f"<h2>Distributions</h2><p class='legend'><span style='background:{REF_COLOUR}'></span>reference"
        f"<span style='background:{CUR_COLOUR}'></span>{escape(summary['flight_date'])}</p>"
        f"<div class='grid'>{cards}</div>"
    )
    return page(f"Drift {summary['flight_date']}", body)


def reliability_svg(bins: list[dict[str, Any]], size: int = 300) -> str:
    """Calibration plot: observed rate against mean prediction per bin, with the diagonal.

    Each point's area follows the bin's row count; hover shows the numbers.
    """
    pad = 34
    plot = size - 2 * pad

    def xy(px: float, py: float) -> tuple[float, float]:
        return pad + px * plot, size - pad - py * plot

    total = sum(b["rows"] for b in bins) or 1
    parts = [
        f"<svg width='{size}' height='{size}' role='img' xmlns='http://www.w3.org/2000/svg'>",
        f"<rect x='{pad}' y='{pad}' width='{plot}' height='{plot}' fill='none' stroke='#e3e6ec'/>",
        f"<line x1='{xy(0, 0)[0]}' y1='{xy(0, 0)[1]}' x2='{xy(1, 1)[0]}' y2='{xy(1, 1)[1]}' "
        f"stroke='{REF_COLOUR}' stroke-dasharray='4 3'/>",
    ]
    for tick in (0, 0.5, 1):
        x, y = xy(tick, 0)
        parts.append(f"<text x='{x}' y='{y + 14}' font-size='9' text-anchor='middle'>{tick}</text>")
        x, y = xy(0, tick)
        parts.append(f"<text x='{x - 6}' y='{y + 3}' font-size='9' text-anchor='end'>{tick}</text>")
    parts.append(
        f"<text x='{size / 2}' y='{size - 4}' font-size='10' text-anchor='middle'>mean predicted probability</text>"
        f"<text x='10' y='{size / 2}' font-size='10' text-anchor='middle' transform='rotate(-90 10 {size / 2})'>observed delay rate</text>"
    )
    points = [xy(b["mean_prediction"], b["observed_rate"]) for b in bins]
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f"<polyline points='{path}' fill='none' stroke='{CUR_COLOUR}'/>")
    for b, (x, y) in zip(bins, points, strict=True):
        radius = 2 + 8 * (b["rows"] / total) ** 0.5
        parts.append(
            f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{radius:.1f}' fill='{CUR_COLOUR}' fill-opacity='.6'>"
            f"<title>{b['low']:.1f}-{b['high']:.1f}: {b['rows']} rows, predicted {b['mean_prediction']:.3f}, "
            f"observed {b['observed_rate']:.3f}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def hbar_svg(labels: list[str], values: list[float], width: int = 520, unit: str = "") -> str:
    """Horizontal bars, one per label, longest first as given; negative values drawn at zero."""
    row = 16
    label_w = 230
    height = row * len(labels) + 6
    top = max([abs(v) for v in values] + [1e-12])
    parts = [
        f"<svg width='{width}' height='{height}' role='img' xmlns='http://www.w3.org/2000/svg'>"
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 3 + i * row
        w = max(value, 0) / top * (width - label_w - 70)
        parts.append(
            f"<text x='{label_w - 6}' y='{y + 11}' font-size='10' text-anchor='end'>{escape(label)}</text>"
            f"<rect x='{label_w}' y='{y + 2}' width='{w:.1f}' height='{row - 5}' fill='{CUR_COLOUR}'>"
            f"<title>{escape(label)}: {value:.5f}{unit}</title></rect>"
            f"<text x='{label_w + w + 4:.1f}' y='{y + 11}' font-size='9'>{value:.4f}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
