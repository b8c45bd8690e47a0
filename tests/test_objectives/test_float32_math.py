"""The float32 exp / logistic helpers the CPU kernel inlines: a few ulp from float64 truth
over the whole range, including results that underflow to subnormals and zero."""

from __future__ import annotations

import numba
import numpy as np

from objectives._float32_math import logistic_parts


@numba.njit(error_model="numpy")
def _parts(a, e, big, log1p_e):
    for i in range(a.shape[0]):
        e[i], big[i], log1p_e[i] = logistic_parts(a[i])


def _ulp_error(got: np.ndarray, truth: np.ndarray) -> np.ndarray:
    spacing = np.spacing(np.abs(truth.astype(np.float32))).astype(np.float64)
    return np.abs(got.astype(np.float64) - truth) / spacing


def test_logistic_parts_within_a_few_ulp_of_float64():
    rng = np.random.default_rng(0)
    a = np.concatenate([np.linspace(0, 120, 500_000, dtype=np.float32),
                        np.abs(rng.standard_normal(200_000)).astype(np.float32) * 5,
                        np.float32([0, 1e-30, 1e-8, 1e-3, 87.3, 88.8, 103.2, 103.9, 104, 1e30, np.inf])])
    e, big, log1p_e = (np.empty_like(a) for _ in range(3))
    _parts(a, e, big, log1p_e)
    truth_e = np.exp(-a.astype(np.float64))
    assert np.isfinite(e).all() and np.isfinite(big).all() and np.isfinite(log1p_e).all()
    assert _ulp_error(e, truth_e).max() <= 2
    assert _ulp_error(big, 1 / (1 + truth_e)).max() <= 4
    assert _ulp_error(log1p_e, np.log1p(truth_e)).max() <= 6
    assert e[-1] == 0 and e[-3] == 0 and e[-4] > 0  # underflow where float32 exp underflows


def test_float32_kernel_matches_float64_kernel_to_float32_precision():
    from objectives import FocalLoss

    rng = np.random.default_rng(1)
    z = np.r_[rng.normal(scale=8, size=50_000), [-700, -90, -40, 0, 40, 90, 700]].astype(np.float32)
    y = (rng.random(z.size) < 0.3).astype(np.float32)
    for gamma, alpha in ((0.0, None), (0.5, 0.1), (2.0, 0.25), (5.0, 0.9)):
        loss = FocalLoss(gamma, alpha, hessian="exact")
        g32, h32 = loss.grad_hess(z, y)
        g64, h64 = loss.grad_hess(z.astype(np.float64), y.astype(np.float64))
        for got, truth in ((g32, g64), (h32, h64), (loss.loss(z, y), loss.loss(z.astype(np.float64), y))):
            np.testing.assert_allclose(got, truth, rtol=2e-5, atol=1e-6 * np.abs(truth).max())
