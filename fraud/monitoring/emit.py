"""The health as CloudWatch metrics (EMF lines through ``fraud.storage.metrics``), one blob
per run, under the service ``fraud-monitoring``. The alarms (``infra/monitoring.py``) divide
nothing: they read ScorePSI / FeaturePSIMax only when ScoredRows reaches the minimum and
PolicyRecall only when LabelledFrauds does. A figure without data is left out, not sent
as 0."""

from __future__ import annotations

from fraud.storage.metrics import MetricsSink

from .health import Health

SERVICE = "fraud-monitoring"


def health_metrics(health: Health) -> dict[str, tuple[float, str]]:
    metrics = {"ScoredRows": (health.scored_rows, "Count"), "LabelledRows": (health.labelled_rows, "Count"),
               "LabelledFrauds": (health.labelled_frauds, "Count"), "Healthy": (int(health.healthy), "Count")}
    optional = {"ScorePSI": health.score_psi, "FeaturePSIMax": health.feature_psi_max,
                "PolicyRecall": health.recall, "PolicyPrecision": health.precision,
                "ReviewShare": health.review_share, "HardExampleRate": health.hard_example_rate}
    metrics.update({name: (value, "None") for name, value in optional.items() if value is not None})
    return metrics


def emit_health(health: Health, sink: MetricsSink) -> dict[str, tuple[float, str]]:
    metrics = health_metrics(health)
    sink.put(metrics)
    return metrics
