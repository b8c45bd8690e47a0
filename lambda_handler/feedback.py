"""Labels coming back (reviewer outcomes, chargebacks) and what they say about the policy.

A label is recorded once per transaction (a conditional write; repeats are reported as
duplicates), folded into the terminal's online label state at the time it became known
(the server's clock: that is when the system knew it), and counted in per-day policy
statistics. Over the sliding window the service publishes recall and precision of the
review+decline policy, frauds missed on approved transactions and the hard-example rate,
and whether recall is below the SLO.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from fraud.features.online import OnlineFeatures
from fraud.storage.kv import ConditionFailed, KeyValueStore

from .schemas import Feedback
from .scoring import TXN_PREFIX
from .telemetry import Telemetry

log = logging.getLogger(__name__)
FEEDBACK_TTL_S = 400 * 86400


class FeedbackService:
    def __init__(self, store: KeyValueStore, idempotency: KeyValueStore, online: OnlineFeatures,
                 telemetry: Telemetry, window_days: int, recall_slo: float):
        self.store = store
        self.idempotency = idempotency
        self.online = online
        self.telemetry = telemetry
        self.window_days = window_days
        self.recall_slo = recall_slo

    def record(self, fb: Feedback, now: datetime | None = None) -> tuple[bool, bool]:
        """(recorded, duplicate)."""
        now = now or datetime.now(timezone.utc)
        fraud = fb.label == "fraud"
        scored = self.idempotency.get(TXN_PREFIX + fb.transaction_id)
        scored = scored.value if scored is not None and scored.value.get("state") == "done" else None
        entry = {"label": fb.label, "source": fb.source, "time": fb.time.isoformat(), "known_at": now.isoformat(),
                 "scored": scored is not None}
        try:
            self.store.put(f"label#{fb.transaction_id}", entry, expected_version=0, ttl_seconds=FEEDBACK_TTL_S)
        except ConditionFailed:
            return False, True
        if scored is None:
            log.info("label for %s recorded; the transaction was not scored here, so no features change",
                     fb.transaction_id)
            return True, False
        self.online.add_label(scored["terminal_id"], fraud, known_at=now)
        flagged = scored["decision"] in ("review", "decline")
        p = float(scored["probability"])
        p_true = p if fraud else 1.0 - p
        cell = ("tp" if flagged else "fn") if fraud else ("fp" if flagged else "tn")

        def bump(old):
            stats = old or {"tp": 0, "fn": 0, "fp": 0, "tn": 0, "hard": 0, "missed_amount": 0.0}
            stats[cell] += 1
            stats["hard"] += int(p_true < 0.5)
            if cell == "fn":
                stats["missed_amount"] += float(scored["amount"])
            return stats, None

        self.store.update(f"stats#{now:%Y-%m-%d}", bump, ttl_seconds=FEEDBACK_TTL_S)
        self.telemetry.policy_quality(self.window_stats(now), self.recall_slo)
        return True, False

    def window_stats(self, now: datetime | None = None) -> dict:
        now = now or datetime.now(timezone.utc)
        totals = {"tp": 0, "fn": 0, "fp": 0, "tn": 0, "hard": 0, "missed_amount": 0.0}
        for d in range(self.window_days):
            item = self.store.get(f"stats#{now - timedelta(days=d):%Y-%m-%d}")
            if item is not None:
                for k in totals:
                    totals[k] += item.value.get(k, 0)
        frauds = totals["tp"] + totals["fn"]
        flagged = totals["tp"] + totals["fp"]
        labels = frauds + totals["fp"] + totals["tn"]
        return {"labels": labels, "missed": totals["fn"], "missed_amount": totals["missed_amount"],
                "recall": totals["tp"] / frauds if frauds else None,
                "precision": totals["tp"] / flagged if flagged else None,
                "hard_rate": totals["hard"] / labels if labels else 0.0, "window_days": self.window_days}
