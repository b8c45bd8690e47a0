"""The focal variants as candidates: ``cb_focal_xgb`` (class-balanced weights from the fold's
counts) and ``focal_xgb_gamma_schedule`` (gamma over the boosting rounds): their search
space, their first trial, ``train`` on the small data, and a registry round trip."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pandas as pd
import pytest

from fraud.config import load_config
from fraud.models import CLASS_BALANCED, GAMMA_SCHEDULE, Candidate, HyperParams
from fraud.search import FoldData, run_search
from fraud.search_space import suggest
from objectives import GammaSchedule, class_balanced_alpha

VARIANTS = (CLASS_BALANCED, GAMMA_SCHEDULE)


def _rows(rng, n):
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"f{i}" for i in range(5)])
    logit = -3.5 + 1.5 * X["f0"] - X["f1"] + 0.8 * X["f2"] * X["f3"]
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)


@pytest.fixture(scope="module")
def fold():
    """A fold whose negatives were down-sampled at rate 0.25 (weight 4), as training's."""
    rng = np.random.default_rng(5)
    X, y = _rows(rng, 2500)
    Xv, yv = _rows(rng, 1500)
    return FoldData(X, y, np.where(y == 1, 1.0, 4.0), Xv, yv)


def test_variant_spaces_sample_beta_on_a_log_scale_of_one_minus_beta_and_the_schedule_end():
    cfg = load_config().search
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    cb = [suggest(study.ask(), CLASS_BALANCED, cfg) for _ in range(300)]
    betas = np.array([p["beta"] for p in cb])
    assert betas.min() >= 0.9 and betas.max() <= 0.99999 and all("alpha" not in p for p in cb)
    # log-uniform 1 - beta on [1e-5, 0.1]: its median near 1e-3 (uniform beta would put it near 0.05)
    assert abs(np.median(np.log10(1 - betas)) + 3) < 0.3
    scheduled = suggest(study.ask(), GAMMA_SCHEDULE, cfg)
    assert {"gamma", "gamma_end", "alpha"} <= set(scheduled)


def test_the_first_trials_are_the_variants_defaults(fold):
    """The enqueued first trial reaches the sampler under its own name (beta is sampled as
    1 - beta): beta 0.999; the schedule from gamma 0 (logistic) to 2."""
    cfg = load_config(overrides={"search": {"max_rounds": 30, "early_stopping_rounds": 10, "n_jobs": 1,
                                            "max_trials": 2}}).search
    search = run_search(list(VARIANTS), [fold], cfg)
    assert search.results[CLASS_BALANCED].trials[0].params["beta"] == pytest.approx(0.999)
    first = search.results[GAMMA_SCHEDULE].trials[0].params
    assert (first["gamma"], first["gamma_end"]) == (0.0, 2.0)


def test_class_balanced_alpha_comes_from_beta_and_the_folds_weighted_counts(fold):
    params = HyperParams(max_depth=3, n_estimators=20, gamma=1.0, beta=0.9999)
    cand = Candidate(CLASS_BALANCED, params, n_jobs=1).fit(fold.X_train, fold.y_train, fold.w_train,
                                                           fold.X_val, fold.y_val)
    alpha = class_balanced_alpha(fold.y_train, 0.9999, fold.w_train)
    assert cand.params.alpha == pytest.approx(alpha) and cand.estimator_.loss_.alpha == pytest.approx(alpha)
    assert cand.focal == (1.0, pytest.approx(alpha))
    assert alpha != pytest.approx(class_balanced_alpha(fold.y_train, 0.9999))  # the weights count
    assert params.alpha is None  # the caller's parameters are left alone
    with pytest.raises(ValueError, match="beta"):
        Candidate(CLASS_BALANCED, HyperParams())


@pytest.fixture(scope="module")
def variants_training(small_transactions, small_features, small_config):
    """``train`` with both variants and the baseline, one trial each."""
    from fraud.training import LabelledFeatures, train

    spec, features = small_features
    search = {**small_config.search.model_dump(), "candidates": [*VARIANTS, "logistic_xgb"], "max_trials": 3}
    config = small_config.model_copy(update={"search": small_config.search.model_validate(search)})
    return train(LabelledFeatures.from_transactions(small_transactions, features), config, spec, progress=False)


def test_train_compares_the_variants_as_focal_challengers(variants_training):
    s = variants_training.summary
    assert set(s["candidates"]) == {*VARIANTS, "logistic_xgb"}
    assert s["comparison"]["difference"]["challenger"] in VARIANTS
    assert s["comparison"]["difference"]["baseline"] == "logistic_xgb"
    winner = s["winner"]["kind"]
    if winner in VARIANTS:
        # the served model's (refitted: a class-balanced alpha follows the refit window's class counts)
        assert (s["winner"]["gamma"], s["winner"]["alpha"]) == variants_training.bundle.model.focal
    schedule = variants_training.searches[GAMMA_SCHEDULE].model
    p = schedule.params
    # the default trial's schedule 0 -> 2, reported at the last round kept
    assert schedule.focal[0] == pytest.approx(GammaSchedule(0.0, 2.0, p.n_estimators).gamma_at(schedule.n_rounds_ - 1))
    assert 0.0 < schedule.focal[0] <= 2.0


@pytest.mark.parametrize("kind", VARIANTS)
def test_variant_bundles_go_through_the_registry_and_score_the_same(kind, variants_training, small_features,
                                                                    tmp_path):
    from fraud.registry import ModelRegistry

    _, features = small_features
    model = variants_training.searches[kind].model
    bundle = dataclasses.replace(variants_training.bundle, model=model)
    registry = ModelRegistry.open(tmp_path / "registry")
    loaded = registry.load(registry.publish(bundle))
    rows = features.iloc[:500]
    assert loaded.model.kind == kind and loaded.model.focal == pytest.approx(model.focal)
    assert np.allclose(loaded.model.predict_proba(rows), model.predict_proba(rows), atol=1e-6)
    assert np.allclose(loaded.predict_proba(rows), bundle.predict_proba(rows), atol=1e-6)
