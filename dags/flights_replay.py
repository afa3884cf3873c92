"""
### Replay of the daily pipeline over a range of days

What `flights_daily` for each day of **start..end** in order, and the `flights_training`
runs its retraining policy starts, leave, in one run and a fraction of the time: the
same partitions, byte for byte. For the first run over your history, or to catch up
after a pause.

1. **ingest_range**: land every day of the range (replacing it) and any missing day of
   the history before it (one training window and the features' lookback), through the
   raw expectation suites.
2. **build**: one `dbt build` of the range and the training window before it.
3. **validate_build**: the `flight_features` suite on that build, in one pass.
4. **publish**: every day's partitions switch to the validated build.
5. **replay_days**: for each day in order, `recalibrate`, `predict`, `monitor` and
   `decide_retraining` as the daily run does; when the policy fires on D, train as of D (as the training DAG
   would) before D + 1. With no model trained yet, a first model is trained as of the
   start; if it fails the gate, the heuristic baseline serves as champion until a later
   training passes. One line per day in the task log.

A day whose retraining decision is recorded has been run (by a replay or a daily run) and
is skipped: a retried or repeated replay resumes at its first day not run. A range that a
registered model's training window covers is refused at once (that model learned from its
outcomes and must not score it): replay such history into a new data folder.

Trigger it from the UI's form or with
`airflow dags trigger flights_replay --conf '{"start": "2013-07-01", "end": "2013-07-31"}'`.
Left empty, start and end are the run's logical date. The replay emits no
`retraining_requested` event: it trains in line.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task
from pipeline_defaults import (
    DEFAULT_ARGS,
    REPLAY_START,
    WAREHOUSE_POOL,
    failing_fast,
    optional_date_param,
    report_lineage,
)


def progress(line: str) -> None:
    """A line of the replay's progress: in the task log, and on the terminal of
    `airflow dags test` (`make demo` shows the lines that start with ``replay:``)."""
    print(f"replay: {line}", flush=True)


def built_window(days: list[str]):
    """The settings, and the days the replay of ``days`` ([start, end], ISO) builds: the
    range and the training window before it (``ml.pipeline.replay_window``)."""
    from ml import pipeline
    from ml.config import load_settings
    from ml.dates import parse_date

    settings = load_settings()
    return settings, pipeline.replay_window(settings, *map(parse_date, days))


@dag(
    dag_id="flights_replay",
    description="The daily pipeline over a range of days, with the retraining policy's trainings.",
    doc_md=__doc__,
    schedule=None,
    start_date=REPLAY_START,
    catchup=False,
    max_active_runs=1,
    tags=["ml", "flights", "replay"],
    default_args=DEFAULT_ARGS,
    params={
        "start": optional_date_param("First day", "The first day to replay"),
        "end": optional_date_param("Last day", "The last day to replay"),
    },
)
def flights_replay():
    # Each task is one step of ml.pipeline, of the same name; the range goes from task to
    # task as a pair of ISO strings.
    @task
    @failing_fast()
    def ingest_range() -> list[str]:
        """Land the range and the history before it; returns [start, end] (ISO)."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.orchestration import run_range

        start, end = run_range(get_current_context())
        landed = pipeline.ingest_range(load_settings(), start, end)
        progress(f"landed {start}..{end} and the history before it: {landed['rows']}")
        report_lineage("ingest", start.isoformat(), landed)
        return [start.isoformat(), end.isoformat()]

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def build(days: list[str]) -> list[str]:
        """One dbt build of the range and the training window before it."""
        from ml import pipeline

        settings, window = built_window(days)
        progress(
            f"built {window[0]}..{window[1]} in one dbt build: {pipeline.build(settings, *window)}"
        )
        return days

    @task
    @failing_fast()
    def validate_build(days: list[str]) -> list[str]:
        """The feature suite on the whole build, in one pass."""
        from ml import pipeline

        settings, window = built_window(days)
        progress(pipeline.validate_build(settings, *window))
        return days

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def publish(days: list[str]) -> list[str]:
        """Switch every built day's partitions to the validated build."""
        from ml import pipeline

        settings, window = built_window(days)
        published = pipeline.publish(settings, *window)
        progress(f"published {len(published['flight_features'])} day(s) of marts")
        return days

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def replay_days(days: list[str]) -> int:
        """Predict, monitor and decide each day in order, training when the policy fires."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.dates import parse_date

        return len(pipeline.replay_days(load_settings(), *map(parse_date, days), progress=progress))

    replay_days(publish(validate_build(build(ingest_range()))))


dag = flights_replay()

if __name__ == "__main__":
    dag.test()
