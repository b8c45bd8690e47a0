"""Thresholds and the routing policy: approve, send to review, or decline.

    decline  if score >= t_decline
    review   if t_review <= score < t_decline
    approve  otherwise

Chosen on calibrated validation scores to minimise expected cost:

    cost = review_cost x reviews + false_decline_cost x legitimate declines
           + fraud_loss_multiplier x amount of the frauds approved

subject to the review team's capacity (reviews per day), a precision floor for automatic
declines (a decline is a customer turned away; do it only where fraud is near certain)
and, optionally, a target recall of review + decline. Reviewed frauds are assumed caught.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .config import PolicyConfig

APPROVE, REVIEW, DECLINE = "approve", "review", "decline"
MAX_CUTS = 400
NEVER = 2.0  # a threshold no calibrated probability reaches


@dataclass(frozen=True)
class Thresholds:
    review: float
    decline: float

    def decide(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        return np.where(s >= self.decline, DECLINE, np.where(s >= self.review, REVIEW, APPROVE))

    def decide_one(self, score: float) -> str:
        return DECLINE if score >= self.decline else REVIEW if score >= self.review else APPROVE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Thresholds":
        return cls(review=float(data["review"]), decline=float(data["decline"]))


@dataclass(frozen=True)
class PolicyOutcome:
    """What a pair of thresholds does on a labelled period."""

    reviews_per_day: float
    declines_per_day: float
    recall: float
    precision: float
    decline_precision: float
    cost_per_day: float
    frauds_per_day: float

    def to_dict(self) -> dict:
        return asdict(self)


class _Ranked:
    """Rows sorted by score, with running totals, and the cut points between distinct scores."""

    def __init__(self, scores, labels, amounts, n_days: float):
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
        self.s = np.asarray(scores, dtype=np.float64)[order]
        y = np.asarray(labels, dtype=np.float64)[order]
        a = np.asarray(amounts, dtype=np.float64)[order]
        self.n_days = max(float(n_days), 1e-9)
        self.frauds = np.r_[0.0, np.cumsum(y)]
        self.fraud_amount = np.r_[0.0, np.cumsum(y * a)]
        self.total_fraud = self.frauds[-1]
        self.total_fraud_amount = self.fraud_amount[-1]
        boundaries = np.r_[np.flatnonzero(self.s[1:] < self.s[:-1]) + 1, self.s.size]
        self.cuts = np.r_[0, boundaries]  # number of rows at or above a distinct score

    def threshold(self, k: int) -> float:
        """Score threshold that flags exactly the top k rows (k at a cut point); 2.0, above
        any probability, flags none."""
        return float(self.s[k - 1]) if k > 0 else NEVER


def _evaluate(r: _Ranked, k_decline, k_flag, policy: PolicyConfig):
    frauds_declined = r.frauds[k_decline]
    frauds_flagged = r.frauds[k_flag]
    reviews = k_flag - k_decline
    legit_declined = k_decline - frauds_declined
    missed = r.total_fraud_amount - r.fraud_amount[k_flag]
    cost = (policy.review_cost * reviews + policy.false_decline_cost * legit_declined
            + policy.fraud_loss_multiplier * missed) / r.n_days
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(r.total_fraud > 0, frauds_flagged / r.total_fraud, np.nan)
        precision = np.where(k_flag > 0, frauds_flagged / k_flag, np.nan)
        decline_precision = np.where(k_decline > 0, frauds_declined / k_decline, np.nan)
    return reviews / r.n_days, k_decline / r.n_days, recall, precision, decline_precision, cost


def choose_thresholds(scores, labels, amounts, n_days: float, policy: PolicyConfig) -> tuple[Thresholds, dict]:
    """Cost-minimising thresholds under the constraints, and a report of the choice."""
    r = _Ranked(scores, labels, amounts, n_days)
    cap_rows = policy.review_capacity_per_day * r.n_days
    horizon = max(cap_rows * 4, r.total_fraud * 6, 50)
    cuts = r.cuts[r.cuts <= horizon]
    if cuts.size > MAX_CUTS:  # geometric spacing: dense among the top scores, where decisions are made
        picks = np.unique(np.geomspace(1, cuts.size, MAX_CUTS).astype(int) - 1)
        cuts = cuts[picks]
    kd, kf = np.meshgrid(cuts, cuts, indexing="ij")
    keep = kd <= kf
    kd, kf = kd[keep], kf[keep]
    reviews, declines, recall, precision, dprec, cost = _evaluate(r, kd, kf, policy)
    capacity_ok = reviews <= policy.review_capacity_per_day + 1e-9
    precision_ok = (kd == 0) | (np.nan_to_num(dprec) >= policy.decline_precision_floor)
    feasible = capacity_ok & precision_ok
    target_met = True
    if policy.target_recall is not None:
        with_target = feasible & (np.nan_to_num(recall) >= policy.target_recall)
        if with_target.any():
            feasible = with_target
        else:
            target_met = False
    best = int(np.flatnonzero(feasible)[np.argmin(cost[feasible])])
    free = int(np.argmin(cost))
    no_model_cost = policy.fraud_loss_multiplier * r.total_fraud_amount / r.n_days
    thresholds = Thresholds(review=r.threshold(int(kf[best])) if kf[best] > kd[best] else r.threshold(int(kd[best])),
                            decline=r.threshold(int(kd[best])))
    outcome = PolicyOutcome(float(reviews[best]), float(declines[best]), float(recall[best]), float(precision[best]),
                            float(dprec[best]), float(cost[best]), float(r.total_fraud / r.n_days))
    report = {
        "thresholds": thresholds.to_dict(),
        "outcome": outcome.to_dict(),
        "unconstrained": {"reviews_per_day": float(reviews[free]), "declines_per_day": float(declines[free]),
                          "recall": float(recall[free]), "cost_per_day": float(cost[free])},
        "constraint_cost_per_day": float(cost[best] - cost[free]),
        "no_model_cost_per_day": float(no_model_cost),
        "savings_per_day": float(no_model_cost - cost[best]),
        "target_recall": policy.target_recall,
        "target_recall_met": target_met,
        "constraints": {"review_capacity_per_day": policy.review_capacity_per_day,
                        "decline_precision_floor": policy.decline_precision_floor,
                        "review_cost": policy.review_cost, "false_decline_cost": policy.false_decline_cost,
                        "fraud_loss_multiplier": policy.fraud_loss_multiplier},
    }
    return thresholds, report


def outcome(scores, labels, amounts, n_days: float, thresholds: Thresholds, policy: PolicyConfig) -> PolicyOutcome:
    """Apply fixed thresholds to another period (e.g. the test window)."""
    s = np.asarray(scores, dtype=np.float64)
    r = _Ranked(s, labels, amounts, n_days)
    kd = int((s >= thresholds.decline).sum())
    kf = int((s >= thresholds.review).sum())
    values = _evaluate(r, np.array(kd), np.array(kf), policy)
    return PolicyOutcome(*(float(v) for v in values), float(r.total_fraud / r.n_days))
