"""What the API reports to CloudWatch (as EMF through the metrics sink).

Requests, latency and decisions per endpoint; a score-distribution bucket per scored
transaction; review-queue send failures and the outbox size; decision records the
decision log lost; cold starts; and from feedback: the recall and precision of the
review+decline policy over a sliding window, frauds missed on approved transactions, the
hard-example rate, and ``RecallBelowSLO`` (1 or 0), which an alarm watches; and the live
drift of each window of scored transactions (``lambda_handler.live_drift``).
"""

from __future__ import annotations

import threading
import time

from fraud.storage.metrics import MetricsSink

SCORE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9)


def score_bucket(p: float) -> str:
    lower = 0.0
    for edge in SCORE_BUCKETS:
        if p < edge:
            return f"{lower:g}-{edge:g}"
        lower = edge
    return f"{lower:g}-1"


class Telemetry:
    def __init__(self, sink: MetricsSink):
        self.sink = sink
        self._cold = True
        self._lock = threading.Lock()
        self._expected_due = 0.0

    def cold_start(self) -> None:
        with self._lock:
            cold, self._cold = self._cold, False
        if cold:
            self.sink.put({"ColdStart": (1, "Count")})

    def request(self, endpoint: str, status: int, latency_ms: float) -> None:
        self.sink.put({"Requests": (1, "Count"), "LatencyMs": (latency_ms, "Milliseconds"),
                       "Errors": (1 if status >= 500 else 0, "Count"),
                       "ClientErrors": (1 if 400 <= status < 500 else 0, "Count")}, {"Endpoint": endpoint})

    def decision(self, decision: str, probability: float, model_version: str,
                 expected_review_share: float | None = None) -> None:
        self.sink.put({"Decisions": (1, "Count")}, {"Decision": decision})
        self.sink.put({"Scores": (1, "Count")}, {"ScoreBucket": score_bucket(probability)})
        if expected_review_share is not None and time.monotonic() >= self._expected_due:
            # the review share the thresholds were chosen for, once a minute: the review-volume
            # alarm divides the live share of Decisions by it (a flood of reviews is the first
            # symptom of broken features)
            self._expected_due = time.monotonic() + 60
            self.sink.put({"ExpectedReviewShare": (expected_review_share, "None")})

    def live_drift(self, window) -> None:
        """A window's PSIs (``fraud.monitoring.live.LiveWindow``) against the champion's reference."""
        metrics = {"LivePSIRows": (window.rows, "Count"), "LiveScorePSI": (window.score_psi, "None")}
        if window.feature_psi_max is not None:
            metrics["LiveFeaturePSIMax"] = (window.feature_psi_max, "None")
        self.sink.put(metrics)

    def state_fallback(self, status: str) -> None:
        """A transaction decided by the fallback policy (feature state empty or stale)."""
        self.sink.put({"StateFallback": (1, "Count")}, {"State": status})

    def review_send_failed(self) -> None:
        self.sink.put({"ReviewSendFailures": (1, "Count")})

    def label_store_failed(self) -> None:
        """A recorded label that did not reach the label store (training will miss it)."""
        self.sink.put({"LabelStoreFailures": (1, "Count")})

    def decision_log_failed(self, records: int) -> None:
        """Decision records that did not reach the decision log (counted per record)."""
        self.sink.put({"DecisionLogFailures": (records, "Count")})

    def outbox_size(self, pending: int) -> None:
        self.sink.put({"OutboxPending": (pending, "Count")})

    def policy_quality(self, stats: dict, slo: float) -> None:
        metrics = {"FeedbackLabels": (stats["labels"], "Count"),
                   "MissedFraudOnApproved": (stats["missed"], "Count"),
                   "HardExampleRate": (stats["hard_rate"], "None")}
        if stats["recall"] is not None:
            metrics["PolicyRecall"] = (stats["recall"], "None")
            metrics["RecallBelowSLO"] = (1 if stats["recall"] < slo else 0, "Count")
        if stats["precision"] is not None:
            metrics["PolicyPrecision"] = (stats["precision"], "None")
        self.sink.put(metrics)
