"""Review routing with nothing lost and nothing doubled.

For a review decision the router first *claims* the transaction in the outbox table with
a conditional write (only the first claim of a transaction id succeeds: retries and
concurrent duplicates stop there). It then sends the message to the review queue, with a
few quick attempts. On success the claim is marked sent; on failure it stays pending in
the outbox (a durable DynamoDB table in AWS), the failure is counted, and the request
still answers. ``drain`` re-sends pending messages; it runs on requests when the outbox
is not empty and on a schedule (``lambda_handler.outbox``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from fraud.storage.kv import ConditionFailed, KeyValueStore
from fraud.storage.queue import MessageQueue, QueueError

log = logging.getLogger(__name__)
PREFIX = "review#"
RETENTION_S = 14 * 86400


class ReviewRouter:
    def __init__(self, queue: MessageQueue, outbox: KeyValueStore, telemetry, attempts: int = 2):
        self.queue = queue
        self.outbox = outbox
        self.telemetry = telemetry
        self.attempts = attempts
        self._pending_hint = 0

    def route(self, message: dict) -> str:
        """Queue a review message once per transaction id; returns 'sent', 'pending' or 'duplicate'."""
        key = PREFIX + message["transaction_id"]
        record = {"message": message, "state": "pending", "attempts": 0,
                  "created_at": datetime.now(timezone.utc).isoformat()}
        try:
            version = self.outbox.put(key, record, expected_version=0, ttl_seconds=RETENTION_S)
        except ConditionFailed:
            return "duplicate"
        return self._send(key, record, version)

    def _send(self, key: str, record: dict, version: int) -> str:
        error = None
        for attempt in range(self.attempts):
            try:
                self.queue.send(record["message"], dedup_id=record["message"]["transaction_id"])
                break
            except QueueError as exc:
                error = exc
                time.sleep(0.01 * (attempt + 1))
        else:
            record = {**record, "attempts": record["attempts"] + self.attempts, "last_error": str(error)[:300]}
            try:
                self.outbox.put(key, record, expected_version=version, ttl_seconds=RETENTION_S)
            except ConditionFailed:
                pass
            self._pending_hint += 1
            self.telemetry.review_send_failed()
            log.warning("review message for %s kept in the outbox: %s", record["message"]["transaction_id"], error)
            return "pending"
        try:
            self.outbox.put(key, {**record, "state": "sent", "sent_at": datetime.now(timezone.utc).isoformat()},
                            expected_version=version, ttl_seconds=RETENTION_S)
        except ConditionFailed:
            pass  # a concurrent drain already marked it
        return "sent"

    def pending(self) -> list[tuple[str, dict, int]]:
        return [(k, item.value, item.version) for k, item in self.outbox.scan(PREFIX)
                if item.value.get("state") == "pending"]

    def drain(self, limit: int = 100) -> dict:
        """Send pending messages; each is claimed (version check) before it is sent, so two
        drains never send the same message."""
        sent = failed = 0
        for key, record, version in self.pending()[:limit]:
            claimed = {**record, "state": "sending"}
            try:
                version = self.outbox.put(key, claimed, expected_version=version, ttl_seconds=RETENTION_S)
            except ConditionFailed:
                continue
            try:
                self.queue.send(record["message"], dedup_id=record["message"]["transaction_id"])
            except QueueError as exc:
                self.outbox.put(key, {**record, "attempts": record["attempts"] + 1, "last_error": str(exc)[:300]},
                                expected_version=version, ttl_seconds=RETENTION_S)
                self.telemetry.review_send_failed()
                failed += 1
                continue
            self.outbox.put(key, {**claimed, "state": "sent", "sent_at": datetime.now(timezone.utc).isoformat()},
                            expected_version=version, ttl_seconds=RETENTION_S)
            sent += 1
        remaining = len(self.pending())
        self._pending_hint = remaining
        self.telemetry.outbox_size(remaining)
        return {"sent": sent, "failed": failed, "pending": remaining}

    def maybe_drain(self) -> None:
        """Opportunistic drain on the request path, only when something is known pending."""
        if self._pending_hint > 0:
            self.drain(limit=25)
