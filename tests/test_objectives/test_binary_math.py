"""The binary focal loss: derivatives against finite differences, numerical safety,
the hessian option, and the starting margin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import FocalLoss

GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
ALPHAS = [None, 0.1, 0.25, 0.9]
MARGINS = np.linspace(-40.0, 40.0, 2001)


def central_difference(f, z, eps=1e-4):
    return (f(z + eps) - f(z - eps)) / (2 * eps)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_gradient_and_hessian_match_finite_differences(gamma, alpha, label):
    loss = FocalLoss(gamma=gamma, alpha=alpha, hessian="exact")
    y = np.full_like(MARGINS, label)
    grad, hess = loss.grad_hess(MARGINS, y)
    fd_grad = central_difference(lambda z: loss.loss(z, y), MARGINS)
    fd_hess = central_difference(lambda z: loss.grad_hess(z, y)[0], MARGINS)
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-6, atol=1e-9)


def test_gamma_zero_without_alpha_is_the_logistic_loss():
    z = np.linspace(-30, 30, 601)
    y = (np.arange(z.size) % 2).astype(float)
    grad, hess = FocalLoss(gamma=0.0, alpha=None).grad_hess(z, y)
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(grad, p - y, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, np.maximum(p * (1 - p), 1e-16), rtol=1e-12, atol=1e-15)
    logloss = np.where(y == 1, np.logaddexp(0, -z), np.logaddexp(0, z))
    np.testing.assert_allclose(FocalLoss(0.0, None).loss(z, y), logloss, rtol=1e-12, atol=1e-15)


@settings(max_examples=300, deadline=None)
@given(z=st.floats(-40, 40), gamma=st.floats(0, 5), alpha=st.one_of(st.none(), st.floats(0.01, 0.99)),
       label=st.sampled_from([0.0, 1.0]))
def test_derivatives_property(z, gamma, alpha, label):
    loss = FocalLoss(gamma=gamma, alpha=alpha, hessian="exact")
    zz, y = np.array([z]), np.array([label])
    grad, hess = loss.grad_hess(zz, y)
    np.testing.assert_allclose(grad, central_difference(lambda v: loss.loss(v, y), zz),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(hess, central_difference(lambda v: loss.grad_hess(v, y)[0], zz),
                               rtol=1e-5, atol=1e-8)


@settings(max_examples=300, deadline=None)
@given(z=st.floats(-700, 700), gamma=st.floats(0, 5), alpha=st.one_of(st.none(), st.floats(0.01, 0.99)),
       label=st.sampled_from([0.0, 1.0]), weight=st.floats(0.0, 100.0))
def test_finite_and_well_signed_everywhere(z, gamma, alpha, label, weight):
    loss = FocalLoss(gamma=gamma, alpha=alpha)
    zz, y, w = np.array([z]), np.array([label]), np.array([weight])
    grad, hess = loss.grad_hess(zz, y, w)
    value = loss.loss(zz, y, w)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hess)) and np.all(np.isfinite(value))
    assert value[0] >= 0
    # the loss always pushes the margin towards the label
    assert (grad[0] <= 0) if label == 1 else (grad[0] >= 0)
    assert hess[0] >= min(loss.min_hessian * weight, loss.min_hessian)


@pytest.mark.parametrize("dtype,limit", [(np.float64, 700.0), (np.float64, 1e300),
                                         (np.float32, float(np.finfo(np.float32).max))])
def test_no_nan_or_inf_at_extreme_margins(dtype, limit):
    z = np.array([-limit, -limit / 2, -1, 0, 1, limit / 2, limit], dtype=dtype)
    for gamma in GAMMAS:
        for alpha in ALPHAS:
            for hessian in ("exact", "floor"):
                loss = FocalLoss(gamma, alpha, hessian=hessian)
                for label in (0.0, 1.0):
                    y = np.full(z.shape, label, dtype=dtype)
                    grad, hess = loss.grad_hess(z, y)
                    value = loss.loss(z, y)
                    assert grad.dtype == dtype and hess.dtype == dtype and value.dtype == dtype
                    assert np.isfinite(grad).all(), (gamma, alpha, label, grad)
                    assert np.isfinite(hess).all(), (gamma, alpha, label, hess)
                    assert np.isfinite(value).all(), (gamma, alpha, label, value)


def test_float32_agrees_with_float64():
    rng = np.random.default_rng(3)
    z = rng.normal(scale=6, size=10_000)
    y = (rng.random(z.size) < 0.3).astype(float)
    loss = FocalLoss(2.0, 0.25)
    g64, h64 = loss.grad_hess(z.astype(np.float32).astype(np.float64), y)
    g32, h32 = loss.grad_hess(z.astype(np.float32), y.astype(np.float32))
    scale_g, scale_h = np.abs(g64).max(), np.abs(h64).max()
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6 * scale_g)
    np.testing.assert_allclose(h32, h64, rtol=1e-4, atol=1e-6 * scale_h)


def test_hessian_option_floor_versus_exact():
    z = np.linspace(-12, 12, 241)
    y = np.ones_like(z)
    exact = FocalLoss(2.0, 0.25, hessian="exact").grad_hess(z, y)[1]
    floored = FocalLoss(2.0, 0.25, hessian="floor", min_hessian=1e-6).grad_hess(z, y)[1]
    assert (exact < 0).any(), "gamma=2 has a negative exact hessian for badly wrong rows"
    assert (floored >= 1e-6).all()
    keep = exact >= 1e-6
    np.testing.assert_array_equal(floored[keep], exact[keep])
    # the sign change sits near p_t = 0.058 for gamma 2 (see the notes)
    pt_at_zero_crossing = 1 / (1 + np.exp(-z[np.flatnonzero(exact >= 0)[0]]))
    assert 0.04 < pt_at_zero_crossing < 0.07


def test_weights_scale_everything():
    rng = np.random.default_rng(0)
    z = rng.normal(size=100)
    y = (rng.random(100) < 0.5).astype(float)
    w = rng.random(100) * 5
    loss = FocalLoss(2.0, 0.25, hessian="exact")
    g, h = loss.grad_hess(z, y)
    gw, hw = loss.grad_hess(z, y, w)
    np.testing.assert_allclose(gw, g * w, rtol=1e-12)
    np.testing.assert_allclose(hw, h * w, rtol=1e-12)
    np.testing.assert_allclose(loss.loss(z, y, w), loss.loss(z, y) * w, rtol=1e-12)
    assert loss.mean_loss(z, y, w) == pytest.approx(np.sum(loss.loss(z, y) * w) / w.sum())


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_init_margin_minimises_the_mean_loss(gamma, alpha):
    rng = np.random.default_rng(1)
    y = (rng.random(5000) < 0.02).astype(float)
    w = rng.uniform(0.5, 2.0, y.size)
    loss = FocalLoss(gamma, alpha)
    for weight in (None, w):
        z0 = loss.init_margin(y, weight)
        at = lambda v: loss.mean_loss(np.full(y.size, v), y, weight)  # noqa: E731
        best = at(z0)
        for dz in (1e-3, 1e-2, 0.1, 1.0):
            assert best <= at(z0 + dz) + 1e-15 and best <= at(z0 - dz) + 1e-15
        grid = np.linspace(-15, 15, 601)
        assert best <= min(at(v) for v in grid) + 1e-12
    if gamma == 0 and alpha is None:
        assert loss.init_margin(y) == pytest.approx(np.log(y.mean() / (1 - y.mean())), abs=1e-10)


def test_init_margin_is_not_the_log_odds_with_focusing():
    y = np.r_[np.ones(10), np.zeros(990)]
    assert abs(FocalLoss(2.0, 0.25).init_margin(y) - np.log(10 / 990)) > 0.5


@pytest.mark.parametrize("kwargs,match", [
    ({"gamma": -1.0}, "gamma"), ({"alpha": 1.5}, "alpha"), ({"hessian": "abs"}, "hessian"),
    ({"min_hessian": 0.0}, "min_hessian"),
])
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FocalLoss(**kwargs)


def test_bad_labels_and_shapes_are_refused():
    loss = FocalLoss()
    with pytest.raises(ValueError, match="0 or 1"):
        loss.init_margin(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="both classes"):
        loss.init_margin(np.zeros(10))
    with pytest.raises(ValueError, match="shape"):
        loss.grad_hess(np.zeros(3), np.zeros(4))


def test_kernels_leave_a_stable_numba_cache(tmp_path):
    """A second process must neither grow numba's on-disk cache nor fail to read it (the row
    loops take functions as arguments, which numba's cache cannot key: it used to append an
    entry per process until loading the index failed)."""
    import os
    import subprocess
    import sys

    script = ("import numpy as np\nfrom objectives import FocalLoss\n"
              "for dtype in (np.float32, np.float64):\n"
              "    z = np.linspace(-30, 30, 1001).astype(dtype); y = (z > 0).astype(dtype)\n"
              "    for gamma in (0.0, 2.0, 1.7):\n"
              "        FocalLoss(gamma, 0.25).grad_hess(z, y); FocalLoss(gamma, 0.25).loss(z, y)\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    listings = []
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
        listings.append(sorted(p.name for p in tmp_path.rglob("*") if p.is_file()))
    assert listings[0] == listings[1]
