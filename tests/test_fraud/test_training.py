"""Training: time-ordered windows, winner chosen without the test window, calibration,
thresholds within capacity, the Python API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.calibration import Calibrator, expected_calibration_error
from fraud.config import PolicyConfig, SplitConfig
from fraud.policy import choose_thresholds, outcome
from fraud.splits import labels_known_at, make_split
from fraud.training import LabelledFeatures, train


def test_split_windows_are_ordered_with_label_delay_gaps():
    ts = pd.Series(pd.date_range("2026-01-01", "2026-07-01", freq="h", tz="UTC"))
    delay = pd.Timedelta(days=7)
    split = make_split(ts, SplitConfig(train_days=60, validation_days=20, test_days=20, prequential_folds=2), delay)
    assert split.test.end <= split.as_of - delay
    for fold in split.folds:
        assert fold.train.end + delay <= fold.validation.start
        assert fold.validation.end + delay <= split.test.start
        assert fold.label_cutoff == fold.validation.start
    assert split.folds[1].validation.end <= split.folds[0].validation.start
    assert split.folds[0].train.days == 60 and split.test.days == 20


def test_split_refuses_data_that_is_too_short():
    ts = pd.Series(pd.date_range("2026-01-01", periods=30, freq="D", tz="UTC"))
    with pytest.raises(ValueError, match="too short"):
        make_split(ts, SplitConfig(), pd.Timedelta(days=7))


def test_training_uses_only_labels_known_at_the_cutoff():
    labels = pd.Series([1, 1, 0])
    times = pd.Series(pd.to_datetime(["2026-01-02", "2026-01-20", "2026-01-05"], utc=True))
    assert list(labels_known_at(labels, times, pd.Timestamp("2026-01-10", tz="UTC"))) == [1, 0, 0]


def test_training_result_and_python_api(small_training, small_features, small_transactions, small_config):
    spec, features = small_features
    s = small_training.summary
    assert set(s["candidates"]) == {"focal_xgb", "focal_lgbm", "logistic_xgb", "weighted_logistic_xgb"}
    assert s["winner"]["kind"] in s["candidates"]
    bundle = small_training.bundle
    probs = bundle.predict_proba(features.iloc[:500])
    assert probs.shape == (500,) and np.all((probs >= 0) & (probs <= 1))
    assert set(bundle.decide(features.iloc[:500])) <= {"approve", "review", "decline"}
    reasons = bundle.reasons(features.iloc[:5])
    assert all(len(r) <= 3 and all(item["feature"] in spec.names for item in r) for r in reasons)
    test_ap = s["test"]["average_precision"]
    assert test_ap > 5 * small_transactions["label"].mean()  # far better than chance


def test_bundle_names_the_feature_and_row_of_an_infinite_value(small_training, small_features):
    _, features = small_features
    bad = features.iloc[:4].copy()
    column = small_training.bundle.feature_names[2]
    bad.iloc[3, bad.columns.get_loc(column)] = np.inf
    with pytest.raises(ValueError, match=rf"feature '{column}' is infinite in row 3"):
        small_training.bundle.predict_proba(bad)
    nan_is_missing = bad.copy()
    nan_is_missing.iloc[3, bad.columns.get_loc(column)] = np.nan
    assert np.isfinite(small_training.bundle.predict_proba(nan_is_missing)).all()


def test_calibration_improves_ece_of_the_focal_model(small_training):
    cal = small_training.summary["calibration"]
    for window in ("calibration window", "test"):   # the rows it was fitted on (fraud.refit), and the judged ones
        assert cal[window]["ece_after"] < cal[window]["ece_before"]


def test_thresholds_respect_review_capacity_on_validation(small_training, small_config):
    pol = small_training.summary["policy"]
    assert pol["outcome"]["reviews_per_day"] <= small_config.policy.review_capacity_per_day + 1e-9
    assert pol["thresholds"]["review"] <= pol["thresholds"]["decline"]
    assert pol["constraint_cost_per_day"] >= -1e-9


def test_policy_meets_capacity_and_decline_precision():
    rng = np.random.default_rng(0)
    n_days, per_day = 10, 2000
    y = (rng.random(n_days * per_day) < 0.01).astype(int)
    scores = np.clip(rng.normal(0.05 + 0.6 * y, 0.15), 0, 1)
    amounts = rng.lognormal(4, 1, y.size)
    policy = PolicyConfig(review_capacity_per_day=15, decline_precision_floor=0.9)
    thresholds, report = choose_thresholds(scores, y, amounts, n_days, policy)
    got = outcome(scores, y, amounts, n_days, thresholds, policy)
    assert got.reviews_per_day <= 15 + 1e-9
    assert np.isnan(got.decline_precision) or got.decline_precision >= 0.9
    assert report["savings_per_day"] > 0
    assert report["unconstrained"]["cost_per_day"] <= report["outcome"]["cost_per_day"] + 1e-9
    assert report["constraint_cost_per_day"] >= 0
    target = choose_thresholds(scores, y, amounts, n_days, PolicyConfig(review_capacity_per_day=15,
                                                                        target_recall=0.999))[1]
    assert target["target_recall_met"] is False  # infeasible within capacity: reported, not hidden


def test_winner_is_never_chosen_on_the_test_window(small_training, small_transactions, small_features, small_config):
    """Scrambling every test-window label changes test figures, never the choice."""
    spec, features = small_features
    split = small_training.summary["split"]
    scrambled = small_transactions.copy()
    in_test = ((scrambled["timestamp"] >= pd.Timestamp(split["test"]["start"]))
               & (scrambled["timestamp"] < pd.Timestamp(split["test"]["end"]))).to_numpy()
    rng = np.random.default_rng(1)
    scrambled.loc[in_test, "label"] = rng.permutation(scrambled.loc[in_test, "label"].to_numpy())
    again = train(LabelledFeatures.from_transactions(scrambled, features), small_config, spec, progress=False)
    assert again.summary["winner"] == small_training.summary["winner"]
    assert again.summary["policy"]["thresholds"] == small_training.summary["policy"]["thresholds"]
    assert again.summary["test"]["average_precision"] != small_training.summary["test"]["average_precision"]


def test_calibrator_round_trips_as_json():
    rng = np.random.default_rng(0)
    raw = rng.random(5000) ** 3
    y = (rng.random(5000) < raw * 0.5).astype(int)
    for method in ("platt", "isotonic"):
        cal = Calibrator(method).fit(raw, y)
        again = Calibrator.from_dict(cal.to_dict())
        np.testing.assert_array_equal(again.predict(raw), cal.predict(raw))
        assert expected_calibration_error(cal.predict(raw), y) < expected_calibration_error(raw, y)
