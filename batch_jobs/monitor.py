"""``fraud monitor``: the champion's health in a few lines, ``health.json`` and a report
page in ``--out``, the health as EMF metrics (``--metrics emf``, the AWS task), and an exit
code: 0 healthy (OK, or NOT_ENOUGH_DATA for a verdict), 3 unhealthy (DRIFT or
RECALL_BELOW_SLO); 1 and 2 keep their CLI meanings (failure, bad input)."""

from __future__ import annotations

import os
from pathlib import Path

from fraud.config import FraudConfig
from fraud.monitoring.emit import SERVICE, emit_health
from fraud.monitoring.health import Health
from fraud.monitoring.report import write_health_report
from fraud.monitoring.sources import check_health
from fraud.registry import ModelRegistry

UNHEALTHY = 3


DEFAULT_OUT = Path("runs") / "monitor"  # beside the nightly runs: ignored by git, kept out of the images


def run_monitor(config: FraudConfig, registry_uri: str | None, labels_uri: str | None, out: str | Path | None,
                decisions_uri: str | None = None, as_of=None, day=None, metrics: str = "none",
                endpoint_url: str | None = None) -> tuple[Health, dict]:
    """(health, written paths: under ``out``, default runs/monitor/<day>); EMF lines on stdout
    with ``metrics="emf"``."""
    registry = ModelRegistry.open(registry_uri or config.registry.uri, endpoint_url)
    health, _ = check_health(registry, config.monitoring, labels_uri, decisions_uri, as_of, day, endpoint_url)
    paths = write_health_report(Path(out) if out else DEFAULT_OUT / str(health.day), health)
    if metrics == "emf":
        from fraud.storage.metrics import EMFMetricsSink

        emit_health(health, EMFMetricsSink(os.environ.get("FRAUD_METRICS_NAMESPACE", "FraudScoring"), SERVICE))
    return health, paths


def parse_when(as_of: str | None, day: str | None):
    """--as-of and --day as (UTC Timestamp or None, date or None); ``InputError`` naming a bad one."""
    from datetime import date

    from fraud.monitoring.health import utc_time
    from fraud.validation import InputError

    try:
        when = utc_time(as_of) if as_of else None
    except ValueError:
        raise InputError(f"--as-of {as_of!r} is not an ISO time such as 2026-07-02T03:00Z") from None
    try:
        return when, date.fromisoformat(day) if day else None
    except ValueError:
        raise InputError(f"--day {day!r} is not a date YYYY-MM-DD") from None


def exit_code(health: Health) -> int:
    return 0 if health.healthy else UNHEALTHY
