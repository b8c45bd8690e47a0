"""Softmax focal loss: derivatives against finite differences, safety, starting margin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from objectives import FocalLoss, MulticlassFocalLoss

K = 4
ALPHAS = [None, (0.1, 0.2, 0.3, 0.4), (0.25, 0.25, 0.25, 0.25), (0.9, 0.05, 0.03, 0.02)]


def fd_per_class(f, z, eps=1e-5):
    """Central difference of f along each class column; f returns (n,) or (n, k)."""
    out = np.zeros_like(z)
    for k in range(z.shape[1]):
        step = np.zeros_like(z)
        step[:, k] = eps
        diff = (f(z + step) - f(z - step)) / (2 * eps)
        out[:, k] = diff[:, k] if diff.ndim == 2 else diff
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_multiclass_derivatives_match_finite_differences(gamma, alpha):
    rng = np.random.default_rng(7)
    z = rng.uniform(-40, 40, size=(400, K))
    z[:100] = rng.normal(scale=2, size=(100, K))  # plenty of rows near the decision boundaries
    c = rng.integers(0, K, size=400)
    loss = MulticlassFocalLoss(K, gamma=gamma, alpha=alpha, hessian="exact")
    grad, hess = loss.grad_hess(z, c)
    fd_grad = fd_per_class(lambda m: loss.loss(m, c), z)
    fd_hess = fd_per_class(lambda m: loss.grad_hess(m, c)[0], z)
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-5, atol=1e-8)


@settings(max_examples=200, deadline=None)
@given(z=hnp.arrays(np.float64, (1, K), elements=st.floats(-30, 30)), gamma=st.floats(0, 5),
       c=st.integers(0, K - 1))
def test_multiclass_derivatives_property(z, gamma, c):
    loss = MulticlassFocalLoss(K, gamma=gamma, hessian="exact")
    label = np.array([c])
    grad, hess = loss.grad_hess(z, label)
    np.testing.assert_allclose(grad, fd_per_class(lambda m: loss.loss(m, label), z), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(hess, fd_per_class(lambda m: loss.grad_hess(m, label)[0], z),
                               rtol=1e-4, atol=1e-7)


@settings(max_examples=200, deadline=None)
@given(z=hnp.arrays(np.float64, (1, K), elements=st.floats(-700, 700)), gamma=st.floats(0, 5),
       c=st.integers(0, K - 1))
def test_multiclass_is_finite_at_extreme_margins(z, gamma, c):
    loss = MulticlassFocalLoss(K, gamma=gamma, alpha=(0.1, 0.2, 0.3, 0.4))
    grad, hess = loss.grad_hess(z, np.array([c]))
    value = loss.loss(z, np.array([c]))
    assert np.isfinite(grad).all() and np.isfinite(hess).all() and np.isfinite(value).all()
    assert (hess >= loss.min_hessian).all()


def test_two_class_softmax_matches_binary_focal_on_the_difference():
    """Softmax over (0, z) is sigmoid(z): the losses agree (gradients w.r.t. z too)."""
    z = np.linspace(-20, 20, 81)
    y = (np.arange(z.size) % 2).astype(np.int64)
    margins = np.column_stack([np.zeros_like(z), z])
    multi = MulticlassFocalLoss(2, gamma=2.0, alpha=(0.75, 0.25), hessian="exact")
    binary = FocalLoss(2.0, 0.25, hessian="exact")
    np.testing.assert_allclose(multi.loss(margins, y), binary.loss(z, y.astype(float)), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(multi.grad_hess(margins, y)[0][:, 1], binary.grad_hess(z, y.astype(float))[0],
                               rtol=1e-10, atol=1e-14)


def test_multiclass_weights_and_init_margin():
    rng = np.random.default_rng(2)
    c = rng.choice(K, size=3000, p=[0.9, 0.06, 0.03, 0.01])
    w = rng.uniform(0.5, 2, c.size)
    loss = MulticlassFocalLoss(K, gamma=2.0, alpha=(0.1, 0.3, 0.3, 0.3))
    z = rng.normal(size=(c.size, K))
    g, h = loss.grad_hess(z, c)
    gw, hw = loss.grad_hess(z, c, w)
    np.testing.assert_allclose(gw, g * w[:, None], rtol=1e-12)
    np.testing.assert_allclose(hw, h * w[:, None], rtol=1e-12)
    for weight in (None, w):
        z0 = loss.init_margin(c, weight)
        assert abs(z0.sum()) < 1e-9
        at = lambda v: loss.mean_loss(np.tile(v, (c.size, 1)), c, weight)  # noqa: E731
        best = at(z0)
        for _ in range(200):
            assert best <= at(z0 + rng.normal(scale=0.05, size=K)) + 1e-12


def test_multiclass_refuses_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        MulticlassFocalLoss(3, alpha=(0.5, 0.5))
    loss = MulticlassFocalLoss(3)
    with pytest.raises(ValueError, match="shape"):
        loss.grad_hess(np.zeros((5, 4)), np.zeros(5))
    with pytest.raises(ValueError, match="class indices"):
        loss.init_margin(np.array([0, 1, 3]))
