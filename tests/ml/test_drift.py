"""Drift tests: the statistics against scipy, the false-alarm bound, and injected drift.

The statistics are checked against scipy's on the same data. The calibration is checked
where its promise is made: on unchanged days drawn from the reference's own process
(clustered like flights: a day shares its weather), at most the family-wise rate of days
raise any alarm. Injected drift is checked on the real data, through the real pipeline:
wind and visibility shifted for a week in a copy of the raw files.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from ml import drift
from ml.features import FeatureSpec
from tests.conftest import AS_OF, make_settings

# -- the statistics ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(7)
    reference = rng.gamma(2.0, 3.0, 20_000)
    current = rng.gamma(2.0, 3.6, 700)
    return reference, current


def _entry(values, kind="numeric"):
    return drift._profile_series(pd.Series(values), kind)


def test_ks_and_wasserstein_match_scipy_on_the_full_reference(samples):
    from scipy import stats

    reference, current = samples
    entry = _entry(reference)
    expected_ks = stats.ks_2samp(reference, current).statistic
    assert drift.ks_statistic(entry, current) == pytest.approx(
        expected_ks, abs=1.5 / drift.N_QUANTILES
    )
    expected_w = stats.wasserstein_distance(reference, current) / reference.std()
    assert drift.wasserstein_normed(entry, current) == pytest.approx(expected_w, rel=0.03)
    # ties: an integer feature where one value holds most of the mass
    hours = np.r_[np.full(900, 10), np.arange(100) % 24]
    shifted = np.r_[np.full(400, 10), np.arange(600) % 24]
    assert drift.ks_statistic(_entry(hours), shifted) == pytest.approx(
        stats.ks_2samp(hours, shifted).statistic, abs=1.5 / drift.N_QUANTILES
    )


def test_chi_square_and_jensen_shannon_match_scipy():
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    reference = pd.Series(["AA"] * 500 + ["B6"] * 300 + ["UA"] * 200)
    current = pd.Series(["AA"] * 40 + ["B6"] * 40 + ["UA"] * 20)
    entry = _entry(reference, "categorical")
    observed = [40, 40, 20]
    expected = [50, 30, 20]
    assert drift.chi_square(entry, current) == pytest.approx(
        stats.chisquare(observed, expected).statistic
    )
    assert drift.jensen_shannon(entry, current) == pytest.approx(
        jensenshannon([0.4, 0.4, 0.2, 0.0], [0.5, 0.3, 0.2, 0.0])
    )
    unseen = pd.Series(["AA"] * 50 + ["ZZ"] * 50)  # a carrier the reference never saw
    assert drift.chi_square(entry, unseen) > 1000


def test_the_test_is_chosen_by_type_and_batch_size():
    assert drift.choose_test("numeric", 900, 1000) == "ks"
    assert drift.choose_test("numeric", 6300, 1000) == "wasserstein"
    assert drift.choose_test("categorical", 900, 1000) == "chi_square"
    assert drift.choose_test("categorical", 6300, 1000) == "jensen_shannon"


# -- the false-alarm bound -----------------------------------------------------------------


def _clustered_days(rng, first: dt.date, n_days: int, rows: int = 900) -> pd.DataFrame:
    """Days shaped like flights: row-level features, and weather shared by an origin's day."""
    frames = []
    for i in range(n_days):
        origin = rng.choice(["EWR", "JFK", "LGA"], rows, p=[0.4, 0.3, 0.3])
        wind = {o: rng.gamma(4.0, 3.0) for o in ("EWR", "JFK", "LGA")}
        storm = rng.random() < 0.15  # some days have rain: a zero-inflated feature
        frames.append(
            pd.DataFrame(
                {
                    "flight_date": first + dt.timedelta(days=i),
                    "distance_miles": rng.lognormal(6.5, 0.6, rows),
                    "sched_dep_hour": rng.integers(5, 23, rows),
                    "origin_max_wind_speed_mph_1d": [wind[o] for o in origin],
                    "origin_total_precip_in_1d": [
                        rng.gamma(1.0, 0.3) if storm else 0.0 for _ in origin
                    ],
                    "network_delay_rate_28d": 0.2 + 0.02 * np.sin(i / 9) + rng.normal(0, 0.005),
                    "origin": origin,
                    "carrier": rng.choice(["AA", "B6", "DL", "UA", "EV"], rows),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


SPEC = FeatureSpec(
    numeric=(
        "distance_miles",
        "sched_dep_hour",
        "origin_max_wind_speed_mph_1d",
        "origin_total_precip_in_1d",
        "network_delay_rate_28d",
    ),
    categorical=("origin", "carrier"),
)


def _scores(frame: pd.DataFrame) -> np.ndarray:
    return 1 / (1 + np.exp(-(frame["origin_max_wind_speed_mph_1d"] / 10 - 2)))


def test_unchanged_days_stay_under_the_false_alarm_bound():
    rng = np.random.default_rng(2013)
    reference = _clustered_days(rng, dt.date(2013, 1, 1), 90)
    profile = drift.reference_profile(reference, SPEC, _scores(reference))
    assert profile["reference_alarm_rate"] <= 0.05
    assert profile["z_threshold"] >= profile["z_bonferroni"]
    # new days from the same process, never seen by the calibration
    fresh = _clustered_days(rng, dt.date(2013, 4, 1), 120)
    alarms = []
    for day in sorted(fresh["flight_date"].unique())[6:]:
        window = fresh[
            (fresh.flight_date > day - dt.timedelta(days=7)) & (fresh.flight_date <= day)
        ]
        today = window[window.flight_date == day]
        table = drift.compare(profile, today, _scores(today), window, _scores(window))
        alarms.append(bool(table["is_drifted"].any()))
    assert np.mean(alarms) <= 0.05, f"{np.mean(alarms):.1%} of unchanged days raised an alarm"
    # an uncalibrated 5% test per series would have alarmed on most of them
    assert profile["tests"] == 2 * (len(SPEC.columns) + 1)


def test_a_shifted_feature_is_flagged_alone():
    rng = np.random.default_rng(11)
    reference = _clustered_days(rng, dt.date(2013, 1, 1), 90)
    profile = drift.reference_profile(reference, SPEC, np.full(len(reference), 0.3))
    fresh = _clustered_days(rng, dt.date(2013, 4, 1), 7)
    fresh["distance_miles"] *= 1.8  # every flight longer: a row-level shift
    today = fresh[fresh.flight_date == fresh.flight_date.max()]
    table = drift.compare(profile, today, np.full(len(today), 0.3), fresh, np.full(len(fresh), 0.3))
    assert set(table.loc[table.is_drifted, "feature"]) == {"distance_miles"}
    assert set(table.loc[table.is_drifted, "horizon"]) == {"day", "7d"}


# -- injected drift, through the pipeline ---------------------------------------------------

SHIFT_START = AS_OF + dt.timedelta(days=1)  # weather of 03-16..03-22, read by 03-17..03-23
SHIFT_END = AS_OF + dt.timedelta(days=7)
MONITORED = [SHIFT_START + dt.timedelta(days=i) for i in range(1, 8)]


def _shifted_source(package_source: Path, folder: Path) -> Path:
    folder.mkdir()
    with zipfile.ZipFile(package_source / "flights.csv.zip") as archive:
        (folder / "flights.csv").write_bytes(archive.read("flights.csv"))
    weather = pl.read_csv(package_source / "weather.csv", infer_schema=False)
    day = pl.date(
        pl.col("year").cast(pl.Int32), pl.col("month").cast(pl.Int32), pl.col("day").cast(pl.Int32)
    )
    week = day.is_between(SHIFT_START, SHIFT_END)
    weather = weather.with_columns(
        pl.when(week)
        .then((pl.col("wind_speed").cast(pl.Float64, strict=False) + 25).round(4).cast(pl.Utf8))
        .otherwise(pl.col("wind_speed"))
        .alias("wind_speed"),
        pl.when(week)
        .then((pl.col("wind_gust").cast(pl.Float64, strict=False) + 25).round(4).cast(pl.Utf8))
        .otherwise(pl.col("wind_gust"))
        .alias("wind_gust"),
        pl.when(week).then(pl.lit("0.5")).otherwise(pl.col("visib")).alias("visib"),
    )
    weather.write_csv(folder / "weather.csv", null_value="NA")
    for name in ("planes", "airports", "airlines"):
        (folder / f"{name}.csv").symlink_to(package_source / f"{name}.csv")
    return folder


def _flagged(settings) -> dict[dt.date, set[str]]:
    from ml.monitor import monitor
    from ml.predict import predict

    flagged = {}
    for day in MONITORED:
        predict(settings, day)
        flagged[day] = set(monitor(settings, day).drifted)
    return flagged


def test_wind_and_visibility_shifted_for_a_week_are_flagged_on_exactly_those_features(
    trained_copy, package_source, tmp_path
):
    from ml.ingest import ingest
    from ml.pipeline import transform

    clean = _flagged(make_settings(trained_copy))
    settings = make_settings(
        trained_copy, raw_source=str(_shifted_source(package_source, tmp_path / "source"))
    )
    ingest(settings, SHIFT_START, SHIFT_END)
    transform(settings, SHIFT_START, MONITORED[-1])
    shifted = _flagged(settings)

    def from_shifted_columns(feature: str) -> bool:
        return any(w in feature for w in ("wind_speed", "wind_gust", "visibility"))

    injected = set().union(*(shifted[d] - clean[d] for d in MONITORED))
    assert injected, "the shifted week raised no alarm"
    assert all(from_shifted_columns(f) for f in injected), injected
    for feature in ("origin_max_wind_speed_mph_1d", "origin_min_visibility_miles_1d"):
        assert feature in injected
    # every other verdict is the same as on the real files: real events (the trailing
    # cancellation rates falling after February's blizzard, a rainy evening) stay flagged,
    # and nothing else is
    for day in MONITORED:
        others = {f for f in shifted[day] if not from_shifted_columns(f)}
        assert others == {f for f in clean[day] if not from_shifted_columns(f)}, day
    # the report says since when
    from ml.io import read_json

    last = read_json(settings.paths.reports / "drift" / f"drift_{MONITORED[-1]}.json")
    since = dt.date.fromisoformat(last["drifted_since"]["origin_min_visibility_miles_1d"])
    assert MONITORED[0] <= since < MONITORED[-1]


def test_the_report_says_why_a_stable_series_with_a_large_psi_is_stable(trained_copy):
    """A stable test whose PSI the rule of thumb calls a major shift is named, with its
    z-score against the calibrated threshold."""
    from ml.io import read_json
    from ml.monitor import monitor
    from ml.predict import predict
    from ml.reports import PSI_RULE_OF_THUMB, drift_report_html

    settings = make_settings(trained_copy)
    day = AS_OF + dt.timedelta(days=3)
    predict(settings, day)
    monitor(settings, day)
    summary = read_json(settings.paths.reports / "drift" / f"drift_{day}.json")
    stable = [f for f in summary["series"] if not f["is_drifted"] and f["psi"] is not None]
    large = [f for f in stable if f["psi"] >= PSI_RULE_OF_THUMB]
    html = drift_report_html(summary)
    assert ("Why a large PSI can still be stable" in html) == bool(large)
    # The same day with one stable test's PSI raised past the rule of thumb.
    quiet = min(stable, key=lambda f: f["psi"])
    quiet["psi"] = 9.5  # the largest: named first
    html = drift_report_html(summary)
    assert f"{len(large) + 1} stable test" in html
    assert f"{quiet['feature']}, {quiet['horizon']}: PSI 9.50, z {quiet['z']:.2f}" in html
    assert f"z-scores stay below {summary['z_threshold']:.2f}" in html
