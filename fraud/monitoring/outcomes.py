"""What the labels known so far say about the policy: joined to the decision log by
transaction id, counting only labels known before the evaluation time (a label known
later did not exist yet then).

Classes: fraud (recall = flagged frauds / labelled frauds, precision = frauds among the
labelled flagged; flagged = review or decline) and legitimate (recall = approved / labelled
legitimate, precision = legitimate among the labelled approved). Hard examples and the
focal loss use p_t from the model's raw ``margin``, as the reference does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .reference import focal_figures


def labels_known(labels: pd.DataFrame, as_of) -> pd.DataFrame:
    """One label per transaction (``transaction_id``, ``label``): the last known strictly
    before ``as_of`` (a correction replaces the earlier label; at equal times fraud wins)."""
    labels = labels.reset_index(drop=True)
    known = pd.to_datetime(labels["known_at"], utc=True)
    kept = labels.assign(known_at=known).loc[(known < pd.Timestamp(as_of)).to_numpy()]
    kept = kept.sort_values(["known_at", "label"], kind="stable").drop_duplicates("transaction_id", keep="last")
    return kept[["transaction_id", "label"]].astype({"transaction_id": str, "label": int}).reset_index(drop=True)


def labelled(decisions: pd.DataFrame, known: pd.DataFrame) -> pd.DataFrame:
    """The decision-log rows that have a known label, with it."""
    ids = decisions["transaction_id"].astype(str)
    return decisions.assign(transaction_id=ids).merge(known, on="transaction_id", how="inner")


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def policy_outcomes(rows: pd.DataFrame, gamma: float, alpha, hard_p_t: float) -> dict:
    """Confusion counts, per-class recall and precision, hard-example rate and focal-loss
    percentiles of labelled decision-log ``rows`` (``labelled``'s output)."""
    y = rows["label"].to_numpy(dtype=np.int64)
    flagged = rows["decision"].astype(str).isin(("review", "decline")).to_numpy()
    tp, fn = int((flagged & (y == 1)).sum()), int((~flagged & (y == 1)).sum())
    fp, tn = int((flagged & (y == 0)).sum()), int((~flagged & (y == 0)).sum())
    margins = pd.to_numeric(rows["margin"], errors="coerce").to_numpy(dtype=np.float64)
    ok = ~np.isnan(margins)
    return {"labelled": int(len(y)), "frauds": tp + fn, "tp": tp, "fn": fn, "fp": fp, "tn": tn,
            "per_class": {"fraud": {"recall": _ratio(tp, tp + fn), "precision": _ratio(tp, tp + fp)},
                          "legitimate": {"recall": _ratio(tn, tn + fp), "precision": _ratio(tn, tn + fn)}},
            "focal": focal_figures(margins[ok], y[ok], gamma, alpha, hard_p_t)}


def recall_by_day(rows: pd.DataFrame, days: pd.Series) -> dict:
    """``{day: (labelled frauds, recall)}`` of labelled ``rows``, ``days`` their scored days."""
    out = {}
    flagged = rows["decision"].astype(str).isin(("review", "decline")).to_numpy()
    fraud = rows["label"].to_numpy() == 1
    for day in sorted(pd.unique(days)):
        on = (days == day).to_numpy() & fraud
        out[day] = (int(on.sum()), float(flagged[on].mean()) if on.any() else None)
    return out
