"""The ``ml`` command line: every stage of the pipeline, without Airflow.

Dates are ISO (``YYYY-MM-DD``). Every command is idempotent for its dates and, on
failure, exits non-zero with one line that says what is wrong and where.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ml.config import CADENCES, Settings, data_dir_origin, load_settings
from ml.dates import parse_date
from ml.errors import (
    ConfigError,
    DataError,
    MLError,
    RegistryError,
    ValidationError,
    boundary,
    printable,
)
from ml.html import number

log = logging.getLogger("ml")


def _iso_date(value: str):
    try:
        return parse_date(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


# -- commands ----------------------------------------------------------------------------
def cmd_ingest(settings: Settings, args: argparse.Namespace) -> None:
    from ml.ingest import ingest

    result = ingest(settings, args.start, args.end)
    print(
        f"staged {result.rows} under {settings.paths.raw_staging}: `ml transform` publishes "
        f"them to {settings.paths.raw} with the marts built from them, once every check passed"
    )


def cmd_transform(settings: Settings, args: argparse.Namespace) -> None:
    from ml.pipeline import transform

    if (args.start is None) != (args.end is None):
        raise ConfigError("give both --start and --end, or neither (every landed day)")
    published = transform(settings, args.start, args.end)
    days = published["flight_features"]
    print(
        f"published {len(days)} day(s) of marts ({days[0]}..{days[-1]}) under {settings.paths.marts}"
    )


def cmd_validate(settings: Settings, args: argparse.Namespace) -> None:
    from ml.validate import validate_day

    for outcome in validate_day(settings, args.date):
        print(f"{outcome.suite}: {outcome.evaluated} expectations passed ({outcome.source})")


def cmd_train(settings: Settings, args: argparse.Namespace) -> None:
    from ml.features import ORACLE_LABEL
    from ml.train import train

    result = train(settings, args.as_of)
    val = result.metrics["holdout"]["model"]
    base = result.metrics["holdout"]["baselines"]
    print(
        f"model {result.version} ({result.algorithm}); holdout AUC {number(val['auc'], 3)} "
        f"(heuristic {number(base['heuristic']['auc'], 3)}), log loss {number(val['log_loss'], 4)} "
        f"(prior rate {number(base['prior_rate']['log_loss'], 4)}), ECE {number(val['ece'], 3)}"
        + (f"\n  {ORACLE_LABEL}" if settings.use_oracle_forecast else "")
        + f"\n  {'champion' if result.became_champion else 'challenger'}: {result.gate_reason}"
        + f"\n  model card: {settings.paths.model_card(result.version)}"
    )


def _metric_table(rows: list[tuple[str, dict]]) -> str:
    from ml.html import cell
    from ml.model_card import METRIC_COLUMNS

    lines = [f"{'':12}" + "".join(f"{label:>10}" for _, label in METRIC_COLUMNS)]
    for name, m in rows:
        lines.append(f"{name:12}" + "".join(f"{cell(m[key]):>10}" for key, _ in METRIC_COLUMNS))
    return "\n".join(lines)


def _days(option: str, value: str) -> list[int]:
    try:
        days = [int(w) for w in _csv(value)]
    except ValueError as exc:
        raise ConfigError(f"{option} {value!r}: expected days, e.g. 30,90,180") from exc
    if not days:
        raise ConfigError(f"{option}: name at least one number of days")
    return days


def cmd_learning_curve(settings: Settings, args: argparse.Namespace) -> None:
    from ml.train import version_learning_curve

    windows = _days("--learning-curve", args.learning_curve)
    curve = version_learning_curve(settings, args.model, windows, args.start, args.end)
    if args.json:
        _print_json(curve["rows"])
        return
    print(
        f"learning curve: {curve['algorithm']} as of {curve['as_of']}, scored {args.start}..{args.end}"
    )
    print(f"{'window':>8} {'fit rows':>9} {'seconds':>8} {'AUC':>8} {'log loss':>9} {'ECE':>7}")
    for row in curve["rows"]:
        m = row["scored"]
        print(
            f"{row['window_days']:>8} {row['fit_rows']:>9} {number(row['seconds'], 1):>8} "
            f"{number(m['auc'], 4):>8} {number(m['log_loss'], 4):>9} {number(m['ece'], 4):>7}"
        )


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> None:
    from ml.evaluate import evaluate

    if args.learning_curve:
        cmd_learning_curve(settings, args)
        return
    report = evaluate(settings, args.model, args.start, args.end)
    if args.json:
        _print_json(report)
        return
    print(f"{report['version']} on {report['start']}..{report['end']} ({report['rows']} flights)")
    if "oracle_note" in report:
        print(f"  {report['oracle_note']}")
    rows = [("model", report["model"]), *report["baselines"].items()]
    print(_metric_table(rows))
    print(f"(precision and recall at p >= {report['model']['threshold']})")
    print("\nslices (log loss, AUC):")
    for s in report["slices"]:
        print(
            f"  {s['dimension']:14} {s['value']:14} {s['rows']:>7} rows  "
            f"observed {number(s['observed_rate'], 3)}  predicted {number(s['mean_prediction'], 3)}  "
            f"{number(s['log_loss'], 4)}  {number(s['auc'], 4)}"
        )
    print("\nbehavioural tests:")
    for t in report["behaviour"]:
        print(
            f"  {'PASS' if t['passed'] else 'FAIL'}  {t['name']}: {t['description']} = {number(t['value'], 5)}"
        )


def cmd_predict(settings: Settings, args: argparse.Namespace) -> None:
    from ml.pipeline import predict

    result = predict(settings, args.date)
    print(
        f"{result['rows']} predictions for {result['day']} ({result['versions']}) -> {result['path']}"
    )


def cmd_lineage(settings: Settings, args: argparse.Namespace) -> None:
    from ml.lineage import trace

    found = trace(settings, args.date)
    if args.json:
        print(json.dumps(found, indent=2))
        return
    print(f"predictions {found['predictions']}")
    print(f"  model versions: {', '.join(found['model_versions']) or '-'}")
    print(f"  raw partitions ({len(found['raw_partitions'])}):")
    for name in found["raw_partitions"]:
        print(f"    {name}")
    print(f"  source files: {', '.join(found['sources']) or '-'}")
    print("  runs, newest output first:")
    for run in found["runs"]:
        print(f"    {run['time']}  {run['job']}  (run {run['run_id']})")
    read = found["events_files_read"]
    print(f"  events files read, newest first: {len(read)} ({read[0]} to {read[-1]})")


def cmd_recalibrate(settings: Settings, args: argparse.Namespace) -> None:
    from ml.pipeline import recalibrate

    result = recalibrate(settings, args.date)
    if result["revision"] is None:
        print(f"no calibration revision as of {result['day']}: {result['reason']}")
        return
    fitted, held = result["log_loss"]["fitted"], result["log_loss"]["held_back"]
    verdict = "used" if result["used"] else f"not used; in force: {result['in_force']}"
    print(
        f"calibration revision {result['revision']} of {result['version']}: log loss "
        f"{fitted['before']:.4f} -> {fitted['after']:.4f} on the days fitted, "
        f"{held['before']:.4f} -> {held['after']:.4f} on the held-back day; {verdict}"
    )


def cmd_monitor(settings: Settings, args: argparse.Namespace) -> None:
    from ml.pipeline import monitor

    result = monitor(settings, args.date)
    drifted = ", ".join(result["drifted"]) or "none"
    print(f"drift on {result['day']} vs {result['model_version']}: {drifted}")
    est = result["estimated"]
    print(
        f"estimated performance on {result['day']} (from the calibrated scores): "
        f"AUC {number(est['auc'], 3)}, log loss {number(est['log_loss'], 4)}"
    )
    real = result["realized"]
    if real:
        print(
            f"realized performance on {result['realized_day']} "
            f"(labels matured): AUC {number(real['auc'], 3)}, log loss {number(real['log_loss'], 4)}, "
            f"ECE {number(real['ece'], 3)} ({real['rows']} flights, {number(real['observed_rate'], 1, '%')} delayed)"
        )
    print(f"report {result['report']}")


def cmd_decide_retraining(settings: Settings, args: argparse.Namespace) -> None:
    from ml.pipeline import decide_retraining

    decision = decide_retraining(settings, args.date)
    verdict = "retrain" if decision["retrain"] else "no retraining"
    print(f"retraining policy as of {decision['day']}: {verdict}: {'; '.join(decision['reasons'])}")


def cmd_replay(settings: Settings, args: argparse.Namespace) -> None:
    from ml.pipeline import replay

    summaries = replay(
        settings, args.start, args.end, progress=lambda line: print(line, flush=True)
    )
    trained = sum("trained" in s for s in summaries)
    print(f"replayed {len(summaries)} day(s), {trained} training(s) by the retraining policy")


def cmd_models_list(settings: Settings, args: argparse.Namespace) -> None:
    from ml.queries import model_versions

    versions = model_versions(settings)
    if args.json:
        _print_json([{**v, "error": v["error"] and str(v["error"])} for v in versions])
        return
    if not versions:
        print(f"no models in {settings.paths.models}")
    for v in versions:
        h = v["holdout"]
        holdout = (
            f"unreadable metrics ({v['error']})"
            if h is None
            else f"log loss {number(h['log_loss'], 4)} (heuristic "
            f"{number(h['heuristic_log_loss'], 4)}), AUC {number(h['auc'], 3)} (heuristic "
            f"{number(h['heuristic_auc'], 3)})"
        )
        print(
            f"{v['version']:32} as of {v['as_of']}  {v['algorithm']:9} {holdout}  "
            f"{','.join(v['aliases'])}"
        )


def cmd_models_show(settings: Settings, args: argparse.Namespace) -> None:
    from ml.queries import model_details

    details = model_details(settings, args.version)
    keys = ("metadata", "metrics", "aliases", "calibration_revisions")
    _print_json({key: details[key] for key in keys})


def cmd_models_promote(settings: Settings, args: argparse.Namespace) -> None:
    from ml import registry

    registry.promote(settings, args.version, reason=args.reason)
    print(f"{args.version} is now champion")


def cmd_models_rollback(settings: Settings, args: argparse.Namespace) -> None:
    from ml import registry

    print(f"champion rolled back to {registry.rollback(settings, reason=args.reason)}")


def cmd_models_audit(settings: Settings, args: argparse.Namespace) -> None:
    from ml.queries import alias_history

    for entry in reversed(alias_history(settings, events=True)):
        what = entry["alias"] if entry["event"] == "alias" else f"{entry['alias']} {entry['event']}"
        line = f"{entry['at']}  {what:10} {entry['from']} -> {entry['to'] or '(none)'}  "
        print(printable(f"{line}({entry['reason']})"))


def cmd_predictions_show(settings: Settings, args: argparse.Namespace) -> None:
    from ml.queries import SHOWN_COLUMNS, riskiest_flights, superseded

    role = None if args.all_roles else "champion"
    frame = riskiest_flights(settings, args.date, role=role, limit=args.limit)
    frame = frame[list(SHOWN_COLUMNS)]
    stale = superseded(settings, args.date)
    if stale:  # on stderr: the rows on stdout stay what a pipe reads
        print(
            printable(
                f"warning: the predictions of {args.date} were made from superseded inputs: "
                f"{stale.get('reason')}; score them again with `{stale.get('rescore')}`"
            ),
            file=sys.stderr,
        )
    if args.json:
        print(frame.to_json(orient="records", date_format="iso"))
        return
    from ml.html import format_reasons

    frame["top_reasons"] = frame["top_reasons"].map(format_reasons)
    frame["p_delayed"] = frame["p_delayed"].round(3)
    import pandas as pd

    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60
    ):
        print(frame.to_string(index=False))


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _print_run(run: dict[str, Any], report) -> None:
    from ml.features import ORACLE_LABEL

    print(
        f"backtest {run['run_id']}: {run['folds']} retrain(s), {run['scored_rows']:,} flights scored\n"
        f"  log loss {number(run['log_loss'], 4)} (prior rate {number(run['prior_log_loss'], 4)}, heuristic "
        f"{number(run['heuristic_log_loss'], 4)}); AUC {number(run['auc'], 3)} (heuristic {number(run['heuristic_auc'], 3)}); "
        f"ECE {number(run['ece'], 3)}\n"
        + (f"  {ORACLE_LABEL}\n" if run["uses_oracle_forecast"] else "")
        + f"  {number(run['elapsed_seconds'], 0)} s (features loaded once in {number(run['load_seconds'], 1)} s)\n"
        f"  report: {report}"
    )


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> None:
    from ml.backtest import make_spec, run_backtest
    from ml.backtest_report import write_run_report

    spec = make_spec(
        settings,
        args.start,
        args.end,
        args.cadence,
        args.window_days,
        _csv(args.candidates) if args.candidates else None,
        True if args.oracle else None,
        gate=not args.no_gate,
        recalibration=False if args.no_recalibration else None,
    )
    result = run_backtest(settings, spec, progress=False if args.no_progress else None)
    report = write_run_report(settings, spec.run_id)
    if args.json:
        _print_json({**result.run, "report": str(report)})
    else:
        _print_run(result.run, report)


def _on_off(option: str, value: str) -> list[bool]:
    """``on``, ``off`` or ``on,off`` as booleans; ConfigError naming the option otherwise."""
    words = _csv(value)
    if not words or set(words) - {"on", "off"}:
        raise ConfigError(f"{option} {value!r}: expected on, off or on,off")
    return [w == "on" for w in dict.fromkeys(words)]


def _grid_points(args: argparse.Namespace) -> list[tuple[str, int, bool, bool, bool | None]]:
    """(cadence, window, oracle, gate, recalibration) for every grid point; ConfigError
    naming a bad option. The oracle point replays the first of each on/off list."""
    windows = _days("--windows", args.windows)
    cadences = _csv(args.cadences)
    if not cadences:
        raise ConfigError("--cadences: name at least one cadence")
    gates = _on_off("--gate", args.gate)
    # unset: as production does (ML_RECALIBRATION_ENABLED)
    recalibrations = (
        _on_off("--recalibration", args.recalibration) if args.recalibration else [None]
    )
    points = [
        (c, w, False, g, r)
        for g in gates
        for r in recalibrations
        for w in windows
        for c in cadences
    ]
    if args.oracle_at:
        cadence, _, window = args.oracle_at.partition(":")
        if not window.isdigit():
            raise ConfigError(
                f"--oracle-at {args.oracle_at!r}: expected CADENCE:DAYS, e.g. weekly:90"
            )
        points.append((cadence, int(window), True, gates[0], recalibrations[0]))
    return points


def cmd_backtest_grid(settings: Settings, args: argparse.Namespace) -> None:
    from ml.backtest import grid_specs
    from ml.pipeline import backtest_grid

    candidates = _csv(args.candidates) if args.candidates else None
    specs = grid_specs(settings, args.start, args.end, _grid_points(args), candidates)

    def on_run(i: int, spec, run: dict[str, Any] | None) -> None:
        if run is None:
            print(f"[{i}/{len(specs)}] {spec.run_id}: already run (--rerun to replace)")
        else:
            print(
                f"[{i}/{len(specs)}] {spec.run_id}: log loss {number(run['log_loss'], 4)} (prior "
                f"{number(run['prior_log_loss'], 4)}), AUC {number(run['auc'], 3)}, {number(run['elapsed_seconds'], 0)} s"
            )

    report = backtest_grid(
        settings,
        specs,
        rerun=args.rerun,
        progress=False if args.no_progress else None,
        on_run=on_run,
    )
    print(f"grid report: {report}")


# -- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def action(subparsers, name: str, func: Callable, help_text: str) -> argparse.ArgumentParser:
        """A command (or a command's action) that runs ``func(settings, args)``."""
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def add(name: str, func: Callable, help_text: str) -> argparse.ArgumentParser:
        return action(sub, name, func, help_text)

    p = add("ingest", cmd_ingest, "land raw flights and weather for a date range")
    p.add_argument("--start", type=_iso_date, required=True)
    p.add_argument("--end", type=_iso_date, required=True)
    p = add(
        "transform", cmd_transform, "dbt build, validate and publish the marts for a date range"
    )
    p.add_argument("--start", type=_iso_date, help="first flight date (default: every landed day)")
    p.add_argument("--end", type=_iso_date, help="last flight date")
    p = add(
        "validate",
        cmd_validate,
        "re-run the expectation suites on one date's landed and published data",
    )
    p.add_argument("--date", type=_iso_date, required=True)
    p = add(
        "train", cmd_train, "train candidates on the window before a date and register the best"
    )
    p.add_argument("--as-of", dest="as_of", type=_iso_date, required=True)
    p = add("evaluate", cmd_evaluate, "score a model version on a date range beside the baselines")
    p.add_argument("--model", required=True, help="a model version (see `ml models list`)")
    p.add_argument("--start", type=_iso_date, required=True)
    p.add_argument("--end", type=_iso_date, required=True)
    p.add_argument(
        "--learning-curve",
        metavar="DAYS,DAYS,...",
        help="retrain the model's algorithm as of its date on each window length and score the range",
    )
    p.add_argument("--json", action="store_true")
    p = add(
        "recalibrate",
        cmd_recalibrate,
        "refit the champion's calibration on the labels matured by a date's cutoff",
    )
    p.add_argument("--date", type=_iso_date, required=True)
    p = add("predict", cmd_predict, "score every flight scheduled on a date")
    p.add_argument("--date", type=_iso_date, required=True)
    p = add(
        "lineage",
        cmd_lineage,
        "which model versions, raw partitions and source files a date's predictions came from",
    )
    p.add_argument("--date", type=_iso_date, required=True)
    p.add_argument("--json", action="store_true")
    p = add("monitor", cmd_monitor, "drift report of a date against the champion's reference")
    p.add_argument("--date", type=_iso_date, required=True)
    p = add(
        "decide-retraining",
        cmd_decide_retraining,
        "apply the retraining policy as of a monitored date and record the decision",
    )
    p.add_argument("--date", type=_iso_date, required=True)
    p = add(
        "replay",
        cmd_replay,
        "the daily pipeline over a date range in one process, retraining by the policy",
    )
    p.add_argument("--start", type=_iso_date, required=True)
    p.add_argument("--end", type=_iso_date, required=True)

    p = add(
        "backtest",
        cmd_backtest,
        "replay training and prediction over a date range with a rolling origin",
    )
    _backtest_arguments(p)
    p.add_argument(
        "--cadence",
        choices=CADENCES,
        default="weekly",
        help="retrain every day, week (7 days from --start), month (each 1st), or once at --start",
    )
    p.add_argument(
        "--window-days",
        type=int,
        help="days of history each retrain learns from (default: ML_TRAIN_WINDOW_DAYS)",
    )
    p.add_argument(
        "--oracle",
        action="store_true",
        help="add the oracle-forecast features (an upper bound, never a deployable model)",
    )
    p.add_argument(
        "--no-gate",
        action="store_true",
        help="deploy every retrain instead of replaying the promotion gate",
    )
    p.add_argument(
        "--no-recalibration",
        action="store_true",
        help="keep each champion's training map instead of replaying daily recalibration "
        "(the default follows ML_RECALIBRATION_ENABLED)",
    )
    p.add_argument("--json", action="store_true", help="print the run's row as JSON")
    p = add(
        "backtest-grid",
        cmd_backtest_grid,
        "backtest every cadence x window over a date range and report how often to retrain",
    )
    _backtest_arguments(p)
    p.add_argument("--cadences", default=",".join(CADENCES), metavar="C,C,...")
    p.add_argument("--windows", default="30,90,180", metavar="DAYS,DAYS,...")
    p.add_argument(
        "--oracle-at",
        metavar="CADENCE:DAYS",
        help="also run this grid point with the oracle-forecast features (an upper bound)",
    )
    p.add_argument(
        "--gate",
        default="on",
        metavar="on,off",
        help="replay the promotion gate (on), deploy every retrain (off), or run both",
    )
    p.add_argument(
        "--recalibration",
        metavar="on,off",
        help="replay daily recalibration (on), keep the training map (off), or run both "
        "(default: as ML_RECALIBRATION_ENABLED)",
    )
    p.add_argument("--rerun", action="store_true", help="replace runs that already exist")

    p = sub.add_parser("models", help="list, show, promote or roll back model versions")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    m = action(msub, "list", cmd_models_list, "every version, newest first, with its aliases")
    m.add_argument("--json", action="store_true")
    m = action(
        msub,
        "show",
        cmd_models_show,
        "metadata, metrics and calibration revisions of one version, as JSON",
    )
    m.add_argument("version")
    m = action(msub, "promote", cmd_models_promote, "make a version champion")
    m.add_argument("version")
    m.add_argument("--reason", default="promoted by hand")
    m = action(msub, "rollback", cmd_models_rollback, "point champion back at the previous one")
    m.add_argument("--reason", default="rolled back by hand")
    action(
        msub,
        "audit",
        cmd_models_audit,
        "every alias change and calibration revision, with its reason",
    )

    p = sub.add_parser("predictions", help="read the prediction table")
    psub = p.add_subparsers(dest="predictions_command", required=True, metavar="ACTION")
    s = action(psub, "show", cmd_predictions_show, "the predictions of a date, riskiest first")
    s.add_argument("--date", type=_iso_date, required=True)
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--all-roles", action="store_true", help="include the challenger's shadow rows")
    s.add_argument("--json", action="store_true")
    return parser


def _backtest_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=_iso_date, required=True, help="first retrain and scored date")
    p.add_argument("--end", type=_iso_date, required=True, help="last scored date")
    p.add_argument(
        "--candidates",
        metavar="ALGO,ALGO,...",
        help="algorithms trained at each retrain, the best kept (default: ML_BACKTEST_CANDIDATES)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar; log each retrain")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ml`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = None
    try:
        with boundary():  # errors of the OS, of memory, of decompression: as MLErrors
            settings = load_settings()
            args.func(settings, args)
    except MLError as exc:  # anything else is a bug, and keeps its traceback
        message = str(exc)  # one printable line (ml.errors.boundary)
        hint = " (retryable: run it again)" if exc.retryable else ""
        # An error about a file of the data folder says which folder that was, and why.
        about_data = (
            settings is not None
            and isinstance(exc, DataError | RegistryError)
            and not isinstance(exc, ValidationError)
            and str(settings.data_dir) in message
        )
        if about_data:
            hint += f" [{data_dir_origin(settings.data_dir)}]"
        print(f"ml {args.command}: error: {message}{hint}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of our output left (`ml predictions show ... | head`): not an error
        # of ours. Point stdout at nothing so that the interpreter's final flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a command ended by SIGPIPE
    return 0


if __name__ == "__main__":
    sys.exit(main())
