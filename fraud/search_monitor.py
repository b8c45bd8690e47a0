"""Watching one fit of a search trial from inside the boosting loop.

Every ``every`` rounds the best validation average precision so far (the early-stopping
metric the fit computes anyway) is reported to the Optuna trial, and the trial is pruned
when its pruner says so; the fit stops at its deadline, keeping its best rounds so far. A
trial can thus neither outlast its time cap nor spend rounds on a lost cause. The
callbacks are our own: optuna-integration's XGBoost/LightGBM pruning callbacks report the
raw value of a named metric and cannot stop on time.
"""

from __future__ import annotations

import math
import time

import optuna
import xgboost as xgb


class FitMonitor:
    """One fit's watcher. ``trial`` None: never pruned (a candidate's first trial of the
    run, so that every candidate has a model); ``step_offset`` puts the fold's rounds
    after the previous folds' in the trial's reports."""

    def __init__(self, trial: optuna.Trial | None, deadline: float, every: int = 5, step_offset: int = 0,
                 clock=time.perf_counter):
        self.trial = trial
        self.deadline = deadline
        self.every = every
        self.step_offset = step_offset
        self.clock = clock
        self.best = -math.inf
        self.best_round = -1
        self.rounds = 0
        self.stopped_on_time = False

    def observe(self, round_: int, value: float) -> bool:
        """After boosting round ``round_`` (0-based) with validation AP ``value``: True to stop
        (deadline); raises ``optuna.TrialPruned`` to prune."""
        # Past the deadline the round is dropped: XGBoost runs our callback before its early
        # stopping, which then never sees this round and trims the model to the best before
        # it. Never in the first round, so that there is one.
        if round_ >= 1 and self.clock() >= self.deadline:
            self.stopped_on_time = True
            return True
        self.rounds = round_ + 1
        if value > self.best:
            self.best, self.best_round = float(value), round_
        if self.trial is not None and self.rounds % self.every == 0:
            self.trial.report(self.best, self.step_offset + self.rounds)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"validation AP {self.best:.4f} after {self.rounds} rounds")
        return False

    def xgboost(self):
        """A ``xgboost.callback.TrainingCallback``; put it before early stopping (its best
        iteration then trims the model)."""
        return _XGBoostWatch(self)

    def lightgbm(self):
        """A LightGBM callback (after its early stopping, which has ``order`` 30)."""
        return _LightGBMWatch(self)


def _validation_ap(metrics: dict) -> float:
    """Our focal metric is "average_precision"; XGBoost's own logistic one is "aucpr"."""
    for name in ("average_precision", "aucpr"):
        if name in metrics:
            return float(metrics[name][-1])
    raise KeyError(f"no average-precision metric among {sorted(metrics)}")


class _XGBoostWatch(xgb.callback.TrainingCallback):
    def __init__(self, monitor: FitMonitor):
        super().__init__()
        self.monitor = monitor

    def after_iteration(self, model, epoch: int, evals_log: dict) -> bool:
        # the last evaluation set is the one early stopping watches
        return self.monitor.observe(epoch, _validation_ap(evals_log[list(evals_log)[-1]]))


class _LightGBMWatch:
    order = 35  # LightGBM runs callbacks by this: after record_evaluation (20) and early stopping (30)

    def __init__(self, monitor: FitMonitor):
        self.monitor = monitor
        self.best_results = None

    def __call__(self, env) -> None:
        import lightgbm as lgb

        value = next(r[2] for r in env.evaluation_result_list if r[1] in ("average_precision", "aucpr"))
        if self.monitor.observe(env.iteration - env.begin_iteration, value):
            raise lgb.callback.EarlyStopException(self.monitor.best_round, self.best_results)
        if self.monitor.best_round == env.iteration - env.begin_iteration:
            self.best_results = list(env.evaluation_result_list)
