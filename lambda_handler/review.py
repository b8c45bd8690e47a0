"""Review routing with nothing lost and nothing doubled, also when SQS hangs or a sender dies.

A review decision first writes the message to the outbox table, claimed by this request
for a lease (``sending``) with a conditional write: only the first write for a transaction
id succeeds, so retries and concurrent duplicates stop there. The request then makes one
send with a short timeout. Sent, the record is marked ``sent`` and leaves the pending index;
not sent (an error, a timeout), it goes back to ``pending`` and the request still answers.
After a failed send the request path leaves sends to the drain for a while, so an SQS
brownout costs each request at most one short timeout.

``drain`` sends what is pending, and what a sender claimed and never finished (its lease
ran out: the process died mid-send). Each message is claimed with a version check before it
is sent, so two drains never send the same message. The lease is shorter than SQS FIFO's
five-minute de-duplication window: if a dead sender's message did reach SQS, the resend is
dropped by SQS. Pending records carry the outbox tag, so they are found through the sparse
index without reading the sent ones. The drain runs on a schedule
(``lambda_handler.outbox``) and, within a small time budget, on requests when something is
known to be pending.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from fraud.storage.kv import ConditionFailed, KeyValueStore
from fraud.storage.queue import MessageQueue, QueueError

log = logging.getLogger(__name__)
PREFIX = "review#"
PENDING = "outbox-pending"  # the tag of records waiting for (or in) a send
RETENTION_S = 14 * 86400


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class ReviewRouter:
    def __init__(self, queue: MessageQueue, outbox: KeyValueStore, telemetry, drain_queue: MessageQueue | None = None,
                 lease_s: float = 60.0, request_drain_budget_s: float = 0.2, quiet_after_failure_s: float = 5.0):
        """``queue`` sends on the request path (short timeout); ``drain_queue`` (default the
        same) sends from scheduled drains, which may wait longer."""
        self.queue = queue
        self.drain_queue = drain_queue or queue
        self.outbox = outbox
        self.telemetry = telemetry
        self.lease_s = lease_s
        self.request_drain_budget_s = request_drain_budget_s
        self.quiet_after_failure_s = quiet_after_failure_s
        self._pending_hint = 0
        self._quiet_until = 0.0  # monotonic time before which the request path does not send

    def route(self, message: dict) -> str:
        """Queue a review message once per transaction id; returns 'sent', 'pending' (kept
        in the outbox for the drain) or 'duplicate'."""
        key = PREFIX + message["transaction_id"]
        quiet = time.monotonic() < self._quiet_until
        record = {"message": message, "state": "pending" if quiet else "sending", "attempts": 0,
                  "created_at": _now_iso(), "lease_until": 0.0 if quiet else time.time() + self.lease_s}
        try:
            version = self.outbox.put(key, record, expected_version=0, ttl_seconds=RETENTION_S, tag=PENDING)
        except ConditionFailed:
            return "duplicate"
        if quiet:  # SQS failed moments ago: the drain sends it
            self._pending_hint += 1
            return "pending"
        return self._send(key, record, version, self.queue, request_path=True)

    def _send(self, key: str, record: dict, version: int, queue: MessageQueue, request_path: bool) -> str:
        """One send of a record this process has claimed (``version``)."""
        try:
            queue.send(record["message"], dedup_id=record["message"]["transaction_id"])
        except QueueError as exc:
            back = {**record, "state": "pending", "lease_until": 0.0, "attempts": record["attempts"] + 1,
                    "last_error": str(exc)[:300]}
            try:
                self.outbox.put(key, back, expected_version=version, ttl_seconds=RETENTION_S, tag=PENDING)
            except ConditionFailed:
                pass  # our lease ran out and another sender took it over
            if request_path:
                self._quiet_until = time.monotonic() + self.quiet_after_failure_s
            self._pending_hint += 1
            self.telemetry.review_send_failed()
            log.warning("review message for %s kept in the outbox: %s", record["message"]["transaction_id"], exc)
            return "pending"
        try:  # untagged: out of the pending index
            self.outbox.put(key, {**record, "state": "sent", "sent_at": _now_iso()}, expected_version=version,
                            ttl_seconds=RETENTION_S)
        except ConditionFailed:
            pass  # our lease ran out and another sender took it over (SQS de-duplicates the resend)
        return "sent"

    def pending(self, limit: int = 1000) -> list[tuple[str, dict, int]]:
        """Messages due for a send: pending, or claimed by a sender whose lease ran out."""
        now = time.time()
        return [(key, item.value, item.version) for key, item in self.outbox.tagged(PENDING, limit)
                if item.value["state"] == "pending" or item.value.get("lease_until", 0.0) <= now]

    def pending_count(self, limit: int = 1000) -> int:
        """Messages not yet sent (waiting or being sent), up to ``limit``: read from the
        pending index, never by scanning the outbox."""
        return len(self.outbox.tagged(PENDING, limit))

    def drain(self, limit: int = 100, budget_s: float | None = None, request_path: bool = False) -> dict:
        """Send due messages until ``limit``, the time budget, or the first failure (the
        queue is down: the next drain tries again)."""
        deadline = time.monotonic() + budget_s if budget_s is not None else float("inf")
        queue = self.queue if request_path else self.drain_queue
        sent = failed = 0
        for key, record, version in self.pending(limit):
            if time.monotonic() >= deadline:
                break
            claimed = {**record, "state": "sending", "lease_until": time.time() + self.lease_s}
            try:
                version = self.outbox.put(key, claimed, expected_version=version, ttl_seconds=RETENTION_S,
                                          tag=PENDING)
            except ConditionFailed:
                continue  # another drain claimed it
            if self._send(key, claimed, version, queue, request_path) != "sent":
                failed += 1
                break
            sent += 1
        remaining = self.pending_count()
        self._pending_hint = remaining
        self.telemetry.outbox_size(remaining)
        return {"sent": sent, "failed": failed, "pending": remaining}

    def maybe_drain(self) -> None:
        """Opportunistic drain on the request path: only when something is known pending and
        SQS has not just failed, within a small time budget."""
        if self._pending_hint > 0 and time.monotonic() >= self._quiet_until:
            self.drain(limit=25, budget_s=self.request_drain_budget_s, request_path=True)
