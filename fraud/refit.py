"""The served model is fresh: refit the winning configuration on the newest window.

The search fits every candidate on the prequential folds, whose newest training window
ends ``validation + 2 gaps + test + label delay`` before ``as_of`` (63 days with the
defaults). Once the winner is chosen, its kind and best parameters are fitted again on a
window shifted forward past validation, and the test window is split in two:

    | fold 0 train | gap | validation | gap | test                     | label delay |
                   | refit train       | gap | calibration | judged     |

- refit training: ``train_days`` ending at ``test.start - gap`` (= validation's end), with
  the labels known at ``test.start`` (the same gap between the last training row and the
  label cutoff as the folds have between training and validation);
- calibration and thresholds: the first ``calibration_days`` of the test window (default
  half of it), which the refit never saw (it starts a gap after the refit's last row);
- judged: the rest of the test window, where the summary's test figures, every
  candidate's comparison and the nightly gate (``batch_jobs.nightly.gate``) are counted.
  Nothing was fitted on it: neither the refit nor calibration nor thresholds, nor the
  champion (trained on an earlier night, so on an earlier window).

No early stopping is possible without a held-out window, so the refit boosts the winner's
early-stopped rounds from fold 0 scaled by the ratio of training rows (refit / fold 0):
with the same learning rate, a similar number of rows needs a similar number of trees.
The gamma-schedule kind boosts its full ``max_rounds`` and keeps the scaled number, so that
its gamma moves over the rounds as it did in the search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import SearchConfig, SplitConfig
from .models import GAMMA_SCHEDULE, Candidate, HyperParams
from .search import SearchResult
from .splits import InsufficientDataError, TimeSplit, Window, labels_known_at

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class RefitPlan:
    train: Window
    label_cutoff: pd.Timestamp
    calibration: Window
    judged: Window

    def to_dict(self) -> dict:
        return {"train": self.train.to_dict(), "label_cutoff": self.label_cutoff.isoformat(),
                "calibration": self.calibration.to_dict(), "judged": self.judged.to_dict()}


def plan_refit(split: TimeSplit, config: SplitConfig) -> RefitPlan:
    """The refit's windows (module docstring), from the split's test and validation windows."""
    test, validation = split.test, split.folds[0].validation
    gap = test.start - validation.end
    train_end = test.start - gap
    train = Window(train_end - config.train_days * DAY, train_end)
    days = config.calibration_days if config.calibration_days is not None else int(test.days // 2)
    if not 0 < days < test.days:
        raise InsufficientDataError(
            f"[split] calibration_days {days} must leave part of the {test.days:g}-day test window to judge on: "
            "give 1 to test_days - 1, or a longer test_days")
    middle = test.start + days * DAY
    return RefitPlan(train, test.start, Window(test.start, middle), Window(middle, test.end))


def check_plan(plan: RefitPlan, timestamps: pd.Series, labels) -> None:
    """Both classes in the calibration and judged windows, frauds known in the refit window."""
    labels = np.asarray(labels)
    for name, window in (("calibration", plan.calibration), ("judged", plan.judged)):
        y = labels[window.mask(timestamps)]
        if y.size == 0 or y.min() == y.max():
            raise InsufficientDataError(
                f"the refit's {name} window ({window.start.date()} to {window.end.date()}) needs both frauds and "
                "legitimate transactions: lengthen [split] test_days or calibration_days, or set [split] refit = false")


def refit_rows(data, plan: RefitPlan, cfg: SearchConfig):
    """The refit's training rows (``data.rows``) with the labels known at the cutoff, negatives
    down-sampled as in the search: (rows, y, weight), all row-aligned."""
    rows = data.rows(plan.train.mask(data.timestamp))
    known = labels_known_at(rows.label, rows.label_time, plan.label_cutoff)
    if known.sum() == 0:
        raise InsufficientDataError(f"the refit window {plan.train.start.date()}..{plan.train.end.date()} has no "
                                    f"fraud labels known by {plan.label_cutoff.date()}: set [split] refit = false")
    rate = cfg.negative_sample_rate
    rng = np.random.default_rng(cfg.seed + 1)
    keep = (known == 1) | (rng.random(len(known)) < rate)
    weight = rows.sample_weight(keep, np.where(known[keep] == 1, 1.0, 1.0 / rate) if rate < 1 else None)
    return rows.rows(keep), known[keep], weight


def refit(best: SearchResult, fold0_rows: int, data, plan: RefitPlan, cfg: SearchConfig) -> tuple[Candidate, dict]:
    """The winner's kind and parameters fitted on ``refit_rows``. Returns the model and what
    the summary says of it. ``data``: ``fraud.training.LabelledFeatures``."""
    started = time.perf_counter()
    rows, y, weight = refit_rows(data, plan, cfg)
    fold0_rounds = best.model.n_rounds_
    rounds = int(np.clip(round(fold0_rounds * y.size / max(fold0_rows, 1)), 1, cfg.max_rounds))
    boosted = cfg.max_rounds if best.kind == GAMMA_SCHEDULE else rounds
    params = HyperParams(n_estimators=boosted, **best.best.params)
    cand = Candidate(best.kind, params, early_stopping_rounds=None, n_jobs=best.model.n_jobs, seed=cfg.seed,
                     device=cfg.device)
    cand.fit(rows.features, y, weight)
    cand.n_rounds_ = rounds
    info = {"train": plan.train.to_dict(), "label_cutoff": plan.label_cutoff.isoformat(),
            "rows": int(y.size), "frauds_known": int(y.sum()), "fold0_rows": int(fold0_rows),
            "fold0_rounds": int(fold0_rounds), "rounds": rounds, "seconds": time.perf_counter() - started,
            "rounds_rule": "fold 0's early-stopped rounds x refit rows / fold 0 rows, within 1..max_rounds"}
    return cand, info
