"""Hyper-parameter search over the prequential validation folds, within a time budget.

Optuna's TPE sampler proposes gamma, alpha, depth, learning rate and the scale of the
minimum leaf hessian; the number of rounds comes from early stopping on each fold's
validation window. A trial's score is the mean validation average precision over the
folds. The first trial of every candidate is its library default, so even a tiny budget
yields a sane model. The test window is never looked at here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import optuna

from .config import SearchConfig
from .models import FOCAL_KINDS, Candidate, HyperParams

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class FoldData:
    """One fold's training rows (sampled, weighted) and validation rows."""

    X_train: object
    y_train: np.ndarray
    w_train: np.ndarray | None
    X_val: object
    y_val: np.ndarray


@dataclass
class Trial:
    kind: str
    params: dict
    scores: list[float]
    rounds: list[int]
    seconds: float

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))


@dataclass
class SearchResult:
    kind: str
    best: Trial
    model: Candidate           # the best trial's model on the most recent fold
    trials: list[Trial] = field(default_factory=list)


def _default_params(kind: str, cfg: SearchConfig) -> dict:
    params = {"max_depth": 6 if 6 in cfg.max_depths else cfg.max_depths[-1],
              "learning_rate": 0.1 if 0.1 in cfg.learning_rates else cfg.learning_rates[-1],
              "min_child_weight_scale": 1.0}
    if kind in FOCAL_KINDS:
        params["gamma"] = 2.0 if 2.0 in cfg.gammas else cfg.gammas[len(cfg.gammas) // 2]
        params["alpha"] = cfg.alphas[0]
    return params


def _suggest(trial: optuna.Trial, kind: str, cfg: SearchConfig) -> dict:
    params = {"max_depth": trial.suggest_categorical("max_depth", list(cfg.max_depths)),
              "learning_rate": trial.suggest_categorical("learning_rate", list(cfg.learning_rates)),
              "min_child_weight_scale": trial.suggest_categorical("min_child_weight_scale", [0.5, 1.0, 2.0])}
    if kind in FOCAL_KINDS:
        params["gamma"] = trial.suggest_categorical("gamma", list(cfg.gammas))
        params["alpha"] = trial.suggest_categorical("alpha", list(cfg.alphas))
    return params


def local_fit(cand: Candidate, fold: FoldData) -> Candidate:
    """Fit in this process (the default; ``batch_jobs.dask_fit`` fits on a Dask cluster)."""
    return cand.fit(fold.X_train, fold.y_train, fold.w_train, fold.X_val, fold.y_val)


def _fit(kind, params, fold: FoldData, cfg: SearchConfig, fitter) -> Candidate:
    hp = HyperParams(n_estimators=cfg.max_rounds, **params)
    cand = Candidate(kind, hp, early_stopping_rounds=cfg.early_stopping_rounds, n_jobs=cfg.n_jobs, seed=cfg.seed,
                     device=cfg.device)
    return fitter(cand, fold)


def search_candidate(kind: str, folds: list[FoldData], cfg: SearchConfig, budget_s: float,
                     max_trials: int, progress=None, fitter=local_fit) -> SearchResult:
    """Best hyper-parameters of one candidate kind; folds[0] is the most recent."""
    from objectives import average_precision

    trials: list[Trial] = []
    models: dict[int, Candidate] = {}

    def objective(trial: optuna.Trial) -> float:
        params = _suggest(trial, kind, cfg)
        start = time.perf_counter()
        scores, rounds = [], []
        for i, fold in enumerate(folds):
            model = _fit(kind, params, fold, cfg, fitter)
            scores.append(average_precision(model.predict_proba(fold.X_val), fold.y_val))
            rounds.append(model.n_rounds_)
            if i == 0:
                models[trial.number] = model
        record = Trial(kind, params, scores, rounds, time.perf_counter() - start)
        trials.append(record)
        log.info("%s trial %d: validation AP %.4f (folds %s) rounds %s params %s in %.1fs", kind, trial.number,
                 record.score, [round(s, 4) for s in scores], rounds, params, record.seconds)
        if progress is not None:
            progress.update(1)
        return record.score

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    study.enqueue_trial(_default_params(kind, cfg))
    study.optimize(objective, n_trials=max_trials, timeout=budget_s, catch=())
    best = max(trials, key=lambda t: t.score)
    best_number = trials.index(best)
    return SearchResult(kind, best, models[best_number], trials)
