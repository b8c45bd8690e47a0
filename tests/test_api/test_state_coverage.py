"""No silent scoring from an empty or stale feature state: the API reads the state's
watermark, health reports it, and while it is missing or old the fallback policy decides,
says so in the answer and counts it."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from helpers.api import HEADERS
from fraud.features.online import STATE_WATERMARK_KEY
from lambda_handler.api import create_app
from lambda_handler.container import build_container


@pytest.fixture(scope="module")
def declining_registry(tmp_path_factory, small_training):
    """A champion whose thresholds decline everything: the model alone never reviews."""
    from fraud.policy import Thresholds
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open(tmp_path_factory.mktemp("declining"))
    registry.promote(registry.publish(dataclasses.replace(small_training.bundle,
                                                          thresholds=Thresholds(review=0.0, decline=0.0))), "all")
    return str(registry.store.root)


def service(local_settings, registry, **update):
    container = build_container(local_settings.model_copy(update={"registry_uri": registry, **update}))
    container.coverage.recheck_s = 0  # read the watermark on every use (the test moves it)
    return container, TestClient(create_app(container))


def txn(i: int) -> dict:
    return {"transaction_id": f"cov-{i}", "timestamp": f"2026-02-15T09:{i:02d}:00Z", "card_id": f"c{i}",
            "terminal_id": "t1", "amount": 30.0, "currency": "EUR"}


def watermark(container, age: timedelta) -> None:
    until = (datetime.now(timezone.utc) - age).isoformat()
    container.stores["features"].put(STATE_WATERMARK_KEY, {"transactions_until": until})


def test_empty_or_stale_state_is_decided_by_the_fallback_and_said(local_settings, declining_registry):
    container, client = service(local_settings, declining_registry, state_fallback="review")
    assert client.get("/v1/health").json()["state"] == {"status": "empty"}
    r = client.post("/v1/score", json=txn(1), headers=HEADERS).json()
    assert r["decision"] == "review"  # never declined on features computed from nothing
    assert "feature state is empty" in r["policy_reason"] and "fallback policy 'review'" in r["policy_reason"]
    assert container.sink.values("StateFallback") == [1]

    watermark(container, timedelta(days=5))  # older than the 2-day limit
    assert client.get("/v1/health").json()["state"]["status"] == "stale"
    assert "feature state is stale" in client.post("/v1/score", json=txn(2), headers=HEADERS).json()["policy_reason"]

    watermark(container, timedelta(hours=1))
    assert client.get("/v1/health").json()["state"]["status"] == "fresh"
    fresh = client.post("/v1/score", json=txn(3), headers=HEADERS).json()
    assert fresh["decision"] == "decline" and fresh["policy_reason"] is None  # the model again
    assert container.sink.values("StateFallback") == [1, 1]


def test_rules_only_fallback_and_off(local_settings, declining_registry):
    container, client = service(local_settings, declining_registry, state_fallback="rules")
    r = client.post("/v1/score", json=txn(4), headers=HEADERS).json()
    assert r["decision"] == "approve" and "only the allow/block lists decide" in r["policy_reason"]
    client.put("/v1/lists/block/card", json={"id": "c5", "reason": "stolen"}, headers=HEADERS)
    assert client.post("/v1/score", json=txn(5), headers=HEADERS).json()["decision"] == "decline"
    _, off = service(local_settings, declining_registry, state_fallback="off")
    assert off.post("/v1/score", json=txn(6), headers=HEADERS).json()["decision"] == "decline"
    assert "state" not in off.get("/v1/health").json()


def test_the_expected_review_share_is_published_for_the_volume_alarm(local_settings, declining_registry,
                                                                      small_training):
    container, client = service(local_settings, declining_registry)
    for i in range(7, 10):
        client.post("/v1/score", json=txn(i), headers=HEADERS)
    expected = small_training.bundle.metadata["expected_review_share"]
    assert 0 < expected < 1
    assert container.sink.values("ExpectedReviewShare") == [expected]  # once a minute, not per transaction


def test_local_warm_up_writes_the_watermark(local_settings, small_sim_dir, small_transactions):
    container = build_container(local_settings.model_copy(update={"history_path": str(small_sim_dir),
                                                                  "state_fallback": "review"}))
    state = container.coverage.current()
    assert state["transactions_until"] == small_transactions["timestamp"].max().isoformat()
    assert state["status"] == "stale"  # the simulated data ends in February


def recent_txn(i: int, ago: timedelta) -> dict:
    return {**txn(i), "timestamp": (datetime.now(timezone.utc) - ago).isoformat()}


def test_the_apis_own_traffic_keeps_a_fresh_state_fresh_and_only_a_fresh_one(local_settings, declining_registry,
                                                                              small_transactions, small_features):
    """Two days after a load the API, which applied every transaction since, still scores
    with the model; a state that went stale (the API down for days) is not made fresh by
    scoring again: only a load or a catch-up of the missed days does that."""
    from batch_jobs.state_load import load_state
    from fraud.features.online import STATE_LIVE_KEY

    container, client = service(local_settings, declining_registry, state_fallback="review")
    container.coverage.heartbeat_s = 0
    features = container.stores["features"]
    watermark(container, timedelta(hours=47))  # loaded 47 hours ago; the limit is 48
    r = client.post("/v1/score", json=recent_txn(20, timedelta(minutes=5)), headers=HEADERS).json()
    assert r["policy_reason"] is None
    applied = datetime.fromisoformat(features.get(STATE_LIVE_KEY).value["applied_until"])
    assert abs((datetime.now(timezone.utc) - timedelta(minutes=5) - applied).total_seconds()) < 60
    watermark(container, timedelta(hours=50))  # the load itself is now older than the limit
    assert client.get("/v1/health").json()["state"]["status"] == "fresh"
    assert client.post("/v1/score", json=recent_txn(21, timedelta(minutes=1)), headers=HEADERS).json()[
        "decision"] == "decline"  # the model decides

    features.delete(STATE_LIVE_KEY)  # the API was down since the load, 50 hours ago
    assert client.get("/v1/health").json()["state"]["status"] == "stale"
    r = client.post("/v1/score", json=recent_txn(22, timedelta(minutes=1)), headers=HEADERS).json()
    assert "feature state is stale" in r["policy_reason"]
    assert features.get(STATE_LIVE_KEY) is None and client.get("/v1/health").json()["state"]["status"] == "stale"

    # a heartbeat does not make a state that was never loaded, and a load drops the old one
    features.put(STATE_LIVE_KEY, {"applied_until": datetime.now(timezone.utc).isoformat()})
    features.delete(STATE_WATERMARK_KEY)
    assert client.get("/v1/health").json()["state"]["status"] == "empty"
    spec, _ = small_features
    load_state(small_transactions, spec, features, container.online.keys)
    assert features.get(STATE_LIVE_KEY) is None


def test_a_failing_heartbeat_does_not_fail_scoring(local_settings, declining_registry):
    container, client = service(local_settings, declining_registry, state_fallback="review")
    container.coverage.heartbeat_s = 0
    watermark(container, timedelta(hours=1))

    def broken(*_, **__):
        raise ConnectionError("DynamoDB is down")

    container.coverage.store = type("Broken", (), {"get_many": container.stores["features"].get_many,
                                                   "put": staticmethod(broken)})()
    r = client.post("/v1/score", json=recent_txn(30, timedelta(minutes=1)), headers=HEADERS)
    assert r.status_code == 200 and r.json()["decision"] == "decline"
