"""
### Daily flight-delay pipeline

For the flights scheduled on day **D** (the run's logical date, or the `flight_date`
param), at the prediction cutoff 00:00 America/New_York on D:

1. **ingest**: parse D's raw flights and weather (and any missing day of the month of
   history the features need), check them against the `raw_flights` and `raw_weather`
   expectation suites, and land them as Parquet under `raw/`. A day that fails goes to
   `quarantine/D/` with a `reason_*.json` instead, and the run stops.
2. **transform**: `dbt build` for D only (it reads the trailing month it needs): staging,
   intermediate and the marts, with dbt's tests, into `marts/_build/D/`.
3. **validate**: the `flight_features` suite on that build (row count against the
   schedule, ranges, nulls, the label, leakage). A failure quarantines the build.
4. **publish**: D's partitions of every mart switch together, in one rename, to exactly
   the bytes that passed validation (a build replaced since is refused).
5. **predict**: score every flight of D with the champion (and the challenger, in shadow)
   into `predictions/flight_date=D/`, read through the `predictions` and
   `latest_predictions` views of `warehouse.duckdb`.
6. **monitor**: drift of D's features and scores (the day and its trailing week) against
   the champion's training window, D's performance estimated from its calibrated scores,
   the realized performance of the day whose labels have just matured, and the
   retraining policy's decision: `reports/drift/drift_D.html` and the
   `monitoring_drift`, `monitoring_performance` and `retraining_decisions` tables.
7. **request_retraining**: when the policy fired, an event on the `retraining_requested`
   asset (as-of D) starts the `flights_training` DAG; otherwise the task is skipped.

Errors that a retry cannot heal (a malformed file, a failed expectation or dbt test, an
unreadable model) fail their task at once, without retries, and nothing already
published changes; a held lock or a full disk is retried.

Every task is idempotent for D: re-running it replaces D's partitions. Tasks that write
the DuckDB catalog share the one-slot `warehouse` pool. Backfill a range with
`airflow backfill create --dag-id flights_daily --from-date 2013-07-01 --to-date 2013-07-07`.
"""

from __future__ import annotations

from airflow.sdk import Asset, Metadata, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from pipeline_defaults import (
    DEFAULT_ARGS,
    REPLAY_END,
    REPLAY_START,
    RETRAINING_REQUESTED,
    WAREHOUSE_POOL,
    failing_fast,
    optional_date_param,
)

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
        "flight_date": optional_date_param("Flight date", "The day to score"),
    },
)
def flights_daily():
    @task
    @failing_fast()
    def ingest() -> str:
        """Land the day's raw files and the feature history; returns the day (ISO)."""
        from ml.config import load_settings
        from ml.ingest import ingest_for_day
        from ml.orchestration import run_day

        day = run_day(get_current_context())
        result = ingest_for_day(load_settings(), day)
        print(f"ingested {day}: {result.rows}")
        return day.isoformat()

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def transform(day: str) -> str:
        """dbt build of the day's marts (reading the trailing month it needs) into a build folder."""
        from ml.config import load_settings
        from ml.io import parse_date
        from ml.transform import build

        build(load_settings(), parse_date(day), parse_date(day))
        return day

    @task
    @failing_fast()
    def validate(day: str) -> str:
        """Expectation suite on the built features; a failure quarantines the build, unretried."""
        from ml.config import load_settings
        from ml.io import parse_date
        from ml.validate import validate_features

        validate_features(load_settings(), parse_date(day), parse_date(day), built=True)
        return day

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def publish(day: str) -> str:
        """Write the validated build into the marts' date partitions and refresh the catalog."""
        from ml.config import load_settings
        from ml.io import parse_date
        from ml.transform import publish as run_publish

        run_publish(load_settings(), parse_date(day), parse_date(day))
        return day

    @task(pool=WAREHOUSE_POOL, outlets=[PREDICTIONS])
    @failing_fast()
    def predict(day: str) -> dict:
        """Score the day's flights and publish the partition."""
        from ml.config import load_settings
        from ml.io import parse_date
        from ml.predict import predict as run_predict

        result = run_predict(load_settings(), parse_date(day))
        return {"day": day, "rows": result.rows, "versions": result.versions, "path": result.path}

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def monitor(prediction: dict) -> dict:
        """Drift of the day against the champion's training reference."""
        from ml.config import load_settings
        from ml.io import parse_date
        from ml.monitor import monitor as run_monitor

        result = run_monitor(load_settings(), parse_date(prediction["day"]))
        return {
            "day": prediction["day"],
            "drifted": result.drifted,
            "estimated": result.estimated,
            "realized": result.realized,
            "retrain": result.retraining.retrain,
            "reasons": result.retraining.reasons,
            "report": str(result.html),
        }

    @task(outlets=[RETRAINING_REQUESTED])
    def request_retraining(monitoring: dict):
        """Emit the asset event that starts training as of D, or skip when the policy held."""
        if not monitoring["retrain"]:
            raise AirflowSkipException("; ".join(monitoring["reasons"]))
        yield Metadata(
            RETRAINING_REQUESTED,
            {"as_of": monitoring["day"], "reasons": monitoring["reasons"]},
        )

    request_retraining(monitor(predict(publish(validate(transform(ingest()))))))


dag = flights_daily()

if __name__ == "__main__":
    dag.test()
