"""Focal loss for LightGBM: the ``params["objective"]`` callable and a margin metric.

LightGBM 4 takes a callable objective as ``params["objective"]`` (``fobj`` is gone) and,
with one, skips boost-from-average: training starts at raw score 0. ``init_score`` on
the training and every validation Dataset supplies the starting margin; the booster's
own predictions exclude it, so add it back when predicting (``raw_margin``).
"""

from __future__ import annotations

import numpy as np

from .metrics import check_metric_name, margin_metric


def _label_weight(dataset):
    weight = dataset.get_weight()
    return dataset.get_label(), weight


class LightGBMObjective:
    """``params["objective"] = LightGBMObjective(loss)``.

    LightGBM stores gradients as float32, so the margins are rounded to float32 first
    and the loss is evaluated in float32: the same precision XGBoost trains with, at half
    the cost of float64 arithmetic and without LightGBM's own float64->float32 copy.
    """

    def __init__(self, loss):
        self.loss = loss

    def __call__(self, preds: np.ndarray, train_data):
        label, weight = _label_weight(train_data)
        return self.loss.grad_hess(preds.astype(np.float32), label, weight)


class LightGBMMetric:
    """``feval=`` for LightGBM on raw scores (init_score included): 'focal' or
    'average_precision'."""

    def __init__(self, loss, name: str = "average_precision"):
        self.loss = loss
        self.name = check_metric_name(name)

    @property
    def maximize(self) -> bool:
        return self.name == "average_precision"

    def __call__(self, preds: np.ndarray, eval_data):
        label, weight = _label_weight(eval_data)
        return self.name, margin_metric(self.loss, self.name, preds, label, weight), self.maximize


def init_score(init_margin, n_rows: int) -> np.ndarray:
    """The per-row ``init_score`` array for a Dataset of ``n_rows`` rows."""
    margin = np.asarray(init_margin, dtype=np.float64)
    if margin.ndim == 0:
        return np.full(n_rows, float(margin))
    return np.tile(margin, (n_rows, 1))


def raw_margin(booster, X, init_margin, num_iteration: int | None = None) -> np.ndarray:
    """Full raw margin of a focal-trained LightGBM booster: trees plus the starting margin."""
    return booster.predict(X, raw_score=True, num_iteration=num_iteration) + np.asarray(init_margin)


class LightGBMSklearnObjective:
    """``LGBMClassifier(objective=LightGBMSklearnObjective(loss))`` and the Dask estimators,
    whose callable objectives take ``(y_true, y_pred, weight)`` instead of a Dataset."""

    def __init__(self, loss):
        self.loss = loss

    def __call__(self, y_true, y_pred, weight):
        return self.loss.grad_hess(np.asarray(y_pred).astype(np.float32), y_true, weight)
