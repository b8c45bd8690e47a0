"""Wiring: build the adapters and services for the configured backend.

``local``: in-process stores, queue and metrics, the local registry; ``aws``: DynamoDB
tables, the SQS review queue and the registry on S3 (the CDK app sets the names).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fraud.config import load_config
from fraud.decisions import open_decision_log
from fraud.features.online import STATE_WATERMARK_KEY, OnlineFeatures
from fraud.labels.store import open_label_store
from fraud.registry import ModelRegistry
from fraud.storage.kv import DynamoDBKeyValueStore, InMemoryKeyValueStore, KeyValueStore
from fraud.storage.metrics import EMFMetricsSink, InMemoryMetricsSink, MetricsSink, NullMetricsSink
from fraud.storage.queue import InMemoryQueue, MessageQueue, SQSQueue

from .coverage import StateCoverage
from .decision_log import DecisionRecorder
from .feedback import FeedbackService
from .live_drift import LiveDriftWatch
from .metrics_output import emf_stream
from .model_holder import ModelHolder
from .review import ReviewRouter
from .scoring import Overrides, ScoringService
from .security import ApiKeyChecker, load_hash_key, secret_store
from .settings import Settings
from .telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    holder: ModelHolder
    online: OnlineFeatures
    stores: dict[str, KeyValueStore]
    queue: MessageQueue
    sink: MetricsSink
    telemetry: Telemetry
    router: ReviewRouter
    overrides: Overrides
    scoring: ScoringService
    feedback: FeedbackService
    api_keys: ApiKeyChecker
    coverage: StateCoverage


def _store(settings: Settings, table: str) -> KeyValueStore:
    if settings.backend == "aws":
        return DynamoDBKeyValueStore(table, endpoint_url=settings.aws_endpoint_url)
    return InMemoryKeyValueStore()


def _sink(settings: Settings, stream=None) -> MetricsSink:
    if settings.metrics == "emf":
        return EMFMetricsSink(settings.metrics_namespace, settings.service_name, stream or emf_stream(settings))
    if settings.metrics == "memory":
        return InMemoryMetricsSink()
    return NullMetricsSink()


def _decisions(settings: Settings, telemetry: Telemetry) -> DecisionRecorder | None:
    """The decision log (``Settings.decision_log_uri``), or None when it is off."""
    uri = settings.decision_log_uri
    if uri is None:
        uri = ".fraud/decisions" if settings.backend == "local" else ""
    decision_log = open_decision_log(uri, settings.aws_endpoint_url, settings.decision_log_timeout_s)
    return DecisionRecorder(decision_log, telemetry) if decision_log is not None else None


def build_container(settings: Settings, queue: MessageQueue | None = None, metrics_stream=None) -> Container:
    """Everything the API needs; loads and verifies the champion model (fails loudly)."""
    secrets = secret_store(settings)
    keys = load_hash_key(settings, secrets)  # pseudonyms, and the registry's manifest signatures
    holder = ModelHolder(ModelRegistry.open(settings.registry_uri, settings.aws_endpoint_url, keys),
                         settings.champion_recheck_s, settings.model_threads)
    stores = {name: _store(settings, getattr(settings, f"{name}_table"))
              for name in ("features", "idempotency", "outbox", "lists", "feedback")}
    online = OnlineFeatures(holder.bundle.spec, stores["features"], keys=keys)
    drain_queue = None
    if queue is None and settings.review_queue_url:
        queue = SQSQueue(settings.review_queue_url, settings.aws_endpoint_url, timeout_s=settings.review_send_timeout_s)
        drain_queue = SQSQueue(settings.review_queue_url, settings.aws_endpoint_url,
                               timeout_s=settings.drain_send_timeout_s)
    queue = queue or InMemoryQueue()
    sink = _sink(settings, metrics_stream)
    telemetry = Telemetry(sink)
    router = ReviewRouter(queue, stores["outbox"], telemetry, drain_queue=drain_queue, lease_s=settings.outbox_lease_s)
    overrides = Overrides(stores["lists"], keys)
    coverage = StateCoverage(stores["features"], settings.state_max_age_s)
    drift = LiveDriftWatch(holder.registry, telemetry, settings.live_drift_rows, settings.live_drift_features) \
        if settings.live_drift_rows else None
    if drift is not None:  # the champion's reference read at the cold start, not on a request
        drift.prepare(holder.version, holder.bundle.feature_names)
    scoring = ScoringService(holder, online, stores["idempotency"], overrides, router, telemetry, keys,
                             settings.in_progress_timeout_s, settings.max_clock_skew_s, settings.currency_rates,
                             coverage, settings.state_fallback, decisions=_decisions(settings, telemetry),
                             live_drift=drift)
    feedback = FeedbackService(stores["feedback"], stores["idempotency"], online, telemetry,
                               settings.feedback_window_days, settings.recall_slo,
                               open_label_store(settings.labels_uri, settings.aws_endpoint_url)
                               if settings.labels_uri else None)
    if settings.history_path and settings.backend == "local":
        entities = warm_from_history(online, settings.history_path, settings.config_path)
        log.info("feature state warmed from %s: %d cards and terminals", settings.history_path, entities)
    return Container(settings, holder, online, stores, queue, sink, telemetry, router, overrides, scoring, feedback,
                     ApiKeyChecker(settings, secrets), coverage)


def warm_from_history(online: OnlineFeatures, source: str, config_path: str | None) -> int:
    """Load the last month of ``source`` into the online state (local serving only)."""
    import pandas as pd

    from fraud.io import load_transactions

    config = load_config(config_path)
    frame, _ = load_transactions(source, config)
    if not len(frame):
        return 0
    newest = frame["timestamp"].max()
    entities = online.load_history(frame[frame["timestamp"] >= newest - pd.Timedelta(days=35)])
    online.store.put(STATE_WATERMARK_KEY, {"transactions_until": newest.isoformat(), "source": str(source)})
    return entities
