"""Model quality figures for the report: ranking, calibration, the policy's catch, and
the focal-loss view of the data (how many examples are still hard)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_auc_score

from objectives import FocalLoss, average_precision

from .calibration import brier, expected_calibration_error


def ranking(scores, labels) -> dict:
    y = np.asarray(labels)
    if y.min() == y.max():
        return {"auc_roc": float("nan"), "average_precision": float("nan")}
    return {"auc_roc": float(roc_auc_score(y, scores)), "average_precision": average_precision(scores, y)}


def recall_at_capacity(scores, labels, day_index, capacity_per_day: float) -> float:
    """Share of frauds among the top ``capacity`` transactions of each day (what a review
    team of that size would catch reviewing the highest scores first)."""
    frame = pd.DataFrame({"s": np.asarray(scores), "y": np.asarray(labels), "d": np.asarray(day_index)})
    k = int(round(capacity_per_day))
    if frame["y"].sum() == 0 or k <= 0:
        return float("nan")
    top = frame.sort_values("s", ascending=False, kind="mergesort").groupby("d").head(k)
    return float(top["y"].sum() / frame["y"].sum())


def card_precision_at_k(scores, labels, cards, day_index, k: int, drop_detected: bool = True) -> dict:
    """Per day: rank cards by their highest score that day, take the top k, and count how
    many had a fraud that day. Mean over days (the handbook's CP@k). ``drop_detected``: a
    card found fraudulent in an earlier day's top k is blocked by then, so it is left out of
    later days' ranking (the handbook's definition; False: every card every day)."""
    frame = pd.DataFrame({"s": np.asarray(scores), "y": np.asarray(labels), "c": np.asarray(cards),
                          "d": np.asarray(day_index)})
    per_card = frame.groupby(["d", "c"], sort=False).agg(s=("s", "max"), y=("y", "max")).reset_index()
    ranked = per_card.sort_values("s", ascending=False, kind="mergesort")
    detected: set = set()
    daily = {}
    for day in sorted(per_card["d"].unique()):
        today = ranked[ranked["d"] == day]
        if drop_detected:
            today = today[~today["c"].isin(detected)]
        top = today.head(k)
        daily[day] = top["y"].sum() / k
        detected.update(top.loc[top["y"] == 1, "c"])
    values = [float(daily[d]) for d in sorted(daily)]
    return {"k": int(k), "mean": float(np.mean(values)) if values else float("nan"), "per_day": values,
            "drop_detected": drop_detected}


def per_class(decisions, labels, patterns) -> dict:
    """Per fraud pattern: how many, how many flagged (review or decline), recall, and its
    share of the flagged frauds."""
    frame = pd.DataFrame({"flag": np.asarray(decisions) != "approve", "y": np.asarray(labels),
                          "p": pd.Series(patterns).fillna("").astype(str).to_numpy()})
    fraud = frame[frame["y"] == 1]
    flagged_total = max(int(fraud["flag"].sum()), 1)
    out = {}
    for pattern, group in fraud.groupby("p"):
        name = pattern or "unlabelled_pattern"
        out[name] = {"frauds": int(len(group)), "flagged": int(group["flag"].sum()),
                     "recall": float(group["flag"].mean()), "share_of_flagged": float(group["flag"].sum() / flagged_total)}
    legit = frame[frame["y"] == 0]
    out["legitimate"] = {"transactions": int(len(legit)), "flagged": int(legit["flag"].sum()),
                         "false_positive_rate": float(legit["flag"].mean()) if len(legit) else float("nan")}
    return out


def focal_view(margins, labels, gamma: float, alpha) -> dict:
    """Per-row focal loss percentiles, p_t histogram and the hard-example rate (p_t < 0.5)."""
    z = np.asarray(margins, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    loss = FocalLoss(gamma=gamma, alpha=alpha).loss(z, y)
    p = 1.0 / (1.0 + np.exp(-z))
    pt = np.where(y == 1, p, 1 - p)
    hist, edges = np.histogram(pt, bins=20, range=(0, 1))
    return {"gamma": gamma, "alpha": alpha,
            "focal_loss_p50": float(np.percentile(loss, 50)), "focal_loss_p90": float(np.percentile(loss, 90)),
            "focal_loss_p99": float(np.percentile(loss, 99)), "hard_example_rate": float(np.mean(pt < 0.5)),
            "hard_example_rate_fraud": float(np.mean(pt[y == 1] < 0.5)) if (y == 1).any() else float("nan"),
            "p_t_histogram": {"edges": edges.tolist(), "counts": hist.tolist()}}


def calibration_figures(raw, calibrated, labels) -> dict:
    return {"ece_before": expected_calibration_error(raw, labels), "ece_after": expected_calibration_error(calibrated, labels),
            "brier_before": brier(raw, labels), "brier_after": brier(calibrated, labels)}


def pr_curve(scores, labels, points: int = 201) -> dict:
    """Precision on an even recall grid (the best precision at that recall or more), so the
    plot shows the high-precision end, where a review team works, as finely as the rest."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    recall_up, precision_up = recall[::-1], precision[::-1]  # sklearn gives recall decreasing
    best_from_here = np.maximum.accumulate(precision_up[::-1])[::-1]  # max precision at recall >= r
    grid = np.linspace(0.0, 1.0, points)
    idx = np.clip(np.searchsorted(recall_up, grid, side="left"), 0, len(recall_up) - 1)
    return {"precision": best_from_here[idx].tolist(), "recall": grid.tolist()}
