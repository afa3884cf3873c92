"""Print what the demo produced: where the tables and reports are, and a few predictions.

Usage: ``python -m ml.demo_summary 2013-07-01 2013-07-31`` (the first and last day; one
day alone is a range too). Reads the warehouse read-only, through :mod:`ml.queries`.
"""

from __future__ import annotations

import sys

from ml.config import load_settings
from ml.dates import date_range, parse_date
from ml.html import number
from ml.queries import daily_monitoring, riskiest_flights


def main(argv: list[str]) -> int:
    settings = load_settings()
    paths = settings.paths
    days = date_range(parse_date(argv[0]), parse_date(argv[-1]))
    monitoring = daily_monitoring(settings, days)
    print()
    print("Flight-delay predictions are ready.")
    print(f"  warehouse (DuckDB, open read-only): {paths.warehouse}")
    print(
        "    views: predictions, latest_predictions, flight_features, flights, monitoring_drift,\n"
        "           monitoring_performance, retraining_decisions"
    )
    print(f"  prediction partitions (Parquet):    {paths.predictions}/flight_date=YYYY-MM-DD/")
    print(f"  monitoring reports (HTML + JSON):   {paths.drift_reports}")
    print(f"  data validation (HTML + JSON):      {paths.validation_index}")
    print(f"  quarantined batches (if any):       {paths.quarantine}")
    print(f"  model registry:                     {paths.models}")
    print()
    print("  date        champion rows  p_delayed range  model")
    for d in monitoring:
        print(
            f"  {d['flight_date']}  {d['champion_rows']:13d}  {number(d['min_p'], 3)} .. "
            f"{number(d['max_p'], 3)}   {d['model_version']}"
        )
    print()
    print(
        "  date        drifted series  estimated AUC  log loss  realized AUC  log loss"
        "  (prior rate)  retraining"
    )
    for d in monitoring:
        verdict = f"yes: {d['retrain_reason']}" if d["retrain"] else "no"
        matured = d["realized_rows"] is not None
        realized = (
            f"{number(d['realized_auc'], 3):>12}  {number(d['realized_log_loss'], 4):>8}"
            f"  {'(' + number(d['realized_prior_log_loss'], 4) + ')':>12}"
            if matured
            else f"{'not matured':>12}  {'':>8}  {'':>12}"
        )
        print(
            f"  {d['flight_date']}  {number(d['drifted'], 0):>14}  "
            f"{number(d['estimated_auc'], 3):>13}  {number(d['estimated_log_loss'], 4):>8}  "
            f"{realized}  {verdict}"
        )
    print()
    print(f"Riskiest flights on {days[-1]}:")
    sample = riskiest_flights(settings, days[-1], limit=5).round({"p_delayed": 3})
    columns = [
        "flight_id",
        "origin",
        "dest",
        "departs_local",
        "p_delayed",
        "risk_band",
        "model_version",
    ]
    print(sample[columns].to_string(index=False))
    print()
    print("Read them yourself:")
    print(f"  .venv/bin/ml predictions show --date {days[-1]}")
    print(
        f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{paths.warehouse}', read_only=True)"
        f".sql('select * from latest_predictions order by p_delayed desc limit 5'))\""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
