"""Reports: self-contained HTML pages (inline CSS and SVG, no network needed)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem}
.muted{color:#5b6475} table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e3e6ec} th{background:#f5f7fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b42318;font-weight:600} .ok{color:#067647}
.error{color:#b42318;background:#fef3f2;border:1px solid #fecdca;border-radius:6px;padding:.4rem .6rem}
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


def line_chart_svg(
    dates: list[str], series: dict[str, list[float | None]], width: int = 640, height: int = 200
) -> str:
    """Lines over dates, one per named series (None leaves a gap), with a legend."""
    colours = [CUR_COLOUR, "#d9822b", REF_COLOUR, "#067647"]
    values = [v for vs in series.values() for v in vs if v is not None]
    if not dates or not values:
        return "<p class='muted'>No history yet.</p>"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    low, high = low - 0.1 * span, high + 0.1 * span
    pad_l, pad_r, pad_t, pad_b = 46, 10, 10, 34
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad_l + (plot_w * i / max(len(dates) - 1, 1))
        return x, pad_t + plot_h * (1 - (v - low) / (high - low))

    parts = [
        f"<svg width='{width}' height='{height}' role='img' xmlns='http://www.w3.org/2000/svg'>"
    ]
    for tick in (low, (low + high) / 2, high):
        _, y = xy(0, tick)
        parts.append(
            f"<line x1='{pad_l}' x2='{width - pad_r}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e3e6ec'/>"
            f"<text x='{pad_l - 4}' y='{y + 3:.1f}' font-size='9' text-anchor='end'>{tick:.3f}</text>"
        )
    for i in sorted({0, len(dates) // 2, len(dates) - 1}):
        x, _ = xy(i, low)
        parts.append(
            f"<text x='{x:.1f}' y='{height - 20}' font-size='9' text-anchor='middle'>{escape(dates[i])}</text>"
        )
    for k, (name, vs) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        segment: list[str] = []
        for i, v in enumerate([*vs, None]):
            if v is None:
                if len(segment) > 1:
                    parts.append(
                        f"<polyline points='{' '.join(segment)}' fill='none' stroke='{colour}' stroke-width='1.5'/>"
                    )
                segment = []
                continue
            x, y = xy(i, v)
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{colour}'><title>{escape(name)} {escape(dates[i])}: {v:.4f}</title></circle>"
            )
        parts.append(
            f"<rect x='{pad_l + 150 * k}' y='{height - 11}' width='10' height='10' fill='{colour}'/>"
            f"<text x='{pad_l + 150 * k + 14}' y='{height - 2}' font-size='10'>{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def number(value: Any, digits: int = 3) -> str:
    """A number to ``digits`` places; a dash for a missing or non-finite one (the AUC of a
    constant prediction is NaN)."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def format_reasons(reasons: list[dict] | None) -> str:
    """A prediction's ``top_reasons`` as text: ``feature +0.12, ...`` (log-odds)."""
    if reasons is None:  # DuckDB returns a list as a NumPy array: no truth value
        return ""
    return ", ".join(f"{r['feature']} {r['contribution']:+.2f}" for r in reasons)


class Html(str):
    """Markup built from escaped parts (a link, say): :func:`table` inserts it as it is."""


def table(header: list[str], rows: list[list[Any]], digits: int = 4) -> str:
    """An HTML table: floats right-aligned to ``digits`` places, :class:`Html` cells as
    they are, every other value escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)

    def cell(value: Any) -> str:
        if isinstance(value, Html):
            return f"<td>{value}</td>"
        if isinstance(value, float):
            return f"<td class='num'>{number(value, digits)}</td>"
        return f"<td>{escape(str(value))}</td>"

    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def performance_html(performance: dict[str, Any]) -> str:
    """Today's estimate, the matured day's realized metrics beside the prior, and the history."""
    head = (
        "<tr><th>kind</th><th>day</th><th>role</th><th>model</th><th>flights</th><th>AUC</th>"
        "<th>log loss</th><th>prior-rate log loss</th><th>Brier</th><th>ECE</th><th>precision</th>"
        "<th>recall</th><th>delayed</th></tr>"
    )
    rows = []
    for kind, day, records in (
        ("estimated", None, performance["estimated"]),
        ("realized", performance["realized_day"], performance["realized"]),
    ):
        for r in records:
            if r["dimension"] != "all":
                continue
            rows.append(
                f"<tr><td>{kind}</td><td>{escape(day or '')}</td><td>{escape(r['model_role'])}</td>"
                f"<td>{escape(r['model_version'])}</td><td class='num'>{r['rows']}</td>"
                f"<td class='num'>{number(r['auc'])}</td><td class='num'>{number(r['log_loss'], 4)}</td>"
                f"<td class='num'>{number(r.get('prior_log_loss'), 4)}</td><td class='num'>{number(r['brier'], 4)}</td>"
                f"<td class='num'>{number(r['ece'])}</td><td class='num'>{number(r['precision'])}</td>"
                f"<td class='num'>{number(r['recall'])}</td><td class='num'>{number(r['observed_rate'])}</td></tr>"
            )
    if not performance["realized"]:
        rows.append(
            f"<tr><td>realized</td><td>{escape(performance['realized_day'])}</td>"
            "<td colspan='11' class='muted'>no predictions stored for that day</td></tr>"
        )
    history = performance["history"]
    dates = sorted({h["flight_date"] for h in history})
    charts = []
    for metric, label in (("auc", "AUC"), ("log_loss", "log loss")):
        series = {}
        for kind in ("estimated", "realized"):
            by_day = {h["flight_date"]: h[metric] for h in history if h["kind"] == kind}
            series[f"{kind} {label}"] = [by_day.get(d) for d in dates]
        charts.append(
            f"<div class='card'><h3>{label}, champion</h3>{line_chart_svg(dates, series)}</div>"
        )
    return (
        "<h2>Performance</h2>"
        "<p class='muted'>Estimated: what the calibrated scores imply before any label exists "
        "(confidence-based estimation); blind to a change in what the features mean, so it is set "
        "beside the realized value once the labels mature "
        f"(the realized day is the latest whose labels are all known). Precision and recall at p >= {performance['threshold']}.</p>"
        f"<table>{head}{''.join(rows)}</table><div class='grid'>{''.join(charts)}</div>"
    )


def _retraining_html(decision: dict[str, Any] | None) -> str:
    if not decision:
        return ""
    reasons = "".join(f"<li>{escape(r)}</li>" for r in decision["reasons"])
    if decision["retrain"]:
        return f"<p class='bad'>Retraining requested:</p><ul>{reasons}</ul>"
    return f"<p class='ok'>No retraining: {escape('; '.join(decision['reasons']))}.</p>"


def _series_row(f: dict[str, Any]) -> str:
    verdict = "drifted" if f["is_drifted"] else "stable"
    statistic = "-" if f["statistic"] is None else f"{f['statistic']:.4g}"
    z = "-" if f["z"] is None else f"{f['z']:.2f}"
    return (
        f"<tr><td>{escape(f['feature'])}</td><td>{escape(f['horizon'])}</td><td>{escape(f['test'])}</td>"
        f"<td class='num'>{statistic}</td><td class='num'>{f['threshold']:.4g}</td><td class='num'>{z}</td>"
        f"<td class='num'>{f['psi']:.3f}</td><td class='{'bad' if f['is_drifted'] else 'ok'}'>{verdict}</td>"
        f"<td>{escape(f.get('drifted_since') or '')}</td></tr>"
    )


def drift_report_html(summary: dict[str, Any]) -> str:
    """The daily drift page: the verdict first, then every series' test and distribution."""
    drifted = summary["drifted_features"]
    series = summary["series"]
    since = summary["drifted_since"]
    if drifted:
        items = "".join(
            f"<li><b>{escape(name)}</b>, drifted since {escape(since[name])}: "
            + "; ".join(
                f"{escape(f['horizon'])} {escape(f['test'])} {f['statistic']:.3g} against a threshold of {f['threshold']:.3g}"
                for f in series
                if f["feature"] == name and f["is_drifted"]
            )
            + "</li>"
            for name in drifted
        )
        verdict = f"<p class='bad'>{len(drifted)} series drifted out of {len({f['feature'] for f in series})}.</p><ul>{items}</ul>"
    else:
        verdict = "<p class='ok'>No drift: every feature and the score stay within their calibrated thresholds.</p>"
    header = (
        "<tr><th>series</th><th>horizon</th><th>test</th><th>statistic</th><th>threshold</th>"
        "<th>z</th><th>PSI</th><th>verdict</th><th>since</th></tr>"
    )
    rows = "".join(_series_row(f) for f in series)
    day_series = [f for f in series if f["horizon"] == "day"]
    day_series.sort(key=lambda f: (f["feature"] not in drifted, f["feature"]))
    cards = "".join(
        f"<div class='card'><h3>{escape(f['feature'])} <span class='{'bad' if f['feature'] in drifted else 'muted'}'>"
        f"{'drifted' if f['feature'] in drifted else 'stable'}</span></h3>"
        f"{bar_chart_svg(f['bins'], f['reference_shares'], f['current_shares'])}</div>"
        for f in day_series
    )
    reference = summary["reference"]
    window = summary["window"]
    body = (
        f"<h1>Monitoring report, {escape(summary['flight_date'])}</h1>"
        f"<p class='muted'>The {summary['current_rows']} flights scheduled on {escape(summary['flight_date'])}, and the "
        f"{window['rows']} of the trailing window from {escape(window['first'])} ({window['days']} days), against the training "
        f"window of model {escape(summary['model_version'])}: {escape(reference['first'])} to {escape(reference['last'])}, "
        f"{reference['rows']} flights over {reference['days']} days.</p>"
        f"<h2>Summary: drift</h2>{verdict}{_retraining_html(summary.get('retraining'))}"
        f"<p class='muted'>{summary['tests']} tests (every feature and the score, at both horizons). A series drifts when its "
        f"statistic's z-score against its own day-to-day spread over the reference period exceeds {summary['z_threshold']:.2f}, "
        f"a threshold set so that at most {summary['family_alpha']:.0%} of reference days raise any alarm over all tests together "
        f"(on the reference period itself: {summary['reference_alarm_rate']:.1%}). "
        "Kolmogorov-Smirnov and chi-square for small batches, normalised Wasserstein and Jensen-Shannon for large ones; "
        "the PSI is shown for comparison.</p>"
        f"{performance_html(summary['performance']) if 'performance' in summary else ''}"
        f"<h2>Every test</h2><table>{header}{rows}</table>"
        f"<h2>Distributions on the day</h2><p class='legend'><span style='background:{REF_COLOUR}'></span>reference"
        f"<span style='background:{CUR_COLOUR}'></span>{escape(summary['flight_date'])}</p>"
        f"<div class='grid'>{cards}</div>"
    )
    return page(f"Monitoring {summary['flight_date']}", body)


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


def validation_html(report: dict[str, Any]) -> str:
    """One validation run: every suite, every expectation with its outcome, the warnings."""
    verdict = "passed" if report["success"] else "failed"
    body = [
        f"<h1>Validation {escape(report['batch'])}: "
        f"<span class='{'ok' if report['success'] else 'bad'}'>{verdict}</span></h1>",
        "<p class='muted'><a href='index.html'>every validation run</a></p>",
    ]
    if report.get("warnings"):
        body.append("<h2>Warnings</h2><ul>")
        body.extend(f"<li>{escape(w)}</li>" for w in report["warnings"])
        body.append("</ul>")
    for suite in report["suites"]:
        failed = sum(not r["success"] for r in suite.get("results", []))
        body.append(
            f"<h2>{escape(suite['suite'])}</h2><p class='muted'>{escape(suite['source'])}: "
            f"{suite['evaluated']} expectations, {failed} failed"
            + (
                f"; days refused: {escape(', '.join(suite['bad_days']))}"
                if suite["bad_days"]
                else ""
            )
            + "</p>"
        )
        rows = [
            [
                Html(
                    "<span class='ok'>pass</span>"
                    if r["success"]
                    else "<span class='bad'>FAIL</span>"
                ),
                r["expectation"],
                ", ".join(r["column"]) if isinstance(r["column"], list) else r["column"] or "",
                r["checked"],
                r["observed"],
            ]
            for r in suite.get("results", [])
        ]
        body.append(table(["", "expectation", "column", "checks", "observed"], rows))
        for failure in suite["failures"]:
            body.append(
                f"<p class='error'>{escape(failure['expectation'])}: {escape(failure['detail'])}</p>"
            )
    return page(f"Validation {report['batch']}", "".join(body))


def validation_index_html(rows: list[dict[str, Any]]) -> str:
    """Every validation run on file, newest first, linked to its page."""
    cells = [
        [
            Html(f"<a href='{escape(r['page'])}'>{escape(r['batch'])}</a>")
            if r["page"]
            else r["batch"],
            Html("<span class='ok'>passed</span>")
            if r["success"]
            else Html("<span class='bad'>failed</span>" if r["success"] is False else "unreadable"),
            ", ".join(s for s in r["suites"] if s),
            r.get("warnings", 0),
        ]
        for r in rows
    ]
    body = (
        "<h1>Data validation</h1><p class='muted'>Every run of the expectation suites "
        "(raw files at ingest, the feature mart before it is published), newest first.</p>"
        + table(["batch", "result", "suites", "warnings"], cells)
    )
    return page("Data validation", body)
