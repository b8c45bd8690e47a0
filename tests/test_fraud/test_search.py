"""The hyper-parameter search: continuous ranges, pruning inside the boosting loop, trials
allocated by promise, the time budget, persistence across runs, reproducibility."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np
import optuna
import pandas as pd
import pytest

from fraud.config import ConfigError, load_config
from fraud.models import Candidate, HyperParams
from fraud.search import FoldData, run_search
from fraud.search_allocation import next_kind
from fraud.search_monitor import FitMonitor
from fraud.search_space import suggest
from fraud.search_store import default_storage


def _search_config(**search):
    base = {"max_rounds": 60, "early_stopping_rounds": 10, "n_jobs": 1, "time_budget_s": 600, "report_every": 5}
    return load_config(overrides={"search": {**base, **search}}).search


def _rows(rng, n, shift=0.0):
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    logit = -3.5 + 1.5 * X["f0"] - X["f1"] + 0.8 * X["f2"] * X["f3"] + shift
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)


@pytest.fixture(scope="module")
def folds():
    """Two small folds (a few thousand rows, ~5 % positive): fits of a tenth of a second."""
    rng = np.random.default_rng(3)
    out = []
    for shift in (0.0, 0.2):
        X, y = _rows(rng, 3000, shift)
        Xv, yv = _rows(rng, 2000, shift)
        out.append(FoldData(X, y, None, Xv, yv))
    return out


# -- the space ---------------------------------------------------------------------------
def test_ranges_are_continuous_log_scaled_and_narrowed_by_config():
    cfg = _search_config()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    points = [suggest(study.ask(), "focal_xgb", cfg) for _ in range(200)]
    gammas = np.array([p["gamma"] for p in points])
    assert gammas.min() >= 0 and gammas.max() <= 5 and len(set(gammas)) == 200  # not a grid
    assert 0.05 <= min(p["alpha"] for p in points) and max(p["alpha"] for p in points) <= 0.95
    lrs = np.log([p["learning_rate"] for p in points])
    # log-uniform on [0.02, 0.3]: the median sits at the geometric mean (0.077), not at 0.16
    assert abs(np.median(lrs) - np.log(np.sqrt(0.02 * 0.3))) < 0.2
    assert {p["max_depth"] for p in points} == set(range(3, 9))
    assert all(0.5 <= p["subsample"] <= 1 and 0.1 <= p["reg_lambda"] <= 10 for p in points)

    narrow = _search_config(gamma=[1.0, 1.5], max_depth=[4])
    points = [suggest(study.ask(), "focal_lgbm", narrow) for _ in range(50)]
    assert all(1.0 <= p["gamma"] <= 1.5 and p["max_depth"] == 4 for p in points)
    baseline = suggest(study.ask(), "logistic_xgb", cfg)
    assert "gamma" not in baseline and "alpha" not in baseline  # the baselines keep their own space


def test_config_refuses_bad_ranges_and_names_renamed_keys():
    with pytest.raises(ConfigError, match=r"\[search\] alpha: must lie within"):
        load_config(overrides={"search": {"alpha": [0.0, 1.5]}})
    with pytest.raises(ConfigError, match=r"\[search\] gamma: must be \[low, high\]"):
        load_config(overrides={"search": {"gamma": [3.0, 1.0]}})
    with pytest.raises(ConfigError, match=r"\[search\] gammas: unknown key \(now gamma = \[low, high\]\)"):
        load_config(overrides={"search": {"gammas": [1.0, 2.0]}})


# -- allocation --------------------------------------------------------------------------
def test_next_trial_goes_to_the_candidates_that_could_still_win():
    kinds = ["a", "b", "c"]
    counts = {"a": 1, "b": 1, "c": 1}
    best = {"a": 0.80, "b": 0.79, "c": 0.50}
    scores = [0.80, 0.79, 0.50]
    picks = []
    for _ in range(12):
        kind = next_kind(best, counts, scores, kinds)
        picks.append(kind)
        counts[kind] += 1
    assert "c" not in picks                         # far behind: no more trials
    assert picks.count("a") >= 4 and picks.count("b") >= 4  # the close two share them
    assert next_kind({"a": 0.8, "b": -math.inf}, {"a": 3, "b": 0}, [0.8], ["a", "b"]) == "b"  # untried first
    assert next_kind(best, counts, scores, []) is None


# -- the monitor -------------------------------------------------------------------------
class _Trial:
    def __init__(self, prune_at=None):
        self.reports, self.prune_at = [], prune_at

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.prune_at is not None and self.reports[-1][0] >= self.prune_at


def test_monitor_reports_the_best_so_far_prunes_and_stops_on_time():
    trial = _Trial(prune_at=130)
    monitor = FitMonitor(trial, deadline=math.inf, every=5, step_offset=100)
    values = [0.1, 0.3, 0.2, 0.25, 0.28, 0.29, 0.31, 0.3, 0.3, 0.3]
    for r, v in enumerate(values):
        monitor.observe(r, v)
    assert trial.reports == [(105, 0.3), (110, 0.31)]  # every 5 rounds, the best so far, after the offset
    with pytest.raises(optuna.TrialPruned):
        for r in range(10, 40):
            monitor.observe(r, 0.3)
    assert trial.reports[-1][0] == 130

    now = [0.0]
    timed = FitMonitor(None, deadline=10.0, clock=lambda: now[0])
    now[0] = 11.0
    assert timed.observe(0, 0.5) is False  # never before the second round
    assert timed.observe(1, 0.5) is True and timed.stopped_on_time


@pytest.mark.parametrize("kind", ["focal_xgb", "focal_lgbm", "logistic_xgb"])
def test_a_fit_stops_at_its_deadline_and_keeps_its_best_rounds(kind, folds):
    fold = folds[0]
    hp = HyperParams(n_estimators=5000, learning_rate=0.01, gamma=2.0 if "focal" in kind else None,
                     alpha=0.25 if "focal" in kind else None)
    cand = Candidate(kind, hp, early_stopping_rounds=5000, n_jobs=1)
    monitor = FitMonitor(None, deadline=time.perf_counter() + 1.0)
    start = time.perf_counter()
    cand.fit(fold.X_train, fold.y_train, None, fold.X_val, fold.y_val, monitor=monitor)
    assert time.perf_counter() - start < 4.0 and monitor.stopped_on_time
    assert 1 <= monitor.rounds < 5000
    assert cand.n_rounds_ == monitor.best_round + 1  # the model ends at its best round
    assert cand.predict_proba(fold.X_val).shape == (len(fold.y_val),)


# -- the search --------------------------------------------------------------------------
def test_trials_are_pruned_inside_the_boosting_loop(folds):
    cfg = _search_config(candidates=["focal_xgb"], max_trials=14, max_rounds=120, early_stopping_rounds=120)
    search = run_search(["focal_xgb"], folds, cfg)
    trials = search.results["focal_xgb"].trials
    pruned = [t for t in trials if t.pruned]
    assert len(trials) == 14 and search.summary["candidates"]["focal_xgb"]["pruned"] == len(pruned) >= 2
    # pruned in flight: fewer folds fitted or fewer rounds than the trials that finished
    assert all(len(t.scores) < len(folds) for t in pruned) or \
        max(sum(t.rounds) for t in pruned) < min(sum(t.rounds) for t in trials if not t.pruned)
    assert not trials[0].pruned  # a candidate's first trial of the run is never pruned


def test_same_seed_and_trial_budget_give_the_same_search(folds):
    cfg = _search_config(candidates=["focal_lgbm", "logistic_xgb"], max_trials=8)
    first, second = (run_search(["focal_lgbm", "logistic_xgb"], folds, cfg) for _ in range(2))

    def trace(search):
        return [(t.kind, t.params, t.scores, t.pruned) for r in search.results.values() for t in r.trials]

    assert trace(first) == trace(second)
    assert {k: r.best.params for k, r in first.results.items()} == {k: r.best.params for k, r in second.results.items()}
    other = run_search(["focal_lgbm", "logistic_xgb"], folds, cfg.model_copy(update={"seed": 1}))
    assert trace(other) != trace(first)  # the seed matters: the equality above is not vacuous


def test_a_second_run_starts_from_the_first_runs_trials(folds, tmp_path):
    store = f"sqlite:///{tmp_path / 'search.sqlite3'}"
    cfg = _search_config(candidates=["focal_xgb", "logistic_xgb"], max_trials=6, storage=store)
    first = run_search(["focal_xgb", "logistic_xgb"], folds, cfg, run="night-1")
    assert first.summary["candidates"]["focal_xgb"]["warm_start_from_trials"] == 0
    second = run_search(["focal_xgb", "logistic_xgb"], folds, cfg, run="night-2")
    for kind, res in second.results.items():
        earlier = first.results[kind].trials
        assert second.summary["candidates"][kind]["warm_start_from_trials"] == sum(not t.pruned for t in earlier)
        assert res.trials[0].params == first.results[kind].best.params  # last night's best, re-evaluated first
    study = optuna.load_study(study_name="fraud-focal_xgb", storage=store)
    runs = [t.user_attrs["run"] for t in study.trials]
    assert runs.count("night-1") == len(first.results["focal_xgb"].trials) and "night-2" in runs


def test_fraud_train_keeps_the_study_beside_a_local_registry(tmp_path):
    config = load_config()
    assert default_storage(config, str(tmp_path / "reg")).search.storage == \
        f"sqlite:///{(tmp_path / 'reg' / 'search.sqlite3').resolve()}"
    assert default_storage(config, "s3://bucket/registry").search.storage == ""  # in memory: say so in docs
    explicit = load_config(overrides={"search": {"storage": "postgresql://u@h/optuna"}})
    assert default_storage(explicit, str(tmp_path)).search.storage == "postgresql://u@h/optuna"


def test_search_keeps_to_its_time_budget_on_the_small_data(small_transactions, small_features, small_config):
    """A 12 s budget with trials that would each run far longer uncut (early stopping off):
    the search part of ``train`` ends within the budget + 10 %, every candidate has a model."""
    from fraud.training import LabelledFeatures, train

    spec, features = small_features
    search = {**small_config.search.model_dump(), "time_budget_s": 12, "max_trials": 100, "max_rounds": 5000,
              "early_stopping_rounds": 5000}
    config = small_config.model_copy(update={"search": small_config.search.model_validate(search)})
    result = train(LabelledFeatures.from_transactions(small_transactions, features), config, spec, progress=False)
    s = result.summary["search"]
    assert s["seconds"] <= 12 * 1.1, s
    assert sum(c["capped"] for c in s["candidates"].values()) >= 4  # the budget, not the rounds, ended them
    assert set(result.summary["candidates"]) == set(small_config.search.candidates)


# -- threads -----------------------------------------------------------------------------
def test_openmp_threads_sleep_while_they_wait_unless_told_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import os, fraud; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "active"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "active"


def test_search_names_the_thread_count_for_both_libraries(folds, monkeypatch):
    import joblib

    from fraud import search as search_module

    seen = []
    monkeypatch.setattr(joblib, "cpu_count", lambda *a, **k: 3)
    cfg = _search_config(candidates=["focal_lgbm"], max_trials=1, n_jobs=None)

    def fitter(cand, fold, monitor):
        seen.append(cand.n_jobs)
        return search_module.local_fit(cand, fold, monitor)

    run_search(["focal_lgbm"], folds, cfg, fitter=fitter)
    assert seen and set(seen) == {3}  # LightGBM's own default would be every CPU of the host


def test_every_candidate_gets_its_minimum_of_trials_before_promise_decides(folds):
    """A focal-vs-baseline verdict is fair only against baselines that were searched too."""
    kinds = ["focal_xgb", "logistic_xgb", "weighted_logistic_xgb"]
    search = run_search(kinds, folds, _search_config(candidates=kinds, max_trials=12, min_trials_per_candidate=4))
    assert {k: len(r.trials) for k, r in search.results.items()} == {k: 4 for k in kinds}
    promise = run_search(kinds, folds, _search_config(candidates=kinds, max_trials=12, min_trials_per_candidate=1))
    assert sorted(len(r.trials) for r in promise.results.values()) != [4, 4, 4]  # the minimum above did it
