"""Calibration of model scores into probabilities (focal training distorts them).

Isotonic (monotone step function, no shape assumption; needs a few hundred positives) or
Platt (a logistic curve on the score's log-odds; robust with few positives). Fitted on
validation scores; stored as plain JSON with the model.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


class Calibrator:
    """``fit(scores, labels)`` then ``predict(scores)``; ``to_dict``/``from_dict`` for storage.
    ``quantile_mapped`` makes the fourth kind, ``mapped``: another model's calibrator after a
    monotone map of the scores onto that model's."""

    def __init__(self, method: str = "isotonic"):
        if method not in ("isotonic", "platt", "identity", "mapped"):
            raise ValueError(f"unknown calibration method {method!r}")
        self.method = method

    def fit(self, scores, labels) -> "Calibrator":
        from sklearn.isotonic import IsotonicRegression  # training only: serving needs no sklearn
        from sklearn.linear_model import LogisticRegression

        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.float64)
        if self.method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
            self.x_ = iso.X_thresholds_.astype(float)
            self.y_ = iso.y_thresholds_.astype(float)
        elif self.method == "platt":
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(scores)[:, None], labels)
            self.a_, self.b_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        elif self.method == "mapped":
            raise ValueError("a mapped calibrator is made by quantile_mapped, not fitted")
        return self

    def predict(self, scores) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(scores, self.x_, self.y_)
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a_ * _logit(scores) + self.b_)))
        if self.method == "mapped":
            return self.then_.predict(np.interp(scores, self.x_, self.to_))
        return scores

    def to_dict(self) -> dict:
        out = {"method": self.method}
        if self.method == "isotonic":
            out.update(x=self.x_.tolist(), y=self.y_.tolist())
        elif self.method == "platt":
            out.update(a=self.a_, b=self.b_)
        elif self.method == "mapped":
            out.update(x=self.x_.tolist(), to=self.to_.tolist(), then=self.then_.to_dict())
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Calibrator":
        cal = cls(data["method"])
        if cal.method == "isotonic":
            cal.x_, cal.y_ = np.asarray(data["x"], dtype=float), np.asarray(data["y"], dtype=float)
        elif cal.method == "platt":
            cal.a_, cal.b_ = float(data["a"]), float(data["b"])
        elif cal.method == "mapped":
            if data["then"].get("method") == "mapped":
                raise ValueError("a mapped calibrator maps onto a fitted one, not onto another mapped one")
            cal.x_, cal.to_ = np.asarray(data["x"], dtype=float), np.asarray(data["to"], dtype=float)
            cal.then_ = cls.from_dict(data["then"])
        return cal


# the levels at which quantile_mapped matches two models' scores: even over the bulk, finer
# towards the top (the review and decline thresholds sit in the top percent or so)
MAPPED_LEVELS = np.unique(np.concatenate([np.linspace(0.0, 1.0, 201), 1.0 - np.geomspace(1e-5, 0.2, 200)]))


def quantile_mapped(calibrator: Calibrator, reference_scores, scores) -> Calibrator:
    """A calibrator for a model that has no unseen labelled rows left (``fraud.refit``'s
    latest refit), from one fitted for another model of the same recipe (its twin): both
    models score the same unlabelled rows, neither trained on; a score at the latest's
    quantile q is mapped (piecewise linearly) to the twin's raw score at q, then through the
    twin's own calibrator, unchanged: its flat steps stay flat, so the calibrated scores
    take the twin's values with the twin's shares (what ``fraud monitor`` and the live drift
    compare with the reference) and the twin's thresholds send the same share to review."""
    ref = np.asarray(reference_scores, dtype=np.float64)
    own = np.asarray(scores, dtype=np.float64)
    x = np.quantile(own, MAPPED_LEVELS)
    # a tree model's scores have atoms (many rows on one leaf combination): a score that
    # holds levels q0..q1 of the latest's goes to the twin's score at level (q0 + q1) / 2
    # (np.interp needs increasing x; the middles rise with q, so the map stays monotone)
    x, first = np.unique(x, return_index=True)
    last = np.r_[first[1:] - 1, len(MAPPED_LEVELS) - 1]
    to = np.quantile(ref, (MAPPED_LEVELS[first] + MAPPED_LEVELS[last]) / 2)
    # the scores are probabilities: the map runs on to (0, 0) and (1, 1), so a score beyond
    # the newest days' range still orders above (below) them instead of tying at their end
    # (and can still reach the decline threshold)
    keep = (x > 0.0) & (x < 1.0)
    x, to = np.r_[0.0, x[keep], 1.0], np.r_[0.0, to[keep], 1.0]
    mapped = Calibrator("mapped")
    mapped.x_, mapped.to_, mapped.then_ = x, np.maximum.accumulate(to), calibrator
    return mapped


def expected_calibration_error(probabilities, labels, bins: int = 15) -> float:
    """Weighted mean |observed rate - mean predicted| over equal-count bins (robust to the
    heavy concentration of fraud scores near zero)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    order = np.argsort(p, kind="mergesort")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if chunk.size:
            total += chunk.size * abs(y[chunk].mean() - p[chunk].mean())
    return total / max(p.size, 1)


def brier(probabilities, labels) -> float:
    p = np.asarray(probabilities, dtype=np.float64)
    return float(np.mean((p - np.asarray(labels, dtype=np.float64)) ** 2))


TAIL_QUANTILES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9998, 1.0)


def calibration_curve(probabilities, labels):
    """(mean predicted, observed rate) per bin, for plots. Bins are quantiles that get finer
    towards the top scores: with fraud rates under 1 %, equal-count bins would put nearly all
    the frauds in the last one."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    order = np.argsort(p, kind="mergesort")
    cuts = np.unique((np.asarray(TAIL_QUANTILES) * p.size).astype(int))
    chunks = [order[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    return np.array([p[c].mean() for c in chunks]), np.array([y[c].mean() for c in chunks])
