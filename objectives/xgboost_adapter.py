"""Focal loss for XGBoost: the ``obj=`` callable, margin metrics, and an on-device loop.

XGBoost hands a custom objective raw margins and wants (grad, hess) back. Two facts
shape this module (see shared/notes/focal-loss-gbdt.md):

- The starting margin is not estimated for a custom objective. ``booster_params`` sets
  it: for binary, ``objective=binary:logistic`` with ``base_score = sigmoid(init)`` so
  the saved model alone predicts probabilities; for multiclass, ``multi:softprob`` with
  the vector of starting margins as ``base_score``.
- ``Booster.update`` always copies the training predictions to the host. On a GPU that
  copy dominates, so ``train_on_device`` keeps the margin in device memory and adds each
  new tree's output to it.
"""

from __future__ import annotations

import math

import numpy as np
import xgboost as xgb

from ._arrays import is_device_array, namespace
from .metrics import check_metric_name, margin_metric


def _label_weight(dmatrix: xgb.DMatrix):
    weight = dmatrix.get_weight()
    return dmatrix.get_label(), (weight if weight.size else None)


class XGBoostObjective:
    """``xgb.train(..., obj=XGBoostObjective(loss))`` for a FocalLoss or MulticlassFocalLoss.

    Labels and weights are read from the DMatrix once and reused while the same DMatrix
    comes back (every round), saving a copy of both per round.
    """

    def __init__(self, loss):
        self.loss = loss
        self._cached = (None, None, None)

    def __call__(self, predt: np.ndarray, dtrain: xgb.DMatrix):
        handle, label, weight = self._cached
        if handle is not dtrain:
            label, weight = _label_weight(dtrain)
            self._cached = (dtrain, label, weight)
        return self.loss.grad_hess(predt, label, weight)


class XGBoostMetric:
    """``custom_metric=`` for XGBoost: 'focal' (mean loss, lower is better) or
    'average_precision' (higher is better) on raw margins."""

    def __init__(self, loss, name: str = "average_precision"):
        self.loss = loss
        self.name = check_metric_name(name)

    @property
    def maximize(self) -> bool:
        return self.name == "average_precision"

    def __call__(self, predt: np.ndarray, dmatrix: xgb.DMatrix):
        label, weight = _label_weight(dmatrix)
        value = margin_metric(self.loss, self.name, predt, label, weight)
        # distributed (xgboost.dask), XGBoost averages a custom metric over the workers: one
        # whose share of the eval set is empty (or holds no fraud) has no AP; a constant in its
        # place moves every round's mean alike and leaves the best round where it is, where a
        # NaN would end early stopping's comparisons
        return self.name, value if np.isfinite(value) else 0.0


def booster_params(loss, init_margin, params: dict | None = None) -> dict:
    """XGBoost parameters that make the booster start at ``init_margin`` and apply the
    right link (sigmoid or softmax) when predicting, with the default metric switched off."""
    out = dict(params or {})
    if loss.n_classes == 2:
        out.update(objective="binary:logistic",
                   base_score=1.0 / (1.0 + math.exp(-float(init_margin))))
    else:
        out.update(objective="multi:softprob", num_class=loss.n_classes,
                   base_score=[float(v) for v in np.asarray(init_margin)])
    out.setdefault("disable_default_eval_metric", 1)
    return out


def train_on_device(params: dict, X, label, loss, num_boost_round: int, *, weight=None,
                    init_margin=None, evals=(), metric: str = "focal",
                    early_stopping_rounds: int | None = None, callback=None):
    """Train XGBoost with the focal objective entirely on the GPU.

    ``X``, ``label`` (and ``weight``, eval sets) are CuPy arrays (numpy arrays run the same
    loop on the CPU, for tests: there XGBoost's own update is the faster way). Each round computes
    grad/hess from a device-resident margin, calls ``Booster.boost`` and adds the new
    tree's margin (``inplace_predict`` over that one tree, zero base margin) to the
    device margin: no round copies predictions to the host. Predictions read a
    column-major copy of ``X`` (one more device copy of the data): XGBoost's GPU
    predictor took 1.55 ms instead of 2.27 ms per tree on 4M x 32 rows on an H100,
    which is most of what the loop adds to a built-in round (bench/gpu_round_profile.py).

    ``evals`` is a sequence of (X_eval, y_eval, name). Returns (booster, history) where
    history maps eval name to the metric per round; with early stopping the booster's
    ``best_iteration`` attribute is set and later rounds are kept (slice to drop them).
    """
    xp = namespace(X)
    if init_margin is None:
        init_margin = loss.init_margin(label, weight)
    device = params.get("device", "cuda" if is_device_array(X) else "cpu")
    full_params = booster_params(loss, init_margin, {**params, "device": device})
    dtrain = xgb.QuantileDMatrix(X, label=label, weight=weight,
                                 max_bin=full_params.get("max_bin", 256))
    booster = xgb.Booster(full_params, [dtrain])
    X = xp.asfortranarray(X)
    margin = booster.inplace_predict(X, predict_type="margin")  # the starting margin, on device
    zero_base = xp.zeros(margin.shape, dtype=margin.dtype)
    evals = [(xp.asfortranarray(Xe), ye, name) for Xe, ye, name in evals]
    eval_state = [(Xe, ye, name, booster.inplace_predict(Xe, predict_type="margin"),
                   xp.zeros((Xe.shape[0],) + margin.shape[1:], dtype=margin.dtype))
                  for Xe, ye, name in evals]
    scorer = XGBoostMetric(loss, metric)
    history = {name: [] for _, _, name, _, _ in eval_state}
    best, best_round = None, 0
    for i in range(num_boost_round):
        grad, hess = loss.grad_hess(margin, label, weight)
        booster.boost(dtrain, i, grad=grad, hess=hess)
        margin += booster.inplace_predict(X, predict_type="margin", iteration_range=(i, i + 1),
                                          base_margin=zero_base)
        for Xe, ye, name, eval_margin, eval_zero in eval_state:
            eval_margin += booster.inplace_predict(Xe, predict_type="margin",
                                                   iteration_range=(i, i + 1), base_margin=eval_zero)
            history[name].append(margin_metric(loss, metric, eval_margin, ye))
        if callback is not None:
            callback(i, history)
        if early_stopping_rounds and eval_state:
            last = history[eval_state[-1][2]][-1]
            better = best is None or (last > best if scorer.maximize else last < best)
            if better:
                best, best_round = last, i
            elif i - best_round >= early_stopping_rounds:
                break
    if early_stopping_rounds and eval_state:
        booster.set_attr(best_iteration=str(best_round))
    return booster, history
