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
from ml.config import ConfigError
from tests.conftest import AS_OF, make_settings, raw_labels

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
    with pytest.raises(ConfigError, match="longer than validation_days"):
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
        assert rows["label_known_date"].max() < fold.as_of
        assert len(fit) == fold.fit_rows and len(validation) == fold.validation_rows
        # the check bites: the day before holds late flights whose label is known only on the day
        day_before = history[history["flight_date"] == fold.as_of - dt.timedelta(days=1)]
        assert (day_before["label_known_date"] == fold.as_of).sum() > 10
        scored = result.predictions[result.predictions["as_of"] == fold.as_of]
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
        runs = con.execute("select run_id, folds, scored_rows from backtest_runs").fetchall()
        flights = con.execute(
            "select count(*), count(distinct flight_id) from backtest_predictions"
        ).fetchone()
        metric_days = con.execute(
            "select count(distinct flight_date) from backtest_metrics where run_id = ?",
            [spec.run_id],
        ).fetchone()[0]
    assert runs == [(spec.run_id, 3, len(result.predictions))]
    assert flights == (len(result.predictions), len(result.predictions))
    assert metric_days == (END - START).days + 1


def test_a_backtest_fold_is_the_model_production_trains(trained_data):
    """Same code path: the fold retrained as of AS_OF predicts what `ml train` registered."""
    from ml import registry
    from ml.features import load_features

    settings = make_settings(trained_data)
    spec = make_spec(
        settings, AS_OF, AS_OF + dt.timedelta(days=2), "once", candidates=settings.candidates
    )
    result = run_backtest(settings, spec, progress=False, refresh_catalog=False)
    model, metadata = registry.load_model(settings, registry.get_alias(settings, "champion"))
    assert metadata["as_of"] == AS_OF.isoformat()
    assert result.folds["algorithm"].iloc[0] == metadata["algorithm"]
    frame = load_features(settings, spec.start, spec.end)
    expected = pd.Series(model.predict_proba(frame), index=frame["flight_id"])
    got = result.predictions.set_index("flight_id")["p_delayed"]
    np.testing.assert_allclose(got.loc[expected.index], expected, rtol=1e-9)


def test_a_range_without_features_names_the_mart_and_the_fix(backtested):
    settings, _, _ = backtested
    spec = make_spec(settings, D(2013, 3, 1), D(2013, 6, 1), "monthly")
    with pytest.raises(Exception, match="flight_features.*no flights on 2013-06-01"):
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
        "The grid",
        "Retrains",
    ):
        assert text in html
    grid = write_grid_report(settings, START, END, "lightgbm")
    page = grid.read_text()
    assert spec.run_id in page and once.run_id in page
    assert "weekly instead of once" in page or "weekly and once are indistinguishable" in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")
