"""Message queue: in memory (local, tests) and SQS.

``send(body, dedup_id)`` returns the message id. On a FIFO queue (URL ending ``.fifo``)
the dedup id becomes SQS's MessageDeduplicationId, so a resend within five minutes is
dropped by SQS itself as a second guard behind the sender's own conditional write.
"""

from __future__ import annotations

import json
import threading
import uuid
from abc import ABC, abstractmethod


class QueueError(RuntimeError):
    """Sending failed (the caller keeps the message and retries later)."""


class MessageQueue(ABC):
    @abstractmethod
    def send(self, body: dict, dedup_id: str) -> str: ...

    @abstractmethod
    def receive(self, max_messages: int = 10) -> list[dict]:
        """Read and delete up to ``max_messages`` (for local use and tests)."""


class InMemoryQueue(MessageQueue):
    def __init__(self):
        self._messages: list[dict] = []
        self._lock = threading.Lock()
        self.fail = False  # tests flip this to simulate an outage

    def send(self, body: dict, dedup_id: str) -> str:
        if self.fail:
            raise QueueError("queue unavailable")
        with self._lock:
            message_id = str(uuid.uuid4())
            self._messages.append({"id": message_id, "dedup_id": dedup_id, "body": json.loads(json.dumps(body))})
            return message_id

    def receive(self, max_messages: int = 10) -> list[dict]:
        with self._lock:
            out, self._messages = self._messages[:max_messages], self._messages[max_messages:]
        return [m["body"] for m in out]

    def __len__(self) -> int:
        return len(self._messages)


class SQSQueue(MessageQueue):
    def __init__(self, queue_url: str, endpoint_url: str | None = None, sqs_client=None, timeout_s: float = 1.0):
        """``timeout_s``: the longest one send may take (one attempt; the caller keeps the
        message and tries again later)."""
        from .aws import client

        self.url = queue_url
        self.fifo = queue_url.endswith(".fifo")
        self.sqs = sqs_client or client("sqs", endpoint_url, timeout_s=timeout_s)

    def send(self, body: dict, dedup_id: str) -> str:
        kwargs = {"QueueUrl": self.url, "MessageBody": json.dumps(body, default=str)}
        if self.fifo:
            kwargs.update(MessageGroupId="reviews", MessageDeduplicationId=dedup_id[:128])
        try:
            return self.sqs.send_message(**kwargs)["MessageId"]
        except Exception as exc:  # noqa: BLE001 - any transport or service error means "not sent"
            raise QueueError(f"SQS send failed: {type(exc).__name__}: {exc}") from exc

    def receive(self, max_messages: int = 10) -> list[dict]:
        out = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=min(max_messages, 10),
                                       WaitTimeSeconds=0)
        bodies = []
        for m in out.get("Messages", []):
            bodies.append(json.loads(m["Body"]))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return bodies
