"""Performance: the confidence-based estimate, and realized metrics from matured labels."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml.metrics import average_precision, estimated_metrics, expected_auc, roc_auc
from tests.conftest import AS_OF, make_settings, raw_labels


def _brute_force_auc(p: np.ndarray) -> float:
    numerator = denominator = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            weight = p[i] * (1 - p[j])
            denominator += weight
            numerator += weight * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return numerator / denominator


def test_expected_auc_is_the_pairwise_expectation_ties_included():
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(2, 5, 60), 2)  # rounded: many ties
    assert expected_auc(p) == pytest.approx(_brute_force_auc(p))


def test_auc_and_average_precision_are_sklearns_numbers_ties_included():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(7)
    for rows, decimals in [(2, 3), (50, 1), (1000, 2), (5000, 6)]:
        y = np.r_[0, 1, rng.integers(0, 2, rows - 2)]
        p = np.round(rng.random(rows), decimals)  # few decimals: many tied scores
        assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert roc_auc([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5]) == 0.875  # the tie counts half


def test_a_calibrated_model_realizes_what_was_estimated():
    from sklearn.metrics import roc_auc_score

    from ml.metrics import log_loss

    rng = np.random.default_rng(5)
    p = rng.beta(2, 5, 1000)
    estimate = estimated_metrics(p, 0.35)
    draws = [rng.random(p.size) < p for _ in range(300)]
    assert np.mean([roc_auc_score(y, p) for y in draws]) == pytest.approx(
        estimate["auc"], abs=0.005
    )
    assert np.mean([log_loss(y, p) for y in draws]) == pytest.approx(
        estimate["log_loss"], abs=0.003
    )
    flagged = p >= 0.35
    precision = np.mean([y[flagged].mean() for y in draws])
    assert precision == pytest.approx(estimate["precision"], abs=0.005)


def test_monitor_reports_realized_performance_from_matured_labels(trained_copy, package_source):
    """Realized metrics agree with labels computed here straight from the raw package file."""
    from sklearn.metrics import roc_auc_score

    from ml.monitor import monitor
    from ml.predict import predict

    settings = make_settings(trained_copy)
    first, later = AS_OF, AS_OF + dt.timedelta(days=settings.label_maturity_days)
    for day in (first, later):
        predict(settings, day)
    monitor(settings, first)
    result = monitor(settings, later)

    labels = raw_labels(package_source, first, first)
    rows = pd.read_parquet(settings.paths.predictions_partition(first))
    champion = rows[rows.model_role == "champion"].merge(labels, on="flight_id")
    assert len(champion) == len(rows[rows.model_role == "champion"]) > 500
    expected_auc_ = roc_auc_score(champion["delayed"], champion["p_delayed"])
    assert result.realized["auc"] == pytest.approx(expected_auc_)
    assert result.realized["rows"] == len(champion)
    assert result.realized["observed_rate"] == pytest.approx(champion["delayed"].mean())
    assert result.realized["log_loss"] < result.realized["prior_log_loss"]

    import duckdb

    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        kinds = con.execute(
            "select kind, flight_date, count(*) from monitoring_performance "
            "where dimension = 'all' group by all order by all"
        ).fetchall()
        slices = con.execute(
            "select distinct dimension from monitoring_performance where kind = 'realized'"
        ).fetchall()
    assert [(k, d) for k, d, _ in kinds] == [
        ("estimated", first),
        ("estimated", later),
        ("realized", first),
    ]
    assert {s for (s,) in slices} == {"all", "carrier", "origin", "dep_hour_band", "distance_band"}
    html = result.html.read_text()
    assert "Performance" in html and "realized AUC" in html
    # How far to trust the estimate: the one day with both, its gap as the tables hold it.
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        (estimated,), (realized,) = con.execute(
            "select log_loss from monitoring_performance where dimension = 'all' and "
            "model_role = 'champion' and flight_date = ? order by kind",
            [first],
        ).fetchall()
    assert f"over the 1 latest days with both ({first} to {first})" in html
    assert f"off the realized one by {abs(realized - estimated):.4f} on average" in html
    assert f"averaged {realized - estimated:+.4f}" in html


def test_the_estimate_gap_averages_the_latest_days_that_have_both():
    from ml.reports import estimate_gap

    def row(kind, day, log_loss, auc=0.7):
        return {"kind": kind, "flight_date": f"2013-07-{day:02d}", "log_loss": log_loss, "auc": auc}

    history = [row("estimated", d, 0.50) for d in range(1, 31)]
    history += [row("realized", d, 0.50 + (0.02 if d % 2 else -0.01)) for d in range(1, 29)]
    history.append(row("realized", 30, None))  # a realized day without a value
    assert estimate_gap([h for h in history if h["kind"] == "estimated"]) is None
    gap = estimate_gap(history, days=10)
    assert (gap["days"], gap["first"], gap["last"]) == (10, "2013-07-20", "2013-07-30")
    # days 20..28 and 30 have both; 30's realized value is missing: nine differences, the
    # odd days' +0.02 (21, 23, 25, 27) and the even days' -0.01 (20, ..., 28)
    assert gap["log_loss"]["mean_abs"] == pytest.approx((4 * 0.02 + 5 * 0.01) / 9)
    assert gap["log_loss"]["mean"] == pytest.approx((4 * 0.02 - 5 * 0.01) / 9)
    assert gap["auc"]["mean_abs"] == pytest.approx(0.0)
