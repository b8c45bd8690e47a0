"""``fraud hard-examples [--day DATE]``: the day's hard examples (``fraud.hard_examples``) from
the decision log and the label store, queued for labelling; a re-run adds only what is new
and what the day's cap has left. Without a day, yesterday (UTC): the scheduled task in AWS
runs it each night after the day's decision log is complete."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from fraud.config import FraudConfig
from fraud.decisions import read_decisions
from fraud.hard_examples import open_hard_example_queue, select_hard_examples
from fraud.registry import ModelRegistry, RegistryError
from fraud.validation import InputError


def review_thresholds(registry: ModelRegistry, versions) -> dict[str, float]:
    """Model version -> the review threshold it decided with (versions the registry does not
    hold are left out: their rows are judged by their labels only)."""
    out = {}
    for version in versions:
        try:
            out[version] = float(registry.read_json(version, "thresholds.json")["review"])
        except (RegistryError, FileNotFoundError, KeyError):
            continue
    return out


def default_day(now=None) -> str:
    """The UTC day before ``now`` (default: the current time), YYYY-MM-DD."""
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
    return str((now - pd.Timedelta(days=1)).date())


def queue_hard_examples(day: str | None, config: FraudConfig, registry_uri: str | None, decisions_uri: str | None,
                        labels_uri: str | None, queue_uri: str | None = None, now=None,
                        endpoint_url: str | None = None) -> dict:
    """Queue the hard examples of the UTC ``day`` (None: the day before ``now``); returns what
    was done, in numbers."""
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
    day = default_day(now) if day is None else day
    try:
        first = date.fromisoformat(day)
    except ValueError:
        raise InputError(f"--day {day!r} is not a date (YYYY-MM-DD)") from None
    hx = config.hard_examples
    decisions = read_decisions(decisions_uri or config.monitoring.decisions_uri, first, first + timedelta(days=1),
                               endpoint_url)
    labels = None
    if labels_uri:
        from fraud.labels import open_label_store

        labels = open_label_store(labels_uri, endpoint_url).read(now)
    registry = ModelRegistry.open(registry_uri or config.registry.uri, endpoint_url)
    versions = sorted(set(decisions["model_version"].dropna().astype(str))) if len(decisions) else []
    thresholds = review_thresholds(registry, versions)
    queue = open_hard_example_queue(queue_uri or hx.uri, endpoint_url)
    already_today = len(queue.read(day))
    examples = select_hard_examples(decisions, labels, thresholds, threshold_margin=hx.threshold_margin,
                                    hard_p_t=config.monitoring.hard_p_t, per_day=hx.per_day, as_of=now,
                                    queued=queue.ids(), room={day: hx.per_day - already_today})
    queued = queue.append(examples, now) if len(examples) else 0
    kinds = pd.Series([k for ks in examples["kinds"] for k in ks], dtype=object).value_counts().to_dict()
    return {"day": day, "scored": int(len(decisions)), "queued": queued, "queued_before": already_today,
            "cap": hx.per_day, "by_kind": {k: int(v) for k, v in kinds.items()},
            "versions_without_threshold": [v for v in versions if v not in thresholds], "queue": queue.uri}
