"""XGBoost and LightGBM adapters: gamma=0 reproduces the built-in logistic training,
metrics on margins, sklearn contract, persistence without pickle."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from sklearn.base import clone
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from objectives import (FocalLGBMClassifier, FocalLoss, FocalXGBClassifier, LightGBMMetric,
                        LightGBMObjective, MulticlassFocalLoss, XGBoostMetric, XGBoostObjective,
                        average_precision, booster_params)
from objectives.lightgbm_adapter import init_score, raw_margin
from objectives.persistence import load_predictor


def imbalanced(n=6000, d=8, rate=0.05, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    score = X[:, 0] + 0.7 * X[:, 1] * X[:, 2] + 0.5 * rng.normal(size=n)
    y = (score > np.quantile(score, 1 - rate)).astype(float)
    return X, y


def test_xgboost_gamma_zero_reproduces_builtin_logistic():
    X, y = imbalanced()
    loss = FocalLoss(gamma=0.0, alpha=None)
    init = loss.init_margin(y)
    params = {"max_depth": 4, "eta": 0.3, "tree_method": "hist", "nthread": 1, "seed": 0}
    dtrain = xgb.DMatrix(X, label=y)
    builtin = xgb.train({**params, "objective": "binary:logistic",
                         "base_score": float(y.mean())}, dtrain, 30)
    focal = xgb.train(booster_params(loss, init, params), dtrain, 30, obj=XGBoostObjective(loss))
    np.testing.assert_allclose(focal.predict(dtrain), builtin.predict(dtrain), rtol=1e-4, atol=1e-6)


def test_lightgbm_gamma_zero_reproduces_builtin_binary():
    X, y = imbalanced()
    loss = FocalLoss(gamma=0.0, alpha=None)
    init = loss.init_margin(y)
    params = {"num_leaves": 15, "learning_rate": 0.3, "verbose": -1, "num_threads": 1,
              "seed": 0, "deterministic": True}
    builtin = lgb.train({**params, "objective": "binary"}, lgb.Dataset(X, y), 30)
    focal = lgb.train({**params, "objective": LightGBMObjective(loss)},
                      lgb.Dataset(X, y, init_score=init_score(init, len(y))), 30)
    p_builtin = builtin.predict(X)
    p_focal = 1 / (1 + np.exp(-raw_margin(focal, X, init)))
    np.testing.assert_allclose(p_focal, p_builtin, rtol=1e-4, atol=1e-6)


def test_margin_metrics_match_sklearn_and_the_loss():
    X, y = imbalanced()
    rng = np.random.default_rng(0)
    margin = rng.normal(size=y.size) + 2 * y
    margin[:50] = margin[50:100]  # ties
    assert average_precision(margin, y) == pytest.approx(average_precision_score(y, margin), abs=1e-12)
    loss = FocalLoss()
    d = xgb.DMatrix(X, label=y)
    assert XGBoostMetric(loss, "focal")(margin, d) == ("focal", pytest.approx(loss.mean_loss(margin, y)))
    assert XGBoostMetric(loss)(margin, d)[1] == pytest.approx(average_precision_score(y, margin))
    ds = lgb.Dataset(X, y).construct()
    name, value, higher = LightGBMMetric(loss)(margin, ds)
    assert (name, higher) == ("average_precision", True)
    assert value == pytest.approx(average_precision_score(y, margin))


@pytest.mark.parametrize("cls,suffix", [(FocalXGBClassifier, ".json"), (FocalXGBClassifier, ".ubj"),
                                        (FocalLGBMClassifier, ".txt")])
def test_save_load_predicts_identically(tmp_path, cls, suffix):
    X, y = imbalanced()
    model = cls(n_estimators=40, max_depth=4, n_jobs=1).fit(X[:4000], y[:4000],
                                                           eval_set=[(X[4000:], y[4000:])])
    path = model.save_model(tmp_path / f"model{suffix}")
    sidecar = json.loads((tmp_path / f"model{suffix}.focal.json").read_text())
    assert sidecar["loss"]["gamma"] == 2.0 and sidecar["loss"]["alpha"] == 0.25
    assert sidecar["loss"]["hessian"] == "floor"
    assert sidecar["init_margin"] == pytest.approx(model.init_margin_)
    loaded = cls.load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    predictor = load_predictor(path)  # the serving loader, without scikit-learn
    np.testing.assert_array_equal(predictor.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(predictor.set_threads(1).predict_proba(X), model.predict_proba(X))
    assert not list(tmp_path.glob("*.pkl"))


def test_xgboost_saved_model_alone_predicts_probabilities(tmp_path):
    """The starting margin lives in base_score, so the bare JSON model is self-contained."""
    X, y = imbalanced()
    model = FocalXGBClassifier(n_estimators=20, n_jobs=1).fit(X, y)
    model.save_model(tmp_path / "m.json")
    bare = xgb.Booster(model_file=str(tmp_path / "m.json"))
    np.testing.assert_allclose(bare.predict(xgb.DMatrix(X)), model.predict_proba(X)[:, 1], rtol=1e-5)


@pytest.mark.parametrize("cls", [FocalXGBClassifier, FocalLGBMClassifier])
def test_sklearn_contract_clone_pipeline_and_search(cls):
    X, y = imbalanced(3000)
    est = cls(n_estimators=15, max_depth=3, gamma=1.0, alpha=0.5, n_jobs=1)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "booster_")
    pipe = Pipeline([("scale", StandardScaler()), ("model", est)]).fit(X, y)
    proba = pipe.predict_proba(X)
    assert proba.shape == (len(y), 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(np.unique(pipe.predict(X))) <= {0.0, 1.0}
    search = GridSearchCV(cls(n_estimators=10, n_jobs=1), {"gamma": [0.0, 2.0]}, cv=2,
                          scoring="average_precision").fit(X, y)
    assert search.best_params_["gamma"] in (0.0, 2.0)
    est.set_params(gamma=3.0)
    assert est.get_params()["gamma"] == 3.0


@pytest.mark.parametrize("cls", [FocalXGBClassifier, FocalLGBMClassifier])
@pytest.mark.parametrize("metric", ["average_precision", "focal"])
def test_early_stopping_on_margin_metric(cls, metric):
    X, y = imbalanced(8000, rate=0.03, seed=4)
    model = cls(n_estimators=400, learning_rate=0.3, max_depth=6, early_stopping_rounds=10,
                eval_metric=metric, n_jobs=1).fit(X[:5000], y[:5000], eval_set=[(X[5000:], y[5000:])])
    assert model.best_iteration_ < 399
    history = next(iter(model.evals_result_.values()))[metric]
    best = max(history) if metric == "average_precision" else min(history)
    assert history[model.best_iteration_] == pytest.approx(best)
    ap = average_precision_score(y[5000:], model.predict_proba(X[5000:])[:, 1])
    assert ap > 3 * y.mean()


@pytest.mark.parametrize("metric", ["average_precision", "focal"])
def test_margin_loop_fit_equals_xgboost_callback_fit(monkeypatch, metric):
    """The loop that keeps the margin on the GPU (chosen for device="cuda"), run here on
    numpy, fits the same model as XGBoost's own loop: same trees, same early stop, same
    history (the GPU run of the same check is in test_gpu.py)."""
    import pandas as pd

    X, y = imbalanced(8000, rate=0.03, seed=4)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    w = np.random.default_rng(1).uniform(0.5, 2.0, 5000)
    params = dict(n_estimators=400, learning_rate=0.3, max_depth=6, early_stopping_rounds=10,
                  eval_metric=metric, n_jobs=1)
    fit_args = (X[:5000], y[:5000])
    fit_kwargs = dict(sample_weight=w, eval_set=[(X[5000:], y[5000:])])
    reference = FocalXGBClassifier(**params).fit(*fit_args, **fit_kwargs)
    monkeypatch.setattr(FocalXGBClassifier, "_margin_loop_namespace", lambda self, evals, callbacks: np)
    looped = FocalXGBClassifier(**params).fit(*fit_args, **fit_kwargs)
    assert looped.best_iteration_ == reference.best_iteration_ < 399
    assert looped.booster_.num_boosted_rounds() == reference.booster_.num_boosted_rounds()
    assert looped.booster_.feature_names == list(X.columns)
    np.testing.assert_allclose(looped.decision_function(X), reference.decision_function(X), rtol=1e-5, atol=1e-6)
    assert looped.evals_result_.keys() == reference.evals_result_.keys()
    # XGBoost's history goes through its log line, rounded to 6 decimals
    np.testing.assert_allclose(looped.evals_result_["eval_0"][metric], reference.evals_result_["eval_0"][metric],
                               rtol=0, atol=5.1e-7)


def test_margin_loop_is_chosen_only_where_it_applies():
    X, y = imbalanced(600)
    est = FocalXGBClassifier(n_estimators=2).fit(X, y)
    assert est._margin_loop_namespace([], None) is None  # device="cpu": XGBoost's own loop
    gpu = FocalXGBClassifier(n_estimators=2, device="cuda")
    gpu.n_classes_ = 2
    try:
        import cupy  # noqa: F401
        has_cupy = True
    except ImportError:
        has_cupy = False
    assert (gpu._margin_loop_namespace([], None) is not None) == has_cupy
    assert gpu._margin_loop_namespace([(X, y, np.ones(len(y)))], None) is None  # eval weights
    assert gpu._margin_loop_namespace([], [xgb.callback.EvaluationMonitor()]) is None
    gpu.n_classes_ = 3
    assert gpu._margin_loop_namespace([], None) is None


@pytest.mark.parametrize("cls", [FocalXGBClassifier, FocalLGBMClassifier])
def test_starting_margin_and_scaled_min_child_weight(cls):
    X, y = imbalanced()
    model = cls(n_estimators=5, n_jobs=1).fit(X, y)
    assert model.init_margin_ == pytest.approx(FocalLoss(2.0, 0.25).init_margin(y))
    default = 1.0 if cls is FocalXGBClassifier else 1e-3
    assert 0 < model.min_child_weight_ < default  # the focal hessian is smaller than the logistic one


@pytest.mark.parametrize("cls", [FocalXGBClassifier, FocalLGBMClassifier])
def test_multiclass_classifier(tmp_path, cls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5))
    y = np.where(X[:, 0] > 1, "fraud", np.where(X[:, 1] > 1.2, "abuse", "ok"))
    model = cls(n_estimators=30, alpha=(0.5, 0.3, 0.2), n_jobs=1).fit(X, y)
    assert isinstance(model.loss_, MulticlassFocalLoss)
    proba = model.predict_proba(X)
    assert proba.shape == (3000, 3) and np.allclose(proba.sum(axis=1), 1)
    assert (model.predict(X) == y).mean() > 0.9
    path = model.save_model(tmp_path / ("m.json" if cls is FocalXGBClassifier else "m.txt"))
    np.testing.assert_array_equal(cls.load_model(path).predict_proba(X), proba)


def test_sample_weights_change_the_fit():
    X, y = imbalanced()
    w = np.where(y == 1, 10.0, 1.0)
    plain = FocalXGBClassifier(n_estimators=10, n_jobs=1).fit(X, y)
    weighted = FocalXGBClassifier(n_estimators=10, n_jobs=1).fit(X, y, sample_weight=w)
    assert weighted.init_margin_ > plain.init_margin_
    assert weighted.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean()


def test_bad_classifier_input():
    X, y = imbalanced(500)
    with pytest.raises(ValueError, match="two classes"):
        FocalXGBClassifier().fit(X, np.zeros(500))
    with pytest.raises(ValueError, match="rows"):
        FocalXGBClassifier().fit(X, y[:10])
    with pytest.raises(ValueError, match="alpha"):
        FocalLGBMClassifier(alpha=(0.1, 0.9)).fit(X, y)
