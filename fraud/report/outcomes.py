"""What a model's policy does on the test window, day by day and per fraud pattern, in
money: the figures a fraud analyst reads in the run report.

    figures = window_outcomes(scores, thresholds, window, policy, currency)

``window`` holds the test window's transactions (timestamp, label, amount and, when the
data has it, fraud_pattern). The money follows ``fraud.policy``'s cost model: a flagged
(reviewed or declined) fraud is caught, an approved one is missed and costs its amount
times ``fraud_loss_multiplier``; every review costs ``review_cost``; every declined
legitimate transaction costs ``false_decline_cost``. Without a model every fraud is missed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud.config import PolicyConfig
from fraud.policy import APPROVE, DECLINE, REVIEW, Thresholds

# patterns recorded on rows that are not frauds of any kind: listed apart, never as a fraud pattern
NOT_FRAUD_PATTERNS = frozenset({"label_noise"})
NO_PATTERN = ""


def _sums(frame: pd.DataFrame, policy: PolicyConfig) -> pd.DataFrame:
    """Counts and money per group of ``frame`` (grouped already): one row per group."""
    out = pd.DataFrame({
        "transactions": frame["fraud"].size(),
        "frauds": frame["fraud"].sum(),
        "caught": frame["caught"].sum(),
        "fraud_amount": frame["fraud_amount"].sum(),
        "caught_amount": frame["caught_amount"].sum(),
        "reviews": frame["review"].sum(),
        "declines": frame["decline"].sum(),
        "false_declines": frame["false_decline"].sum(),
    })
    out["missed"] = out["frauds"] - out["caught"]
    out["missed_amount"] = out["fraud_amount"] - out["caught_amount"]
    out["review_cost"] = policy.review_cost * out["reviews"]
    out["false_decline_cost"] = policy.false_decline_cost * out["false_declines"]
    out["missed_cost"] = policy.fraud_loss_multiplier * out["missed_amount"]
    out["cost"] = out["review_cost"] + out["false_decline_cost"] + out["missed_cost"]
    out["no_model_cost"] = policy.fraud_loss_multiplier * out["fraud_amount"]
    out["savings"] = out["no_model_cost"] - out["cost"]
    out["recall"] = out["caught"] / out["frauds"].where(out["frauds"] > 0)  # NaN on a day without fraud
    return out


def _records(table: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: ints stay ints, NaN becomes None."""
    rows = []
    for record in table.to_dict("records"):
        rows.append({k: (None if isinstance(v, float) and np.isnan(v) else
                         int(v) if isinstance(v, (np.integer, bool, np.bool_)) else
                         float(v) if isinstance(v, np.floating) else v) for k, v in record.items()})
    return rows


def window_outcomes(scores, thresholds: Thresholds, window: pd.DataFrame, policy: PolicyConfig,
                    currency: str) -> dict:
    """Per day, per fraud pattern and in total: transactions, frauds caught and missed (count
    and amount), reviews, declines, false declines and what each costs; JSON-ready."""
    decision = thresholds.decide(np.asarray(scores, dtype=np.float64))
    y = window["label"].to_numpy().astype(bool)
    amount = window["amount"].to_numpy(dtype=np.float64)
    flagged = decision != APPROVE
    rows = pd.DataFrame({
        "day": window["timestamp"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d").to_numpy()
        if window["timestamp"].dt.tz is not None else window["timestamp"].dt.strftime("%Y-%m-%d").to_numpy(),
        "pattern": (window["fraud_pattern"].fillna(NO_PATTERN).astype(str).to_numpy()
                    if "fraud_pattern" in window.columns else np.full(len(window), NO_PATTERN, dtype=object)),
        "fraud": y, "caught": y & flagged,
        "fraud_amount": np.where(y, amount, 0.0), "caught_amount": np.where(y & flagged, amount, 0.0),
        "review": decision == REVIEW, "decline": decision == DECLINE, "false_decline": (decision == DECLINE) & ~y,
    })
    days = _sums(rows.groupby("day", sort=True), policy).reset_index()
    total = _sums(rows.assign(all="all").groupby("all"), policy).iloc[0]
    frauds = rows[rows["fraud"]]
    patterns = _sums(frauds.groupby("pattern", sort=True), policy).reset_index()
    n_days = max(len(days), 1)
    return {
        "currency": currency,
        "thresholds": thresholds.to_dict(),
        "costs": {"review_cost": policy.review_cost, "false_decline_cost": policy.false_decline_cost,
                  "fraud_loss_multiplier": policy.fraud_loss_multiplier},
        "days": _records(days[["day", "transactions", "frauds", "caught", "missed", "fraud_amount", "caught_amount",
                               "missed_amount", "reviews", "declines", "false_declines", "review_cost",
                               "false_decline_cost", "missed_cost", "cost", "no_model_cost", "savings", "recall"]]),
        "patterns": {row.pop("pattern"): row for row in _records(
            patterns[["pattern", "frauds", "caught", "missed", "fraud_amount", "caught_amount", "missed_amount",
                      "recall"]])},
        "total": {**_records(total.to_frame().T)[0], "days": n_days,
                  **{f"{k}_per_day": float(total[k]) / n_days
                     for k in ("reviews", "declines", "false_declines", "cost", "no_model_cost", "savings")}},
    }
