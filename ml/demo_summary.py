"""Print what the demo produced: where the tables and reports are, and a few predictions.

Usage: ``python -m ml.demo_summary 2013-07-01 2013-07-02``. Reads the warehouse read-only.
"""

from __future__ import annotations

import sys

from ml.config import load_settings
from ml.dates import parse_date
from ml.html import number
from ml.queries import riskiest_flights


def main(argv: list[str]) -> int:
    import duckdb

    settings = load_settings()
    paths = settings.paths
    days = [parse_date(d) for d in argv]
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        counts = con.execute(
            "select p.flight_date, count(*) as champion_rows, count(distinct p.flight_id) as flights, "
            "min(p.p_delayed) as min_p, max(p.p_delayed) as max_p, any_value(p.model_version) as model "
            "from latest_predictions p where p.flight_date in (select unnest(?)) group by 1 order by 1",
            [days],
        ).fetchall()
        monitoring = con.execute(
            "select d.flight_date, count(distinct d.feature) filter (where d.is_drifted) as drifted, "
            "any_value(e.auc) as est_auc, any_value(e.log_loss) as est_log_loss, "
            "any_value(r.retrain) as retrain, any_value(r.reasons[1]) as reason "
            "from monitoring_drift d "
            "left join monitoring_performance e on e.flight_date = d.flight_date and e.kind = 'estimated' "
            "and e.dimension = 'all' and e.model_role = 'champion' "
            "left join retraining_decisions r on r.flight_date = d.flight_date "
            "where d.flight_date in (select unnest(?)) group by 1 order by 1",
            [days],
        ).fetchall()
        realized = con.execute(
            "select flight_date, auc, log_loss, prior_log_loss, ece, rows from monitoring_performance "
            "where kind = 'realized' and dimension = 'all' and model_role = 'champion' "
            "and flight_date in (select unnest(?)) order by 1",
            [days],
        ).fetchall()
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
    print("  date        champion rows  flights  p_delayed range  model")
    for day, rows, flights, lo, hi, model in counts:
        print(f"  {day}  {rows:13d}  {flights:7d}  {number(lo, 3)} .. {number(hi, 3)}   {model}")
    print()
    print("  date        drifted series  estimated AUC  estimated log loss  retraining")
    for day, drifted, auc, loss, retrain, reason in monitoring:
        verdict = f"yes: {reason}" if retrain else "no"
        print(f"  {day}  {drifted:14d}  {number(auc, 3):>13}  {number(loss, 4):>18}  {verdict}")
    for day, auc, loss, prior, ece, rows in realized:
        print(
            f"  realized on {day} (labels matured): AUC {number(auc, 3)}, log loss {number(loss, 4)} "
            f"(prior rate {number(prior, 4)}), ECE {number(ece, 3)}, {rows} flights"
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
