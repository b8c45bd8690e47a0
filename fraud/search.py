"""Hyper-parameter search over the prequential validation folds, within a budget.

The budget is the whole search's: ``max_trials`` trials and ``time_budget_s`` seconds for
all candidates together. Each candidate kind has its own Optuna study (TPE over
``search_space``; persisted and warm-started by ``search_store``). Every candidate first
gets one trial that is never pruned (the latest earlier run's best, else the library
defaults), within an equal share of the time left, so each has a model; the following
trials go to the candidate with the best upper bound (``search_allocation``). Inside a
fit, the validation AP is reported every few boosting rounds and the trial pruned when it
trails the earlier trials (``search_monitor``); each trial is cut at its time cap
(``trial_time_cap_s``, and never past the budget), so the search ends within its budget
plus the last round, prediction and bookkeeping of the running fit.

A trial's score is the mean validation average precision over the folds. With a budget
in trials (the time budget not reached) the same seed, data and history give the same
trials and winner; a time budget depends on the machine's load, as the rounds a capped fit
reaches do. The test window is never looked at here.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass, field

import numpy as np
import optuna

from . import search_space, search_store
from .config import SearchConfig
from .models import Candidate, HyperParams
from .search_allocation import next_kind
from .search_monitor import FitMonitor
from .threads import training_threads

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
    number: int = -1
    pruned: bool = False
    capped: bool = False       # a fit stopped at the time cap (its best rounds so far kept)

    @property
    def score(self) -> float:
        """Mean validation AP over the folds; NaN for a pruned trial (not all folds fitted)."""
        return float(np.mean(self.scores)) if self.scores and not self.pruned else math.nan


@dataclass
class SearchResult:
    kind: str
    best: Trial
    model: Candidate           # the best trial's model on the most recent fold
    trials: list[Trial] = field(default_factory=list)


@dataclass
class Search:
    """Every candidate's result and the figures of the search as a whole."""

    results: dict[str, SearchResult]
    summary: dict


def local_fit(cand: Candidate, fold: FoldData, monitor: FitMonitor | None = None) -> Candidate:
    """Fit in this process (the default; ``batch_jobs.dask_fit`` fits on a Dask cluster)."""
    return cand.fit(fold.X_train, fold.y_train, fold.w_train, fold.X_val, fold.y_val, monitor=monitor)


class _Runner:
    """Runs trials of the candidates' studies against the shared budget."""

    def __init__(self, kinds, folds, cfg: SearchConfig, fitter, progress, run: str):
        self.kinds, self.folds, self.cfg, self.fitter, self.progress, self.run = kinds, folds, cfg, fitter, progress, run
        self.started = time.perf_counter()
        self.deadline = self.started + cfg.time_budget_s
        self.cap = cfg.trial_time_cap_s or cfg.time_budget_s / len(kinds)
        self.threads = training_threads(cfg.n_jobs)
        storage = search_store.storage_for(cfg)
        self.studies = {kind: search_store.open_study(kind, cfg, storage, i) for i, kind in enumerate(kinds)}
        self.trials: dict[str, list[Trial]] = {kind: [] for kind in kinds}
        self.best_model: dict[str, tuple[float, Candidate]] = {}
        self.warm: dict[str, int] = {}

    def first_trials(self) -> None:
        for i, kind in enumerate(self.kinds):
            study = self.studies[kind]
            previous = search_store.previous_best(study, self.run)
            if previous:
                params, self.warm[kind] = previous
                study.enqueue_trial(search_space.clip(kind, params, self.cfg))
            else:
                study.enqueue_trial(search_space.default_params(kind, self.cfg))
            share = (self.deadline - time.perf_counter()) / (len(self.kinds) - i)
            self.run_trial(kind, min(share, self.cap), prunable=False)

    def later_trials(self) -> None:
        while sum(map(len, self.trials.values())) < self.cfg.max_trials:
            left = self.deadline - time.perf_counter()
            # a trial cut to under a quarter of the kind's usual time would score only its cut
            eligible = [k for k in self.kinds if left > 0.25 * np.median([t.seconds for t in self.trials[k]])]
            finished = [t.score for ts in self.trials.values() for t in ts if not t.pruned]
            best = {k: max((t.score for t in self.trials[k] if not t.pruned), default=-math.inf) for k in self.kinds}
            counts = {k: len(v) for k, v in self.trials.items()}
            behind = [k for k in eligible if counts[k] < self.cfg.min_trials_per_candidate]
            # each candidate its minimum first (the fewest trials first), then by promise
            kind = min(behind, key=lambda k: (counts[k], self.kinds.index(k))) if behind else \
                next_kind(best, counts, finished, eligible)
            if kind is None:
                return
            self.run_trial(kind, min(self.cap, left), prunable=True)

    def run_trial(self, kind: str, cap: float, prunable: bool) -> None:
        cfg, study = self.cfg, self.studies[kind]
        trial = study.ask()
        params = search_space.suggest(trial, kind, cfg)
        start = time.perf_counter()
        deadline = start + cap
        record = Trial(kind, params, [], [], 0.0, number=trial.number)
        model0 = None
        try:
            for i, fold in enumerate(self.folds):
                fold_deadline = time.perf_counter() + (deadline - time.perf_counter()) / (len(self.folds) - i)
                monitor = FitMonitor(trial if prunable else None, fold_deadline, cfg.report_every,
                                     step_offset=i * cfg.max_rounds)
                model = self.fitter(self._candidate(kind, params), fold, monitor)
                record.capped |= monitor.stopped_on_time
                record.scores.append(_average_precision(model, fold))
                record.rounds.append(model.n_rounds_)
                if i == 0:
                    model0 = model
        except optuna.TrialPruned as pruned:
            record.pruned = True
            log.info("%s trial %d pruned: %s", kind, trial.number, pruned)
        record.seconds = time.perf_counter() - start
        trial.set_user_attr("run", self.run)
        trial.set_user_attr("params", params)
        trial.set_user_attr("fold_scores", record.scores)
        trial.set_user_attr("capped", record.capped)
        if record.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, record.score)
            if record.score > self.best_model.get(kind, (-math.inf, None))[0]:
                self.best_model[kind] = (record.score, model0)
        self.trials[kind].append(record)
        log.info("%s trial %d: validation AP %.4f (folds %s) rounds %s params %s in %.1fs%s", kind, trial.number,
                 record.score, [round(s, 4) for s in record.scores], record.rounds, params, record.seconds,
                 " (cut at its time cap)" if record.capped else "")
        if self.progress is not None:
            self.progress.update(1)

    def _candidate(self, kind: str, params: dict) -> Candidate:
        hp = HyperParams(n_estimators=self.cfg.max_rounds, **params)
        return Candidate(kind, hp, early_stopping_rounds=self.cfg.early_stopping_rounds, n_jobs=self.threads,
                         seed=self.cfg.seed, device=self.cfg.device)

    def outcome(self) -> Search:
        results = {}
        for kind in self.kinds:
            trials = self.trials[kind]
            best = max((t for t in trials if not t.pruned), key=lambda t: t.score)
            results[kind] = SearchResult(kind, best, self.best_model[kind][1], trials)
        seconds = time.perf_counter() - self.started
        summary = {
            "time_budget_s": self.cfg.time_budget_s, "seconds": seconds, "max_trials": self.cfg.max_trials,
            "trial_time_cap_s": self.cap, "threads_per_fit": self.threads, "pruner": self.cfg.pruner,
            "storage": _redacted(self.cfg.storage) or "memory", "run": self.run,
            "candidates": {kind: {"trials": len(ts), "pruned": sum(t.pruned for t in ts),
                                  "capped": sum(t.capped for t in ts),
                                  "warm_start_from_trials": self.warm.get(kind, 0)}
                           for kind, ts in self.trials.items()},
        }
        log.info("search: %d trials (%d pruned) in %.0f s of a %.0f s budget", sum(map(len, self.trials.values())),
                 sum(c["pruned"] for c in summary["candidates"].values()), seconds, self.cfg.time_budget_s)
        return Search(results, summary)


def _average_precision(model: Candidate, fold: FoldData) -> float:
    from objectives import average_precision

    return average_precision(model.predict_proba(fold.X_val), fold.y_val)


def _redacted(url: str) -> str:
    """A storage URL without its password, for the report."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True) if "://" in url else url


def run_search(kinds: list[str], folds: list[FoldData], cfg: SearchConfig, progress=None, fitter=local_fit,
               run: str = "") -> Search:
    """Search every candidate kind within ``cfg``'s budget; folds[0] is the most recent.
    ``run`` names this run in the persisted studies (default: the current time)."""
    run = run or f"{time.strftime('%Y-%m-%dT%H:%M:%S')}-{secrets.token_hex(3)}"
    runner = _Runner(list(kinds), folds, cfg, fitter, progress, run)
    runner.first_trials()
    runner.later_trials()
    return runner.outcome()
