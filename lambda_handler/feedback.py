"""Labels coming back (reviewer outcomes, chargebacks) and what they say about the policy.

A label is recorded once per transaction (a conditional write; repeats are reported as
duplicates), folded into the terminal's online label state at the time it became known
(the server's clock: that is when the system knew it), and counted in per-day policy
statistics. Over the sliding window the service publishes recall and precision of the
review+decline policy, frauds missed on approved transactions and the hard-example rate,
and whether recall is below the SLO.

The recorded label then goes to the label store (``fraud.labels``), from which the nightly
job trains, with the time it became known. A store that fails does not fail the request:
the label is already recorded and the answer would only make the client retry; the failure
is counted (``LabelStoreFailures``) and logged with the whole record, which ``fraud labels
import`` takes back. Every call appends the stored label again (the store keeps it once),
so a client that resends the same feedback also repairs a miss.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

from fraud.features.online import OnlineFeatures
from fraud.labels.store import LabelStore
from fraud.storage.kv import ConditionFailed, KeyValueStore, Write

from .schemas import Feedback
from .scoring import TXN_PREFIX
from .telemetry import Telemetry

log = logging.getLogger(__name__)
FEEDBACK_TTL_S = 400 * 86400


class UnknownTransaction(LookupError):
    """Feedback for a transaction id this service never scored."""


class FeedbackService:
    def __init__(self, store: KeyValueStore, idempotency: KeyValueStore, online: OnlineFeatures,
                 telemetry: Telemetry, window_days: int, recall_slo: float, labels: LabelStore | None = None):
        self.store = store
        self.idempotency = idempotency
        self.online = online
        self.telemetry = telemetry
        self.window_days = window_days
        self.recall_slo = recall_slo
        self.labels = labels

    def record(self, fb: Feedback, now: datetime | None = None) -> tuple[bool, bool]:
        """(recorded, duplicate): a retry of the same label is answered as recorded; another
        label for an already labelled transaction is a duplicate and changes nothing.

        Each effect happens once, also when a request dies half-way and is retried: the label
        and its day's statistics are written in one transaction, and the terminal's label
        state carries its own marker (``OnlineFeatures.add_label``), applied on every call."""
        now = now or datetime.now(timezone.utc)
        scored = self.idempotency.get(TXN_PREFIX + fb.transaction_id)
        if scored is None or scored.value.get("state") != "done":
            raise UnknownTransaction(f"transaction {fb.transaction_id} was not scored by this service; labels "
                                     f"for transactions it never scored go in by bulk import")
        scored = scored.value
        entry, first = self._record_once(fb, scored, now)
        self.online.add_label(scored["terminal_id"], entry["label"] == "fraud", known_at=entry["known_at"],
                              label_id=fb.transaction_id, card_ref=scored.get("card_ref"))
        if first:
            self.telemetry.policy_quality(self.window_stats(now), self.recall_slo)
        self._to_label_store(fb.transaction_id, entry)
        same = (entry["label"], entry["source"], entry["time"]) == (fb.label, fb.source, fb.time.isoformat())
        return same, not same

    def _to_label_store(self, transaction_id: str, entry: dict) -> None:
        """Append the recorded label; a failure is counted and logged, never raised."""
        if self.labels is None:
            return
        row = {"transaction_id": transaction_id, "label": int(entry["label"] == "fraud"), "source": entry["source"],
               "known_at": entry["known_at"]}
        try:
            self.labels.append([row])
        except Exception:
            self.telemetry.label_store_failed()
            log.exception("label not written to the label store %s (re-import it with `fraud labels import`): %s",
                          self.labels.uri, json.dumps(row))

    def _record_once(self, fb: Feedback, scored: dict, now: datetime) -> tuple[dict, bool]:
        """The stored label entry, and whether this call wrote it (with its statistics)."""
        key, day = f"label#{fb.transaction_id}", f"stats#{now:%Y-%m-%d}"
        fraud = fb.label == "fraud"
        flagged = scored["decision"] in ("review", "decline")
        p = float(scored["probability"])
        cell = ("tp" if flagged else "fn") if fraud else ("fp" if flagged else "tn")
        entry = {"label": fb.label, "source": fb.source, "time": fb.time.isoformat(), "known_at": now.isoformat()}
        for _ in range(20):
            found = self.store.get_many([key, day])
            if key in found:
                return found[key].value, False
            old = found.get(day)
            stats = dict(old.value) if old else {"tp": 0, "fn": 0, "fp": 0, "tn": 0, "hard": 0, "missed_amount": 0.0}
            stats[cell] += 1
            stats["hard"] += int((p if fraud else 1.0 - p) < 0.5)
            if cell == "fn":
                stats["missed_amount"] += float(scored["amount"])
            try:
                self.store.transact([Write(key, entry, 0, FEEDBACK_TTL_S),
                                     Write(day, stats, old.version if old else 0, FEEDBACK_TTL_S)])
                return entry, True
            except ConditionFailed:  # another label of the day (or this one) was written meanwhile
                continue
        raise ConditionFailed(f"{key}: gave up after 20 concurrent modifications")

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
