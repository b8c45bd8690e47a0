"""Evaluation the way a fraud team counts: a card whose fraud is known is blocked, so its
later transactions are left out of the figures, of model selection and of the gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud import metrics
from fraud.evaluation import known_fraud_card

T = pd.Timestamp("2026-03-01T00:00:00Z")
H = pd.Timedelta(hours=1)


def test_a_card_counts_until_its_fraud_label_is_known_and_not_after():
    rows = pd.DataFrame([
        # card A: a fraud at T labelled at T+3h; its transactions from T+3h on are blocked
        ("A", T, 1, T + 3 * H), ("A", T + 2 * H, 0, T + 9 * H), ("A", T + 3 * H, 0, T + 9 * H),
        ("A", T + 5 * H, 1, T + 6 * H),
        # card B: legitimate labels only; card C: a fraud whose label is not known yet
        ("B", T + 4 * H, 0, T + 4 * H), ("B", T + 8 * H, 0, T + 8 * H),
        ("C", T, 1, pd.NaT), ("C", T + 8 * H, 0, pd.NaT),
    ], columns=["card", "timestamp", "label", "label_time"])
    rows["label_time"] = pd.to_datetime(rows["label_time"], utc=True)
    left_out = known_fraud_card(rows["timestamp"], rows["card"].to_numpy(), rows["label"], rows["label_time"])
    assert left_out.tolist() == [False, False, True, True, False, False, False, False]


def test_card_precision_leaves_out_cards_detected_on_earlier_days():
    # day 0: X (fraud) and Y (legit) on top; day 1: X again on top (fraud), then Z (fraud), W
    scores = [0.9, 0.8, 0.1, 0.95, 0.7, 0.2]
    labels = [1, 0, 0, 1, 1, 0]
    cards = ["X", "Y", "V", "X", "Z", "W"]
    days = [0, 0, 0, 1, 1, 1]
    handbook = metrics.card_precision_at_k(scores, labels, cards, days, k=2)
    assert handbook["per_day"] == [0.5, 0.5]  # day 1: X was caught on day 0 and blocked: Z and W
    every_day = metrics.card_precision_at_k(scores, labels, cards, days, k=2, drop_detected=False)
    assert every_day["per_day"] == [0.5, 1.0]


@pytest.fixture(scope="module")
def windows(small_training, small_transactions):
    split = small_training.summary["split"]
    ts = small_transactions["timestamp"]
    test = ((ts >= pd.Timestamp(split["test"]["start"])) & (ts < pd.Timestamp(split["test"]["end"]))).to_numpy()
    known = known_fraud_card(ts, small_transactions["card_id"].to_numpy(), small_transactions["label"].to_numpy(),
                             small_transactions["label_time"])
    return test, known


def test_training_reports_filtered_figures_and_the_unfiltered_beside(small_training, small_transactions,
                                                                      small_features, windows):
    _, features = small_features
    test, known = windows
    # the test figures are the twin's (the served latest trained on the test window: fraud.refit)
    summary, bundle = small_training.summary, small_training.evaluation_bundle
    counted = test & ~known
    assert summary["evaluation"]["test_rows_left_out"] == int((test & known).sum()) > 0
    labels = small_transactions["label"].to_numpy()
    assert summary["evaluation"]["test_frauds_left_out"] == int(labels[test & known].sum()) > 0
    assert summary["rows"]["test"] == int(counted.sum())
    filtered = metrics.ranking(bundle.predict_proba(features[counted]), labels[counted])["average_precision"]
    unfiltered = metrics.ranking(bundle.predict_proba(features[test]), labels[test])["average_precision"]
    assert summary["test"]["average_precision"] == pytest.approx(filtered, abs=1e-12)
    assert summary["test_unfiltered"]["average_precision"] == pytest.approx(unfiltered, abs=1e-12)
    assert filtered != pytest.approx(unfiltered, abs=1e-6)
    assert summary["test"]["card_precision_at_k"]["drop_detected"] is True
    winner = summary["winner"]["kind"]
    # the search scored and selection chose on the counted validation rows (one fold here)
    fold = summary["split"]["folds"][0]["validation"]
    ts = small_transactions["timestamp"]
    val = ((ts >= pd.Timestamp(fold["start"])) & (ts < pd.Timestamp(fold["end"]))).to_numpy() & ~known
    # the fold's model (the served one is refitted past validation: fraud.refit)
    fold_model = small_training.searches[winner].model
    searched = metrics.ranking(fold_model.predict_proba(features[val]), labels[val])["average_precision"]
    assert summary["choice"]["validation"][winner]["validation_average_precision"] == pytest.approx(searched, abs=1e-9)
    assert summary["candidates"][winner]["test_average_precision_unfiltered"] != pytest.approx(
        summary["candidates"][winner]["test_average_precision"], abs=1e-6)


def test_the_gate_counts_as_the_team_does(small_training, small_transactions, small_features, small_config,
                                          windows):
    from batch_jobs.nightly import gate

    _, features = small_features
    test, known = windows
    counted = test & ~known
    verdict = gate(small_training, None, None, small_transactions, features, small_config)
    scores = verdict["scores"]["challenger"]
    labels = small_transactions["label"].to_numpy()
    probs = small_training.evaluation_bundle.predict_proba(features[counted])   # the twin (fraud.refit)
    assert scores["average_precision"] == pytest.approx(metrics.ranking(probs, labels[counted])["average_precision"],
                                                        abs=1e-12)
    all_probs = small_training.evaluation_bundle.predict_proba(features[test])
    assert scores["average_precision_unfiltered"] == pytest.approx(
        metrics.ranking(all_probs, labels[test])["average_precision"], abs=1e-12)
    assert np.isfinite(scores["recall_at_capacity"])


def test_the_left_out_counts_are_those_of_the_validation_and_test_windows(small_training, small_transactions,
                                                                          windows):
    test, known = windows
    fold = small_training.summary["split"]["folds"][0]["validation"]
    ts = small_transactions["timestamp"]
    val = ((ts >= pd.Timestamp(fold["start"])) & (ts < pd.Timestamp(fold["end"]))).to_numpy()
    left = small_training.summary["evaluation"]
    assert left["validation_rows_left_out"] == int((val & known).sum()) > 0
    assert left["validation_frauds_left_out"] == int(small_transactions["label"].to_numpy()[val & known].sum())
