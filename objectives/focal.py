"""Binary focal loss as a function of the raw margin, with exact derivatives.

With z the margin, s = 2y - 1, p_t = sigmoid(s z), u = 1 - p_t and alpha_t = alpha for
positives, 1 - alpha for negatives (RetinaNet's convention):

    L  = -alpha_t u^g log p_t
    dL/dz   = alpha_t s u^g (g p_t log p_t + p_t - 1)
    d2L/dz2 = alpha_t p_t u^g ((2g + 1) u + g (u - g p_t) log p_t)

log p_t is the log-sigmoid of s z, never the log of a rounded probability, so margins of
any size give finite values.

The exact hessian is negative for badly misclassified rows (p_t below about 0.06 for
g = 2). XGBoost and LightGBM treat a non-positive hessian as "no information" and the
Newton step of a leaf full of such rows is unbounded, so the default floors the hessian
at ``min_hessian`` (1e-16, the floor XGBoost's own logistic objective uses): it only
changes rows whose exact hessian is below that. ``hessian="exact"`` returns it
unclipped, as CatBoost's Focal loss and imbalance-xgboost do.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from . import _binary_gpu
from ._arrays import as_host_1d, float_dtype, is_device_array, to_host

HESSIAN_MODES = ("floor", "exact")


def _check_params(gamma: float, hessian: str, min_hessian: float) -> None:
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    if hessian not in HESSIAN_MODES:
        raise ValueError(f"hessian must be one of {HESSIAN_MODES}, got {hessian!r}")
    if not (min_hessian > 0 and math.isfinite(min_hessian)):
        raise ValueError(f"min_hessian must be a finite number > 0, got {min_hessian!r}")


def check_binary_labels(label) -> None:
    """Focal loss is defined for hard 0/1 labels; refuse anything else up front."""
    values = np.unique(np.asarray(label))
    bad = values[(values != 0) & (values != 1)]
    if bad.size:
        raise ValueError(f"labels must be 0 or 1 for the binary focal loss, found {bad[:5].tolist()}")


@dataclass(frozen=True)
class FocalLoss:
    """Binary focal loss; ``alpha=None`` means no class weighting (alpha_t = 1)."""

    gamma: float = 2.0
    alpha: float | None = 0.25
    hessian: str = "floor"
    min_hessian: float = 1e-16

    def __post_init__(self):
        _check_params(self.gamma, self.hessian, self.min_hessian)
        if self.alpha is not None and not (0.0 < self.alpha < 1.0):
            raise ValueError(f"alpha must be in (0, 1) or None, got {self.alpha!r}")

    # -- parameters as plain data (sidecars, configs) --------------------------------
    @property
    def n_classes(self) -> int:
        return 2

    def to_dict(self) -> dict:
        return {"kind": "binary", **asdict(self)}

    @property
    def _alpha_code(self) -> float:
        return -1.0 if self.alpha is None else float(self.alpha)

    @property
    def _floor(self) -> float | None:
        return self.min_hessian if self.hessian == "floor" else None

    # -- the math ----------------------------------------------------------------------
    def loss(self, margin, label, weight=None):
        """Per-row loss (times the weight).

        float32 margins are computed and returned in float32, anything else in float64.
        """
        if is_device_array(margin):
            return _binary_gpu.loss(margin, label, weight, self.gamma, self._alpha_code,
                                    float_dtype(margin))
        from . import _binary_cpu  # numba: compiled kernels, imported on first use

        z, y, w = self._host_inputs(margin, label, weight)
        out = np.empty(z.shape, dtype=z.dtype)
        _binary_cpu.loss(z, y, w, self.gamma, self._alpha_code, out)
        return out

    def grad_hess(self, margin, label, weight=None):
        """(gradient, hessian) of the loss w.r.t. the margin, on the margin's device."""
        if is_device_array(margin):
            return _binary_gpu.grad_hess(margin, label, weight, self.gamma, self._alpha_code,
                                         self._floor, float_dtype(margin))
        from . import _binary_cpu

        z, y, w = self._host_inputs(margin, label, weight)
        grad = np.empty(z.shape, dtype=z.dtype)
        hess = np.empty(z.shape, dtype=z.dtype)
        _binary_cpu.grad_hess(z, y, w, self.gamma, self._alpha_code, self._floor, grad, hess)
        return grad, hess

    def mean_loss(self, margin, label, weight=None) -> float:
        """Weighted mean of the per-row loss."""
        values = self.loss(margin, label, weight)
        total = float(values.sum(dtype=np.float64))
        denom = float(weight.sum()) if weight is not None else values.shape[0]
        return total / denom

    def init_margin(self, label, weight=None) -> float:
        """The constant margin that minimises the mean focal loss on these labels.

        It is not the log-odds once gamma > 0. The mean loss of a constant margin only
        depends on the (weighted) class totals, so this is a 1-D root find on two rows.
        """
        y = to_host(label).astype(np.float64).ravel()
        w = None if weight is None else to_host(weight).astype(np.float64).ravel()
        check_binary_labels(y)
        pos = float(w[y == 1].sum()) if w is not None else float((y == 1).sum())
        neg = float(w[y == 0].sum()) if w is not None else float((y == 0).sum())
        if pos <= 0 or neg <= 0:
            raise ValueError("init_margin needs both classes with positive total weight")
        labels2 = np.array([1.0, 0.0])
        weights2 = np.array([pos, neg])

        def slope(z: float) -> float:
            g, _ = self.grad_hess(np.array([z, z]), labels2, weights2)
            return float(g.sum())

        from scipy import optimize

        # slope(-inf) = -alpha_t*pos < 0 and slope(+inf) = (1-alpha_t)*neg > 0.
        lo, hi = -50.0, 50.0
        return float(optimize.brentq(slope, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps,
                                     maxiter=500))

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _host_inputs(margin, label, weight):
        z = as_host_1d(margin, "margin")
        if z.dtype not in (np.float32, np.float64):
            z = z.astype(np.float64)
        y = as_host_1d(label, "label")
        if y.shape != z.shape:
            raise ValueError(f"label has shape {y.shape}, margin {z.shape}")
        if weight is None:
            w = np.empty(0, dtype=np.float32)
        else:
            w = as_host_1d(weight, "weight")
            if w.shape != z.shape:
                raise ValueError(f"weight has shape {w.shape}, margin {z.shape}")
        return z, y, w
