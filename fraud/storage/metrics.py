"""Metrics sink: CloudWatch Embedded Metric Format (through Powertools) or in memory.

EMF is a JSON line on stdout that CloudWatch Logs turns into metrics: no PutMetricData
call on the request path. Each ``put`` is one EMF blob with one dimension set.
"""

from __future__ import annotations

import json
import sys
import threading
from abc import ABC, abstractmethod


class MetricsSink(ABC):
    @abstractmethod
    def put(self, metrics: dict[str, tuple[float, str]], dimensions: dict[str, str] | None = None) -> None:
        """``metrics``: name -> (value, unit) where unit is a CloudWatch unit name."""


class EMFMetricsSink(MetricsSink):
    def __init__(self, namespace: str, service: str, stream=None):
        self.namespace = namespace
        self.service = service
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def put(self, metrics, dimensions=None) -> None:
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

        provider = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
        for name, value in (dimensions or {}).items():
            provider.add_dimension(name=name, value=str(value))
        for name, (value, unit) in metrics.items():
            provider.add_metric(name=name, unit=unit, value=float(value))
        blob = provider.serialize_metric_set()
        with self._lock:
            self.stream.write(json.dumps(blob, separators=(",", ":")) + "\n")
            self.stream.flush()


class InMemoryMetricsSink(MetricsSink):
    def __init__(self):
        self.records: list[tuple[dict, dict]] = []
        self._lock = threading.Lock()

    def put(self, metrics, dimensions=None) -> None:
        with self._lock:
            self.records.append(({k: v[0] for k, v in metrics.items()}, dict(dimensions or {})))

    def values(self, name: str) -> list[float]:
        return [m[name] for m, _ in self.records if name in m]


class NullMetricsSink(MetricsSink):
    def put(self, metrics, dimensions=None) -> None:
        return None
