"""
### Backtest

Replays production over history with a rolling origin: at every retrain date (the
start, then every day, week or month, or only once) a model is trained exactly as
`flights_training` trains it, on the `window_days` before that date, and scores every
day until the next retrain date. Features hold only what was known at each flight's
cutoff; each retrain learns only from labels known before its date.

1. **prepare**: land any missing day of the history and build, validate and publish the
   marts for it (days already published are rebuilt identically).
2. **run**: load the features once, retrain and score fold by fold (each fold is
   logged), replaying the promotion gate (a retrain that fails it is not deployed) and
   daily recalibration unless their params are off, and write the run's rows to `backtests/{runs,folds,metrics,predictions}/`.
3. **report**: refresh the warehouse views (`backtest_runs`, `backtest_folds`,
   `backtest_metrics`, `backtest_predictions`) and write
   `reports/backtest/<run_id>.html`: metrics over time beside the heuristic and the
   prior rate, calibration over time, and the grid of every run over the same period.

A run's id is its parameters: triggering the same parameters again replaces that run.
Manual only. From the CLI:
`airflow dags trigger backtest -c '{"start": "2013-03-01", "end": "2013-12-31", "cadence": "weekly", "window_days": 90}'`.
The oracle-forecast option is an upper bound (the weather observed at departure), never
a deployable model.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from pipeline_defaults import DEFAULT_ARGS, REPLAY_START, WAREHOUSE_POOL, failing_fast

# ml.models.ALGORITHMS and ml.config.CADENCES, written out because parsing a DAG imports
# nothing heavy; tests/dags/test_dag_integrity.py checks that they match.
ALGORITHMS = ["heuristic", "logistic", "lightgbm", "xgboost"]
CADENCES = ["daily", "weekly", "monthly", "once"]


def _spec():
    """The run's spec from its params (a bad one raises ConfigError)."""
    from ml.backtest import make_spec
    from ml.config import load_settings
    from ml.dates import parse_date

    params = get_current_context()["params"]
    settings = load_settings()
    spec = make_spec(
        settings,
        parse_date(params["start"]),
        parse_date(params["end"]),
        params["cadence"],
        params["window_days"],
        params["candidates"],
        params["oracle"],
        gate=params["gate"],
        recalibration=params["recalibration"],
    )
    return settings, spec


@dag(
    dag_id="backtest",
    description="Replay retraining and prediction over a date range with a rolling origin.",
    doc_md=__doc__,
    schedule=None,
    start_date=REPLAY_START,
    catchup=False,
    max_active_runs=1,
    tags=["ml", "flights", "backtest"],
    default_args=DEFAULT_ARGS,
    params={
        "start": Param(
            "2013-03-01",
            type="string",
            format="date",
            title="Start",
            description="First retrain date and first scored day (YYYY-MM-DD).",
        ),
        "end": Param(
            "2013-12-31",
            type="string",
            format="date",
            title="End",
            description="Last scored day (YYYY-MM-DD).",
        ),
        "cadence": Param(
            "weekly",
            type="string",
            enum=CADENCES,
            title="Cadence",
            description="Retrain every day, every 7 days from the start, on the 1st of each "
            "month, or once at the start.",
        ),
        "window_days": Param(
            90,
            type="integer",
            minimum=21,
            maximum=365,
            title="Window (days)",
            description="Days of history each retrain learns from; its last validation_days "
            "(ML_VALIDATION_DAYS, 14 by default) are the holdout. Near the start of the data "
            "the window is shorter.",
        ),
        "candidates": Param(
            ["lightgbm"],
            type="array",
            items={"type": "string", "enum": ALGORITHMS},
            # The UI's trigger form draws an array with `examples` as a multi-select of
            # them; `items.enum` alone would leave a text box of one name per line.
            examples=ALGORITHMS,
            minItems=1,
            title="Candidates",
            description="Algorithms fitted at each retrain; the one with the lowest holdout "
            "log loss scores the fold.",
        ),
        "oracle": Param(
            False,
            type="boolean",
            title="Oracle forecast",
            description="Add the weather observed at departure: an upper bound on what a "
            "perfect forecast could add, never a deployable model.",
        ),
        "gate": Param(
            True,
            type="boolean",
            title="Replay the promotion gate",
            description="Deploy a retrain only if it passes the gate, as flights_training "
            "does; off: every retrain is deployed.",
        ),
        "recalibration": Param(
            True,
            type="boolean",
            title="Replay daily recalibration",
            description="Refit the serving champion's calibration each morning, as the "
            "recalibrate task of flights_daily does; off: the training map scores.",
        ),
    },
)
def backtest():
    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def prepare() -> str:
        """Land and publish the history the run needs; returns the run id."""
        from ml import pipeline

        settings, spec = _spec()
        return pipeline.prepare(settings, spec)

    @task
    @failing_fast()
    def run(backtest_id: str) -> dict:
        """Retrain and score fold by fold for the run ``prepare`` readied; returns its row."""
        from ml.backtest import run_backtest

        settings, spec = _spec()
        if spec.run_id != backtest_id:
            raise AirflowFailException(f"params changed: prepared {backtest_id}, now {spec.run_id}")
        result = run_backtest(settings, spec, progress=False, refresh_catalog=False)
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in result.run.items()}

    @task(pool=WAREHOUSE_POOL)
    @failing_fast()
    def report(run: dict) -> str:
        """Refresh the warehouse views and write the run's HTML report; returns its path."""
        from ml import pipeline
        from ml.config import load_settings
        from ml.html import number

        path = pipeline.report(load_settings(), run["run_id"])
        print(
            f"{run['run_id']}: log loss {number(run['log_loss'], 4)} (prior {number(run['prior_log_loss'], 4)}, "
            f"heuristic {number(run['heuristic_log_loss'], 4)}), AUC {number(run['auc'], 3)}; report {path}"
        )
        return path

    report(run(prepare()))


dag = backtest()

if __name__ == "__main__":
    dag.test()
