"""One decision-log record: what the API decided for one freshly scored transaction, and
everything needed to check it later (the exact feature vector, the raw margin).

A flat JSON object (the contract between the API, the log and its readers; see README
"Decision log"). Built from plain values so the serving image (no pandas) can make it. The
raw margin comes with the score from one model call (``lambda_handler.challenger.model_scores``).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

FIELDS = ("transaction_id", "timestamp", "scored_at", "card", "terminal_id", "amount", "features", "probability",
          "margin", "decision", "override", "policy_reason", "reasons", "model_version", "decided_by", "shadow")
SHADOW_FIELDS = ("model_version", "probability", "margin", "decision")


def _utc_text(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError(f"{when!r} has no UTC offset")
    return when.astimezone(timezone.utc).isoformat()


def _number(value) -> float | None:
    """A finite float, or None (NaN is "missing" to the model; JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def override_text(override) -> str | None:
    """An allow/block list entry (``list``, ``entity``) as "block:card", "allow:terminal"."""
    return None if override is None else f"{override.list}:{override.entity}"


def decision_record(*, transaction_id: str, timestamp: datetime, scored_at: datetime, card: str, terminal_id: str,
                    amount: float, feature_names, feature_values, probability: float, margin: float, decision: str,
                    override=None, policy_reason: str | None = None, reasons=(), model_version: str,
                    decided_by: str = "champion", shadow: dict | None = None) -> dict:
    """``card`` is the keyed card token (``keys.card_token``), never the card id;
    ``feature_values`` the row the model saw, in ``feature_names`` order; ``reasons`` the
    response's (dicts or pydantic models); ``shadow``: the challenger's {model_version,
    probability, margin, decision} when one scored in shadow."""
    if not str(card).startswith("card_"):
        raise ValueError("card must be the keyed card token (keys.card_token), never the card id")
    names, values = list(feature_names), list(feature_values)
    if len(names) != len(values):
        raise ValueError(f"{len(names)} feature names for {len(values)} values")
    if decided_by not in ("champion", "challenger"):
        raise ValueError(f"decided_by {decided_by!r} is not champion or challenger")
    return {
        "transaction_id": str(transaction_id), "timestamp": _utc_text(timestamp), "scored_at": _utc_text(scored_at),
        "card": str(card), "terminal_id": str(terminal_id), "amount": float(amount),
        "features": {name: _number(v) for name, v in zip(names, values)},
        "probability": float(probability), "margin": _number(margin), "decision": str(decision),
        "override": override_text(override), "policy_reason": policy_reason,
        "reasons": [r.model_dump() if hasattr(r, "model_dump") else dict(r) for r in reasons],
        "model_version": str(model_version), "decided_by": decided_by,
        "shadow": None if shadow is None else {
            "model_version": str(shadow["model_version"]), "probability": _number(shadow.get("probability")),
            "margin": _number(shadow.get("margin")), "decision": shadow.get("decision")},
    }
