"""The served model is fresh (fraud.refit): its windows, point in time, what calibration and
the gate see, its age in the summary; and the simulator's drift scenario."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.calibration import Calibrator
from fraud.policy import choose_thresholds
from fraud.refit import plan_refit, refit_rows
from fraud.splits import Window, make_split
from fraud.training import LabelledFeatures

DAY = pd.Timedelta(days=1)


def _window(d: dict) -> Window:
    return Window(pd.Timestamp(d["start"]), pd.Timestamp(d["end"]))


def _disjoint(a: Window, b: Window) -> bool:
    return a.end <= b.start or b.end <= a.start


def test_the_refit_window_ends_where_designed(small_transactions, small_config):
    split = make_split(small_transactions["timestamp"], small_config.split, pd.Timedelta(small_config.data.label_delay))
    plan = plan_refit(split, small_config.split)
    gap = pd.Timedelta(small_config.data.label_delay)   # gap_days unset: the label delay
    assert plan.train.end == split.test.start - gap == split.folds[0].validation.end
    assert plan.train.days == small_config.split.train_days
    assert plan.label_cutoff == split.test.start
    # the test window, split in two: calibration (half, rounded down) then judged
    assert (plan.calibration.start, plan.judged.end) == (split.test.start, split.test.end)
    assert plan.calibration.end == plan.judged.start == split.test.start + (small_config.split.test_days // 2) * DAY
    assert plan.train.end > split.folds[0].train.end   # fresher than the fold's model


def test_the_refit_trains_on_its_window_with_the_labels_known_at_its_cutoff(small_transactions, small_features,
                                                                           small_config):
    _, features = small_features
    data = LabelledFeatures.from_transactions(small_transactions, features)
    split = make_split(data.timestamp, small_config.split, pd.Timedelta(small_config.data.label_delay))
    plan = plan_refit(split, small_config.split)
    rows, y, _ = refit_rows(data, plan, small_config.search)
    assert plan.train.mask(rows.timestamp).all()
    late = (rows.label == 1) & (rows.label_time >= plan.label_cutoff).to_numpy()
    assert late.sum() > 0            # frauds reported after the cutoff exist in the window ...
    assert (y[late] == 0).all()      # ... and looked legitimate then
    assert (y[(rows.label == 1) & ~late] == 1).all() and y.sum() == int((rows.label == 1).sum() - late.sum())
    # every fraud known at the cutoff is kept by the negative sampling
    window = data.rows(plan.train.mask(data.timestamp))
    assert y.sum() == int(((window.label == 1) & (window.label_time < plan.label_cutoff).to_numpy()).sum())


def test_calibration_and_thresholds_come_from_rows_the_refit_did_not_see(small_training, small_transactions,
                                                                         small_features, small_config):
    _, features = small_features
    served = small_training.summary["served_model"]
    trained, calibrated = _window(served["train"]), _window(served["calibrated_on"])
    assert served["refitted"] and _disjoint(trained, calibrated)
    assert calibrated.start >= trained.end + pd.Timedelta(small_config.data.label_delay)
    # the bundle's calibrator and thresholds are those of exactly these rows
    data = LabelledFeatures.from_transactions(small_transactions, features)
    cal = data.rows(calibrated.mask(data.timestamp))
    bundle = small_training.bundle
    raw = bundle.model.predict_proba(cal.features)
    expected = Calibrator(small_config.search.calibration).fit(raw, cal.label)
    grid = np.linspace(0, 1, 201)
    assert np.allclose(bundle.calibrator.predict(grid), expected.predict(grid))
    thresholds, _ = choose_thresholds(expected.predict(raw), cal.label, cal.amount, cal.n_days(), small_config.policy)
    assert thresholds.to_dict() == bundle.thresholds.to_dict()


def test_the_gate_judges_on_a_window_neither_model_trained_or_calibrated_on(small_training, small_transactions,
                                                                            small_features, small_config,
                                                                            champion_registry):
    from batch_jobs.nightly import gate
    from fraud import metrics
    from fraud.evaluation import known_fraud_card
    from fraud.registry import ModelRegistry

    _, features = small_features
    summary = small_training.summary
    judged = _window(summary["split"]["test"])
    assert summary["split"]["test"] == summary["split"]["refit"]["judged"]
    assert _disjoint(judged, _window(small_training.bundle.metadata["trained_on"]))
    assert _disjoint(judged, _window(summary["served_model"]["calibrated_on"]))
    registry = ModelRegistry.open(champion_registry("logistic_xgb"))
    champion = registry.champion()
    assert _disjoint(judged, _window(registry.load(champion).metadata["trained_on"]))
    # the gate scores the challenger on exactly the judged window (counted rows)
    verdict = gate(small_training, champion, registry, small_transactions, features, small_config)
    ts = small_transactions["timestamp"]
    known = known_fraud_card(ts, small_transactions["card_id"].to_numpy(), small_transactions["label"].to_numpy(),
                             small_transactions["label_time"])
    rows = judged.mask(ts) & ~known
    probs = small_training.bundle.predict_proba(features[rows])
    expected = metrics.ranking(probs, small_transactions["label"].to_numpy()[rows])["average_precision"]
    assert verdict["scores"]["challenger"]["average_precision"] == pytest.approx(expected, abs=1e-12)


def test_the_summary_states_the_served_models_window_and_age(small_training, small_config):
    s = small_training.summary
    served, refit = s["served_model"], s["split"]["refit"]
    assert served["train"] == refit["train"] == small_training.bundle.metadata["trained_on"]
    as_of, cutoff = pd.Timestamp(s["split"]["as_of"]), pd.Timestamp(served["label_cutoff"])
    assert cutoff == pd.Timestamp(refit["label_cutoff"])
    assert served["age_days"] == (as_of - cutoff) / DAY == small_training.bundle.metadata["age_days"]
    # as_of - label delay - test window: fresher than the fold's model by validation + gap
    delay = pd.Timedelta(small_config.data.label_delay) / DAY
    assert served["age_days"] == delay + small_config.split.test_days
    info = served["refit"]
    assert info["rounds"] == round(info["fold0_rounds"] * info["rows"] / info["fold0_rows"])
    assert small_training.bundle.model.n_rounds_ == info["rounds"] == s["winner"]["rounds"]


def test_without_refit_the_fold_model_is_served_and_its_age_said(small_training):
    from fraud.report.analyst import model_age

    s = small_training.summary
    fold = s["split"]["folds"][0]
    old = {**s, "served_model": {**s["served_model"], "refitted": False, "train": fold["train"],
                                 "label_cutoff": fold["validation"]["start"],
                                 "age_days": (pd.Timestamp(s["split"]["as_of"])
                                              - pd.Timestamp(fold["validation"]["start"])) / DAY}}
    line = model_age(old)
    assert "1–14 Jan 2026" in line and "22 Jan 2026" in line and "<b>24 days old</b>" in line
    assert "newest fold" in line


def test_the_drift_scenario_changes_card_testing_from_drift_day_on():
    from fraud.simulator import TransactionSimulator

    kw = {"n_customers": 400, "n_terminals": 160, "seed": 3}
    plain = [f for _, f in TransactionSimulator(**kw).days(6, False)]
    drift = [f for _, f in TransactionSimulator(**kw, drift_day=3).days(6, False)]
    for before, after in zip(plain[:3], drift[:3]):   # the past is unchanged
        pd.testing.assert_frame_equal(before, after)
    old = pd.concat(drift[:3])
    assert "card_testing_drift" not in set(old["fraud_pattern"]) and "card_testing" in set(old["fraud_pattern"])
    new = pd.concat(drift[4:])   # day 3's old bursts may cash out on day 4: from day 4 only the new pattern
    assert "card_testing" not in set(new["fraud_pattern"])
    tests = new[new["fraud_pattern"] == "card_testing_drift"]
    small = tests[tests["amount"] < 200]
    assert len(small) > 0 and small["amount"].between(8, 40).all()
    assert (small["merchant_category"] == "5999").all()
    per_day_old = (old["fraud_pattern"] == "card_testing").sum() / 3
    assert len(tests) / 2 > 1.5 * per_day_old   # three times as frequent
    # legitimate spending shifts too: more online, 20 % more per purchase (the same draws otherwise)
    legit_plain, legit_drift = (pd.concat(days[4:]) for days in (plain, drift))
    legit_plain, legit_drift = (f[f["fraud_pattern"].isna() | (f["fraud_pattern"] == "")]
                                for f in (legit_plain, legit_drift))
    assert legit_drift["channel"].eq("ecom").mean() > 1.3 * legit_plain["channel"].eq("ecom").mean()
    assert 1.1 < legit_drift["amount"].median() / legit_plain["amount"].median() < 1.4


def test_refit_off_serves_the_folds_model_calibrated_on_validation(small_transactions, small_features, small_config):
    from fraud.training import train

    spec, features = small_features
    config = small_config.model_copy(update={"split": small_config.split.model_copy(update={"refit": False})})
    result = train(LabelledFeatures.from_transactions(small_transactions, features), config, spec, progress=False)
    s, fold = result.summary, result.summary["split"]["folds"][0]
    assert result.bundle.model is result.searches[s["winner"]["kind"]].model
    assert s["served_model"]["refitted"] is False and s["served_model"]["refit"] is None
    assert s["served_model"]["train"] == fold["train"] and s["served_model"]["calibrated_on"] == fold["validation"]
    assert s["served_model"]["age_days"] == (pd.Timestamp(s["split"]["as_of"])
                                             - pd.Timestamp(fold["validation"]["start"])) / DAY
    assert "refit" not in s["split"] and "validation" in s["calibration"]
