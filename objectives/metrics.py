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
