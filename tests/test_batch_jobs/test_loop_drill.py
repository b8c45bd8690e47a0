"""The operating loop end to end (issue 16, section 7): simulated days replayed through the
API with its clock at the simulated time; a new fraud pattern and a shift in legitimate
spending from ``drift_day``. The decision log fills (one record per scored transaction),
feedback comes back with delays, the drift is detected, a retrain is triggered (and held back
by the cooldown), the retrained model is shadowed and promoted by the shadow gate, and recall
on the new pattern recovers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from batch_jobs.loop_drill import DrillPlan, run_drill
from fraud.decisions import read_decisions
from fraud.labels import open_label_store
from fraud.registry import ModelRegistry

PLAN = DrillPlan()  # the bench's drill (bench/loop.py): a retrain needs about 2 weeks of the new pattern
DETECTED_WITHIN_DAYS = 6


@pytest.fixture(scope="module")
def drill(tmp_path_factory, default_config):
    workdir = tmp_path_factory.mktemp("drill")
    return run_drill(default_config, PLAN, workdir, progress=False), workdir


def test_every_scored_transaction_is_in_the_decision_log_once(drill):
    result, workdir = drill
    log = read_decisions(str(workdir / "decisions"))
    assert len(log) == sum(d.scored for d in result.days) > 10_000
    assert log["transaction_id"].is_unique
    shadowed = log["shadow_model_version"].notna()
    assert shadowed.any() and not shadowed.all()  # scored in shadow while a challenger was set, only then
    assert set(log.loc[shadowed, "shadow_model_version"]) <= {d.challenger for d in result.days} | {
        d.trained.split()[0] for d in result.days if d.trained}


def test_feedback_came_back_with_delays_into_the_label_store(drill):
    result, workdir = drill
    labels = open_label_store(str(workdir / "labels")).read()
    # one label per transaction: a chargeback after a reviewer's verdict is a duplicate, not stored again
    assert 500 < len(labels) < sum(d.feedback_sent for d in result.days)
    assert labels["transaction_id"].is_unique
    assert set(labels["source"]) == {"reviewer", "chargeback"}
    log = read_decisions(str(workdir / "decisions")).set_index("transaction_id")
    delay = (pd.to_datetime(labels["known_at"], utc=True).to_numpy()
             - log.loc[labels["transaction_id"], "scored_at"].to_numpy())
    assert (delay > pd.Timedelta(minutes=30)).all()  # every label arrived after its transaction was scored


def test_drift_is_detected_and_a_retrain_triggered_within_days_of_the_onset(drill):
    result, _ = drill
    m = result.milestones
    before = [d for d in result.days if d.day < m["onset"]]
    assert before and all(d.health in ("OK", "NOT_ENOUGH_DATA") for d in before)  # no alarm before the onset
    assert m["days_to_detection"] is not None and m["days_to_detection"] <= DETECTED_WITHIN_DAYS
    assert m["days_to_retrain"] is not None and m["days_to_retrain"] <= DETECTED_WITHIN_DAYS


def test_retrains_respect_the_cooldown_and_every_trigger_is_recorded(drill):
    result, workdir = drill
    trained = [pd.Timestamp(d.day) for d in result.days if d.trained]
    assert len(trained) >= 2
    assert all(b - a >= pd.Timedelta(days=2) for a, b in zip(trained, trained[1:]))  # 47 h cooldown, nightly
    assert any(d.trigger == "suppressed" for d in result.days)
    recorded = [json.loads(line) for f in sorted((workdir / "triggers").rglob("*.jsonl"))
                for line in f.read_text().splitlines()]
    assert len(recorded) == len(result.days)  # one decision a night, fired or not, with its reason
    assert sum(r["outcome"] == "fired" for r in recorded) == len(trained)


def test_the_retrained_model_is_shadowed_then_promoted_by_the_shadow_gate(drill):
    result, workdir = drill
    registry = ModelRegistry.open(str(workdir / "registry"))
    events = registry.events()
    promotions = [e for e in events if e.get("action") == "promote" and e.get("version") != result.first_champion]
    assert promotions, "no retrained model was promoted"
    promoted = promotions[0]["version"]
    shadowed = [e for e in events if e.get("version") == promoted and "challenger" in str(e.get("action"))]
    assert shadowed and shadowed[0]["at"] < promotions[0]["at"]  # shadowed before it served
    assert "nightly" in promotions[0]["reason"] and "not worse" in promotions[0]["reason"]
    assert result.milestones["days_to_promotion"] is not None


def test_recall_on_the_new_pattern_recovers_after_the_promotion(drill):
    m = drill[0].milestones
    before, after = m["new_pattern_recall_first_champion"], m["new_pattern_recall_after_promotion"]
    assert before is not None and after is not None
    assert after >= before + 0.15, m
