"""Promotion of a challenger from its shadow period, and the canary's rollback, judged on
labels that arrived for the transactions the API logged (frames in read_decisions' shape)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from fraud.challenger import Side, compare_on_shadow, judge_canary
from fraud.policy import Thresholds

START = pd.Timestamp("2026-06-01", tz="UTC")
CHAMP, CHALL = Side("v-champ", Thresholds(0.5, 0.9)), Side("v-chall", Thresholds(0.4, 0.9))


def shadow_log(n: int, days: float, challenger_noise: float, champion_noise: float = 0.35, seed: int = 0,
               canary_every: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """n transactions over ``days``, 10 % fraud; each model's score is the label plus noise.
    Every ``canary_every``-th row was decided by the challenger (its score on top, the
    champion's in shadow)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    champ = np.clip(y * 0.6 + 0.2 + rng.normal(0, champion_noise, n), 0, 1)
    chall = np.clip(y * 0.6 + 0.2 + rng.normal(0, challenger_noise, n), 0, 1)
    canary = np.zeros(n, bool) if not canary_every else (np.arange(n) % canary_every == 0)
    log = pd.DataFrame({
        "transaction_id": [f"T{i}" for i in range(n)],
        "scored_at": START + pd.to_timedelta(np.linspace(0, days * 86400, n), unit="s"),
        "model_version": np.where(canary, CHALL.version, CHAMP.version),
        "decided_by": np.where(canary, "challenger", "champion"),
        "probability": np.where(canary, chall, champ),
        "shadow_model_version": np.where(canary, CHAMP.version, CHALL.version),
        "shadow_probability": np.where(canary, champ, chall)})
    log["decision"] = np.where(log["probability"] >= 0.5, "review", "approve")
    return log, y


def labels_of(log: pd.DataFrame, y: np.ndarray, share: float = 1.0) -> pd.DataFrame:
    k = int(len(log) * share)
    return pd.DataFrame({"transaction_id": log["transaction_id"][:k], "label": y[:k], "source": "feedback",
                         "known_at": log["scored_at"][:k] + pd.Timedelta(days=3)})


def test_promotion_is_refused_before_the_minimum_shadow_period():
    log, y = shadow_log(2000, days=3, challenger_noise=0.1)
    verdict = compare_on_shadow(log, labels_of(log, y), CHAMP, CHALL, min_days=7, min_labels=200)
    assert not verdict.promote and verdict.shadow_days == pytest.approx(3.0)
    assert "3.0 days" in verdict.reason and "needs 7" in verdict.reason


def test_promotion_is_refused_before_enough_labels_and_allowed_after():
    log, y = shadow_log(2000, days=10, challenger_noise=0.1)
    few = compare_on_shadow(log, labels_of(log, y, share=0.05), CHAMP, CHALL, min_days=7, min_labels=200)
    assert not few.promote and few.counts == {"shadow_scored": 2000, "labelled": 100, "frauds": int(y[:100].sum())}
    assert "100 labels" in few.reason and "needs 200 labels" in few.reason
    enough = compare_on_shadow(log, labels_of(log, y, share=0.2), CHAMP, CHALL, min_days=7, min_labels=200)
    assert enough.promote and enough.counts["labelled"] == 400, enough.reason
    assert "not worse" in enough.reason


def test_a_challenger_ranking_worse_is_refused_even_after_the_period():
    log, y = shadow_log(2000, days=10, challenger_noise=0.6, champion_noise=0.1)
    verdict = compare_on_shadow(log, labels_of(log, y), CHAMP, CHALL, min_days=7, min_labels=200)
    assert not verdict.promote and "ranks worse" in verdict.reason
    assert verdict.challenger["average_precision"] < verdict.champion["average_precision"] - 0.01


def test_figures_are_each_models_on_the_labelled_rows_canary_rows_included():
    log, y = shadow_log(1500, days=10, challenger_noise=0.2, canary_every=4)
    other = log.head(50).assign(model_version="v-old", probability=0.99)  # another pair's rows
    others = [other.assign(shadow_model_version=v, transaction_id=other["transaction_id"] + v) for v in
              ("v-chall", "v-champ")]
    verdict = compare_on_shadow(pd.concat([log, *others]), labels_of(log, y, 0.5), CHAMP, CHALL, min_days=1,
                                min_labels=10)
    labelled = log.head(750)
    canary = (labelled["decided_by"] == "challenger").to_numpy()
    champ = np.where(canary, labelled["shadow_probability"], labelled["probability"])
    chall = np.where(canary, labelled["probability"], labelled["shadow_probability"])
    yl = y[:750]
    assert verdict.counts["shadow_scored"] == 1500  # the other version's rows are not this pair's
    assert verdict.champion["average_precision"] == pytest.approx(average_precision_score(yl, champ), abs=1e-9)
    assert verdict.challenger["average_precision"] == pytest.approx(average_precision_score(yl, chall), abs=1e-9)
    assert verdict.champion["recall"] == pytest.approx(((champ >= 0.5) & (yl == 1)).sum() / yl.sum())
    assert verdict.challenger["recall"] == pytest.approx(((chall >= 0.4) & (yl == 1)).sum() / yl.sum())
    assert verdict.challenger["precision"] == pytest.approx(((chall >= 0.4) & (yl == 1)).sum() / (chall >= 0.4).sum())


def test_the_label_known_last_decides():
    log, y = shadow_log(400, days=10, challenger_noise=0.1)
    labels = labels_of(log, y)
    fraud = labels[labels["label"] == 1].iloc[:5]
    corrected = fraud.assign(label=0, known_at=fraud["known_at"] + pd.Timedelta(days=1))
    verdict = compare_on_shadow(log, pd.concat([labels, corrected]), CHAMP, CHALL, min_days=1, min_labels=10)
    assert verdict.counts["frauds"] == y.sum() - 5 and verdict.counts["labelled"] == 400


def canary_log(n: int, challenger_catch: float, champion_catch: float = 0.8, seed: int = 1) -> tuple:
    """Half the rows decided by each model; a fraud is flagged with the deciding model's catch
    rate, a legitimate one with 2 %."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    canary = np.arange(n) % 2 == 0
    catch = np.where(canary, challenger_catch, champion_catch)
    flagged = np.where(y == 1, rng.random(n) < catch, rng.random(n) < 0.02)
    log = pd.DataFrame({"transaction_id": [f"C{i}" for i in range(n)],
                        "scored_at": START + pd.to_timedelta(np.arange(n), unit="min"),
                        "model_version": np.where(canary, CHALL.version, CHAMP.version),
                        "decided_by": np.where(canary, "challenger", "champion"),
                        "decision": np.where(flagged, "review", "approve"),
                        "shadow_model_version": np.where(canary, CHAMP.version, CHALL.version)})
    return log, y


KNOBS = {"recall_tolerance": 0.05, "precision_tolerance": 0.05, "min_labels": 100, "min_frauds": 10,
         "min_flagged": 10}


def test_a_canary_worse_beyond_tolerance_is_rolled_back_and_one_within_is_kept():
    log, y = canary_log(4000, challenger_catch=0.5)
    worse = judge_canary(log, labels_of(log, y), CHAMP.version, CHALL.version, **KNOBS)
    assert worse.rollback and worse.judged and "recall below the champion's" in worse.reason
    assert worse.arms["challenger"]["recall"] < worse.arms["champion"]["recall"] - 0.05
    log, y = canary_log(4000, challenger_catch=0.78)
    within = judge_canary(log, labels_of(log, y), CHAMP.version, CHALL.version, **KNOBS)
    assert not within.rollback and within.judged and "kept" in within.reason, within.reason
    assert abs(within.arms["challenger"]["recall"] - within.arms["champion"]["recall"]) < 0.05


def test_a_canary_is_not_judged_on_too_few_labels():
    log, y = canary_log(4000, challenger_catch=0.1)
    verdict = judge_canary(log, labels_of(log, y, share=0.03), CHAMP.version, CHALL.version, **KNOBS)
    assert not verdict.rollback and not verdict.judged and "too few labels" in verdict.reason
    assert verdict.arms["challenger"]["labelled"] == 60


def test_canary_precision_counts_the_flagged_rows():
    log, y = canary_log(4000, challenger_catch=0.8)
    noisy = log["decided_by"].eq("challenger") & pd.Series(y == 0) & pd.Series(np.arange(4000) % 5 == 0)
    log.loc[noisy, "decision"] = "decline"  # the challenger declines a fifth of the legitimate ones
    verdict = judge_canary(log, labels_of(log, y), CHAMP.version, CHALL.version, **KNOBS)
    assert verdict.rollback and "precision below" in verdict.reason and "recall below" not in verdict.reason
    arm = log[log["decided_by"] == "challenger"]
    flagged = arm["decision"].isin(["review", "decline"]).to_numpy()
    ya = y[arm.index]
    assert verdict.arms["challenger"]["precision"] == pytest.approx((flagged & (ya == 1)).sum() / flagged.sum())
