"""
### Training

Stateless retraining as of day **D** (the `as_of` param, the run's partition key: the
flight date of the asset event that started it, or the run's logical date): the
heuristic baseline, logistic regression, LightGBM and XGBoost learn from the trailing
window of matured labels before D (`ML_TRAIN_WINDOW_DAYS`, 90 by default), are calibrated,
and are compared on its last `ML_VALIDATION_DAYS`; the best is registered under
`models/<version>/` with its model card, and the promotion gate makes it champion or,
with the reason in the audit log, challenger.

1. **ingest_history**: land any missing day of the window (days already landed are kept).
2. **transform**: `dbt build` of the window, validated and published.
3. **train**: fit, calibrate, compare, register, gate.
4. **needs_approval**: with `ML_PROMOTION_APPROVAL=manual` (or the `approval` param), a
   model that passed the gate stays challenger and the run waits for a person; otherwise
   the last two steps are skipped.
5. **approve_promotion**: a Human-in-the-loop task, answered in the UI's Required Actions
   (or through the REST API): the gate's checks and a link to the model card; approve,
   or reject with a reason. Unanswered for 7 days, it is rejected.
6. **record_approval**: approved, the model becomes champion; rejected, it stays
   challenger. The audit log names who answered, and why.

Scheduled on the partitions of the `retraining_requested` asset: the daily DAG for D
emits an event of partition D on it when the retraining policy fires (weekly, or after lasting drift or degradation; see
`retraining_decisions`). Trigger it by hand for any date with
`airflow dags trigger flights_training --logical-date 2013-07-01T00:00:00+00:00`.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, Param, PartitionedAssetTimetable, dag, get_current_context, task
from pipeline_defaults import (
    DEFAULT_ARGS,
    REPLAY_START,
    RETRAINING_REQUESTED,
    WAREHOUSE_POOL,
    failing_fast,
    optional_date_param,
    report_lineage,
)

MODELS = Asset("flight_delay_models")
APPROVAL_TIMEOUT_DAYS = 7


@dag(
    dag_id="flights_training",
    description="Retrain the flight-delay models on the trailing window and register the best.",
    doc_md=__doc__,
    # One run per partition (flight date) of the retraining_requested events: Airflow
    # 3.2's asset partitions; the run's partition key is its as-of date.
    schedule=PartitionedAssetTimetable(assets=RETRAINING_REQUESTED),
    start_date=REPLAY_START,
    catchup=False,
    max_active_runs=1,
    tags=["ml", "flights", "training"],
    default_args=DEFAULT_ARGS,
    params={
        "as_of": optional_date_param("As-of date", "Train on the window before this day"),
        "approval": Param(
            None,
            type=["null", "string"],
            enum=[None, "auto", "manual"],
            title="Promotion approval",
            description="auto: the gate alone promotes; manual: a model that passed the gate "
            "waits for a person's approval. Empty: ML_PROMOTION_APPROVAL (auto by default).",
        ),
    },
)
def flights_training():
    # Each task is one step of ml.pipeline, of the same name.
    @task
    @failing_fast()
    def ingest_history() -> str:
        """Land every missing day of the training window; returns the as-of day (ISO)."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.orchestration import run_day

        as_of = run_day(get_current_context(), param="as_of")
        landed = pipeline.ingest_history(load_settings(), as_of)
        print(f"history for {as_of}: {landed['rows']}")
        report_lineage("ingest", as_of.isoformat(), landed)
        return as_of.isoformat()

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def transform(as_of: str) -> str:
        """Build, validate and publish the marts for the training window."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        settings = load_settings()
        pipeline.transform(settings, *pipeline.training_window(settings, parse_date(as_of)))
        return as_of

    @task(outlets=[MODELS])
    @failing_fast()
    def train(as_of: str) -> dict:
        """Train the candidates, register the best, run the gate; returns the outcome."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        settings = load_settings()
        approval = get_current_context()["params"].get("approval")
        return pipeline.train(
            settings, parse_date(as_of), approval=approval or settings.promotion_approval
        )

    @task.short_circuit(ignore_downstream_trigger_rules=True)
    def needs_approval(trained: dict) -> bool:
        """Whether a person must approve the model (it passed the gate, approval is manual)."""
        return bool(trained["awaiting_approval"])

    approve_promotion = HITLOperator(
        task_id="approve_promotion",
        subject="Promote {{ ti.xcom_pull(task_ids='train')['version'] }} to champion?",
        body="{{ ti.xcom_pull(task_ids='train')['approval_note'] }}",
        doc_md="A person approves the model that passed the gate, or rejects it with a "
        "reason, from the UI's Required Actions or the REST API.",
        options=["Approve", "Reject"],  # ml.pipeline.APPROVE promotes
        # Unanswered for a week, the request is rejected: the run (and with it the next
        # training, one run at a time) must not wait forever.
        response_timeout=dt.timedelta(days=APPROVAL_TIMEOUT_DAYS),
        defaults=["Reject"],
        params={
            "reason": Param(
                "",
                type="string",
                title="Reason",
                description="Why: written to the audit log with your name.",
            )
        },
    )

    @task
    @failing_fast()
    def record_approval(trained: dict, answer: dict) -> dict:
        """Promote the model if approved; keep it challenger if rejected; audit both."""
        from ml import pipeline
        from ml.config import load_settings

        return pipeline.record_approval(load_settings(), trained["version"], answer)

    trained = train(transform(ingest_history()))
    waiting = needs_approval(trained)
    waiting >> approve_promotion
    record_approval(trained, approve_promotion.output)


dag = flights_training()

if __name__ == "__main__":
    dag.test()
