"""Rendering time of the drift report and of a backtest run's report, from the same inputs.

Needs a data folder with a drift report's JSON (``ml monitor``) and a completed backtest
run (``ml backtest``); ``make demo`` and ``make bench-backtest`` leave both. Times only the
rendering: the drift page from ``reports/drift/drift_<date>.json`` as ``ml monitor`` wrote
it, and a run's page from its summary (the run's tables loaded and its statistics computed
once, before the clock starts). The first call in a process is shown on its own: it
includes whatever the renderer loads once (Vega's JavaScript engine, the templates).

With ``--libraries``, also one drift histogram (10 bins, two batches) drawn three ways,
in CPU milliseconds (steadier than wall time on a shared machine): ``ml.charts`` (a
Vega-Lite specification written as a dictionary, drawn by vl-convert), the same chart
specified through Altair and drawn by vl-convert, and matplotlib's SVG backend (if it is
installed: it is not in the lock).

Usage:
    ML_DATA_DIR=data .venv/bin/python benchmarks/report_render.py --repeat 7 \\
        [--date 2013-07-03] [--run-id <id>] [--libraries]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

from ml.backtest import load_runs
from ml.backtest_report import run_html
from ml.backtest_stats import run_summary
from ml.config import load_settings
from ml.dates import parse_date
from ml.reports import drift_report_html


def _times(render: Callable[[], str], repeat: int) -> tuple[float, float, float, int]:
    """The first call's seconds, the median wall and CPU seconds of ``repeat`` more (CPU
    time counts every thread of the process, the renderer's own included), and the page's
    size."""
    started = time.perf_counter()
    page = render()
    first = time.perf_counter() - started
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        render()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return first, statistics.median(wall), statistics.median(cpu), len(page)


def _cpu_ms(draw: Callable[[], str], repeat: int) -> float:
    draw()
    times = []
    for _ in range(repeat):
        started = time.process_time()
        draw()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def _libraries(repeat: int) -> None:
    """One histogram, three ways: CPU milliseconds each (median of ``repeat``)."""
    from ml import charts

    bins = [f"{a} to {a + 3}" for a in range(0, 30, 3)]
    reference = [0.1] * 10
    current = [0.05, 0.15] * 5

    def altair() -> str:
        import altair as alt
        import vl_convert

        rows = [
            {"bin": b, "share": v, "batch": batch}
            for batch, values in (("reference", reference), ("2013-07-01", current))
            for b, v in zip(bins, values, strict=True)
        ]
        chart = (
            alt.Chart(alt.Data(values=rows))
            .mark_bar()
            .encode(
                y=alt.Y("bin:N", sort=bins, title="value (reference decile bins)"),
                yOffset="batch:N",
                x=alt.X("share:Q", title="share of flights", axis=alt.Axis(format=".0%")),
                color=alt.Color("batch:N", legend=alt.Legend(orient="bottom", title=None)),
            )
            .properties(width=320, height=alt.Step(8))
        )
        return vl_convert.vegalite_to_svg(chart.to_dict(), allowed_base_urls=[])

    def matplotlib_svg() -> str:
        import io

        import matplotlib
        from matplotlib.figure import Figure

        matplotlib.rcParams["svg.fonttype"] = "none"
        figure = Figure(figsize=(3.3, 2.6), layout="constrained")
        axes = figure.add_subplot()
        y = range(len(bins))
        axes.barh([i - 0.2 for i in y], reference, 0.4, label="reference")
        axes.barh([i + 0.2 for i in y], current, 0.4, label="2013-07-01")
        axes.set_yticks(list(y), bins)
        axes.set_xlabel("share of flights")
        axes.set_ylabel("value (reference decile bins)")
        axes.legend()
        out = io.StringIO()
        figure.savefig(out, format="svg")
        return out.getvalue()

    ways = {
        "ml.charts: Vega-Lite dictionary, vl-convert": lambda: charts.histogram(
            bins, reference, current, current_label="2013-07-01", categorical=False
        ),
        "Altair specification, vl-convert": altair,
        "matplotlib, SVG backend": matplotlib_svg,
    }
    print(f"\n{'one histogram':48} {'CPU ms':>7}")
    for name, draw in ways.items():
        try:
            print(f"{name:48} {_cpu_ms(draw, repeat):7.1f}")
        except ImportError as exc:
            print(f"{name:48} {'-':>7}  ({exc.name} is not installed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--date", help="the drift report's date (default: the latest)")
    parser.add_argument("--run-id", help="the backtest run (default: the first by id)")
    parser.add_argument("--libraries", action="store_true", help="one chart, three ways")
    args = parser.parse_args()
    settings = load_settings()
    paths = settings.paths
    reports = sorted(paths.drift_reports.glob("drift_*.json"))
    drift = paths.drift_report(parse_date(args.date), ".json") if args.date else reports[-1]
    summary = json.loads(drift.read_text())
    run_id = args.run_id or load_runs(settings)["run_id"].iloc[0]
    backtest = run_summary(settings, run_id)
    results = {
        "drift report": (drift.name, _times(lambda: drift_report_html(summary), args.repeat)),
        "backtest report": (run_id, _times(lambda: run_html(backtest), args.repeat)),
    }
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{'page':16} {'input':40} {'first ms':>9} {'median ms':>10} {'CPU ms':>9} {'bytes':>9}")
    for page, (source, (first, wall, cpu, size)) in results.items():
        print(
            f"{page:16} {source:40} {first * 1000:9.1f} {wall * 1000:10.1f} {cpu * 1000:9.1f} "
            f"{size:9,}"
        )
    if args.libraries:
        _libraries(args.repeat)


if __name__ == "__main__":
    main()
