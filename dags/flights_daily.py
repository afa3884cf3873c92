"""
### Daily flight-delay pipeline

For the flights scheduled on day **D** (the run's logical date, or the `flight_date`
param), at the prediction cutoff 00:00 America/New_York on D:

1. **ingest**: land D's raw flights and weather (and any missing day of the 28-day history
   the features need) as Parquet under `raw/`.
2. **transform**: `dbt build`: staging, intermediate and the `flight_features` mart, with
   dbt's tests.
3. **validate**: Great Expectations suites on D's raw files and feature rows; a failure
   stops the run before anything is published.
4. **predict**: score every flight of D with the champion (and the challenger, in shadow)
   into `predictions/flight_date=D/`, read through the `predictions` and
   `latest_predictions` views of `warehouse.duckdb`.
5. **monitor**: drift of D's features and scores against the champion's training
   reference: `reports/drift/drift_D.html` and the `monitoring_drift` table.

Every task is idempotent for D: re-running it replaces D's partitions. Tasks that write
the DuckDB catalog share the one-slot `warehouse` pool. Backfill a range with
`airflow backfill create --dag-id flights_daily --from-date 2013-07-01 --to-date 2013-07-07`.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from pipeline_defaults import DEFAULT_ARGS, REPLAY_END, REPLAY_START, WAREHOUSE_POOL

PREDICTIONS = Asset("flight_predictions")


@dag(
    dag_id="flights_daily",
    description="Ingest, transform, validate, predict and monitor one day of flights.",
    doc_md=__doc__,
    schedule="0 0 * * *",
    start_date=REPLAY_START,
    end_date=REPLAY_END,
    catchup=False,
    max_active_runs=2,
    tags=["ml", "flights", "daily"],
    default_args=DEFAULT_ARGS,
    params={
        "flight_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Flight date",
            description="The day to score (YYYY-MM-DD). Empty: the run's logical date.",
        ),
    },
)
def flights_daily():
    @task
    def ingest() -> str:
        """Land the day's raw files and the feature history; returns the day (ISO)."""
        from ml.config import load_settings
        from ml.ingest import ingest_for_day
        from ml.io import DataError
        from ml.orchestration import run_day

        day = run_day(get_current_context())
        try:
            result = ingest_for_day(load_settings(), day)
        except DataError as exc:  # a malformed file does not heal on retry
            raise AirflowFailException(str(exc)) from exc
        print(f"ingested {day}: {result.rows}")
        return day.isoformat()

    @task(pool=WAREHOUSE_POOL)
    def transform(day: str) -> str:
        """Build and test the dbt models."""
        from ml.config import load_settings
        from ml.transform import transform as run_transform

        run_transform(load_settings())
        return day

    @task
    def validate(day: str) -> str:
        """Run the expectation suites for the day; a failed expectation fails the run, unretried."""
        from ml.config import load_settings
        from ml.io import parse_date
        from ml.validate import ValidationError, validate_day

        try:
            validate_day(load_settings(), parse_date(day))
        except ValidationError as exc:  # bad data does not heal on retry
            raise AirflowFailException(str(exc)) from exc
        return day

    @task(pool=WAREHOUSE_POOL, outlets=[PREDICTIONS])
    def predict(day: str) -> dict:
        """Score the day's flights and publish the partition."""
        from ml.config import load_settings
        from ml.io import parse_date
        from ml.predict import predict as run_predict

        result = run_predict(load_settings(), parse_date(day))
        return {"day": day, "rows": result.rows, "versions": result.versions, "path": result.path}

    @task(pool=WAREHOUSE_POOL)
    def monitor(prediction: dict) -> dict:
        """Drift of the day against the champion's training reference."""
        from ml.config import load_settings
        from ml.io import parse_date
        from ml.monitor import monitor as run_monitor

        result = run_monitor(load_settings(), parse_date(prediction["day"]))
        return {"day": prediction["day"], "drifted": result.drifted, "report": str(result.html)}

    monitor(predict(validate(transform(ingest()))))


dag = flights_daily()

if __name__ == "__main__":
    dag.test()
