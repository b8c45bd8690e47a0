"""CuPy backend: numpy and CuPy agree to 1e-6 relative, and the on-device XGBoost loop
matches host training. Skipped where there is no CUDA GPU."""

from __future__ import annotations

import numpy as np
import pytest

from objectives import FocalLoss, MulticlassFocalLoss

cp = pytest.importorskip("cupy")
try:
    HAS_GPU = cp.cuda.runtime.getDeviceCount() > 0
except Exception:  # noqa: BLE001 - no driver, no device
    HAS_GPU = False
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU")]


def rel_close(a, b, rtol=1e-6):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.1, 0.25, 0.9])
@pytest.mark.parametrize("hessian", ["floor", "exact"])
def test_binary_cupy_matches_numpy(gamma, alpha, hessian):
    rng = np.random.default_rng(0)
    z = np.r_[rng.normal(scale=8, size=20000), [-700, -40, 0, 40, 700]]
    y = (rng.random(z.size) < 0.3).astype(np.float64)
    w = rng.uniform(0.1, 3, z.size)
    loss = FocalLoss(gamma, alpha, hessian=hessian)
    for weight in (None, w):
        g, h = loss.grad_hess(z, y, weight)
        gd, hd = loss.grad_hess(cp.asarray(z), cp.asarray(y), None if weight is None else cp.asarray(weight))
        rel_close(gd.get(), g)
        rel_close(hd.get(), h)
        rel_close(loss.loss(cp.asarray(z), cp.asarray(y)).get(), loss.loss(z, y))
    assert loss.init_margin(cp.asarray(y)) == pytest.approx(loss.init_margin(y), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_multiclass_cupy_matches_numpy(gamma):
    rng = np.random.default_rng(1)
    z = rng.normal(scale=6, size=(5000, 4))
    c = rng.integers(0, 4, 5000)
    loss = MulticlassFocalLoss(4, gamma=gamma, alpha=(0.1, 0.2, 0.3, 0.4))
    g, h = loss.grad_hess(z, c)
    gd, hd = loss.grad_hess(cp.asarray(z), cp.asarray(c))
    rel_close(gd.get(), g)
    rel_close(hd.get(), h)
    rel_close(loss.loss(cp.asarray(z), cp.asarray(c)).get(), loss.loss(z, c))
    np.testing.assert_allclose(loss.init_margin(cp.asarray(c)), loss.init_margin(c), rtol=1e-6, atol=1e-9)


def test_on_device_training_matches_host_training():
    import xgboost as xgb

    from objectives import XGBoostObjective, booster_params, train_on_device

    rng = np.random.default_rng(2)
    X = rng.normal(size=(20000, 10)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=20000) > 2.5).astype(np.float32)
    loss = FocalLoss(2.0, 0.25)
    init = loss.init_margin(y)
    params = {"max_depth": 4, "eta": 0.2, "tree_method": "hist", "device": "cuda", "seed": 0}
    # The host-objective reference builds its QuantileDMatrix from device data too: cuts
    # sketched from host data differ, and so do the trees (0.12 apart in probability on an H100).
    Xd, yd = cp.asarray(X), cp.asarray(y)
    host = xgb.train(booster_params(loss, init, params), xgb.QuantileDMatrix(Xd, label=yd), 20,
                     obj=XGBoostObjective(loss))
    device, _ = train_on_device(params, Xd, yd, loss, 20, init_margin=init)
    np.testing.assert_allclose(device.inplace_predict(X), host.inplace_predict(X), rtol=1e-4, atol=1e-6)


def test_classifier_on_cuda_keeps_the_margin_on_the_device(monkeypatch):
    from sklearn.metrics import average_precision_score

    from objectives import FocalXGBClassifier
    from objectives import xgboost_adapter

    calls = []
    real = xgboost_adapter.train_on_device

    def spy(*args, **kwargs):
        calls.append(hasattr(args[1], "__cuda_array_interface__"))
        return real(*args, **kwargs)

    monkeypatch.setattr(xgboost_adapter, "train_on_device", spy)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(20000, 8))
    y = (X[:, 0] + 0.7 * X[:, 1] * X[:, 2] + 0.5 * rng.normal(size=20000) > 2.2).astype(float)
    params = dict(n_estimators=300, learning_rate=0.2, max_depth=5, early_stopping_rounds=10)
    fits = {device: FocalXGBClassifier(device=device, **params).fit(X[:15000], y[:15000],
                                                                    eval_set=[(X[15000:], y[15000:])])
            for device in ("cpu", "cuda")}
    assert calls == [True]  # only the cuda fit took the loop, with device arrays
    gpu = fits["cuda"]
    history = gpu.evals_result_["eval_0"]["average_precision"]
    assert gpu.best_iteration_ == int(np.argmax(history)) and gpu.best_iteration_ < 299
    ap = {d: average_precision_score(y[15000:], m.predict_proba(X[15000:])[:, 1]) for d, m in fits.items()}
    assert abs(ap["cuda"] - ap["cpu"]) < 0.03, ap
