"""The API against real AWS APIs (moto's server): DynamoDB state, S3 registry, SQS reviews,
exactly-once review messages, an SQS outage, feedback metrics and EMF output."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from helpers.api import HEADERS, free_port, queue_messages
from fraud.registry import ModelRegistry, RegistryError
from fraud.storage.kv import DynamoDBKeyValueStore
from fraud.storage.queue import SQSQueue
from helpers.replay import replay
from lambda_handler.api import create_app
from lambda_handler.container import build_container
from lambda_handler.schemas import Transaction
from lambda_handler.scoring import InProgress


def txn(i: int, **extra) -> dict:
    return {"transaction_id": f"tx-{i}", "timestamp": f"2026-02-10T10:{i % 60:02d}:00Z", "card_id": f"card-{i % 7}",
            "terminal_id": f"term-{i % 5}", "amount": 10.0 + i, "currency": "EUR", "channel": "pos", **extra}


def review_registry(s3_registry, review_bundle, moto_server) -> str:
    registry = ModelRegistry.open("s3://fraud-models/review-registry", moto_server, keys=s3_registry.keys)
    if registry.champion() is None:
        registry.promote(registry.publish(review_bundle), "every transaction goes to review")
    return registry.uri


def emf_blobs(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_score_replay_feedback_and_emf(aws_settings, emf_stream):
    container = build_container(aws_settings, metrics_stream=emf_stream)
    client = TestClient(create_app(container))
    first = client.post("/v1/score", json=txn(1), headers=HEADERS)
    assert first.status_code == 200, first.text
    body = first.json()
    assert 0 <= body["probability"] <= 1 and body["decision"] in ("approve", "review", "decline")
    assert body["model_version"] == container.holder.version and body["request_id"]
    again = client.post("/v1/score", json=txn(1), headers=HEADERS).json()
    assert again["replayed"] and again["probability"] == body["probability"]
    assert client.post("/v1/score", json=txn(1, amount=999.0), headers=HEADERS).status_code == 409  # id reused
    # the state lives in DynamoDB (ids hashed), and the card's update is seen by its next transaction
    stored = list(container.stores["features"].scan("card#"))
    assert stored and all("card-1" not in key for key, _ in stored)
    second = client.post("/v1/score", json=txn(8), headers=HEADERS)  # card-1 again (8 % 7)
    assert second.status_code == 200
    fb = client.post("/v1/feedback", json={"transaction_id": "tx-1", "label": "fraud", "source": "chargeback",
                                           "time": "2026-02-15T00:00:00Z"}, headers=HEADERS).json()
    assert fb["recorded"] and not fb["duplicate"]
    dup = client.post("/v1/feedback", json={"transaction_id": "tx-1", "label": "fraud", "source": "reviewer",
                                            "time": "2026-02-16T00:00:00Z"}, headers=HEADERS).json()
    assert dup["duplicate"]

    blobs = emf_blobs(emf_stream)
    for blob in blobs:
        meta = blob["_aws"]["CloudWatchMetrics"][0]
        assert meta["Namespace"] == "FraudScoring"
        assert "service" in meta["Dimensions"][0] and blob["service"] == "fraud-scoring"
        for metric in meta["Metrics"]:
            assert metric["Name"] in blob
    by_name = {}
    for blob in blobs:
        for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[metric["Name"]]
            value = value[0] if isinstance(value, list) else value  # Powertools writes lists
            by_name.setdefault(metric["Name"], []).append((value, blob, metric["Unit"]))
    assert [v for v, _, _ in by_name["ColdStart"]] == [1.0]
    score_requests = [b for v, b, _ in by_name["Requests"] if b.get("Endpoint") == "/v1/score"]
    assert len(score_requests) == 4
    assert all(u == "Milliseconds" for _, _, u in by_name["LatencyMs"])
    decisions = [b["Decision"] for _, b, _ in by_name["Decisions"]]
    assert len(decisions) == 2 and set(decisions) <= {"approve", "review", "decline"}
    assert all("ScoreBucket" in b for _, b, _ in by_name["Scores"])
    recall = by_name["PolicyRecall"][-1][0]
    below = by_name["RecallBelowSLO"][-1][0]
    assert recall in (0.0, 1.0) and below == (1.0 if recall < 0.7 else 0.0)
    assert by_name["FeedbackLabels"][-1][0] == 1.0


def test_concurrent_retries_send_exactly_one_review_message(aws_settings, s3_registry, review_bundle, moto_server):
    """On a standard queue (SQS de-duplicates nothing there): the application itself sends once."""
    from fraud.storage.aws import client

    standard = client("sqs", moto_server).create_queue(QueueName=f"standard-{aws_settings.outbox_table}")["QueueUrl"]
    settings = aws_settings.model_copy(update={"registry_uri": review_registry(s3_registry, review_bundle,
                                                                               moto_server),
                                               "review_queue_url": standard})
    container = build_container(settings)
    request = Transaction(**txn(42))
    barrier = threading.Barrier(12)

    def call(_):
        barrier.wait()
        try:
            return container.scoring.score(request, "r")
        except InProgress:  # a duplicate that gave up waiting is told to retry (409), never double-sent
            return None

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(call, range(12)))
    responses = [r for r in outcomes if r is not None]
    assert responses and {r.decision for r in responses} == {"review"}
    assert len({r.probability for r in responses}) == 1
    assert sum(not r.replayed for r in responses) == 1
    messages = queue_messages(moto_server, settings.review_queue_url)
    assert [m["transaction_id"] for m in messages] == ["tx-42"]
    assert messages[0]["card"].startswith("card_") and "card-0" not in json.dumps(messages[0])
    assert set(messages[0]) >= {"score", "reasons", "model_version"}


def test_sqs_outage_keeps_answering_and_the_outbox_delivers_once(aws_settings, s3_registry, review_bundle,
                                                                  moto_server, emf_stream):
    from moto.server import ThreadedMotoServer

    port = free_port()
    sqs_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    sqs_server.start()
    endpoint = f"http://127.0.0.1:{port}"
    from fraud.storage.aws import client

    url = client("sqs", endpoint).create_queue(QueueName="outage-review")["QueueUrl"]
    settings = aws_settings.model_copy(update={"registry_uri": review_registry(s3_registry, review_bundle,
                                                                               moto_server)})
    container = build_container(settings, queue=SQSQueue(url, endpoint), metrics_stream=emf_stream)
    app = TestClient(create_app(container))
    sqs_server.stop()  # the outage
    try:
        started = time.perf_counter()
        for i in range(100, 120):
            r = app.post("/v1/score", json=txn(i), headers=HEADERS)
            assert r.status_code == 200 and r.json()["decision"] == "review"
        per_request = (time.perf_counter() - started) / 20
        assert per_request < 3.0, f"{per_request:.2f}s per request during the outage"
        assert container.router.pending_count() == 20
        assert app.get("/v1/health").json() == {"status": "degraded", "model_version": container.holder.version,
                                                "outbox_pending": 20}
        failures = [b for b in emf_blobs(emf_stream) if "ReviewSendFailures" in b]
        assert 1 <= len(failures) <= 5  # after a failed send, requests leave sending to the drain a while
        assert container.router.drain()["sent"] == 0  # still down: nothing lost, nothing sent
    finally:
        sqs_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        sqs_server.start()
    try:
        result = app.post("/v1/outbox/drain", headers=HEADERS).json()
        assert result == {"sent": 20, "failed": 0, "pending": 0}
        assert container.router.drain() == {"sent": 0, "failed": 0, "pending": 0}
        delivered = [m["transaction_id"] for m in queue_messages(endpoint, url)]
        assert sorted(delivered) == sorted(f"tx-{i}" for i in range(100, 120))
    finally:
        sqs_server.stop()


def test_online_features_in_dynamodb_equal_batch(moto_server, small_transactions, small_features):
    spec, features = small_features
    table = "fraud-replay-features"
    DynamoDBKeyValueStore.create_table(table, moto_server)
    start = small_transactions["timestamp"].min().normalize() + pd.Timedelta(days=35, hours=10)
    online, _ = replay(small_transactions, spec, start, DynamoDBKeyValueStore(table, moto_server), hours=1)
    assert len(online) > 80
    expected = features.loc[online.index]
    assert np.isclose(online.to_numpy(float), expected.to_numpy(float), rtol=1e-9, atol=1e-9,
                      equal_nan=True).all()


def test_champion_pointer_is_rechecked_and_bad_models_refused(aws_settings, moto_server, small_training,
                                                            deployment_keys):
    from fraud.policy import Thresholds

    registry = ModelRegistry.open("s3://fraud-models/recheck", moto_server, keys=deployment_keys)
    registry.promote(registry.publish(small_training.bundle), "first")
    container = build_container(aws_settings.model_copy(update={"registry_uri": registry.uri,
                                                                 "champion_recheck_s": 0}))
    first = container.holder.version
    import dataclasses

    second = registry.publish(dataclasses.replace(small_training.bundle, thresholds=Thresholds(0.5, 0.9)))
    registry.promote(second, "second")
    assert container.holder.current()[1] == second != first
    # a corrupted champion: the running service keeps its model, a new start fails loudly
    key = f"{registry.store.prefix}/versions/{second}/thresholds.json"
    registry.store.s3.put_object(Bucket="fraud-models", Key=key, Body=b'{"review": 0.0, "decline": 0.0}')
    assert container.holder.current()[1] == second
    with pytest.raises(RegistryError, match="SHA-256"):
        build_container(aws_settings.model_copy(update={"registry_uri": registry.uri}))
    with pytest.raises(RegistryError, match="no champion"):
        build_container(aws_settings.model_copy(update={"registry_uri": "s3://fraud-models/empty"}))


def test_allow_and_block_lists(aws_settings):
    client = TestClient(create_app(build_container(aws_settings)))
    assert client.put("/v1/lists/block/card", json={"id": "card-3", "reason": "reported stolen"},
                      headers=HEADERS).status_code == 204
    blocked = client.post("/v1/score", json=txn(3), headers=HEADERS).json()
    assert blocked["decision"] == "decline" and blocked["override"] == {
        "list": "block", "entity": "card", "reason": "reported stolen"}
    client.put("/v1/lists/allow/terminal", json={"id": "term-4", "reason": "trusted merchant"}, headers=HEADERS)
    allowed = client.post("/v1/score", json=txn(4), headers=HEADERS).json()
    assert allowed["decision"] == "approve" and allowed["override"]["list"] == "allow"
    both = {"transactions": [txn(21), {**txn(22), "card_id": "card-3", "terminal_id": "term-4"}, txn(23)]}
    results = client.post("/v1/score/batch", json=both, headers=HEADERS).json()["results"]
    assert [r["override"] and r["override"]["list"] for r in results] == [None, "block", None]  # block wins
    assert client.post("/v1/lists/block/card/remove", json={"id": "card-3"}, headers=HEADERS).status_code == 204
    assert client.post("/v1/lists/block/card/remove", json={"id": "card-3"}, headers=HEADERS).status_code == 404


def test_round_trips_per_scored_transaction(aws_settings):
    """DynamoDB calls on the scoring path (each is milliseconds in AWS, and a batch runs
    them in sequence): one batched read of the allow/block lists per request, then per new
    transaction a conditional claim, one batched read of the card's and the terminal's
    state, one transaction writing both (and the features record), and the stored answer.
    Review messages add their outbox record, counted apart; the state's heartbeat (a fresh
    state only, once a minute) is not written here: the tables were never loaded."""
    from collections import Counter

    container = build_container(aws_settings)
    db = container.stores["idempotency"].db
    calls = []

    def count(params, **kwargs):
        table = params.get("TableName") or next(iter(params.get("RequestItems", {})), None)
        if "TransactItems" in params:
            table = {item["Put"]["TableName"] for item in params["TransactItems"]}.pop()
        calls.append((kwargs["event_name"].split(".")[-1], table))

    db.meta.events.register("provide-client-params.dynamodb", count)
    try:
        n = 20
        container.scoring.score_many([Transaction.model_validate(txn(200 + i)) for i in range(n)], "trips")
    finally:
        db.meta.events.unregister("provide-client-params.dynamodb", count)
    s = aws_settings
    assert Counter(c for c in calls if c[1] != s.outbox_table) == {
        ("BatchGetItem", s.lists_table): 1, ("PutItem", s.idempotency_table): 2 * n,
        # + 1: the state's coverage (watermark and heartbeat), read once per recheck period (5 min)
        ("BatchGetItem", s.features_table): n + 1, ("TransactWriteItems", s.features_table): n}


def test_a_failed_batch_retried_counts_each_transaction_once(aws_settings, local_settings, monkeypatch):
    """The model stage fails after the batch's features were computed and its claims are
    released; the client retries. The answers equal a clean run's, and each card's state
    counts each of its transactions once."""
    batch = [Transaction.model_validate(txn(300 + i)) for i in range(14)]  # cards repeat (i % 7)
    clean = build_container(local_settings).scoring.score_many(batch, "clean")

    container = build_container(aws_settings)
    real_model = container.scoring._model
    monkeypatch.setattr(container.scoring, "_model", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        container.scoring.score_many(batch, "first")
    monkeypatch.setattr(container.scoring, "_model", real_model)
    retried = container.scoring.score_many(batch, "retry")
    assert [(r.probability, r.decision, r.reasons) for r in retried] == \
        [(r.probability, r.decision, r.reasons) for r in clean]
    from fraud.features.online import entity_key

    card = container.stores["features"].get(entity_key(container.online.keys, "card", "card-0")).value
    assert card["n"] == sum(t.card_id == "card-0" for t in batch) == 2
