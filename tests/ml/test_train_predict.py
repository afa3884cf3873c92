"""Model-tier tests on a model trained on real data (30 days before 2013-03-15)."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from ml import registry
from ml.dates import cutoff_at
from ml.errors import ConfigError
from ml.evaluate import evaluate
from ml.features import LABEL, infer_spec, load_features
from ml.monitor import monitor
from ml.pipeline import decide_retraining
from ml.predict import FALLBACK_VERSION, predict
from ml.train import TrainingWindow, train
from tests.conftest import AS_OF, make_settings

DAY = dt.date(2013, 3, 20)


def test_the_training_window_ends_before_the_as_of_date_and_never_overlaps():
    window = TrainingWindow.before(dt.date(2013, 7, 1), window_days=90, validation_days=14)
    assert window.fit_start == dt.date(2013, 4, 2)
    assert window.fit_end < window.validation_start
    assert window.validation_end == dt.date(2013, 6, 30)


def test_features_exclude_keys_identifiers_and_label(trained_data):
    frame = load_features(make_settings(trained_data), DAY, DAY)
    spec = infer_spec(frame)
    for column in ("flight_id", "flight_number", "tailnum", "sched_dep_at", "flight_date", LABEL):
        assert column not in spec.columns
    assert {"carrier", "origin", "dest"} <= set(spec.categorical)


def test_feature_exclude_leaves_columns_out_by_name_or_pattern_and_refuses_a_typo(trained_data):
    frame = load_features(make_settings(trained_data), DAY, DAY)
    spec = infer_spec(frame, ("flight_number_*", "day_of_year"))
    assert "flight_number_delay_rate_28d" in frame and "day_of_year" in frame
    assert not [c for c in spec.columns if c.startswith("flight_number_") or c == "day_of_year"]
    assert "week_of_year" in spec.numeric and "origin_hour_delay_rate_28d" in spec.numeric
    with pytest.raises(ConfigError, match=r"feature_exclude \['flight_numbr_\*'\]"):
        infer_spec(frame, ("flight_number_*", "flight_numbr_*"))


def test_the_trained_model_beats_the_prior_and_becomes_champion(trained_data):
    settings = make_settings(trained_data)
    champion = registry.get_alias(settings, "champion")
    metrics = registry.load_metrics(settings, champion)
    meta = registry.load_metadata(settings, champion)
    assert meta["as_of"] == AS_OF.isoformat()
    assert meta["window"]["validation_end"] == "2013-03-14"
    holdout = metrics["holdout"]
    assert holdout["model"]["log_loss"] < holdout["baselines"]["prior_rate"]["log_loss"]
    assert holdout["model"]["auc"] > holdout["baselines"]["heuristic"]["auc"]
    assert set(metrics["candidates"]) == {"heuristic", "logistic", "lightgbm", "xgboost"}
    assert metrics["gate"]["promote"] and all(c["passed"] for c in metrics["gate"]["checks"])
    assert registry.audit_log(settings)[0]["to"] == champion
    assert "passed the promotion gate" in registry.audit_log(settings)[0]["reason"]


def test_a_version_folder_holds_its_lineage_and_model_card(trained_data):
    settings = make_settings(trained_data)
    champion = registry.get_alias(settings, "champion")
    folder = registry.version_dir(settings, champion)
    meta = registry.load_metadata(settings, champion)
    for key in (
        "input_fingerprint",
        "feature_types",
        "params",
        "libraries",
        "calibration",
        "window",
    ):
        assert meta[key], key
    assert meta["libraries"]["lightgbm"] and meta["libraries"]["python"]
    card = (folder / "model_card.md").read_text()
    assert champion in card and "heuristic" in card and "Behavioural tests" in card
    html = (folder / "model_card.html").read_text()
    assert "<svg" in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")
    metrics = registry.load_metrics(settings, champion)
    assert metrics["importance"]["permutation"] and metrics["holdout"]["slices"]


def test_a_weakened_candidate_is_not_promoted(trained_copy, monkeypatch):
    import ml.train
    from ml.features import FeatureSpec

    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    # Deliberately weakened: the same algorithms, but blind to everything except the
    # aircraft's seat count and the distance.
    monkeypatch.setattr(
        ml.train,
        "infer_spec",
        lambda frame, exclude=(): FeatureSpec(("seat_count", "distance_miles"), ()),
    )
    weak = train(
        make_settings(trained_copy, candidates=("lightgbm",)), AS_OF + dt.timedelta(days=7)
    )
    assert not weak.became_champion
    assert registry.read_aliases(settings) == {"champion": champion, "challenger": weak.version}
    last = registry.audit_log(settings)[-1]
    assert last["alias"] == "challenger" and last["to"] == weak.version
    assert "gate failed" in last["reason"] and "beats the champion" in last["reason"]


def test_retraining_the_same_date_gives_the_same_version(trained_copy):
    settings = make_settings(trained_copy)
    before = registry.get_alias(settings, "champion")
    folder = registry.version_dir(settings, before)

    def contents():
        return {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*")
            if p.is_file()
        }

    registered = contents()
    record = settings.paths.model_run_record(before)
    first_record = json.loads(record.read_text())
    result = train(settings, AS_OF)
    assert result.version == before
    assert [m["version"] for m in registry.list_versions(settings)] == [before]
    # byte for byte, every file of the version (what varies run to run is recorded beside)
    again = contents()
    assert sorted(again) == sorted(registered) and "checksums.json" in again
    assert [name for name in registered if again[name] != registered[name]] == []
    assert set(json.loads(record.read_text())["candidates"]) == set(first_record["candidates"])


def test_predict_writes_one_champion_row_per_scheduled_flight(trained_copy):
    settings = make_settings(trained_copy)
    result = predict(settings, DAY)
    rows = pd.read_parquet(result.path)
    raw = pd.read_parquet(settings.paths.raw_partition("flights", DAY))
    champion = rows[rows["model_role"] == "champion"]
    assert len(champion) == len(raw) == champion["flight_id"].nunique()
    assert champion["p_delayed"].between(0, 1).all()
    assert (champion["predicted_at"] == pd.Timestamp(cutoff_at(DAY))).all()
    assert champion["risk_band"].isin(["low", "medium", "high"]).all()
    assert all(len(r) == 3 for r in champion["top_reasons"])


def test_predict_is_idempotent_per_date(trained_copy):
    settings = make_settings(trained_copy)
    first = pd.read_parquet(predict(settings, DAY).path)
    second = pd.read_parquet(predict(settings, DAY).path)
    pd.testing.assert_frame_equal(first, second)
    import duckdb

    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        count, distinct = con.execute(
            "select count(*), count(distinct flight_id) from latest_predictions where flight_date = ?",
            [DAY],
        ).fetchone()
    assert count == distinct == len(first)


def test_the_challenger_scores_in_shadow(trained_copy):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    other = train(make_settings(trained_copy, candidates=("xgboost",), train_window_days=21), AS_OF)
    assert other.version != champion and not other.became_champion
    registry.set_alias(settings, "challenger", other.version, reason="test shadow")
    rows = pd.read_parquet(predict(settings, DAY).path)
    assert rows.groupby("model_role")["flight_id"].nunique().to_dict() == {
        "champion": len(rows) // 2,
        "challenger": len(rows) // 2,
    }
    assert set(rows.loc[rows.model_role == "challenger", "model_version"]) == {other.version}


def test_a_corrupt_champion_falls_back_to_the_heuristic(trained_copy, caplog):
    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    folder = registry.version_dir(settings, champion)
    for artifact in folder.glob("model.*"):
        artifact.write_text("not a model")
    result = predict(settings, DAY)
    rows = pd.read_parquet(result.path)
    assert set(rows["model_version"]) == {FALLBACK_VERSION}
    assert rows["p_delayed"].between(0, 1).all()
    assert "heuristic baseline" in caplog.text


def test_evaluate_shows_the_model_beside_its_baselines(trained_data):
    settings = make_settings(trained_data)
    version = registry.get_alias(settings, "champion")
    report = evaluate(settings, version, AS_OF, dt.date(2013, 3, 31))
    assert report["model"]["rows"] == report["baselines"]["heuristic"]["rows"] > 5000
    assert report["model"]["log_loss"] < report["baselines"]["prior_rate"]["log_loss"]
    with pytest.raises(ConfigError, match="learned from days up to 2013-03-14"):
        evaluate(settings, version, dt.date(2013, 3, 1), dt.date(2013, 3, 31))


def test_monitor_writes_a_self_contained_report_and_the_drift_table(trained_copy):
    settings = make_settings(trained_copy)
    predict(settings, DAY)
    result = monitor(settings, DAY)
    before = result.html.read_text()
    decision = decide_retraining(settings, DAY)
    html = result.html.read_text()
    summary = json.loads(settings.paths.drift_report(DAY, ".json").read_text())
    assert summary["retraining"]["reasons"] == decision["reasons"]
    # the decision is added to the day's report by its own step
    assert decision["reasons"][0] not in before and decision["reasons"][0] in html
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    import duckdb

    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        features = con.execute(
            "select feature from monitoring_drift where flight_date = ?", [DAY]
        ).fetchall()
    assert ("p_delayed",) in features and ("carrier",) in features


def test_registry_promote_and_rollback_are_audited(trained_copy):
    settings = make_settings(trained_copy)
    first = registry.get_alias(settings, "champion")
    second = train(
        make_settings(trained_copy, candidates=("xgboost",), train_window_days=21), AS_OF
    ).version
    registry.promote(settings, second, reason="test promotion")
    assert registry.read_aliases(settings) == {"champion": second, "challenger": first}
    assert registry.rollback(settings, reason="test rollback") == first
    reasons = [e["reason"] for e in registry.audit_log(settings)]
    assert reasons[-1] == "rollback: test rollback" and "test promotion" in reasons
    with pytest.raises(registry.RegistryError, match="not found"):
        registry.promote(settings, "no-such-version", reason="x")


def test_reference_profile_is_stored_and_flags_shifted_data(trained_data):
    from ml.drift import compare

    settings = make_settings(trained_data)
    profile = registry.load_profile(settings, registry.get_alias(settings, "champion"))
    assert profile["days"] == 30 and profile["reference_alarm_rate"] <= 0.05
    frame = load_features(settings, DAY, DAY)
    scores = np.full(len(frame), 0.3)
    calm = compare(profile, frame, scores).set_index("feature")
    assert not calm.loc["plane_age_years", "is_drifted"]
    older_fleet = frame.assign(plane_age_years=frame["plane_age_years"] + 15)
    shifted = compare(profile, older_fleet, scores).set_index("feature")
    assert shifted.loc["plane_age_years", "is_drifted"]
    assert shifted.drop(index=["plane_age_years"])["statistic"].equals(
        calm.drop(index=["plane_age_years"])["statistic"]
    )


def test_leakage_checks_refuse_overlapping_splits_and_late_features(trained_data):
    from ml.errors import LeakageError
    from ml.train import check_splits, split_window

    settings = make_settings(trained_data)
    window = TrainingWindow.before(AS_OF, 30, 7)
    frame = load_features(settings, window.fit_start, window.validation_end)
    fit = frame[frame["flight_date"] <= window.fit_end]
    validation = frame[frame["flight_date"] >= window.validation_start]
    # the day before the as-of date has evening flights whose label is known only on it
    with pytest.raises(LeakageError, match="label_known_date < as_of"):
        check_splits(window, fit, validation)
    _, fit, validation = split_window(settings, AS_OF, 30)
    check_splits(window, fit, validation)  # the real splits pass
    with pytest.raises(LeakageError, match="in both fit and validation"):
        check_splits(
            window,
            fit,
            pd.concat([validation, fit.head(2)]).assign(flight_date=window.validation_start),
        )
    with pytest.raises(LeakageError, match="fit rows after"):
        check_splits(window, pd.concat([fit, validation.head(1)]), validation.iloc[1:])
    late = fit.copy()
    late.loc[late.index[0], "latest_source_date"] = late.loc[late.index[0], "flight_date"]
    with pytest.raises(LeakageError, match="latest_source_date < flight_date"):
        check_splits(window, late, validation)


def test_the_oracle_forecast_group_is_labelled_and_never_champion(trained_copy):
    settings = make_settings(trained_copy, use_oracle_forecast=True)
    result = train(settings, AS_OF)
    meta = registry.load_metadata(settings, result.version)
    assert "-oracle-" in result.version and meta["uses_oracle_forecast"]
    assert "upper bound" in meta["oracle_note"]
    assert any(c.startswith("oracle_") for c in meta["features"]["numeric"])
    assert not result.became_champion
    with pytest.raises(registry.RegistryError, match="never champion"):
        registry.promote(settings, result.version, reason="try")
    registry.set_alias(settings, "challenger", result.version, reason="shadow the oracle")
    rows = pd.read_parquet(predict(make_settings(trained_copy), DAY).path)
    assert set(rows.loc[rows.model_role == "challenger", "model_version"]) == {result.version}
    plain = load_features(make_settings(trained_copy), DAY, DAY)
    assert not any(c.startswith("oracle_") for c in plain.columns)  # off by default


def test_the_retraining_decision_needs_the_days_monitoring(trained_copy):
    from ml.errors import DataError

    settings = make_settings(trained_copy)
    with pytest.raises(DataError, match="has not been monitored"):
        decide_retraining(settings, DAY)
    assert not settings.paths.monitoring_partition("retraining", DAY).exists()


def test_monitor_reads_the_published_scores_and_scores_only_what_is_missing(
    trained_copy, monkeypatch
):
    """The drift of the score is computed from the champion's published p_delayed where
    it scored the day, as if the model scored the whole window again; the model is only
    loaded when some day of the window lacks them."""
    import shutil

    import pandas as pd

    settings = make_settings(trained_copy)
    # the window's days before AS_OF are days the champion learned from: left out
    first = max(DAY - dt.timedelta(days=settings.drift_window_days - 1), AS_OF)
    predict(settings, DAY)  # the other days of the window are scored by the model
    monitor(settings, DAY)
    rescored = pd.read_parquet(settings.paths.monitoring_partition("drift", DAY))

    for offset in range((DAY - first).days):
        predict(settings, first + dt.timedelta(days=offset))
    loaded = []
    real_load = registry.load_model
    monkeypatch.setattr(registry, "load_model", lambda *a: loaded.append(a) or real_load(*a))
    monitor(settings, DAY)
    published = pd.read_parquet(settings.paths.monitoring_partition("drift", DAY))
    assert loaded == []  # every day of the window was published by this champion
    pd.testing.assert_frame_equal(published, rescored)

    shutil.rmtree(settings.paths.predictions_partition(first).parent)
    monitor(settings, DAY)  # one day missing: the model scores it
    assert len(loaded) == 1
    pd.testing.assert_frame_equal(
        pd.read_parquet(settings.paths.monitoring_partition("drift", DAY)), rescored
    )


def test_with_manual_approval_a_passed_gate_waits_and_the_answer_is_audited(trained_copy):
    import shutil

    from ml import pipeline
    from ml.gate import GateDecision

    settings = make_settings(trained_copy)
    champion = registry.get_alias(settings, "champion")
    other = f"{champion}-retrained"
    shutil.copytree(settings.paths.model_version(champion), settings.paths.model_version(other))
    metadata = settings.paths.model_version(other) / "metadata.json"
    metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "version": other}))
    metrics = settings.paths.model_version(other) / "metrics.json"
    saved = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**saved, "gate": {**saved["gate"], "champion": champion}}))
    passed = GateDecision(True, [], champion)

    assert not registry.apply_gate(settings, other, passed, approval="manual")
    assert registry.read_aliases(settings) == {"champion": champion, "challenger": other}
    assert registry.audit_log(settings)[-1]["reason"].startswith(registry.AWAITING_APPROVAL)

    answer = {"chosen_options": ["Reject"], "params_input": {"reason": "too few days"}}
    rejected = pipeline.record_approval(
        settings, other, {**answer, "responded_by_user": {"id": "7", "name": "ana"}}
    )
    assert rejected == {"version": other, "approved": False, "by": "ana", "champion": False}
    assert registry.read_aliases(settings) == {"champion": champion, "challenger": other}
    last = registry.audit_log(settings)[-1]
    assert (last["event"], last["by"]) == (registry.APPROVAL, "ana")
    assert last["reason"] == f"{other} rejected as champion by ana: too few days"

    answer = {"chosen_options": ["Approve"], "params_input": {}, "responded_by_user": None}
    assert pipeline.record_approval(settings, other, answer)["champion"]
    assert registry.read_aliases(settings) == {"champion": other, "challenger": champion}
    changes = registry.alias_changes(settings)
    assert (changes[-2]["alias"], changes[-2]["reason"]) == ("champion", "approved by unknown")

    # An answer that comes after the registry moved on changes nothing.
    with pytest.raises(registry.RegistryError, match="no longer awaits approval"):
        pipeline.record_approval(settings, other, answer)
    registry.set_alias(settings, "challenger", other, reason="awaits approval again")
    timed_out = {"chosen_options": ["Reject"], "params_input": {}, "timedout": True}
    assert not pipeline.record_approval(settings, other, timed_out)["champion"]
    assert registry.audit_log(settings)[-1]["by"] == "nobody"
    with pytest.raises(registry.RegistryError, match="the champion is now"):
        registry.record_approval(settings, other, True, by="ana")  # compared with another

    # Automatic (the default): the gate alone promotes.
    assert registry.apply_gate(settings, champion, passed, approval="auto")
    assert registry.get_alias(settings, "champion") == champion


def test_approving_the_first_champion_leaves_it_champion_only(trained_copy):
    """With no champion, a version that passed the gate waits as challenger; approved, it
    becomes champion and is no longer also the challenger, in aliases.json and in the
    aliases rebuilt from the audit log."""
    settings = make_settings(trained_copy)
    version = registry.get_alias(settings, "champion")
    settings.paths.model_aliases.unlink()
    settings.paths.model_audit_log.unlink()
    from ml.gate import GateDecision

    assert not registry.apply_gate(settings, version, GateDecision(True, [], None), "manual")
    assert registry.read_aliases(settings) == {"challenger": version}
    assert registry.record_approval(settings, version, True, by="ana")
    assert registry.read_aliases(settings) == {"champion": version}
    assert registry.aliases_from_audit(settings) == {"champion": version}
    last = registry.alias_changes(settings)[-1]
    assert (last["alias"], last["from"], last["to"]) == ("challenger", version, None)
    assert [v["aliases"] for v in registry.list_versions(settings)] == [["champion"]]


def test_running_a_day_again_after_later_days_matured_writes_the_same_bytes(trained_copy):
    """A day's outputs are a function of what was known at its run: run again once later
    days have run (and its own labels have matured), its predictions, monitoring and drift
    report are byte for byte what they were."""
    from ml import pipeline
    from tests.conftest import published_files, sha256

    settings = make_settings(trained_copy)
    day = AS_OF + dt.timedelta(days=1)

    def run(d):
        pipeline.recalibrate(settings, d)
        pipeline.predict(settings, d)
        pipeline.monitor(settings, d)
        pipeline.decide_retraining(settings, d)

    def of_day():
        files = published_files(
            trained_copy,
            ("predictions", "monitoring", "reports/drift"),
            # the day's realized performance is written by the run of a later day
            lambda key: (f"={day}/" in key or f"_{day}." in key) and "kind=realized" not in key,
        )
        return {key: sha256(path) for key, path in files.items()}

    run(AS_OF)
    run(day)
    before = of_day()
    assert any("drift_" in key for key in before) and any("predictions" in key for key in before)
    for later in (day + dt.timedelta(days=n) for n in range(1, 4)):
        run(later)  # the realized performance of AS_OF and of the day matures meanwhile
    assert settings.paths.monitoring_partition("performance", day, kind="realized").exists()
    run(day)
    assert of_day() == before
