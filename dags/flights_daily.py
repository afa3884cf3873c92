"""
### Daily flight-delay pipeline

For the flights scheduled on day **D** (the run's logical date, or the `flight_date`
param), at the prediction cutoff 00:00 America/New_York on D:

1. **ingest**: parse D's raw flights and weather (and any missing day of the month of
   history the features need), check them against the `raw_flights` and `raw_weather`
   expectation suites, and land them as Parquet under `raw/`. A day that fails goes to
   `quarantine/D/` with a `reason_*.json` instead, and the run stops.
2. **build**: `dbt build` for D only (it reads the trailing month it needs): staging,
   intermediate and the marts, with dbt's tests, into `marts/_build/D/`.
3. **validate_build**: the `flight_features` suite on that build (row count against the
   schedule, ranges, nulls, the label, leakage). A failure quarantines the build.
4. **publish**: D's partitions of every mart switch together, in one rename, to exactly
   the bytes that passed validation (a build replaced since is refused).
5. **recalibrate**: refit the champion's calibration (Platt scaling) on its trailing 28
   days of matured labels, holding back D-2; the revision is used from D on only if it is
   no worse on D-2 than the map in force. A file of the model version and an entry of the
   audit log; the model itself is untouched (`ML_RECALIBRATION_ENABLED=false` turns it off).
6. **predict**: score every flight of D with the champion (and the challenger, in shadow),
   each with its calibration revision in force, into `predictions/flight_date=D/`, read
   through the `predictions` and `latest_predictions` views of `warehouse.duckdb`.
7. **monitor**: drift of D's features and scores (the day and its trailing week) against
   the champion's training window, D's performance estimated from its calibrated scores,
   and the realized performance of the day whose labels have just matured:
   `reports/drift/drift_D.html` and the `monitoring_drift` and `monitoring_performance`
   tables.
8. **decide_retraining**: the retraining policy as of D (the schedule, lasting drift,
   lasting degradation), recorded in `retraining_decisions` and added to D's report.
9. **request_retraining**: when the policy fired, an event on the `retraining_requested`
   asset, partition D, starts a `flights_training` run for partition D (as of D);
   otherwise the task is skipped.

Lineage: each task's OpenLineage events (Airflow's provider) name the partitions it read
and wrote, and the build adds one run per dbt model, all in `lineage/openlineage-<day>.jsonl`
of the data folder; `ml lineage --date D` follows D's predictions back to the model versions,
the raw partitions and the source files.

Each task calls the step of `ml.pipeline` of the same name; `ml transform` is `build`,
`validate_build` and `publish` in one command.

Errors that a retry cannot heal (a malformed file, a failed expectation or dbt test, an
unreadable model) fail their task at once, without retries, and nothing already
published changes; a held lock or a full disk is retried.

A run not done `ML_DAILY_DEADLINE_MINUTES` (60) after it was queued misses its deadline:
Airflow's deadline alert logs it and records it in `monitoring/deadline_misses.jsonl`,
which the ML view lists; the run itself goes on.

Every task is idempotent for D: re-running it replaces D's partitions. Tasks that write
the DuckDB catalog share the one-slot `warehouse` pool. Backfill a range with
`airflow backfill create --dag-id flights_daily --from-date 2013-07-01 --to-date 2013-07-07`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import (
    Asset,
    AsyncCallback,
    DeadlineAlert,
    DeadlineReference,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowSkipException
from pipeline_defaults import (
    DAILY_DEADLINE_MINUTES,
    DEADLINE_CALLBACK,
    DEFAULT_ARGS,
    REPLAY_END,
    REPLAY_START,
    RETRAINING_REQUESTED,
    UNDER_DAGS_TEST,
    WAREHOUSE_POOL,
    failing_fast,
    optional_date_param,
    report_lineage,
)

PREDICTIONS = Asset("flight_predictions")


@dag(
    dag_id="flights_daily",
    description="Ingest, build, validate, publish, recalibrate, predict and monitor a day.",
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
    # A run not done ML_DAILY_DEADLINE_MINUTES after it was queued is recorded as late
    # (in the triggerer; the run itself goes on). Not in one-process test runs: see
    # UNDER_DAGS_TEST.
    deadline=None
    if UNDER_DAGS_TEST or __name__ == "__main__"
    else DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(minutes=DAILY_DEADLINE_MINUTES),
        callback=AsyncCallback(DEADLINE_CALLBACK),
    ),
)
def flights_daily():
    # Each task is one step of ml.pipeline, of the same name (and the `ml` command that
    # calls it); the day goes from task to task as an ISO string.
    @task
    @failing_fast()
    def ingest() -> str:
        """Land the day's raw files and the feature history; returns the day (ISO)."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.orchestration import run_day

        day = run_day(get_current_context())
        landed = pipeline.ingest(load_settings(), day)
        print(f"ingested {day}: {landed['rows']}")
        report_lineage("ingest", day.isoformat(), landed)
        return day.isoformat()

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def build(day: str) -> str:
        """dbt build of the day's marts (reading the trailing month it needs) into a build folder."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        print(f"built {pipeline.build(load_settings(), parse_date(day), parse_date(day))}")
        report_lineage("build", day)
        return day

    @task
    @failing_fast()
    def validate_build(day: str) -> str:
        """Expectation suite on the built features; a failure quarantines the build, unretried."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        print(pipeline.validate_build(load_settings(), parse_date(day), parse_date(day)))
        return day

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def publish(day: str) -> str:
        """Switch the day's partitions of every mart to the validated build; refresh the catalog."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        pipeline.publish(load_settings(), parse_date(day), parse_date(day))
        report_lineage("publish", day)
        return day

    @task
    @failing_fast()
    def recalibrate(day: str) -> str:
        """Refit the champion's calibration on the labels matured by the day's cutoff."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        result = pipeline.recalibrate(load_settings(), parse_date(day))
        if result["revision"] is None:
            print(f"no calibration revision as of {day}: {result['reason']}")
        else:
            held = result["log_loss"]["held_back"]
            print(
                f"calibration revision {result['revision']} of {result['version']}: held-back "
                f"log loss {held['before']:.4f} -> {held['after']:.4f}, "
                + ("used" if result["used"] else f"not used (in force: {result['in_force']})")
            )
        return day

    @task(pool=WAREHOUSE_POOL, outlets=[PREDICTIONS])
    @failing_fast()
    def predict(day: str) -> dict:
        """Score the day's flights and publish the partition."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        prediction = pipeline.predict(load_settings(), parse_date(day))
        # The asset event names the partition it published: the flight date (Airflow 3.2's
        # asset partitions; the UI shows it on the event).
        get_current_context()["outlet_events"][PREDICTIONS].add_partitions(day)
        report_lineage("predict", day, prediction)
        return prediction

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def monitor(prediction: dict) -> str:
        """Drift of the day against the champion's training reference, and performance."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        result = pipeline.monitor(load_settings(), parse_date(prediction["day"]))
        print(f"drifted: {', '.join(result['drifted']) or 'none'}; report {result['report']}")
        return prediction["day"]

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def decide_retraining(day: str) -> dict:
        """The retraining policy as of the day, recorded and added to the drift report."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        return pipeline.decide_retraining(load_settings(), parse_date(day))

    @task(outlets=[RETRAINING_REQUESTED])
    def request_retraining(decision: dict) -> None:
        """Emit the asset event that starts training as of D, or skip when the policy held.
        The event's partition is D, which becomes the training run's partition key (and
        its as-of date); its extra keeps the policy's reasons."""
        if not decision["retrain"]:
            raise AirflowSkipException("; ".join(decision["reasons"]))
        event = get_current_context()["outlet_events"][RETRAINING_REQUESTED]
        event.extra = {"as_of": decision["day"], "reasons": decision["reasons"]}
        event.add_partitions(decision["day"])

    request_retraining(
        decide_retraining(monitor(predict(recalibrate(publish(validate_build(build(ingest())))))))
    )


dag = flights_daily()

if __name__ == "__main__":
    dag.test()
