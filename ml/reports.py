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
