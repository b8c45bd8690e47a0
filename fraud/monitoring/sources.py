"""``check_health``: ``evaluate_health`` on what the stores hold. The champion and its
reference from the registry, the decision log (``fraud.decisions.read_decisions``) for the
days the verdict and the report need, the labels known before ``as_of`` (``fraud.labels``)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from fraud.config import MonitoringConfig
from fraud.registry import ModelRegistry, RegistryError

from .health import Health, evaluate_health, utc_time
from .reference import load_reference


def read_decisions(uri: str, start, end, endpoint_url: str | None = None) -> pd.DataFrame:
    """The decision log between two UTC times (the decision-log module's reader)."""
    from fraud.decisions import read_decisions as read

    return read(uri, start=start, end=end, endpoint_url=endpoint_url)


def check_health(registry: ModelRegistry, config: MonitoringConfig, labels_uri: str | None,
                 decisions_uri: str | None = None, as_of=None, day=None,
                 endpoint_url: str | None = None) -> tuple[Health, dict]:
    """(health, the champion's reference). ``RegistryError`` without a champion or when
    the champion has no ``reference.json`` (published before references existed)."""
    champion = registry.champion()
    if champion is None:
        raise RegistryError(f"no champion model in {registry.uri} to monitor; train one with `fraud train`")
    try:
        reference = load_reference(registry, champion)
    except RegistryError as exc:
        raise RegistryError(f"the champion {champion} has no reference distributions ({exc}); the next "
                            "`fraud train` publishes a version with them") from None
    as_of = utc_time(as_of)
    day = day or (as_of.floor("D") - pd.Timedelta(days=1)).date()
    first = day - timedelta(days=max(config.days, config.recall_window_days) - 1)
    decisions = read_decisions(decisions_uri or config.decisions_uri, pd.Timestamp(first, tz="UTC"), as_of,
                               endpoint_url)
    labels = None
    if labels_uri:
        from fraud.labels import open_label_store

        labels = open_label_store(labels_uri, endpoint_url).read(as_of)
    expected = registry.read_json(champion, "bundle.json").get("expected_review_share")
    return evaluate_health(decisions, labels, reference, config, as_of=as_of, day=day, champion=champion,
                           expected_review_share=expected), reference
