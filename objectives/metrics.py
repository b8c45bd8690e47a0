"""Evaluation metrics computed on raw margins (what custom-objective boosters hand back).

Average precision is rank-based, so it needs no sigmoid; it follows scikit-learn's
definition (tied scores form one threshold) without its input checking, because early
stopping calls it every round.
"""

from __future__ import annotations

import numpy as np

from ._arrays import to_host


def average_precision(score, label, weight=None) -> float:
    """Area under the precision-recall step curve (scikit-learn's average_precision_score)."""
    s = np.asarray(to_host(score), dtype=np.float64).reshape(-1)
    y = np.asarray(to_host(label), dtype=np.float64).reshape(-1)
    w = np.ones_like(s) if weight is None else np.asarray(to_host(weight), dtype=np.float64).reshape(-1)
    if s.size == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y, w = s[order], y[order], w[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(y * w)[last_of_tie]
    fps = np.cumsum((1.0 - y) * w)[last_of_tie]
    if tps.size == 0 or tps[-1] <= 0:
        return float("nan")
    precision = tps / np.maximum(tps + fps, np.finfo(float).tiny)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


METRIC_NAMES = ("focal", "average_precision")


def check_metric_name(name: str) -> str:
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; use 'focal' or 'average_precision'")
    return name


def margin_metric(loss, name: str, margin, label, weight=None) -> float:
    """The early-stopping metric on raw margins: the mean focal loss, or average precision
    (macro-averaged one-vs-rest for multiclass margins)."""
    if name == "focal":
        return loss.mean_loss(margin, label, weight)
    if margin.ndim == 2:
        y = to_host(label).astype(np.int64)
        return float(np.nanmean([average_precision(margin[:, k], y == k, weight) for k in range(margin.shape[1])]))
    return average_precision(margin, label, weight)
