"""The review outbox under the faults that happen: SQS that accepts connections and never
answers (a brownout), and a drain killed mid-send. Messages go to a standard SQS queue, which
de-duplicates nothing, so "exactly once" is what the application itself sent."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers.api import HEADERS, queue_messages
from helpers.proxy import SwitchableProxy

ROOT = Path(__file__).resolve().parents[2]


def txn(i: int) -> dict:
    return {"transaction_id": f"bo-{i}", "timestamp": f"2026-02-13T11:{i % 60:02d}:00Z", "card_id": f"card-{i % 9}",
            "terminal_id": f"term-{i % 4}", "amount": 25.0 + i, "currency": "EUR"}


@pytest.fixture
def standard_queue(moto_server, aws_settings):
    from fraud.storage.aws import client

    return client("sqs", moto_server).create_queue(QueueName=f"reviews-{aws_settings.outbox_table}")["QueueUrl"]


@pytest.fixture
def sqs_proxy(moto_server):
    proxy = SwitchableProxy(int(moto_server.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@pytest.fixture
def review_settings(aws_settings, s3_registry, review_bundle, moto_server, standard_queue):
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open("s3://fraud-models/review-registry", moto_server, keys=s3_registry.keys)
    if registry.champion() is None:
        registry.promote(registry.publish(review_bundle), "every transaction goes to review")
    return aws_settings.model_copy(update={"registry_uri": registry.uri,
                                           "review_queue_url": standard_queue, "metrics": "memory"})


def test_an_sqs_brownout_keeps_review_requests_fast_and_loses_nothing(review_settings, sqs_proxy, moto_server,
                                                                      standard_queue):
    from fraud.storage.queue import SQSQueue
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container

    queue = SQSQueue(standard_queue, sqs_proxy.endpoint, timeout_s=review_settings.review_send_timeout_s)
    container = build_container(review_settings, queue=queue)
    client = TestClient(create_app(container))
    assert client.post("/v1/score", json=txn(0), headers=HEADERS).json()["decision"] == "review"  # sent through

    sqs_proxy.set_mode("hang")
    latencies = []
    for i in range(1, 41):
        started = time.perf_counter()
        r = client.post("/v1/score", json=txn(i), headers=HEADERS)
        latencies.append(time.perf_counter() - started)
        assert r.status_code == 200 and r.json()["decision"] == "review"
    assert sqs_proxy.hung >= 1  # the sends did go into the hanging server
    assert max(latencies) < 1.0, f"slowest review request {max(latencies):.2f} s during the brownout"
    assert client.get("/v1/health").json()["outbox_pending"] == 40
    assert container.router.drain()["sent"] == 0  # still hanging: nothing sent, nothing lost

    sqs_proxy.set_mode("forward")
    while container.router.drain()["pending"]:
        pass
    delivered = collections.Counter(m["transaction_id"] for m in queue_messages(moto_server, standard_queue))
    assert delivered == {f"bo-{i}": 1 for i in range(41)}
    assert client.get("/v1/health").json() == {"status": "ok", "model_version": container.holder.version,
                                               "outbox_pending": 0}


DRAIN = """
import sys
from fraud.storage.kv import DynamoDBKeyValueStore
from fraud.storage.metrics import NullMetricsSink
from fraud.storage.queue import SQSQueue
from lambda_handler.review import ReviewRouter
from lambda_handler.telemetry import Telemetry

table, queue_url, sqs_endpoint, db_endpoint = sys.argv[1:5]
router = ReviewRouter(SQSQueue(queue_url, sqs_endpoint, timeout_s=60), DynamoDBKeyValueStore(table, db_endpoint),
                      Telemetry(NullMetricsSink()), lease_s=3)
print("draining", flush=True)
router.drain()
"""


def test_a_drain_killed_mid_send_is_retried_after_its_lease(aws_settings, sqs_proxy, moto_server, standard_queue):
    from fraud.storage.kv import DynamoDBKeyValueStore
    from fraud.storage.metrics import NullMetricsSink
    from fraud.storage.queue import SQSQueue
    from lambda_handler.review import PENDING, PREFIX, ReviewRouter
    from lambda_handler.telemetry import Telemetry

    outbox = DynamoDBKeyValueStore(aws_settings.outbox_table, moto_server)
    ids = [f"kill-{i}" for i in range(5)]
    for tid in ids:  # left pending by an SQS outage
        outbox.put(PREFIX + tid, {"message": {"transaction_id": tid}, "state": "pending", "attempts": 1,
                                  "created_at": "2026-02-13T11:00:00Z", "lease_until": 0.0},
                   expected_version=0, ttl_seconds=3600, tag=PENDING)
    sqs_proxy.set_mode("hang")
    drain = subprocess.Popen([sys.executable, "-c", DRAIN, aws_settings.outbox_table, standard_queue,
                              sqs_proxy.endpoint, moto_server], env={**os.environ, "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while sqs_proxy.hung == 0 and time.monotonic() < deadline and drain.poll() is None:
        time.sleep(0.05)
    assert sqs_proxy.hung >= 1, drain.communicate()[0] if drain.poll() is not None else "the drain never sent"
    drain.send_signal(signal.SIGKILL)  # dies between claiming a message and marking it sent
    drain.wait(10)
    states = collections.Counter(item.value["state"] for _, item in outbox.tagged(PENDING))
    assert states == {"sending": 1, "pending": 4}

    sqs_proxy.set_mode("forward")
    router = ReviewRouter(SQSQueue(standard_queue, moto_server), outbox, Telemetry(NullMetricsSink()), lease_s=3)
    assert router.drain() == {"sent": 4, "failed": 0, "pending": 1}  # the dead drain's lease still runs
    time.sleep(3.5)
    assert router.drain() == {"sent": 1, "failed": 0, "pending": 0}
    delivered = collections.Counter(m["transaction_id"] for m in queue_messages(moto_server, standard_queue))
    assert delivered == {tid: 1 for tid in ids}
    assert json.loads(json.dumps(router.drain())) == {"sent": 0, "failed": 0, "pending": 0}
