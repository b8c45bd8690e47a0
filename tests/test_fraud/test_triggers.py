"""Retrain triggers: each reason fires on its condition and only then; the cooldown and the
minimum of new labels suppress (the schedule is never held back); every decision is logged
with its numbers, locally and on S3."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from fraud.monitoring.triggers import RetrainPolicy, TriggerDecision, conditions, decide, open_trigger_log

NOW = datetime(2026, 7, 1, 3, 0, tzinfo=timezone.utc)
DAY = date(2026, 6, 30)
POLICY = RetrainPolicy(cooldown_hours=12, min_new_labels=50, schedule_hours=None)


def health(recall=0.8, recall_verdict=True, drifted=(), psi=None):
    """The attributes of ``fraud.monitoring.health.Health`` a trigger reads."""
    psi = psi or {"amount": 0.05, "card_tx_1d": 0.1}
    return SimpleNamespace(day=DAY, recall=recall, recall_verdict=recall_verdict, drift_verdict=True,
                           drifted_features=tuple(drifted), important_features=("amount", "card_tx_1d"),
                           feature_psi={f: {DAY - timedelta(days=1): 0.9, DAY: v} for f, v in psi.items()},
                           thresholds={"recall_slo": 0.7, "psi_threshold": 0.2, "min_rows": 1000, "min_labels": 30},
                           scored_rows=3000, labelled_rows=500, labelled_frauds=40)


@pytest.mark.parametrize("h, expected", [
    (health(), []),
    (health(recall=0.69), ["recall"]),
    (health(recall=0.70), []),                               # at the SLO is not below it
    (health(recall=0.2, recall_verdict=False), []),          # too few labelled frauds for a verdict
    (health(recall=None, recall_verdict=False), []),
    (health(drifted=["amount"], psi={"amount": 0.31, "card_tx_1d": 0.1}), ["psi"]),
    (health(recall=0.5, drifted=["amount"], psi={"amount": 0.31, "card_tx_1d": 0.1}), ["recall", "psi"]),
])
def test_each_reason_holds_on_its_condition_and_only_then(h, expected):
    reasons, figures = conditions(h, POLICY, None, NOW)
    assert reasons == expected
    assert figures["recall"] == h.recall and figures["recall_slo"] == 0.7 and figures["labelled_frauds"] == 40
    if "psi" in expected:
        assert figures["psi_above"] == {"amount": 0.31}   # the drifted feature's PSI on the day


def test_the_schedule_reason_is_due_after_schedule_hours_since_the_last_start():
    policy = RetrainPolicy(12, 50, schedule_hours=24)
    assert conditions(health(), policy, NOW - timedelta(hours=23.9), NOW)[0] == []
    reasons, figures = conditions(health(), policy, NOW - timedelta(hours=24), NOW)
    assert reasons == ["schedule"] and figures["hours_since_last_start"] == pytest.approx(24)
    assert conditions(health(), policy, None, NOW)[0] == ["schedule"]   # never trained: due
    assert conditions(health(), POLICY, None, NOW)[0] == []             # off by default


def test_fired_when_out_of_cooldown_with_enough_new_labels():
    d = decide(["recall"], {"recall": 0.6}, "monitor", NOW - timedelta(hours=12), 50, POLICY, NOW)
    assert (d.outcome, d.fired, d.suppressed_by, d.reasons) == ("fired", True, None, ("recall",))
    assert d.figures["recall"] == 0.6 and d.figures["new_labels"] == 50


def test_cooldown_suppresses_and_says_how_long_ago():
    d = decide(["psi"], {}, "monitor", NOW - timedelta(hours=11.5), 1000, POLICY, NOW)
    assert (d.outcome, d.fired, d.suppressed_by) == ("suppressed", False, "cooldown")
    assert "11.5 h ago" in d.message and d.figures["last_start"] == (NOW - timedelta(hours=11.5)).isoformat()


def test_too_few_new_labels_suppresses():
    d = decide(["recall"], {}, "alarm:RecallBelowSLO", None, 49, POLICY, NOW)
    assert (d.outcome, d.suppressed_by, d.figures["new_labels"]) == ("suppressed", "min_labels", 49)


def test_the_schedule_is_never_held_back_and_nothing_is_quiet():
    assert decide(["schedule"], {}, "schedule", NOW - timedelta(hours=1), 0, POLICY, NOW).fired
    quiet = decide([], {}, "monitor", None, 1000, POLICY, NOW)
    assert (quiet.outcome, quiet.fired) == ("quiet", False)


@pytest.fixture(params=["local", "s3"])
def trigger_log(request, tmp_path, aws_env):
    if request.param == "local":
        yield open_trigger_log(str(tmp_path / "triggers"))
        return
    import boto3
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="data")
        yield open_trigger_log("s3://data/triggers")


def test_every_decision_is_logged_and_the_cooldown_counts_from_the_last_fired_one(trigger_log):
    assert trigger_log.last_start() is None and trigger_log.read() == []
    day1 = decide(["recall"], {"recall": 0.6}, "monitor", None, 60, POLICY, NOW - timedelta(days=2))
    day2 = decide(["psi"], {"psi_above": {"amount": 0.3}}, "monitor", NOW - timedelta(days=2), 10, POLICY,
                  NOW - timedelta(days=1))
    today = decide([], {}, "monitor", NOW - timedelta(days=2), 10, POLICY, NOW)
    for d in (today, day1, day2, day1):  # out of order, and one twice
        trigger_log.append(d)
    assert [(d.outcome, d.suppressed_by) for d in trigger_log.read()] == [
        ("fired", None), ("suppressed", "min_labels"), ("quiet", None)]
    assert trigger_log.read()[1] == day2   # the numbers round-trip
    assert trigger_log.last_start() == NOW - timedelta(days=2)
    trigger_log.append(decide(["recall"], {}, "monitor", NOW - timedelta(days=2), 60, POLICY, NOW))
    assert trigger_log.last_start() == NOW    # the newest start, not the first one found


def test_a_decision_round_trips_its_dict():
    d = decide(["recall", "psi"], {"psi_above": {"a": 0.3}}, "monitor", None, 60, POLICY, NOW)
    assert TriggerDecision.from_dict(d.to_dict()) == d


def test_a_real_health_with_a_drifted_important_feature_gives_the_psi_reason():
    """Against ``fraud.monitoring``'s own Health: the attributes the trigger reads exist and mean
    what it takes them to mean (a shifted important feature: psi; steady data: nothing)."""
    import numpy as np
    import pandas as pd

    from fraud.config import MonitoringConfig
    from fraud.monitoring.health import evaluate_health
    from helpers.decision_frames import decision_log, reference_for

    rng = np.random.default_rng(0)
    n = 20_000
    reference = reference_for({"a": rng.normal(size=n), "b": rng.normal(size=n)}, rng.uniform(size=n),
                              importance={"a": 0.7, "b": 0.3})
    config, as_of = MonitoringConfig(min_rows=1000, important_features=0), pd.Timestamp("2026-07-02T03:00:00Z")
    m = 3000
    steady = decision_log("2026-07-01", {"a": rng.normal(size=m), "b": rng.normal(size=m)}, rng.uniform(size=m))
    shifted = decision_log("2026-07-01", {"a": rng.normal(1.0, 1.0, size=m), "b": rng.normal(size=m)},
                           rng.uniform(size=m))
    assert conditions(evaluate_health(steady, None, reference, config, as_of=as_of, champion="v1"), POLICY, None,
                      NOW)[0] == []
    reasons, figures = conditions(evaluate_health(shifted, None, reference, config, as_of=as_of, champion="v1"),
                                  POLICY, None, NOW)
    assert reasons == ["psi"] and list(figures["psi_above"]) == ["a"] and figures["psi_above"]["a"] > 0.2


def test_one_claim_wins_per_last_start(trigger_log):
    first = decide(["recall"], {}, "alarm:a", None, 60, POLICY, NOW)
    second = decide(["psi"], {}, "alarm:b", None, 60, POLICY, NOW)
    assert trigger_log.claim(None, first) is True
    assert trigger_log.claim(None, second) is False       # a concurrent trigger read the same (no) last start
    assert trigger_log.claim(first, second) is True       # the next start after the first one
    assert trigger_log.read() == []                       # claims are not decisions
