"""Softmax focal loss for k classes: exact gradient, exact diagonal of the hessian.

With p = softmax(z), c the true class, p_t = p_c, u = 1 - p_t and alpha_t = alpha[c]:

    L    = -alpha_t u^g log p_t
    g_k  = alpha_t A (y_k - p_k),            A = g p_t u^(g-1) log p_t - u^g
    h_kk = alpha_t (A' p_t (y_k - p_k)^2 - A p_k (1 - p_k)),
           A' = g u^(g-2) ((1 - g p_t) log p_t + 2u)

Written without the singular powers: u^(g-1) log p_t = u^g (log p_t / u) and
A' (y_k - p_k)^2 = g u^g ((1 - g p_t) log p_t + 2u) ((y_k - p_k) / u)^2, both bounded as
u -> 0. log p_t and u come from a max-shifted softmax whose largest term is kept out of the
sum, so a confident correct row has u exact to the last bit rather than 1 - 0.99999... .

The code is written once against the array namespace (numpy or CuPy); arrays are (n, k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ._arrays import float_dtype, namespace, to_host
from .focal import _check_params


@dataclass(frozen=True)
class MulticlassFocalLoss:
    """Softmax focal loss; ``alpha`` is None or one weight per class."""

    n_classes: int
    gamma: float = 2.0
    alpha: tuple[float, ...] | None = None
    hessian: str = "floor"
    min_hessian: float = 1e-16

    def __post_init__(self):
        _check_params(self.gamma, self.hessian, self.min_hessian)
        if self.n_classes < 2:
            raise ValueError("n_classes must be >= 2")
        if self.alpha is not None:
            alpha = tuple(float(a) for a in self.alpha)
            if len(alpha) != self.n_classes or any(not (a > 0) for a in alpha):
                raise ValueError(f"alpha must be {self.n_classes} positive weights, got {self.alpha!r}")
            object.__setattr__(self, "alpha", alpha)

    def to_dict(self) -> dict:
        return {"kind": "multiclass", "n_classes": self.n_classes, "gamma": self.gamma,
                "alpha": None if self.alpha is None else list(self.alpha),
                "hessian": self.hessian, "min_hessian": self.min_hessian}

    # -- shared pieces -----------------------------------------------------------------
    def _terms(self, margin, label):
        xp = namespace(margin)
        z = xp.asarray(margin, dtype=xp.float64)
        if z.ndim != 2 or z.shape[1] != self.n_classes:
            raise ValueError(f"margin must have shape (n, {self.n_classes}), got {z.shape}")
        c = xp.asarray(label).reshape(-1).astype(xp.int64)
        if c.shape[0] != z.shape[0]:
            raise ValueError(f"label has {c.shape[0]} rows, margin {z.shape[0]}")
        rows = xp.arange(z.shape[0])
        top = xp.argmax(z, axis=1)
        shifted = z - z[rows, top][:, None]
        e = xp.exp(shifted)
        e[rows, top] = 0.0
        rest = e.sum(axis=1)  # sum of the non-largest terms; the largest is exactly 1
        e[rows, top] = 1.0
        total = 1.0 + rest
        p = e / total[:, None]
        log_pt = shifted[rows, c] - xp.log1p(rest)
        pt = p[rows, c]
        u = xp.where(c == top, rest / total, 1.0 - pt)
        at = 1.0 if self.alpha is None else xp.asarray(self.alpha, dtype=xp.float64)[c]
        return xp, z, c, rows, p, pt, u, log_pt, at

    def _weighted(self, xp, values, weight):
        if weight is None:
            return values
        w = xp.asarray(weight, dtype=xp.float64).reshape(-1)
        return values * (w[:, None] if values.ndim == 2 else w)

    # -- the math ----------------------------------------------------------------------
    def loss(self, margin, label, weight=None):
        """Per-row loss (times the weight)."""
        xp, z, c, rows, p, pt, u, log_pt, at = self._terms(margin, label)
        out = -at * u**self.gamma * log_pt
        return self._weighted(xp, out, weight).astype(float_dtype(margin))

    def grad_hess(self, margin, label, weight=None):
        """(gradient, diagonal hessian), each (n, k), w.r.t. the margins."""
        xp, z, c, rows, p, pt, u, log_pt, at = self._terms(margin, label)
        g = self.gamma
        ug = u**g
        safe_u = xp.where(u > 0, u, 1.0)
        log_ratio = xp.where(u > 0, log_pt / safe_u, -1.0)  # log p_t / u -> -1 as u -> 0
        a = ug * (g * pt * log_ratio - 1.0)
        y = xp.zeros_like(p)
        y[rows, c] = 1.0
        resid = y - p
        scaled = xp.where((u > 0)[:, None], resid / safe_u[:, None], 0.0)
        a_prime_term = (g * ug * ((1.0 - g * pt) * log_pt + 2.0 * u))[:, None] * scaled**2
        at_col = at[:, None] if not isinstance(at, float) else at
        grad = at_col * a[:, None] * resid
        hess = at_col * (a_prime_term * pt[:, None] - a[:, None] * p * (1.0 - p))
        if self.hessian == "floor":
            hess = xp.maximum(hess, self.min_hessian)
        dtype = float_dtype(margin)
        return (self._weighted(xp, grad, weight).astype(dtype),
                self._weighted(xp, hess, weight).astype(dtype))

    def mean_loss(self, margin, label, weight=None) -> float:
        values = self.loss(margin, label, weight)
        denom = float(weight.sum()) if weight is not None else values.shape[0]
        return float(values.sum(dtype=np.float64)) / denom

    def init_margin(self, label, weight=None) -> np.ndarray:
        """Constant margin vector (centred to sum 0) minimising the mean loss."""
        y = to_host(label).reshape(-1).astype(np.int64)
        w = np.ones(y.shape[0]) if weight is None else to_host(weight).astype(np.float64).reshape(-1)
        if y.size and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels must be class indices in [0, {self.n_classes}), "
                             f"found {sorted(set(y[(y < 0) | (y >= self.n_classes)].tolist()))[:5]}")
        totals = np.bincount(y, weights=w, minlength=self.n_classes).astype(np.float64)
        if np.any(totals <= 0):
            raise ValueError("init_margin needs every class with positive total weight")
        from scipy import optimize

        classes = np.arange(self.n_classes)
        scale = totals.sum()

        def objective(z):
            zz = np.tile(z, (self.n_classes, 1))
            value = float(self.loss(zz, classes, totals).sum()) / scale
            grad, _ = self.grad_hess(zz, classes, totals)
            return value, grad.sum(axis=0) / scale

        start = np.log(totals / scale)
        result = optimize.minimize(objective, start - start.mean(), jac=True, method="BFGS",
                                   options={"gtol": 1e-12, "maxiter": 1000})
        z = result.x
        return z - z.mean()
