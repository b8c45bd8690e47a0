"""The served model is fresh: refit the winning configuration on the newest windows.

The search fits every candidate on the prequential folds, whose newest training window
ends ``validation + 2 gaps + test + label delay`` before ``as_of`` (63 days with the
defaults). Once the winner is chosen, its kind and best parameters are fitted twice:

    | fold 0 train | gap | validation | gap | test                     | label delay | as_of
                   | twin train        | gap | calibration | judged     |
                                      | latest train (the served model)            | newest |

- the **twin**: ``train_days`` ending at ``test.start - gap`` (= validation's end), with the
  labels known at ``test.start``. Calibration and thresholds are fitted on its scores of
  the first ``calibration_days`` of the test window (default half), which it never saw;
  the summary's test figures, every candidate's comparison and the nightly gate
  (``batch_jobs.nightly.gate``) count the rest (judged), on which nothing was fitted. It is
  the served recipe measured honestly, and what the gate compares (each version keeps its
  twin in the registry, so tomorrow's gate judges this version's twin on a window neither
  twin saw).
- the **latest** (``[split] serve_latest``, the default): ``train_days`` ending at the
  newest label-complete moment (``as_of`` minus the label delay, the test window's end),
  with the labels known at ``as_of``: 28 days fresher than the twin with the defaults. It
  has no unseen labelled window left to calibrate on, so it is calibrated cross-fitted
  from its twin (as scikit-learn's ``CalibratedClassifierCV(ensemble=False)`` serves a
  model refitted on all rows with a calibrator from held-out predictions): the raw scales
  of two focal fits differ (other rows, other trees) while their rankings agree, so on the
  **newest** days (after the latest's last training row: seen by neither, labels
  incomplete, none needed) the latest's scores are mapped onto the twin's by quantile and
  then through the twin's calibrator, and it is served with the twin's thresholds. The
  two must send mostly the same rows to review there (``[split] transfer_min_overlap``);
  otherwise the twin is served, and the summary says why.

No early stopping is possible without a held-out window, so both boost the winner's
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
    train: Window                     # the twin's
    label_cutoff: pd.Timestamp        # the twin's
    calibration: Window
    judged: Window
    latest: Window | None = None      # the served model's, with the labels known at latest_cutoff
    latest_cutoff: pd.Timestamp | None = None
    newest: Window | None = None      # after the latest's last row: the transfer check

    def window_of(self, latest: bool = False) -> tuple[Window, pd.Timestamp]:
        """The training window and label cutoff of the twin, or with ``latest`` the served model's."""
        return (self.latest, self.latest_cutoff) if latest else (self.train, self.label_cutoff)

    def to_dict(self) -> dict:
        out = {"train": self.train.to_dict(), "label_cutoff": self.label_cutoff.isoformat(),
               "calibration": self.calibration.to_dict(), "judged": self.judged.to_dict()}
        if self.latest is not None:
            out.update(latest=self.latest.to_dict(), latest_cutoff=self.latest_cutoff.isoformat(),
                       newest=self.newest.to_dict())
        return out


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
    plan = RefitPlan(train, test.start, Window(test.start, middle), Window(middle, test.end))
    if not config.serve_latest:
        return plan
    return RefitPlan(plan.train, plan.label_cutoff, plan.calibration, plan.judged,
                     latest=Window(test.end - config.train_days * DAY, test.end), latest_cutoff=split.as_of,
                     newest=Window(test.end, split.as_of))


def check_plan(plan: RefitPlan, timestamps: pd.Series, labels) -> None:
    """Both classes in the calibration and judged windows, frauds known in the refit window."""
    labels = np.asarray(labels)
    for name, window in (("calibration", plan.calibration), ("judged", plan.judged)):
        y = labels[window.mask(timestamps)]
        if y.size == 0 or y.min() == y.max():
            raise InsufficientDataError(
                f"the refit's {name} window ({window.start.date()} to {window.end.date()}) needs both frauds and "
                "legitimate transactions: lengthen [split] test_days or calibration_days, or set [split] refit = false")


def refit_rows(data, plan: RefitPlan, cfg: SearchConfig, latest: bool = False):
    """The twin's (or with ``latest`` the served model's) training rows (``data.rows``) with
    the labels known at its cutoff, negatives down-sampled as in the search: (rows, y,
    weight), all row-aligned."""
    window, cutoff = plan.window_of(latest)
    rows = data.rows(window.mask(data.timestamp))
    known = labels_known_at(rows.label, rows.label_time, cutoff)
    if known.sum() == 0:
        knob = "serve_latest" if latest else "refit"
        raise InsufficientDataError(f"the refit window {window.start.date()}..{window.end.date()} has no "
                                    f"fraud labels known by {cutoff.date()}: set [split] {knob} = false")
    rate = cfg.negative_sample_rate
    rng = np.random.default_rng(cfg.seed + 1)
    keep = (known == 1) | (rng.random(len(known)) < rate)
    weight = rows.sample_weight(keep, np.where(known[keep] == 1, 1.0, 1.0 / rate) if rate < 1 else None)
    return rows.rows(keep), known[keep], weight


def refit(best: SearchResult, fold0_rows: int, data, plan: RefitPlan, cfg: SearchConfig,
          latest: bool = False) -> tuple[Candidate, dict]:
    """The winner's kind and parameters fitted on ``refit_rows`` (the twin's, or the served
    model's with ``latest``). Returns the model and what the summary says of it. ``data``:
    ``fraud.training.LabelledFeatures``."""
    started = time.perf_counter()
    rows, y, weight = refit_rows(data, plan, cfg, latest)
    window, cutoff = plan.window_of(latest)
    fold0_rounds = best.model.n_rounds_
    rounds = int(np.clip(round(fold0_rounds * y.size / max(fold0_rows, 1)), 1, cfg.max_rounds))
    boosted = cfg.max_rounds if best.kind == GAMMA_SCHEDULE else rounds
    params = HyperParams(n_estimators=boosted, **best.best.params)
    cand = Candidate(best.kind, params, early_stopping_rounds=None, n_jobs=best.model.n_jobs, seed=cfg.seed,
                     device=cfg.device)
    cand.fit(rows.features, y, weight)
    cand.n_rounds_ = rounds
    info = {"train": window.to_dict(), "label_cutoff": cutoff.isoformat(),
            "rows": int(y.size), "frauds_known": int(y.sum()), "fold0_rows": int(fold0_rows),
            "fold0_rounds": int(fold0_rounds), "rounds": rounds, "seconds": time.perf_counter() - started,
            "rounds_rule": "fold 0's early-stopped rounds x refit rows / fold 0 rows, within 1..max_rounds"}
    return cand, info


def check_transfer(twin_raw, latest_raw, calibrator, thresholds, min_overlap: float, min_rows: int):
    """The latest model's calibrator, and whether to serve it. Both models' raw scores of the
    same newest rows (after the latest's window: seen by neither, labels incomplete):

    - calibrator: the twin's, after mapping the latest's scores onto the twin's by their
      quantiles on these rows (``fraud.calibration.quantile_mapped``); the raw scales of two
      focal fits differ (other rows, other trees) though their rankings agree, so the twin's
      calibrator alone would not fit;
    - check: the two must agree on whom to look at. Of the rows the twin sends to review or
      decline, the share the latest (so calibrated) sends too must be ``min_overlap`` at
      least; the latest is expected to differ on some (it knows four more weeks of fraud),
      not on most. Too few rows to tell, or too little overlap: serve the twin.

    Returns (calibrator, facts); ``facts["serve"]`` is "latest" or "twin", with the reason."""
    from .calibration import quantile_mapped
    from .monitoring.psi import bin_shares, psi, quantile_edges

    twin, latest = np.asarray(twin_raw, dtype=np.float64), np.asarray(latest_raw, dtype=np.float64)
    facts = {"rows": int(twin.size), "min_overlap": min_overlap, "min_rows": min_rows}
    if twin.size < min_rows:
        return None, {**facts, "serve": "twin", "overlap": None,
                      "reason": f"{twin.size} rows after the latest model's window, fewer than {min_rows} to map "
                                "its scores onto the twin's"}
    mapped = quantile_mapped(calibrator, twin, latest)
    looked_twin, looked_latest = (cal >= thresholds.review for cal in (calibrator.predict(twin), mapped.predict(latest)))
    overlap = float((looked_twin & looked_latest).sum() / max(looked_twin.sum(), 1))
    edges = quantile_edges(twin)
    facts.update(overlap=overlap, review_share_twin=float(looked_twin.mean()),
                 review_share_latest=float(looked_latest.mean()),
                 raw_psi=psi(bin_shares(twin, edges), bin_shares(latest, edges)))  # how far the scales moved
    if overlap < min_overlap:
        return None, {**facts, "serve": "twin",
                      "reason": f"the latest model sends to review only {overlap:.0%} of the newest days' rows the "
                                f"twin sends (fewer than {min_overlap:.0%}): the two disagree"}
    return mapped, {**facts, "serve": "latest",
                    "reason": f"it sends to review {overlap:.0%} of the newest days' rows the twin sends (at least "
                              f"{min_overlap:.0%}); calibrated by the twin's, its scores mapped by quantile"}
