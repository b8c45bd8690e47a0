"""A refused request changes nothing, and a label is neither lost nor counted twice when a
request dies half-way and is retried."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from helpers.api import HEADERS
from lambda_handler.api import create_app
from lambda_handler.container import build_container
from lambda_handler.schemas import Transaction


def txn(i: int, card: str = "card-r", **extra) -> dict:
    return {"transaction_id": f"rf-{i}", "timestamp": f"2026-02-12T08:{i:02d}:00Z", "card_id": card,
            "terminal_id": "term-r", "amount": 15.0 + i, "currency": "EUR", **extra}


def snapshot(container) -> dict:
    return {name: {key: item.value for key, item in store.scan("")} for name, store in container.stores.items()}


@pytest.fixture
def service(local_settings):
    container = build_container(local_settings.model_copy(update={"max_batch": 10}))
    return container, TestClient(create_app(container))


def test_a_batch_refused_for_one_transaction_changes_nothing(service, local_settings):
    container, client = service
    assert client.post("/v1/score", json=txn(9, card="card-other"), headers=HEADERS).status_code == 200
    before = snapshot(container)
    reused = txn(9, card="card-other", amount=999.0)  # the id of a scored transaction, other content
    refused = client.post("/v1/score/batch", json={"transactions": [txn(1), txn(2), reused]}, headers=HEADERS)
    assert refused.status_code == 409 and "different content" in refused.text
    assert refused.json()["type"] == "/problems/transaction-id-reused"  # not a retry: a client must not resend
    assert snapshot(container) == before  # no card state, no features record, no claim left behind
    # the two new transactions then score exactly as in a service that never saw the refusal
    again = client.post("/v1/score/batch", json={"transactions": [txn(1), txn(2)]}, headers=HEADERS).json()
    clean = build_container(local_settings.model_copy(update={"max_batch": 10}))
    clean.scoring.score(Transaction(**txn(9, card="card-other")), "clean")
    expected = clean.scoring.score_many([Transaction(**txn(i)) for i in (1, 2)], "clean")
    assert [(r["probability"], r["reasons"]) for r in again["results"]] == \
        [(e.probability, [x.model_dump() for x in e.reasons]) for e in expected]


def _label_state(container) -> tuple[int, dict]:
    from fraud.features.online import TERMINAL, entity_key

    terminal = container.stores["features"].get(entity_key(container.online.keys, TERMINAL, "term-r"))
    return (terminal.value["ln"] if terminal else 0), container.feedback.window_stats()


FEEDBACK = {"transaction_id": "rf-1", "label": "fraud", "source": "chargeback", "time": "2026-02-20T00:00:00Z"}


def test_feedback_for_an_unknown_transaction_is_404(service):
    _, client = service
    r = client.post("/v1/feedback", json={**FEEDBACK, "transaction_id": "never-scored"}, headers=HEADERS)
    assert r.status_code == 404 and "never-scored" in r.json()["detail"]


def test_feedback_retried_after_a_failure_counts_once(service, monkeypatch):
    container, client = service
    assert client.post("/v1/score", json=txn(1), headers=HEADERS).status_code == 200
    real = container.online.add_label

    def dies_after_the_label_was_recorded(*args, **kwargs):
        raise RuntimeError("the function timed out here")

    monkeypatch.setattr(container.online, "add_label", dies_after_the_label_was_recorded)
    assert client.post("/v1/feedback", json=FEEDBACK, headers=HEADERS).status_code == 500
    monkeypatch.setattr(container.online, "add_label", real)
    retried = client.post("/v1/feedback", json=FEEDBACK, headers=HEADERS).json()
    assert retried["recorded"] and not retried["duplicate"]  # the same label again: a retry
    again = client.post("/v1/feedback", json=FEEDBACK, headers=HEADERS).json()
    assert again["recorded"] and not again["duplicate"]
    other = client.post("/v1/feedback", json={**FEEDBACK, "label": "legitimate", "source": "reviewer"},
                        headers=HEADERS).json()
    assert other["duplicate"] and not other["recorded"]  # the first label stands
    labels, stats = _label_state(container)
    assert labels == 1 and stats["labels"] == 1 and stats["recall"] is not None


def test_a_transaction_dated_in_the_future_is_refused_and_changes_nothing(service):
    container, client = service
    for i in range(3):
        assert client.post("/v1/score", json=txn(i), headers=HEADERS).status_code == 200
    before = snapshot(container)
    r = client.post("/v1/score", json=txn(5, timestamp="2099-01-01T00:00:00Z"), headers=HEADERS)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.timestamp"
    batch = {"transactions": [txn(6), txn(7), txn(8, timestamp="2099-01-01T00:00:00Z")]}
    r = client.post("/v1/score/batch", json=batch, headers=HEADERS)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.transactions.2.timestamp"
    assert snapshot(container) == before  # the card's and the terminal's history are intact


def test_a_late_transaction_moves_no_clock_backwards(service):
    from fraud.features.online import CARD, entity_key

    container, client = service
    for i in (10, 20, 30):
        assert client.post("/v1/score", json=txn(i), headers=HEADERS).status_code == 200
    card = lambda: container.stores["features"].get(entity_key(container.online.keys, CARD, "card-r")).value  # noqa: E731
    last = card()["last"]
    late = client.post("/v1/score", json=txn(15), headers=HEADERS)  # 15 minutes before the latest
    assert late.status_code == 200
    assert card()["last"] == last and card()["n"] == 4
    features = container.online.process({**txn(40), "timestamp": "2026-02-12T08:40:00Z"})
    assert features["card_seconds_since_previous"] == 600.0  # since 08:30, not since the late 08:15
    record = container.stores["features"].get("applied#rf-15").value["features"]
    assert record["card_seconds_since_previous"] is None  # the late one's previous is unknown: missing


def test_currencies_the_model_does_not_score_are_refused_or_converted(service, local_settings):
    container, client = service
    assert container.holder.bundle.metadata["currency"] == "EUR"
    for currency in ("USD", "XYZ"):
        r = client.post("/v1/score", json=txn(1, currency=currency), headers=HEADERS)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.currency", r.text
        assert f"{currency} is not accepted" in r.json()["errors"][0]["message"]
    assert all(not dict(store.scan("")) for store in container.stores.values())  # nothing was applied
    converting = build_container(local_settings.model_copy(update={"currency_rates": {"USD": 0.5}}))
    scored = TestClient(create_app(converting)).post("/v1/score", json=txn(2, currency="USD"), headers=HEADERS)
    assert scored.status_code == 200
    assert converting.stores["features"].get("applied#rf-2").value["features"]["amount"] == (15.0 + 2) * 0.5


def test_an_amount_beyond_the_training_range_goes_to_review_with_its_reason(local_settings, tmp_path,
                                                                            small_training):
    """With thresholds that approve everything, only the amount guard can send it to review."""
    import dataclasses

    from fraud.policy import Thresholds
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open(tmp_path / "registry")
    registry.promote(registry.publish(dataclasses.replace(small_training.bundle,
                                                          thresholds=Thresholds(review=1.5, decline=2.0))), "lenient")
    container = build_container(local_settings.model_copy(update={"registry_uri": str(registry.store.root)}))
    client = TestClient(create_app(container))
    largest = container.holder.bundle.metadata["amount_range"]["max"]
    usual = client.post("/v1/score", json=txn(1, amount=20.0), headers=HEADERS).json()
    assert usual["decision"] == "approve" and usual["policy_reason"] is None
    huge = client.post("/v1/score", json=txn(2, amount=1_000_000.0), headers=HEADERS).json()
    assert 1_000_000.0 > largest
    assert huge["decision"] == "review" and "above the largest the model was trained on" in huge["policy_reason"]
    assert len(container.queue.receive(10)) == 1  # and a reviewer gets it
