"""The focal loss's two variants: class-balanced weights (effective number of samples) and a
gamma schedule over the boosting rounds."""

from __future__ import annotations

import numpy as np
import pytest

from objectives import (FocalLGBMClassifier, FocalLoss, FocalXGBClassifier, GammaSchedule, ScheduledObjective,
                        class_balanced_alpha, class_balanced_weights)
from objectives.persistence import load_predictor


def imbalanced(n=3000, d=6, rate=0.05, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    score = X[:, 0] + 0.7 * X[:, 1] * X[:, 2] + 0.5 * rng.normal(size=n)
    return X, (score > np.quantile(score, 1 - rate)).astype(float)


# -- class-balanced weights ----------------------------------------------------------------
@pytest.mark.parametrize("beta", [0.9, 0.99, 0.9999])
def test_class_balanced_weights_are_the_normalised_inverse_effective_numbers(beta):
    counts = np.array([900.0, 30.0])
    raw = (1 - beta) / (1 - beta ** counts)
    assert np.allclose(class_balanced_weights(counts, beta), raw * 2 / raw.sum(), rtol=1e-12)
    assert class_balanced_weights(counts, beta).sum() == pytest.approx(2.0)


def test_class_balanced_weights_move_from_equal_to_inverse_frequency_with_beta():
    counts = [900.0, 30.0]
    assert np.allclose(class_balanced_weights(counts, 0.0), [1.0, 1.0])
    ratios = [class_balanced_weights(counts, b)[1] / class_balanced_weights(counts, b)[0]
              for b in (0.9, 0.99, 0.999, 0.9999999)]
    assert all(a < b for a, b in zip(ratios, ratios[1:]))  # the rare class gains weight as beta grows
    assert ratios[-1] == pytest.approx(900 / 30, rel=1e-3)  # beta -> 1: inverse class frequency
    three = class_balanced_weights([10.0, 100.0, 1000.0], 0.99)
    assert three.sum() == pytest.approx(3.0) and three[0] > three[1] > three[2]


def test_class_balanced_alpha_scales_each_class_gradient_by_its_weight():
    """alpha_t = w_y / 2: the focal gradient of a row is the unweighted one times half its
    class's weight; the counts are the weighted ones (down-sampled negatives count 1/rate)."""
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.1).astype(float)
    weight = np.where(y == 1, 1.0, 4.0)
    beta = 0.99
    alpha = class_balanced_alpha(y, beta, weight)
    w0, w1 = class_balanced_weights([weight[y == 0].sum(), (y == 1).sum()], beta)
    assert alpha == pytest.approx(w1 / 2)
    z = rng.normal(size=y.size)
    g_cb, h_cb = FocalLoss(gamma=2.0, alpha=alpha).grad_hess(z, y)
    g, h = FocalLoss(gamma=2.0, alpha=None).grad_hess(z, y)
    factor = np.where(y == 1, w1, w0) / 2
    assert np.allclose(g_cb, g * factor, rtol=1e-9) and np.allclose(h_cb, h * factor, rtol=1e-9)
    # the weights count: unweighted negatives are 4x fewer, so the positives weigh less
    assert class_balanced_alpha(y, beta) < alpha


# -- gamma schedule ------------------------------------------------------------------------
def test_gamma_schedule_is_linear_from_start_to_end_then_flat():
    s = GammaSchedule(0.5, 3.0, 11)
    assert [s.gamma_at(r) for r in range(11)] == pytest.approx([0.5 + 0.25 * r for r in range(11)])
    assert s.gamma_at(50) == 3.0 and GammaSchedule(4.0, 1.0, 4).gamma_at(1) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        GammaSchedule(-1.0, 2.0, 10)


def test_scheduled_objective_uses_each_rounds_gamma_in_turn():
    seen = []

    class Adapter:
        loss = None

        def __call__(self, preds, data):
            seen.append(self.loss.gamma)
            return self.loss.grad_hess(preds, data)

    obj = ScheduledObjective(Adapter(), GammaSchedule(0.0, 2.0, 5), lambda g: FocalLoss(gamma=g, alpha=None))
    y = np.array([0.0, 1.0])
    for _ in range(6):
        obj(np.zeros(2), y)
    assert seen == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.0])


@pytest.mark.parametrize("cls", [FocalXGBClassifier, FocalLGBMClassifier])
def test_a_schedule_trains_its_first_tree_at_gamma_start_and_later_ones_differently(cls):
    """Round 0 of a schedule from 0 to 3 is round 0 of constant gamma 0; the full model is
    neither the constant-0 nor the constant-3 one."""
    X, y = imbalanced()
    common = dict(alpha=0.25, n_estimators=15, learning_rate=0.3, max_depth=3, min_child_weight=1e-3)
    scheduled = cls(gamma=0.0, gamma_end=3.0, **common).fit(X, y)
    start = cls(gamma=0.0, **common).fit(X, y)
    end = cls(gamma=3.0, **common).fit(X, y)

    def first_tree(model):
        if cls is FocalXGBClassifier:
            return model.booster_.inplace_predict(X, predict_type="margin", iteration_range=(0, 1))
        return model.booster_.predict(X, raw_score=True, num_iteration=1)

    assert np.allclose(first_tree(scheduled), first_tree(start), atol=1e-6)
    full = scheduled.decision_function(X)
    assert np.abs(full - start.decision_function(X)).max() > 1e-3
    assert np.abs(full - end.decision_function(X)).max() > 1e-3


def test_a_scheduled_model_saves_and_loads_without_its_schedule(tmp_path):
    X, y = imbalanced()
    model = FocalXGBClassifier(gamma=0.5, gamma_end=2.5, n_estimators=10, max_depth=3).fit(X, y)
    path = model.save_model(tmp_path / "model.json")
    assert np.allclose(load_predictor(path).predict_proba(X), model.predict_proba(X), atol=1e-7)
    again = FocalXGBClassifier.load_model(path)
    assert again.gamma_end == 2.5 and np.allclose(again.predict_proba(X), model.predict_proba(X), atol=1e-7)
