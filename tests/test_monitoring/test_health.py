"""PSI, reference bins and the health verdict on decision-log frames of the contract's shape."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from fraud.config import MonitoringConfig
from fraud.monitoring.health import DRIFT, NOT_ENOUGH_DATA, OK, RECALL_BELOW_SLO, evaluate_health
from fraud.monitoring.psi import bin_shares, psi
from fraud.monitoring.reference import distribution, important_features
from helpers.decision_frames import decision_log, reference_for

AS_OF = pd.Timestamp("2026-07-02T03:00:00Z")  # evaluates 2026-07-01
DAY = "2026-07-01"
CONFIG = MonitoringConfig(min_rows=1000, min_labels=30, important_features=0)
NO_LAG = CONFIG.model_copy(update={"recall_lag_days": 0})  # the label-timing tests judge the day itself


def test_psi_equals_the_hand_computed_value():
    # (0.7-0.5) ln(0.7/0.5) + (0.3-0.5) ln(0.3/0.5) = 0.2 * 0.336472 + 0.2 * 0.510826
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(0.1694596, abs=1e-6)
    # an empty reference bin counts as epsilon: (0.1 - 1e-4) ln(0.1 / 1e-4) + (0.4-0.5) ln(0.4/0.5)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(0.0999 * np.log(1000) + 0.1 * np.log(1.25), abs=1e-6)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_bins_are_right_closed_with_a_missing_bin_and_constant_features_get_one_edge():
    constant = distribution(np.array([3.0, 3.0, 3.0, np.nan]))
    assert constant == {"edges": [3.0], "shares": [0.75, 0.0, 0.25]}
    assert bin_shares([3.0, 4.0, np.nan, 2.0], [3.0]).tolist() == [0.5, 0.25, 0.25]
    assert distribution(np.full(4, np.nan)) == {"edges": [], "shares": [0.0, 1.0]}
    deciles = distribution(np.arange(1, 101, dtype=float))
    assert len(deciles["edges"]) == 9 and deciles["shares"][:10] == pytest.approx([0.1] * 10)


def _reference(rng, n=20_000):
    return reference_for({"a": rng.normal(size=n), "b": rng.normal(size=n)}, rng.uniform(size=n),
                         importance={"a": 0.7, "b": 0.3})


def test_a_shifted_feature_flags_drift_and_an_unshifted_one_does_not():
    rng = np.random.default_rng(0)
    reference = _reference(rng)
    n = 3000
    steady = decision_log(DAY, {"a": rng.normal(size=n), "b": rng.normal(size=n)}, rng.uniform(size=n))
    health = evaluate_health(steady, None, reference, CONFIG, as_of=AS_OF, champion="v1")
    assert health.day == date(2026, 7, 1) and health.scored_rows == n
    assert health.status == OK and health.drift_verdict and health.score_psi < 0.02
    assert health.feature_psi_max < 0.02 and health.drifted_features == ()

    shifted = decision_log(DAY, {"a": rng.normal(1.0, 1.0, size=n), "b": rng.normal(size=n)}, rng.uniform(size=n))
    health = evaluate_health(shifted, None, reference, CONFIG, as_of=AS_OF, champion="v1")
    assert health.status == DRIFT and health.drifted_features == ("a",)
    assert health.feature_psi_max_name == "a" and health.feature_psi_max > 0.2
    assert health.feature_psi["b"][date(2026, 7, 1)] < 0.02 and not health.healthy


def test_a_shifted_score_flags_drift_only_on_the_champions_rows():
    rng = np.random.default_rng(1)
    reference = _reference(rng)
    n = 3000
    feats = {"a": rng.normal(size=n), "b": rng.normal(size=n)}
    high = decision_log(DAY, feats, rng.uniform(0.5, 1.0, size=n))
    assert evaluate_health(high, None, reference, CONFIG, as_of=AS_OF, champion="v1").status == DRIFT
    # scored by the previous champion: says nothing about this one's scores
    health = evaluate_health(high.assign(model_version="v0"), None, reference, CONFIG, as_of=AS_OF, champion="v1")
    assert health.score_psi is None and health.status == OK


def test_a_small_day_gives_not_enough_data_instead_of_drift():
    rng = np.random.default_rng(2)
    reference = _reference(rng)
    small = decision_log(DAY, {"a": rng.normal(3.0, 1.0, size=200), "b": rng.normal(size=200)}, rng.uniform(size=200))
    health = evaluate_health(small, None, reference, CONFIG, as_of=AS_OF, champion="v1")
    assert health.status == NOT_ENOUGH_DATA and not health.drift_verdict and health.healthy
    assert health.feature_psi_max > 0.2  # the figure is there, only no verdict on it
    # the same rows on a day with enough of them: drift
    assert evaluate_health(small, None, reference, MonitoringConfig(min_rows=100, important_features=0),
                           as_of=AS_OF, champion="v1").status == DRIFT


def _labelled_day(rng, frauds_flagged: int, frauds_missed: int, legit: int = 2000):
    n = frauds_flagged + frauds_missed + legit
    decisions = np.array(["review"] * frauds_flagged + ["approve"] * (frauds_missed + legit))
    log = decision_log(DAY, {"a": rng.normal(size=n), "b": rng.normal(size=n)}, rng.uniform(size=n),
                       decisions=decisions, margins=np.r_[np.full(frauds_flagged, 2.0), np.full(frauds_missed, -3.0),
                                                          np.full(legit, -4.0)])
    return log, log["transaction_id"].to_numpy()


def _labels(ids, label, known_at):
    return pd.DataFrame({"transaction_id": ids, "label": label, "source": "chargeback",
                         "known_at": pd.Timestamp(known_at)})


def test_labels_known_after_the_evaluation_time_are_not_counted():
    rng = np.random.default_rng(3)
    log, ids = _labelled_day(rng, 40, 40)
    labels = pd.concat([_labels(ids[:40], 1, "2026-07-01T20:00Z"),      # caught, known before as_of
                        _labels(ids[40:80], 1, "2026-07-05T00:00Z"),     # missed, known later
                        _labels(ids[80:], 0, "2026-07-01T23:00Z")])
    health = evaluate_health(log, labels, _reference(rng), NO_LAG, as_of=AS_OF, champion="v1")
    assert health.labelled_frauds == 40 and health.recall == 1.0 and health.status == OK
    later = evaluate_health(log, labels, _reference(rng), NO_LAG, as_of="2026-07-06T00:00Z", day=date(2026, 7, 1),
                            champion="v1")
    assert later.labelled_frauds == 80 and later.recall == 0.5 and later.status == RECALL_BELOW_SLO
    assert later.precision == 1.0 and later.per_class["legitimate"]["recall"] == 1.0
    assert later.per_class["legitimate"]["precision"] == pytest.approx(2000 / 2040)
    # p_t from the margin: missed frauds (margin -3) are hard, the rest easy
    assert later.hard_example_rate == pytest.approx(40 / 2080)
    assert later.focal["production"]["rows"] == 2080 and later.focal["production"]["p99"] > later.focal[
        "production"]["p50"]


def test_a_correction_known_before_the_evaluation_replaces_the_first_label():
    rng = np.random.default_rng(4)
    log, ids = _labelled_day(rng, 40, 0)
    labels = pd.concat([_labels(ids[:40], 0, "2026-07-01T10:00Z"), _labels(ids[:40], 1, "2026-07-01T12:00Z")])
    health = evaluate_health(log, labels, _reference(rng), NO_LAG, as_of=AS_OF)
    assert health.labelled_frauds == 40 and health.labelled_rows == 40


def test_too_few_labelled_frauds_give_no_recall_verdict():
    rng = np.random.default_rng(5)
    log, ids = _labelled_day(rng, 5, 20)
    health = evaluate_health(log, _labels(ids[:25], 1, "2026-07-01T20:00Z"), _reference(rng), NO_LAG, as_of=AS_OF)
    assert health.recall == pytest.approx(0.2) and not health.recall_verdict and health.status == OK


def test_recall_counts_only_label_complete_days():
    """A caught fraud is labelled within hours (review), a missed one only by chargeback: the
    day after, recall reads 1.0; judged ``recall_lag_days`` later, it is the true 0.5."""
    rng = np.random.default_rng(3)
    log, ids = _labelled_day(rng, 40, 40)
    labels = pd.concat([_labels(ids[:40], 1, "2026-07-01T20:00Z"), _labels(ids[40:80], 1, "2026-07-05T00:00Z"),
                        _labels(ids[80:], 0, "2026-07-01T23:00Z")])
    one_day = CONFIG.model_copy(update={"recall_window_days": 1, "recall_lag_days": 4})
    early = evaluate_health(log, labels, _reference(rng), one_day, as_of=AS_OF, champion="v1")
    assert early.labelled_frauds == 0 and not early.recall_verdict  # 2026-07-01 is not label-complete yet
    late = evaluate_health(log, labels, _reference(rng), one_day, as_of="2026-07-06T00:00Z", champion="v1")
    assert late.recall_window == (date(2026, 7, 1), date(2026, 7, 1))
    assert late.labelled_frauds == 80 and late.recall == 0.5 and late.status == RECALL_BELOW_SLO


def test_important_features_are_the_top_k_by_importance():
    reference = {"features": {"a": {}, "b": {}, "c": {}}, "feature_importance": {"a": 0.1, "b": 0.6, "c": 0.3}}
    assert important_features(reference, 2) == ["b", "c"]
    assert important_features(reference, 0) == ["a", "b", "c"]


def test_drift_on_an_unimportant_feature_alone_is_not_drift():
    rng = np.random.default_rng(6)
    reference = _reference(rng)
    n = 3000
    log = decision_log(DAY, {"a": rng.normal(size=n), "b": rng.normal(2.0, 1.0, size=n)}, rng.uniform(size=n))
    health = evaluate_health(log, None, reference, MonitoringConfig(important_features=1), as_of=AS_OF, champion="v1")
    assert health.important_features == ("a",) and health.status == OK
    assert health.feature_psi["b"][date(2026, 7, 1)] > 0.2


def test_focal_percentiles_use_a_focal_winners_gamma_and_alpha_else_2_and_0_25():
    from objectives import FocalLoss

    rng = np.random.default_rng(7)
    n = 5000
    margins, labels = rng.normal(-2.0, 2.0, size=n), (rng.uniform(size=n) < 0.1).astype(int)
    feats, scores = {"a": rng.normal(size=n)}, rng.uniform(size=n)
    own = reference_for(feats, scores, margins, labels, gamma=1.0, alpha=0.6)["focal"]
    assert (own["gamma"], own["alpha"]) == (1.0, 0.6) and "own" in own["loss_source"]
    assert own["p90"] == pytest.approx(np.percentile(FocalLoss(gamma=1.0, alpha=0.6).loss(margins, labels), 90))
    default = reference_for(feats, scores, margins, labels, gamma=None)["focal"]
    assert (default["gamma"], default["alpha"]) == (2.0, 0.25) and "not a focal model" in default["loss_source"]
    loss = FocalLoss(gamma=2.0, alpha=0.25).loss(margins, labels)
    assert [default[k] for k in ("p50", "p90", "p99")] == pytest.approx(np.percentile(loss, [50, 90, 99]).tolist())
    p = 1 / (1 + np.exp(-margins))
    assert default["hard_example_rate"] == pytest.approx(np.mean(np.where(labels == 1, p, 1 - p) < 0.5))


def test_an_empty_decision_log_gives_not_enough_data():
    rng = np.random.default_rng(8)
    empty = decision_log(DAY, {"a": np.array([]), "b": np.array([])}, np.array([]))
    health = evaluate_health(empty, None, _reference(rng), CONFIG, as_of=AS_OF, champion="v1")
    assert health.status == NOT_ENOUGH_DATA and health.scored_rows == 0 and health.labelled_frauds == 0
    assert health.score_psi is None and health.recall is None and health.daily == ()
    assert "not enough data: 0 scored rows" in "\n".join(health.lines())
