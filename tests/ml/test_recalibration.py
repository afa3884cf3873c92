"""Daily recalibration on the champion trained as of 2013-03-15 (30 days of real data)."""

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss as sklearn_log_loss

from ml import registry
from ml.features import LABEL, load_features
from ml.metrics import logit, sigmoid
from ml.predict import predict
from ml.recalibration import (
    CalibrationMap,
    map_in_force,
    propose,
    recalibrate,
    revisions,
    revisions_dir,
)
from tests.conftest import AS_OF, make_settings, raw_labels

DAY = dt.date(2013, 3, 25)  # labels up to 03-23 matured; 03-23 is held back
HOLDOUT = AS_OF - dt.timedelta(days=7)  # the champion's holdout (validation_days 7)


def _champion(settings):
    version = registry.get_alias(settings, "champion")
    model, _ = registry.load_model(settings, version)
    return version, model


def _scored(data_dir, day):
    rows = pd.read_parquet(data_dir / "predictions" / f"flight_date={day}" / "part-0.parquet")
    return rows[rows["model_role"] == "champion"].set_index("flight_id")["p_delayed"]


def test_a_revision_learns_from_the_matured_days_and_holds_back_the_last(
    trained_copy, package_source
):
    settings = make_settings(trained_copy)
    version, model = _champion(settings)
    result = recalibrate(settings, DAY)
    assert result["revision"] == DAY.isoformat()
    (revision,) = revisions(settings, version)
    # from its holdout on: never a day it was fitted on
    assert revision["fitted_on"]["start"] == HOLDOUT.isoformat()
    assert registry.load_metadata(settings, version)["window"]["validation_start"] == str(HOLDOUT)
    assert revision["fitted_on"]["end"] == "2013-03-22"
    assert revision["held_back"]["day"] == "2013-03-23"
    assert revision["replaces"] == "training"

    # Against labels computed from the package's own files: every flight of those days
    # whose label was known by the cutoff of DAY, and the log losses recomputed by sklearn.
    frame = load_features(settings, HOLDOUT, dt.date(2013, 3, 23))
    frame = frame[frame["label_known_date"] < DAY]
    labels = raw_labels(package_source, HOLDOUT, dt.date(2013, 3, 23)).set_index("flight_id")
    y = labels.loc[frame["flight_id"], "delayed"].astype(int).to_numpy()
    assert (y == frame[LABEL].astype(int).to_numpy()).all()
    held = (frame["flight_date"] == dt.date(2013, 3, 23)).to_numpy()
    assert revision["fitted_on"]["rows"] == (~held).sum() > 5000
    assert revision["held_back"]["rows"] == held.sum() > 500
    u = model.predict_uncalibrated(frame)
    new = sigmoid(revision["slope"] * logit(u) + revision["intercept"])
    old = sigmoid(model.slope_ * logit(u) + model.intercept_)  # the training map
    for part, rows in (("fitted", ~held), ("held_back", held)):
        losses = revision["log_loss"][part]
        assert losses["after"] == pytest.approx(sklearn_log_loss(y[rows], new[rows]), abs=2e-6)
        assert losses["before"] == pytest.approx(sklearn_log_loss(y[rows], old[rows]), abs=2e-6)
    # Platt scaling is the best map of its family on the days it was fitted on, and the
    # training map is one of that family.
    assert revision["log_loss"]["fitted"]["after"] <= revision["log_loss"]["fitted"]["before"]
    assert revision["used"] == (
        revision["log_loss"]["held_back"]["after"] <= revision["log_loss"]["held_back"]["before"]
    )
    # The model card shows it, as a table and (in HTML) a chart of the held-back days.
    folder = registry.version_dir(settings, version)
    card = (folder / "model_card.md").read_text()
    assert f"## Calibration over time: 1 daily revisions, {int(revision['used'])} used" in card
    assert f"| {DAY} | {HOLDOUT} .. 2013-03-22 | {revision['fitted_on']['rows']:,} |" in card
    html = (folder / "model_card.html").read_text()
    assert (
        "<h2>Calibration revisions on their held-back days</h2>" in html
        and "held-back log loss" in html
    )


def test_prediction_applies_the_latest_used_revision_dated_on_or_before_its_day(trained_copy):
    settings = make_settings(trained_copy)
    version, model = _champion(settings)
    folder = revisions_dir(settings, version)
    # Two revisions, written as recalibrate writes them: 03-22 used, 03-24 not used.
    for day, slope, used in (("2013-03-22", 0.8, True), ("2013-03-24", 1.4, False)):
        registry.write_version_files(
            settings,
            version,
            {
                f"calibration/{day}.json": json.dumps(
                    {"as_of": day, "slope": slope, "intercept": -0.2, "used": used}
                )
            },
        )
    frames = {}
    for day in (dt.date(2013, 3, 21), dt.date(2013, 3, 22), dt.date(2013, 3, 24)):
        predict(settings, day)
        frame = load_features(settings, day, day).set_index("flight_id")
        frames[day] = (_scored(trained_copy, day), model.predict_uncalibrated(frame), frame.index)
    before, u, ids = frames[dt.date(2013, 3, 21)]
    assert np.allclose(before.loc[ids], sigmoid(model.slope_ * logit(u) + model.intercept_))
    for day in (dt.date(2013, 3, 22), dt.date(2013, 3, 24)):  # 03-24's revision is not used
        scored, u, ids = frames[day]
        assert np.allclose(scored.loc[ids], sigmoid(0.8 * logit(u) - 0.2))
    # Off, every day scores with the training map, revisions or not.
    off = make_settings(trained_copy, recalibration_enabled=False)
    assert map_in_force(off, version, model, dt.date(2013, 3, 24)).revision == "training"
    assert recalibrate(off, DAY)["revision"] is None
    assert sorted(p.name for p in folder.iterdir()) == ["2013-03-22.json", "2013-03-24.json"]


def test_a_revision_worse_on_the_held_back_day_is_recorded_and_not_used():
    rng = np.random.default_rng(7)
    u = rng.uniform(0.05, 0.95, 6000)
    held = np.zeros(6000, dtype=bool)
    held[-1000:] = True
    # The fitted days follow a flattened map; the held-back day follows the training map.
    truth = np.where(held, u, sigmoid(0.3 * logit(u) - 0.5))
    y = (rng.uniform(size=6000) < truth).astype(int)
    day = dt.date(2013, 7, 20)
    revision = propose(
        u, y, held, day, CalibrationMap(1.0, 0.0), (dt.date(2013, 7, 1), dt.date(2013, 7, 17))
    )
    assert revision["log_loss"]["fitted"]["after"] < revision["log_loss"]["fitted"]["before"]
    assert revision["log_loss"]["held_back"]["after"] > revision["log_loss"]["held_back"]["before"]
    assert revision["used"] is False and revision["held_back"]["day"] == "2013-07-18"
    assert revision["slope"] == pytest.approx(0.3, abs=0.1)


def test_rerunning_a_day_writes_the_same_revision_and_one_audit_entry(trained_copy):
    settings = make_settings(trained_copy)
    version, _ = _champion(settings)
    first = recalibrate(settings, DAY)
    path = revisions_dir(settings, version) / f"{DAY}.json"
    written = path.read_bytes()
    assert recalibrate(settings, DAY) == first
    assert path.read_bytes() == written
    events = [e for e in registry.audit_log(settings) if e.get("event") == "recalibration"]
    assert len(events) == 1
    assert events[0]["to"] == f"{version} calibration {DAY}"
    assert "held-back 2013-03-23" in events[0]["reason"]
    # The champion is still the one alias change the rollback and the aliases see.
    assert registry.aliases_from_audit(settings) == {"champion": version}
    assert [e["to"] for e in registry.alias_changes(settings)] == [version]


def test_too_few_matured_flights_keep_the_training_map(trained_copy):
    settings = make_settings(trained_copy)
    version, model = _champion(settings)
    early = recalibrate(settings, HOLDOUT + dt.timedelta(days=2))
    # a day the champion learned from: it cannot score it, so no revision is made for it
    assert early["revision"] is None and "no revision for a day it cannot score" in early["reason"]
    strict = make_settings(trained_copy, recalibration_min_rows=100_000)
    few = recalibrate(strict, DAY)
    assert few["revision"] is None and "too few to refit" in few["reason"]
    assert not revisions_dir(settings, version).exists()
    assert map_in_force(settings, version, model, DAY).revision == "training"


def test_an_unreadable_revision_falls_back_to_the_one_before(trained_copy, caplog):
    settings = make_settings(trained_copy)
    version, model = _champion(settings)
    recalibrate(settings, DAY)
    later = revisions_dir(settings, version) / "2013-03-26.json"
    cut_short = '{"as_of": "2013-03-26", "slope": '  # recorded by the registry, yet not JSON
    registry.write_version_files(settings, version, {"calibration/2013-03-26.json": cut_short})
    with caplog.at_level(logging.WARNING, logger="ml.recalibration"):
        in_force = map_in_force(settings, version, model, dt.date(2013, 3, 27))
    assert f"{later}: unreadable calibration revision skipped" in caplog.text
    used = revisions(settings, version)[-1]["used"]
    assert in_force.revision == (DAY.isoformat() if used else "training")


def _register_again(settings, version: str, model) -> None:
    """Register ``version`` again, as training as of the same day does."""
    registry.register(
        settings,
        model,
        registry.load_metadata(settings, version),
        registry.load_metrics(settings, version),
        registry.load_profile(settings, version),
    )


def test_registering_the_version_again_keeps_its_revisions(trained_copy):
    settings = make_settings(trained_copy)
    version, model = _champion(settings)
    recalibrate(settings, DAY)
    before = sorted(p.name for p in revisions_dir(settings, version).iterdir())
    _register_again(settings, version, model)
    assert sorted(p.name for p in revisions_dir(settings, version).iterdir()) == before
    registry.load_model(settings, version)  # its artifacts still pass their checksums


def _used_revision(settings, version, day: dt.date) -> Path:
    """A used revision of ``version`` dated ``day``, written as recalibrate writes one."""
    text = json.dumps({"as_of": day.isoformat(), "slope": 1.0, "intercept": 0.1, "used": True})
    registry.write_version_files(settings, version, {f"calibration/{day}.json": text})
    return revisions_dir(settings, version) / f"{day}.json"


@pytest.mark.parametrize(
    "edit",
    ["rewritten", "cut short", "added by hand", "checksums record deleted"],
)
def test_an_altered_revision_is_never_used_and_the_map_before_it_scores(trained_copy, caplog, edit):
    """The issue's case: a revision rewritten as valid JSON with intercept 5 and slope 0
    would score every flight 0.9933. Altered in any way (or written by anyone but the
    registry), it is skipped with its file and the check named."""
    settings = make_settings(trained_copy)
    version, _ = _champion(settings)
    earlier = _used_revision(settings, version, dt.date(2013, 3, 18))
    target = revisions_dir(settings, version) / "2013-03-19.json"
    forged = json.dumps({"as_of": "2013-03-19", "slope": 0.0, "intercept": 5.0, "used": True})
    if edit == "rewritten":
        _used_revision(settings, version, dt.date(2013, 3, 19))
        target.write_text(forged)
    elif edit == "cut short":
        _used_revision(settings, version, dt.date(2013, 3, 19))
        target.write_bytes(target.read_bytes()[:-3])
    elif edit == "added by hand":
        target.write_text(forged)
    else:
        _used_revision(settings, version, dt.date(2013, 3, 19))
        (registry.version_dir(settings, version) / registry.CHECKSUMS).unlink()
    with caplog.at_level(logging.WARNING, logger="ml.recalibration"):
        result = predict(settings, dt.date(2013, 3, 20))
    expected = "training" if edit == "checksums record deleted" else "2013-03-18"
    assert result.calibrations["champion"] == expected
    assert f"calibration revision skipped: {target}" in caplog.text
    assert "recorded checksum" in caplog.text
    scored = _scored(trained_copy, dt.date(2013, 3, 20))
    assert scored.max() < 0.99 and scored.nunique() > 100
    assert earlier.exists()


def test_a_revision_written_while_the_version_is_registered_again_is_kept(
    trained_copy, monkeypatch
):
    """Re-registration carries the revisions into the new folder, under the registry's
    lock; recalibration writes through the same lock: a revision written meanwhile waits,
    then lands in the new folder with its checksum (without the lock it went into the
    folder being replaced, and was lost)."""
    import threading

    settings = make_settings(trained_copy)
    version, model = _champion(settings)
    carry = registry._carry_revisions
    writer = threading.Thread(target=recalibrate, args=(settings, DAY))
    waited = []

    def carry_while_recalibrating(final, staging):
        writer.start()
        writer.join(timeout=20)  # blocks on the registry's lock, which register holds
        waited.append(writer.is_alive())
        return carry(final, staging)

    monkeypatch.setattr(registry, "_carry_revisions", carry_while_recalibrating)
    _register_again(settings, version, model)
    writer.join(timeout=120)
    assert waited == [True] and not writer.is_alive()
    (revision,) = revisions(settings, version)  # verified against its recorded checksum
    assert revision["as_of"] == DAY.isoformat()
    assert "2013-03-25" in settings.paths.model_card(version).read_text()
    registry.load_model(settings, version)
