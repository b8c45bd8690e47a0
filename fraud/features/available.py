"""The feature spec a table supports: the default features, less those whose columns the
table lacks (not mapped in ``[columns]``, or mapped but absent or empty in the data), so
a missing column never becomes a constant feature (``is_online`` always 0)."""

from __future__ import annotations

import logging

import pandas as pd

from ..config import FraudConfig
from .spec import FeatureSpec, dropped_features

log = logging.getLogger(__name__)


def spec_for_data(config: FraudConfig, frame: pd.DataFrame) -> tuple[FeatureSpec, dict[str, list[str]]]:
    """(spec, dropped: feature -> the columns it lacks); the dropped ones are logged as a warning."""
    available = {c for c in frame.columns if frame[c].notna().any()}
    dropped = dropped_features(config.features, config.columns, available)
    if dropped:
        log.warning("%d feature(s) left out for want of a column: %s", len(dropped),
                    "; ".join(f"{name} (needs {', '.join(cols)})" for name, cols in dropped.items()))
    return FeatureSpec.default(config.features, config.columns, config.data.timezone, available), dropped
