"""Decision-log frames in the shape of ``fraud.decisions.read_decisions`` (the contract of
issue 16), and references built from plain arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud.monitoring.reference import reference_distributions


def reference_for(features: dict[str, np.ndarray], scores, margins=None, labels=None, **kw) -> dict:
    n = len(scores)
    margins = np.zeros(n) if margins is None else margins
    labels = np.zeros(n, dtype=int) if labels is None else labels
    return reference_distributions(pd.DataFrame(features), scores, margins, labels, **kw)


def decision_log(day: str, features: dict[str, np.ndarray], scores, decisions=None, margins=None,
                 version: str = "v1", ids=None) -> pd.DataFrame:
    n = len(scores)
    scored_at = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.linspace(0, 86399, n), unit="s")
    frame = pd.DataFrame({
        "transaction_id": ids if ids is not None else [f"{day}-{i}" for i in range(n)],
        "timestamp": scored_at - pd.Timedelta(seconds=1), "scored_at": scored_at,
        "card": "tok", "terminal_id": "t", "amount": 10.0,
        "probability": np.asarray(scores, dtype=float),
        "margin": np.zeros(n) if margins is None else margins,
        "decision": decisions if decisions is not None else np.where(np.asarray(scores) > 0.9, "review", "approve"),
        "override": None, "policy_reason": None, "reasons": "[]", "model_version": version,
        "decided_by": "champion", "shadow_model_version": None, "shadow_probability": np.nan,
        "shadow_margin": np.nan, "shadow_decision": None})
    for name, values in features.items():
        frame[f"feature.{name}"] = np.asarray(values, dtype=float)
    return frame
