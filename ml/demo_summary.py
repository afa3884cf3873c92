"""Print what the demo produced: where the tables and reports are, and a few predictions.

Usage: ``python -m ml.demo_summary 2013-07-01 2013-07-02``. Reads the warehouse read-only,
through :mod:`ml.queries`.
"""

from __future__ import annotations

import sys

from ml.config import load_settings
from ml.dates import parse_date
from ml.html import number
from ml.queries import daily_monitoring, riskiest_flights


def main(argv: list[str]) -> int:
    settings = load_settings()
    paths = settings.paths
    days = [parse_date(d) for d in argv]
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
    print("  date        drifted series  estimated AUC  estimated log loss  retraining")
    for d in monitoring:
        verdict = f"yes: {d['retrain_reason']}" if d["retrain"] else "no"
        print(
            f"  {d['flight_date']}  {number(d['drifted'], 0):>14}  "
            f"{number(d['estimated_auc'], 3):>13}  {number(d['estimated_log_loss'], 4):>18}  "
            f"{verdict}"
        )
    for d in monitoring:
        if d["realized_rows"] is not None:
            print(
                f"  realized on {d['flight_date']} (labels matured): AUC {number(d['realized_auc'], 3)}, "
                f"log loss {number(d['realized_log_loss'], 4)} (prior rate "
                f"{number(d['realized_prior_log_loss'], 4)}), ECE {number(d['realized_ece'], 3)}, "
                f"{d['realized_rows']} flights"
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
