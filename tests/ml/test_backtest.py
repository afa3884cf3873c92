"""Backtest: rolling-origin folds, point-in-time training, metrics checked independently."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from ml.backtest import grouped_metrics, make_folds, make_spec, retrain_dates, run_backtest
from ml.errors import ConfigError, DataError
from tests.conftest import AS_OF, make_settings, raw_labels
from tests.reliability.conftest import external_references

D = dt.date
START, END = D(2013, 3, 1), D(2013, 3, 20)


def test_retrain_dates_follow_the_cadence():
    assert retrain_dates(D(2013, 3, 1), D(2013, 3, 3), "daily") == [
        D(2013, 3, 1),
        D(2013, 3, 2),
        D(2013, 3, 3),
    ]
    assert retrain_dates(D(2013, 3, 1), D(2013, 3, 20), "weekly") == [
        D(2013, 3, 1),
        D(2013, 3, 8),
        D(2013, 3, 15),
    ]
    assert retrain_dates(D(2013, 3, 10), D(2013, 5, 1), "monthly") == [
        D(2013, 3, 10),
        D(2013, 4, 1),
        D(2013, 5, 1),
    ]
    assert retrain_dates(D(2013, 3, 1), D(2013, 12, 31), "once") == [D(2013, 3, 1)]


def test_folds_cover_the_range_once_each_up_to_the_next_retrain():
    folds = make_folds(D(2013, 3, 1), D(2013, 3, 20), "weekly")
    assert [(f.as_of, f.last_day) for f in folds] == [
        (D(2013, 3, 1), D(2013, 3, 7)),
        (D(2013, 3, 8), D(2013, 3, 14)),
        (D(2013, 3, 15), D(2013, 3, 20)),
    ]


def test_a_bad_spec_is_refused_with_its_reason(tmp_path):
    settings = make_settings(tmp_path)
    with pytest.raises(ConfigError, match="cadence 'hourly'"):
        make_spec(settings, START, END, "hourly")
    with pytest.raises(ConfigError, match="before it starts"):
        make_spec(settings, END, START, "weekly")
    with pytest.raises(ConfigError, match="validation_days \\+ calibration_folds"):
        make_spec(settings, START, END, "weekly", window_days=7)
    with pytest.raises(ConfigError, match="candidates"):
        make_spec(settings, START, END, "weekly", candidates=["catboost"])


def test_grouped_metrics_agree_with_sklearn_ties_included():
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame(
        {
            "g": rng.integers(0, 4, n),
            "is_delayed": rng.random(n) < 0.3,
            # rounded, so there are many ties within each group
            "p_delayed": np.round(rng.random(n), 1).clip(0.05, 0.95),
            "p_heuristic": rng.random(n),
            "p_prior": 0.3,
        }
    )
    table = grouped_metrics(frame, ["g"]).set_index("g")
    for g, part in frame.groupby("g"):
        y = part["is_delayed"].astype(int)
        assert table.loc[g, "rows"] == len(part)
        assert table.loc[g, "auc"] == pytest.approx(roc_auc_score(y, part["p_delayed"]))
        assert table.loc[g, "heuristic_auc"] == pytest.approx(roc_auc_score(y, part["p_heuristic"]))
        assert table.loc[g, "log_loss"] == pytest.approx(log_loss(y, part["p_delayed"]))
        assert table.loc[g, "prior_log_loss"] == pytest.approx(log_loss(y, part["p_prior"]))
        assert table.loc[g, "brier"] == pytest.approx(np.mean((part["p_delayed"] - y) ** 2))
    one_class = frame.assign(is_delayed=False)
    assert grouped_metrics(one_class, ["g"])["auc"].isna().all()


@pytest.fixture(scope="module")
def backtested(built_data, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("backtest") / "data"
    shutil.copytree(built_data, data_dir)
    settings = make_settings(data_dir)
    spec = make_spec(settings, START, END, "weekly", candidates=["lightgbm"])
    return settings, spec, run_backtest(settings, spec, progress=False)


def test_every_fold_learns_only_from_labels_known_before_its_retrain_date(backtested):
    from ml.features import load_features
    from ml.train import split_window

    settings, spec, result = backtested
    history = load_features(settings, D(2013, 1, 1), END)
    assert list(result.folds["as_of"]) == [D(2013, 3, 1), D(2013, 3, 8), D(2013, 3, 15)]
    for fold in result.folds.itertuples():
        _, fit, validation = split_window(settings, fold.as_of, spec.window_days, history)
        rows = pd.concat([fit, validation])
        assert rows["flight_date"].max() == fold.as_of - dt.timedelta(days=1)
        assert len(fit) == fold.fit_rows and len(validation) == fold.validation_rows
        # every flight of the window whose label was known before the retrain date, no other
        start = fold.as_of - dt.timedelta(days=spec.window_days)
        in_window = history[
            history["flight_date"].between(start, fold.as_of - dt.timedelta(days=1))
        ]
        known = in_window[in_window["label_known_date"] < fold.as_of]
        assert set(rows["flight_id"]) == set(known["flight_id"])
        # the check bites: the day before holds late flights whose label is known only on the day
        day_before = history[history["flight_date"] == fold.as_of - dt.timedelta(days=1)]
        assert (day_before["label_known_date"] == fold.as_of).sum() > 10
        scored = result.predictions[result.predictions["retrain_as_of"] == fold.as_of]
        assert scored["flight_date"].min() == fold.as_of
        assert scored["flight_date"].max() == fold.last_day


def test_the_folds_metrics_agree_with_labels_computed_from_the_raw_files(
    backtested, package_source
):
    settings, spec, result = backtested
    labels = raw_labels(package_source, START, END)
    scored = result.predictions.merge(labels, on="flight_id", validate="one_to_one")
    assert len(scored) == len(result.predictions) == len(labels)
    assert (scored["delayed"] == scored["is_delayed"].astype(int)).all()
    days = result.metrics[result.metrics["dimension"] == "all"].set_index("flight_date")
    assert list(days.index) == sorted(
        set(labels["flight_id"].str[:8].map(lambda s: dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))))
    )
    for day, part in scored.groupby("flight_date"):
        assert days.loc[day, "auc"] == pytest.approx(
            roc_auc_score(part["delayed"], part["p_delayed"])
        )
        assert days.loc[day, "log_loss"] == pytest.approx(
            log_loss(part["delayed"], part["p_delayed"])
        )
        assert days.loc[day, "heuristic_auc"] == pytest.approx(
            roc_auc_score(part["delayed"], part["p_heuristic"])
        )
        assert days.loc[day, "model_age_days"] == (day - part["as_of"].iloc[0]).days
    run = result.run
    assert run["auc"] == pytest.approx(roc_auc_score(scored["delayed"], scored["p_delayed"]))
    assert run["log_loss"] < run["prior_log_loss"]
    carriers = result.metrics[result.metrics["dimension"] == "carrier"]
    assert carriers.groupby("flight_date")["rows"].sum().equals(days["rows"])


def test_the_run_is_published_to_the_warehouse_and_replaced_when_rerun(backtested):
    settings, spec, result = backtested
    again = run_backtest(settings, spec, progress=False)
    np.testing.assert_allclose(again.predictions["p_delayed"], result.predictions["p_delayed"])
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        runs = con.execute(
            "select run_id, folds, scored_rows from backtest_runs where run_id = ?", [spec.run_id]
        ).fetchall()
        flights = con.execute(
            "select count(*), count(distinct flight_id) from backtest_predictions where run_id = ?",
            [spec.run_id],
        ).fetchone()
        metric_days = con.execute(
            "select count(distinct flight_date) from backtest_metrics where run_id = ?",
            [spec.run_id],
        ).fetchone()[0]
    assert runs == [(spec.run_id, 3, len(result.predictions))]
    assert flights == (len(result.predictions), len(result.predictions))
    assert metric_days == (END - START).days + 1


def test_a_backtest_fold_is_what_production_trains_recalibrates_and_predicts(trained_copy):
    """Same code paths: the fold retrained as of AS_OF is the model `ml train` registered
    (``p_static``), and what it served each day (``p_delayed``) is what the daily
    `recalibrate` and `predict` steps write to the prediction table."""
    from ml import pipeline, registry
    from ml.features import load_features

    settings = make_settings(trained_copy)
    spec = make_spec(
        settings, AS_OF, AS_OF + dt.timedelta(days=3), "once", candidates=settings.candidates
    )
    assert spec.gate and spec.recalibration  # production's, by default
    result = run_backtest(settings, spec, progress=False, refresh_catalog=False)
    model, metadata = registry.load_model(settings, registry.get_alias(settings, "champion"))
    assert metadata["as_of"] == AS_OF.isoformat()
    assert result.folds["algorithm"].iloc[0] == metadata["algorithm"]
    assert bool(result.folds["promoted"].iloc[0])
    frame = load_features(settings, spec.start, spec.end)
    expected = pd.Series(model.predict_proba(frame), index=frame["flight_id"])
    got = result.predictions.set_index("flight_id")
    np.testing.assert_allclose(got.loc[expected.index, "p_static"], expected, rtol=1e-9)
    np.testing.assert_allclose(got.loc[expected.index, "p_candidate"], expected, rtol=1e-9)
    for day in pd.date_range(spec.start, spec.end).date:
        pipeline.recalibrate(settings, day)
        pipeline.predict(settings, day)
        table = pd.read_parquet(
            settings.paths.root / "predictions" / f"flight_date={day}" / "part-0.parquet"
        )
        served = table[table["model_role"] == "champion"].set_index("flight_id")
        np.testing.assert_allclose(
            got.loc[served.index, "p_delayed"], served["p_delayed"], rtol=1e-9
        )
        assert (got.loc[served.index, "risk_band"] == served["risk_band"]).all()
    # recalibration was replayed, not skipped: a revision was in force on some day
    assert set(result.predictions["calibration"]) - {"training"}
    assert not np.allclose(got["p_delayed"], got["p_static"])


def test_a_retrain_that_fails_the_gate_is_not_deployed(backtested):
    """With a margin no retrain can beat, the first model that passes the gate's own checks
    serves the rest of the range; before it, the heuristic serves, as prediction falls back
    without a champion. The counterfactual of deploying every retrain is the run that does."""
    import dataclasses

    from ml.predict import FALLBACK_VERSION

    settings, spec, _ = backtested
    strict = dataclasses.replace(settings, gate_log_loss_margin=1.0)
    gated = run_backtest(strict, dataclasses.replace(spec, recalibration=False), progress=False)
    folds = gated.folds.set_index("as_of")
    # the slice's first retrain, on 30 days of winter, fails the gate's own checks
    first, second, third = D(2013, 3, 1), D(2013, 3, 8), D(2013, 3, 15)
    assert list(folds["promoted"]) == [False, True, False]
    assert "gate failed" in folds.loc[first, "gate_reason"]
    assert "against no champion" in folds.loc[second, "gate_reason"]
    assert "beats the champion" in folds.loc[third, "gate_reason"]
    assert folds.loc[third, "served_as_of"] == second
    assert gated.run["retrains_deployed"] == 1
    predictions = gated.predictions
    fallback = predictions["retrain_as_of"] == first
    assert (predictions.loc[fallback, "calibration"] == FALLBACK_VERSION).all()
    np.testing.assert_allclose(
        predictions.loc[fallback, "p_delayed"], predictions.loc[fallback, "p_heuristic"]
    )
    assert set(predictions.loc[~fallback, "as_of"]) == {second}  # it served both folds

    ungated = run_backtest(
        strict, dataclasses.replace(spec, gate=False, recalibration=False), progress=False
    )
    assert ungated.spec.run_id == spec.run_id + "-nogate-norecal"
    assert list(ungated.folds["promoted"]) == [True, True, True]
    np.testing.assert_allclose(predictions["p_candidate"], ungated.predictions["p_delayed"])
    assert gated.run["every_retrain_log_loss"] == pytest.approx(ungated.run["log_loss"])
    same = predictions["retrain_as_of"] == second  # the same model either way
    np.testing.assert_allclose(
        predictions.loc[same, "p_delayed"], ungated.predictions.loc[same, "p_delayed"]
    )
    assert not np.allclose(
        predictions.loc[~same, "p_delayed"], ungated.predictions.loc[~same, "p_delayed"]
    )


def test_a_range_without_features_names_the_mart_and_the_fix(backtested):
    settings, _, _ = backtested
    spec = make_spec(settings, D(2013, 3, 1), D(2013, 6, 1), "monthly")
    with pytest.raises(DataError, match="flight_features.*no flights on 2013-06-01"):
        run_backtest(settings, spec, progress=False)


def test_the_report_shows_the_metrics_beside_the_baselines_and_the_grid(backtested):
    from ml.backtest_report import write_grid_report, write_run_report

    settings, spec, result = backtested
    once = make_spec(settings, START, END, "once", candidates=["lightgbm"])
    run_backtest(settings, once, progress=False)
    html = write_run_report(settings, spec.run_id).read_text()
    for text in (
        spec.run_id,
        "heuristic",
        "prior rate",
        "Calibration over time",
        "Risk bands by month",
        "What replaying production changes, in this run",
        "The grid",
        "Retrains",
    ):
        assert text in html
    grid = write_grid_report(settings, START, END, "lightgbm")
    page = grid.read_text()
    assert spec.run_id in page and once.run_id in page
    assert "retraining weekly" in page and "once" in page
    import json

    from markupsafe import escape

    record = json.loads(grid.with_suffix(".json").read_text())  # the page's words, as data
    assert len(record["conclusion"]) >= 2
    assert all(str(escape(line)) in page for line in record["conclusion"])
    for text in (html, page):  # self-contained: nothing fetched from another host
        assert "<script" not in text and external_references(text) == []


def _write_metrics(settings, run_id: str, log_loss_by_day: dict) -> None:
    """A run's ``all`` rows of backtest_metrics with the given daily log loss."""
    import pyarrow as pa

    from ml.io import write_parquet

    metrics = pd.DataFrame(
        {
            "flight_date": list(log_loss_by_day),
            "dimension": "all",
            "value": "all",
            "rows": 900,
            "log_loss": list(log_loss_by_day.values()),
        }
    )
    write_parquet(pa.Table.from_pandas(metrics), settings.paths.backtest_table("metrics", run_id))


def test_paired_differences_are_signed_and_worded_from_the_numbers(tmp_path):
    from ml.backtest_report import describe
    from ml.backtest_stats import paired_difference

    settings = make_settings(tmp_path)
    days = [D(2013, 3, 4) + dt.timedelta(days=i) for i in range(70)]  # ten whole weeks
    rng = np.random.default_rng(0)
    base = {d: 0.55 + 0.05 * rng.standard_normal() for d in days}
    _write_metrics(settings, "slow", base)
    _write_metrics(settings, "fast", {d: v - 0.01 for d, v in base.items()})
    _write_metrics(
        settings, "same", {d: v + 0.001 * rng.standard_normal() for d, v in base.items()}
    )
    better = paired_difference(settings, "fast", "slow")
    assert better["mean"] == pytest.approx(-0.01) and better["se"] < 1e-9 and better["weeks"] == 10
    assert describe(better, "retraining weekly", "once").startswith(
        "retraining weekly instead of once lowers log loss by 0.0100"
    )
    worse = paired_difference(settings, "slow", "fast")
    assert "raises log loss by 0.0100" in describe(worse, "once", "weekly")
    tie = paired_difference(settings, "same", "slow")
    assert "indistinguishable" in describe(tie, "a", "b")
    _write_metrics(settings, "elsewhen", {D(2014, 1, 1): 0.5})
    assert "no common day" in describe(paired_difference(settings, "elsewhen", "slow"), "a", "b")


def test_newey_west_widens_the_error_of_a_correlated_series():
    from ml.backtest_stats import newey_west_se

    rng = np.random.default_rng(1)
    series = rng.standard_normal(45)  # 45 weeks: lag 3
    e = series - series.mean()
    lag = np.abs(np.subtract.outer(np.arange(45), np.arange(45)))
    weights = np.clip(1 - lag / 4, 0, None)  # Bartlett, as the double sum over all pairs
    assert newey_west_se(series) == pytest.approx(np.sqrt(e @ weights @ e) / 45)
    walk = np.zeros(400)
    for t in range(1, 400):  # AR(1), coefficient 0.8
        walk[t] = 0.8 * walk[t - 1] + rng.standard_normal()
    assert newey_west_se(walk) > 1.5 * walk.std(ddof=0) / np.sqrt(len(walk))
    assert np.isnan(newey_west_se(np.array([0.1])))


def test_a_calibration_that_would_invert_the_ranking_predicts_the_fit_rate():
    from sklearn.base import BaseEstimator

    from ml.models import CalibratedClassifier

    class Backwards(BaseEstimator):
        """Out-of-fold scores that rank the fit period backwards."""

        algorithm = "stub"

        def fit(self, frame, y, eval_frame=None, eval_y=None):
            return self

        def cross_fitted(self, frame, y, folds):
            return np.where(y == 1, 0.2, 0.6)

        def predict_proba(self, frame):
            return frame["score"].to_numpy()

    y = np.array([0, 1] * 50)
    frame = pd.DataFrame(
        {
            "flight_date": [D(2013, 3, 1) + dt.timedelta(days=i % 9) for i in range(100)],
            "score": np.linspace(0.1, 0.9, 100),
        }
    )
    model = CalibratedClassifier(Backwards(), n_folds=3).fit(frame, y)
    assert model.slope_ == 0.0
    np.testing.assert_allclose(model.predict_proba(frame), y.mean())


def test_the_grid_command_runs_each_point_once_and_writes_the_grid_report(backtested):
    import json
    from pathlib import Path

    from ml.backtest import load_runs
    from tests.reliability.conftest import run_ml

    settings, _, _ = backtested
    grid = ("backtest-grid", "--start", str(START), "--end", str(END), "--cadences", "once")
    grid += ("--windows", "30", "--candidates", "lightgbm", "--no-progress")
    grid += ("--gate", "on,off", "--recalibration", "on,off")
    first = run_ml(*grid, "--rerun", data_dir=settings.paths.root)
    assert first.returncode == 0, first.stderr[-1500:]
    lines = first.stdout.strip().splitlines()
    for i in range(1, 5):
        assert any(line.startswith(f"[{i}/4] ") and "log loss" in line for line in lines), lines
    report = Path(lines[-1].removeprefix("grid report: "))
    assert report.is_file() and report.parent == settings.paths.backtest_reports
    runs = load_runs(settings)
    runs = runs[runs["cadence"] == "once"].set_index("run_id")
    suffixes = ("", "-norecal", "-nogate", "-nogate-norecal")
    assert {f"once-30d-20130301-20130320-lightgbm{s}" for s in suffixes} <= set(runs.index)
    # one training for the four variants
    assert sorted(runs["train_seconds"] > 0) == [False, False, False, True]
    record = json.loads(report.with_suffix(".json").read_text())
    # (other tests of this module add weekly runs to the same folder)
    assert {(r["part"], r["cadence"]) for r in record["replay"] if r["cadence"] == "once"} == {
        ("gate", "once"),
        ("recalibration", "once"),
    }
    page = report.read_text()
    assert "What replaying production changes" in page
    assert "The promotion gate, retraining once on 30 days" in page
    assert "Daily recalibration, retraining once on 30 days" in page
    again = run_ml(*grid, data_dir=settings.paths.root)
    assert again.returncode == 0, again.stderr[-1500:]
    assert again.stdout.count("already run (--rerun to replace)") == 4


def test_the_backtest_command_leaves_out_the_gate_and_recalibration_when_asked(backtested):
    import json

    from tests.reliability.conftest import run_ml

    settings, _, _ = backtested
    command = ("backtest", "--start", str(START), "--end", str(START + dt.timedelta(days=3)))
    command += ("--cadence", "once", "--window-days", "30", "--candidates", "lightgbm")
    result = run_ml(
        *command, "--no-gate", "--no-recalibration", "--json", data_dir=settings.paths.root
    )
    assert result.returncode == 0, result.stderr[-1500:]
    run = json.loads(result.stdout)
    assert run["run_id"] == "once-30d-20130301-20130304-lightgbm-nogate-norecal"
    assert run["replays_gate"] is False and run["replays_recalibration"] is False
    assert run["retrains_deployed"] == 1
    # without recalibration, what was served is the training map
    assert run["static_log_loss"] == pytest.approx(run["log_loss"])
