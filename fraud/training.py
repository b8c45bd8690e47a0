"""Training the candidates and building the winning model bundle: the Python API.

    data = LabelledFeatures.from_transactions(transactions, features)
    result = train(data, config, spec)
    result.bundle.predict_proba(features)      # calibrated
    result.bundle.decide(features)             # approve / review / decline
    result.summary                             # every figure of the report, JSON-ready

Steps: time-ordered windows (``splits``); for each candidate a hyper-parameter search on
the validation folds (``search``); the winner is picked on validation average precision,
ties broken by recall within the review capacity; its scores are calibrated on
validation; thresholds are chosen on calibrated validation scores (``policy``); the test
window is only reported, for every candidate side by side. With ``[split] refit`` (the
default) the winner is fitted again on the newest window (``refit``): calibration and
thresholds then come from the first part of the test window, the test figures from the rest.

Figures, search and selection count the transactions of cards with no fraud label known
at that moment (``evaluation``: those cards are blocked in production); the unfiltered
test figures are reported beside them. Calibration, thresholds and the expected review
share use every validation/test row: the review team sees all the traffic.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import evaluation, metrics
from .bundle import ModelBundle
from .calibration import Calibrator, calibration_curve
from .config import FraudConfig
from .features.spec import FeatureSpec
from .models import BASELINE_KINDS, FOCAL_KINDS, library_versions
from .monitoring.reference import reference_distributions, with_served_scores
from .policy import choose_thresholds, outcome
from .progress import progress_bar
from .schema import AMOUNT, CARD_ID, LABEL, LABEL_TIME, TIMESTAMP
from .search import FoldData, SearchResult, local_fit, run_search
from .refit import check_plan, check_transfer, plan_refit, refit
from .splits import InsufficientDataError, TimeSplit, check_classes, labels_known_at, make_split
from .uncertainty import day_bootstrap

log = logging.getLogger(__name__)


@dataclass
class LabelledFeatures:
    """Features plus what training needs beside them, row-aligned."""

    features: pd.DataFrame
    timestamp: pd.Series
    label: np.ndarray
    label_time: pd.Series
    amount: np.ndarray
    card_id: np.ndarray
    pattern: np.ndarray | None = None
    weight: np.ndarray | None = None   # per-row sample weight (reviewed hard examples); None = all 1

    @classmethod
    def from_transactions(cls, transactions: pd.DataFrame, features: pd.DataFrame,
                          weight: np.ndarray | None = None) -> "LabelledFeatures":
        if LABEL not in transactions.columns:
            raise ValueError("training needs a label column")
        return cls(features=features.reset_index(drop=True),
                   timestamp=transactions[TIMESTAMP].reset_index(drop=True),
                   label=transactions[LABEL].to_numpy().astype(np.int8),
                   label_time=transactions[LABEL_TIME].reset_index(drop=True),
                   amount=transactions[AMOUNT].to_numpy(dtype=np.float64),
                   card_id=transactions[CARD_ID].to_numpy(dtype=object),
                   pattern=(transactions["fraud_pattern"].to_numpy(dtype=object)
                            if "fraud_pattern" in transactions.columns else None),
                   weight=None if weight is None else np.asarray(weight, dtype=np.float64))

    def rows(self, mask) -> "LabelledFeatures":
        idx = np.flatnonzero(mask)
        return LabelledFeatures(self.features.iloc[idx].reset_index(drop=True),
                                self.timestamp.iloc[idx].reset_index(drop=True), self.label[idx],
                                self.label_time.iloc[idx].reset_index(drop=True), self.amount[idx],
                                self.card_id[idx], None if self.pattern is None else self.pattern[idx],
                                None if self.weight is None else self.weight[idx])

    def sample_weight(self, keep: np.ndarray, weight: np.ndarray | None) -> np.ndarray | None:
        """``weight`` (of the ``keep`` rows, None = 1) times these rows' own weights."""
        if self.weight is None:
            return weight
        return self.weight[keep] * (1.0 if weight is None else weight)

    def days(self) -> np.ndarray:
        return (self.timestamp.dt.floor("D") - self.timestamp.min().floor("D")).dt.days.to_numpy()

    def n_days(self) -> float:
        return float(len(np.unique(self.days()))) if len(self.label) else 0.0


@dataclass
class TrainingResult:
    bundle: ModelBundle
    summary: dict
    plots: dict = field(default_factory=dict)   # arrays for the report's figures
    searches: dict = field(default_factory=dict)
    # the served model's distributions on the window calibration was fitted on (fraud.monitoring.reference)
    reference: dict = field(default_factory=dict)
    # when the served model is the latest refit (fraud.refit): the twin's bundle (its model and
    # calibrator, the same thresholds), whose scores the test figures are of; the registry
    # keeps it for the nightly gate
    twin: ModelBundle | None = None

    @property
    def evaluation_bundle(self) -> ModelBundle:
        """What the test figures describe: the twin's bundle, else the served one."""
        return self.bundle if self.twin is None else self.twin


def _fold_data(data: LabelledFeatures, split: TimeSplit, rate: float, seed: int,
               counted: np.ndarray) -> list[FoldData]:
    """``counted``: rows that count in validation (``evaluation``)."""
    rng = np.random.default_rng(seed)
    folds = []
    for fold in split.folds:
        train = data.rows(fold.train.mask(data.timestamp))
        known = labels_known_at(train.label, train.label_time, fold.label_cutoff)
        keep = (known == 1) | (rng.random(len(known)) < rate)
        weight = train.sample_weight(keep, np.where(known[keep] == 1, 1.0, 1.0 / rate) if rate < 1 else None)
        val = data.rows(fold.validation.mask(data.timestamp) & counted)
        if known[keep].sum() == 0 or val.label.sum() == 0:
            raise ValueError(f"fold {fold.train.start.date()}..{fold.validation.end.date()} has no fraud "
                             "labels in its training or validation window")
        folds.append(FoldData(train.features.iloc[np.flatnonzero(keep)], known[keep], weight,
                              val.features, val.label))
    return folds


def _choose_winner(results: dict[str, SearchResult], val: LabelledFeatures, capacity: float) -> tuple[str, dict]:
    table = {}
    for kind, res in results.items():
        probs = res.model.predict_proba(val.features)
        table[kind] = {"validation_average_precision": res.best.score,
                       "validation_recall_at_capacity": metrics.recall_at_capacity(
                           probs, val.label, val.days(), capacity)}
    best_ap = max(v["validation_average_precision"] for v in table.values())
    close = [k for k, v in table.items() if v["validation_average_precision"] >= best_ap - 0.005]
    winner = max(close, key=lambda k: (table[k]["validation_recall_at_capacity"],
                                       table[k]["validation_average_precision"]))
    reason = (f"{winner} has the best validation average precision "
              f"({table[winner]['validation_average_precision']:.4f})")
    if len(close) > 1:
        reason = (f"{', '.join(close)} are within 0.005 validation average precision of the best; "
                  f"{winner} catches the most fraud within the review capacity on validation "
                  f"({table[winner]['validation_recall_at_capacity']:.3f})")
    return winner, {"winner": winner, "reason": reason, "validation": table}


def _amount_range(amount: np.ndarray) -> dict:
    """The amounts the model has seen: the API sends larger ones to review, not to the model's
    extrapolation (a tree model scores 1,000,000 like the largest amount it was trained on)."""
    finite = amount[np.isfinite(amount)]
    return {"max": float(finite.max()), "p99_9": float(np.quantile(finite, 0.999))} if finite.size else {}


def train(data: LabelledFeatures, config: FraudConfig, spec: FeatureSpec, split: TimeSplit | None = None,
          progress: bool = True, fitter=local_fit) -> TrainingResult:
    """Search, choose, calibrate and threshold; returns the winning bundle and the figures.

    ``fitter(candidate, fold, monitor)`` fits one candidate on one fold (default: in
    process; ``monitor`` watches the boosting rounds, ``fraud.search_monitor``).
    """
    started = time.perf_counter()
    split = split or make_split(data.timestamp, config.split, pd.Timedelta(config.data.label_delay))
    check_classes(split, data.timestamp, data.label, data.label_time)  # InsufficientDataError
    plan = plan_refit(split, config.split) if config.split.refit else None
    if plan is not None:
        check_plan(plan, data.timestamp, data.label)
    cfg = config.search
    counted = ~evaluation.known_fraud_card(data.timestamp, data.card_id, data.label, data.label_time)
    folds = _fold_data(data, split, cfg.negative_sample_rate, cfg.seed, counted)
    log.info("time split: %s", split.to_dict())
    with progress_bar(total=cfg.max_trials, enabled=progress, desc="hyper-parameter search", unit="trial") as bar:
        search = run_search(list(cfg.candidates), folds, cfg, bar, fitter)
    results = search.results
    for kind, res in results.items():
        log.info("%s: best validation AP %.4f with %s (%d trials)", kind, res.best.score, res.best.params,
                 len(res.trials))

    val_mask = split.folds[0].validation.mask(data.timestamp)
    test_mask = (plan.judged if plan is not None else split.test).mask(data.timestamp)
    val, val_counted = data.rows(val_mask), data.rows(val_mask & counted)
    val_left_out = (int(len(val.label) - len(val_counted.label)), int(val.label.sum() - val_counted.label.sum()))
    test_all, test = data.rows(test_mask), data.rows(test_mask & counted)
    capacity = config.policy.review_capacity_per_day
    winner, choice = _choose_winner(results, val_counted, capacity)
    # ``model``: the model the test figures, calibration and thresholds are of (fold 0's, or
    # the twin); ``served``: the one the bundle serves (the same, or the latest refit)
    model, trained_on, label_cutoff, refit_info = (results[winner].model, split.folds[0].train,
                                                   split.folds[0].label_cutoff, None)
    if plan is not None:
        model, refit_info = refit(results[winner], int(folds[0].y_train.size), data, plan, cfg)
        trained_on, label_cutoff = plan.train, plan.label_cutoff
        # calibration and thresholds on rows the refit did not see (the test window's first part)
        val = data.rows(plan.calibration.mask(data.timestamp))

    raw_val = model.predict_proba(val.features)
    raw_test, raw_test_all = model.predict_proba(test.features), model.predict_proba(test_all.features)
    calibrator = Calibrator(cfg.calibration).fit(raw_val, val.label)
    cal_val, cal_test, cal_test_all = calibrator.predict(raw_val), calibrator.predict(raw_test), \
        calibrator.predict(raw_test_all)
    thresholds, policy_report = choose_thresholds(cal_val, val.label, val.amount, val.n_days(), config.policy)
    served_model, served_cal, served_on, served_cutoff, served_info, transfer = \
        model, calibrator, trained_on, label_cutoff, refit_info, None
    if plan is not None and plan.latest is not None:   # the latest refit, calibrated from the twin (fraud.refit)
        newest = data.rows(plan.newest.mask(data.timestamp))
        try:
            latest, latest_info = refit(results[winner], int(folds[0].y_train.size), data, plan, cfg, latest=True)
        except InsufficientDataError as exc:   # no fraud known in its window: the twin serves
            latest, latest_info = None, None
            transfer = {"rows": int(len(newest.label)), "serve": "twin", "overlap": None,
                        "min_overlap": config.split.transfer_min_overlap, "min_rows": config.monitoring.min_rows,
                        "reason": str(exc)}
        if latest is not None:
            # LightGBM refuses to predict no rows: an empty newest window goes to the row check as it is
            latest_newest = latest.predict_proba(newest.features) if len(newest.label) else np.empty(0)
            twin_newest = model.predict_proba(newest.features) if len(newest.label) else np.empty(0)
            mapped, transfer = check_transfer(twin_newest, latest_newest, calibrator, thresholds,
                                              config.split.transfer_min_overlap, config.monitoring.min_rows)
        log.info("latest refit (%s .. %s): %s", plan.latest.start.date(), plan.latest.end.date(), transfer["reason"])
        if transfer["serve"] == "latest":
            served_model, served_cal, served_on, served_cutoff, served_info = \
                latest, mapped, plan.latest, plan.latest_cutoff, latest_info
        else:
            log.warning("serving the twin (%s .. %s) instead of the latest refit: %s", plan.train.start.date(),
                        plan.train.end.date(), transfer["reason"])
    fresh = served_model is not model
    served = {"kind": winner, "refitted": plan is not None, "latest": fresh, "train": served_on.to_dict(),
              "label_cutoff": served_cutoff.isoformat(), "as_of": split.as_of.isoformat(),
              "age_days": (split.as_of - served_cutoff) / pd.Timedelta(days=1),
              "calibrated_on": (plan.calibration if plan is not None else split.folds[0].validation).to_dict(),
              "calibration": ("cross-fitted: the twin's calibrator (fitted on rows the twin did not see) after "
                              "its scores are mapped onto the twin's by quantile on the newest days; the twin's "
                              "thresholds" if fresh else "its own scores of rows it did not see"),
              "refit": served_info,
              "twin": None if plan is None else {"train": trained_on.to_dict(), "label_cutoff": label_cutoff.isoformat(),
                                                 "age_days": (split.as_of - label_cutoff) / pd.Timedelta(days=1),
                                                 "refit": refit_info},
              "transfer": transfer}
    test_outcome = outcome(cal_test, test.label, test.amount, test.n_days(), thresholds, config.policy)
    workload = outcome(cal_test_all, test_all.label, test_all.amount, test_all.n_days(), thresholds, config.policy)
    decisions = thresholds.decide(cal_test)
    margins = model.margin(test.features)

    candidates = {}
    plots = {"pr_curves": {}, "histories": {}}
    test_probs = {}
    for kind, res in results.items():
        probs = test_probs[kind] = res.model.predict_proba(test.features)
        candidates[kind] = {
            **choice["validation"][kind], "params": res.best.params, "rounds": res.model.n_rounds_,
            "trials": len(res.trials), **{f"test_{k}": v for k, v in metrics.ranking(probs, test.label).items()},
            "test_recall_at_capacity": metrics.recall_at_capacity(probs, test.label, test.days(), capacity),
            "test_average_precision_unfiltered": metrics.ranking(res.model.predict_proba(test_all.features),
                                                                 test_all.label)["average_precision"],
        }
        plots["pr_curves"][kind] = metrics.pr_curve(probs, test.label)
        plots["histories"][kind] = res.model.history_
    gamma, alpha = model.focal if winner in FOCAL_KINDS else (0.0, None)   # of the test figures' model
    served_gamma, served_alpha = served_model.focal if winner in FOCAL_KINDS else (0.0, None)
    split_dict = split.to_dict()
    if plan is not None:   # the test figures, the comparison and the gate count the judged part
        split_dict.update(test=plan.judged.to_dict(), test_full=split.test.to_dict(), refit=plan.to_dict())
    summary = {
        "split": split_dict,
        "served_model": served,
        "rows": {"train_fold0": int(folds[0].y_train.size), "validation": int(len(val_counted.label)),
                 "test": int(len(test.label)), "validation_frauds": int(val_counted.label.sum()),
                 "test_frauds": int(test.label.sum())},
        "evaluation": {
            "counted": "transactions of cards with no fraud label known at that moment (known ones are blocked)",
            # fold 0's validation window (``val`` becomes the calibration window with the refit)
            "validation_rows_left_out": val_left_out[0], "validation_frauds_left_out": val_left_out[1],
            "test_rows_left_out": int(len(test_all.label) - len(test.label)),
            "test_frauds_left_out": int(test_all.label.sum() - test.label.sum())},
        "choice": choice,
        "candidates": candidates,
        "winner": {"kind": winner, "params": results[winner].best.params, "rounds": served_model.n_rounds_,
                   "gamma": served_gamma, "alpha": served_alpha},
        "calibration": {"method": cfg.calibration,
                        # the rows calibration was fitted on: fold 0's validation, or the refit's calibration window
                        ("calibration window" if plan is not None else "validation"):
                            metrics.calibration_figures(raw_val, cal_val, val.label),
                        "test": metrics.calibration_figures(raw_test, cal_test, test.label)},
        "policy": policy_report,
        "test": {**metrics.ranking(cal_test, test.label), "policy": test_outcome.to_dict(),
                 "card_precision_at_k": metrics.card_precision_at_k(cal_test, test.label, test.card_id,
                                                                    test.days(), int(round(capacity))),
                 "per_class": metrics.per_class(decisions, test.label, test.pattern if test.pattern is not None
                                                else np.full(len(test.label), "")),
                 "focal": metrics.focal_view(margins, test.label, gamma, alpha)},
        "test_unfiltered": {**metrics.ranking(cal_test_all, test_all.label), "policy": workload.to_dict(),
                            "card_precision_at_k": metrics.card_precision_at_k(
                                cal_test_all, test_all.label, test_all.card_id, test_all.days(), int(round(capacity)),
                                drop_detected=False)},
        # every candidate's test AP with a day-bootstrap interval; focal vs the tuned baseline
        "comparison": day_bootstrap(test_probs, test.label, test.days(), BASELINE_KINDS, FOCAL_KINDS,
                                    seed=cfg.seed),
        "feature_importance": served_model.feature_importance(),
        "search": search.summary,
        "trials": [{"kind": t.kind, "params": t.params, "validation_ap": None if t.pruned else t.score,
                    "fold_scores": t.scores, "rounds": t.rounds, "seconds": t.seconds, "pruned": t.pruned,
                    "capped": t.capped} for r in results.values() for t in r.trials],
        "library_versions": library_versions(),
        "seconds": time.perf_counter() - started,
    }
    plots.update(
        calibration={"before": calibration_curve(raw_test, test.label), "after": calibration_curve(cal_test, test.label)},
        scores={"fraud": cal_test[test.label == 1], "legit": cal_test[test.label == 0]},
        margins={"values": margins, "labels": test.label},
        thresholds=thresholds.to_dict(),
    )
    bundle = ModelBundle(served_model, served_cal, thresholds, spec,
                         metadata={"winner": winner, "gamma": served_gamma, "alpha": served_alpha,
                                   "trained_on": served_on.to_dict(), "label_cutoff": served_cutoff.isoformat(),
                                   # the twin's (fraud.refit), which the registry keeps for the gate
                                   "twin_trained_on": trained_on.to_dict() if fresh else None,
                                   "age_days": served["age_days"], "as_of": split.as_of.isoformat(),
                                   "currency": config.data.currency, "amount_range": _amount_range(data.amount),
                                   # the share of transactions the thresholds send to review (test window):
                                   # the API's review-volume alarm compares live traffic with it
                                   "expected_review_share": workload.reviews_per_day * test_all.n_days()
                                   / max(len(test_all.label), 1)})
    log.info("winner %s (gamma %s, alpha %s): test AP %.4f, recall at thresholds %.3f, %.1f reviews/day",
             winner, gamma, alpha, summary["test"]["average_precision"], test_outcome.recall,
             test_outcome.reviews_per_day)
    reference = reference_distributions(val.features, cal_val, model.margin(val.features), val.label,
                                        gamma=gamma if winner in FOCAL_KINDS else None, alpha=alpha,
                                        window=served["calibrated_on"], importance=summary["feature_importance"],
                                        hard_p_t=config.monitoring.hard_p_t, model_kind=winner,
                                        timestamps=val.timestamp)
    if fresh:   # the served latest's own scores, of the newest days (fraud.monitoring.reference)
        reference = with_served_scores(reference, served_cal.predict(latest_newest), newest.timestamp,
                                       plan.newest.to_dict())
    twin = dataclasses.replace(bundle, model=model, calibrator=calibrator) if fresh else None
    return TrainingResult(bundle, summary, plots, results, reference, twin)
