"""Constants and helpers for the API tests."""

from __future__ import annotations

import hashlib
import socket

API_KEY = "test-key-123"
API_KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()
HEADERS = {"x-api-key": API_KEY}
TABLES = ("features", "idempotency", "outbox", "lists", "feedback")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def queue_messages(endpoint: str, queue_url: str) -> list[dict]:
    import json

    from fraud.storage.aws import client

    sqs = client("sqs", endpoint)
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  VisibilityTimeout=60).get("Messages", [])
        if not got:
            return out
        out += [json.loads(m["Body"]) for m in got]
