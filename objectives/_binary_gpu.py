"""Fused CuPy kernels for the binary focal loss: one elementwise kernel per call.

The same arithmetic as ``_binary_cpu`` in CUDA C, computed in double precision whatever
the input type so the GPU and CPU agree to rounding. Built lazily: importing this module
never needs CuPy or a GPU.
"""

from __future__ import annotations

import functools

_TERMS = r"""
    const double zz = (double)z;
    const double s = (y > 0.5) ? 1.0 : -1.0;
    const double x = s * zz;
    double e, log_pt, pt, u;
    if (x >= 0.0) {
        e = exp(-x); log_pt = -log1p(e); pt = 1.0 / (1.0 + e); u = e * pt;
    } else {
        e = exp(x); log_pt = x - log1p(e); u = 1.0 / (1.0 + e); pt = e * u;
    }
    double ug;
    if (gamma == 0.0) ug = 1.0;
    else if (gamma == 1.0) ug = u;
    else if (gamma == 2.0) ug = u * u;
    else ug = pow(u, gamma);
    const double at = (alpha < 0.0) ? 1.0 : ((s > 0.0) ? alpha : 1.0 - alpha);
    const double ww = weighted ? (double)w : 1.0;
"""


@functools.lru_cache(maxsize=None)
def _kernels():
    import cupy as cp

    grad_hess = cp.ElementwiseKernel(
        "T z, L y, W w, float64 gamma, float64 alpha, float64 floor, bool use_floor, bool weighted",
        "O grad, O hess",
        _TERMS
        + r"""
        double g = at * s * ug * (gamma * pt * log_pt - u);
        double h = at * pt * ug * ((2.0 * gamma + 1.0) * u + gamma * (u - gamma * pt) * log_pt);
        if (use_floor && h < floor) h = floor;
        grad = (O)(g * ww);
        hess = (O)(h * ww);
        """,
        "focal_binary_grad_hess",
    )
    loss = cp.ElementwiseKernel(
        "T z, L y, W w, float64 gamma, float64 alpha, bool weighted",
        "O out",
        _TERMS + "out = (O)(-at * ug * log_pt * ww);",
        "focal_binary_loss",
    )
    return grad_hess, loss


def grad_hess(z, y, w, gamma, alpha, floor, out_dtype):
    """Gradient and hessian on the device; ``w`` None for unit weights."""
    import cupy as cp

    kernel, _ = _kernels()
    grad = cp.empty(z.shape, dtype=out_dtype)
    hess = cp.empty(z.shape, dtype=out_dtype)
    weighted = w is not None
    use_floor = floor is not None
    kernel(z, y, w if weighted else cp.ones((), dtype=cp.float32), float(gamma), float(alpha),
           float(floor) if use_floor else 0.0, use_floor, weighted, grad, hess)
    return grad, hess


def loss(z, y, w, gamma, alpha, out_dtype):
    """Per-row focal loss on the device."""
    import cupy as cp

    _, kernel = _kernels()
    out = cp.empty(z.shape, dtype=out_dtype)
    weighted = w is not None
    kernel(z, y, w if weighted else cp.ones((), dtype=cp.float32), float(gamma), float(alpha), weighted, out)
    return out
