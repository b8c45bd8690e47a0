"""Training from the Dask feature table: the training rows never reach the driver.

Each fold's training rows are read from the partitioned feature table (``date=`` pruning),
given the labels known at the fold's cut-off, down-sampled (negatives kept with
probability ``negative_sample_rate`` by a hash of the transaction id, so the sample does
not depend on partitioning; weight 1 / rate) and persisted on the workers; the search
(``fraud.search.run_search``, the same budget, studies and allocation) fits every trial
with ``DaskFitter`` (``xgboost.dask`` with the focal objective, LightGBM's Dask API) and
scores it on the validation rows on the workers. The driver holds the models, the
validation labels (one byte a row), and for calibration, thresholds and the report one
small row per validation/test transaction: its scores, label, amount, time, hashed card
and pattern; never a feature matrix.

Differences from ``fraud.training.train`` (documented in the README): no refit on the
newest window (``[split] refit`` is not applied; the served model is fold 0's, calibrated
and thresholded on fold 0's validation window, as with ``refit = false``), the
down-sampling draws differ (hash, not the seeded generator), the amount range's 99.9th
percentile is Dask's approximate quantile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraud import metrics
from fraud.bundle import ModelBundle
from fraud.calibration import Calibrator, calibration_curve
from fraud.config import FraudConfig
from fraud.features.dask_table import read_feature_table, row_uniform
from fraud.features.spec import FeatureSpec
from fraud.models import BASELINE_KINDS, FOCAL_KINDS, library_versions
from fraud.monitoring.reference import reference_distributions
from fraud.policy import choose_thresholds, outcome
from fraud.progress import progress_bar
from fraud.schema import AMOUNT, CARD_ID, LABEL, LABEL_TIME, TIMESTAMP, TRANSACTION_ID
from fraud.search import FoldData, run_search
from fraud.splits import TimeSplit, Window, check_classes
from fraud.training import TrainingResult, _choose_winner
from fraud.uncertainty import day_bootstrap

from .dask_fit import DaskFitter

REFERENCE_ROWS = 200_000  # sampled from the calibration window for reference.json

log = logging.getLogger(__name__)
Y, W = "_y", "_w"


@dataclass
class DaskFold(FoldData):
    """A fold whose rows live on the workers: ``X_train``/``X_val`` Dask DataFrames,
    ``y_train``/``w_train`` Dask Series; ``y_val`` the validation labels (numpy, small);
    ``totals`` the weighted (legitimate, fraud) counts of the training rows, all the
    driver needs for the starting margin, the hessian scale and class weights."""

    totals: tuple[float, float] = (0.0, 0.0)
    n_train: int = 0
    y_val_dask: object = None  # the validation labels on the workers, for the eval set


def fraud_rows(transactions) -> pd.DataFrame:
    """Time, card and label time of the fraud rows (a small table, collected once)."""
    frauds = transactions.loc[transactions[LABEL] == 1, [TIMESTAMP, CARD_ID, LABEL_TIME]]
    return frauds.compute().reset_index(drop=True)


def first_known(frauds: pd.DataFrame) -> dict:
    """Per card, when its first fraud label became known (``fraud.evaluation``); a dict,
    which Dask hands to every partition as it is (a pandas Series would be aligned)."""
    known = frauds[frauds[LABEL_TIME].notna()]
    return known.groupby(known[CARD_ID].astype(object))[LABEL_TIME].min().to_dict()


def _counted(part: pd.DataFrame, known: dict) -> pd.Series:
    at = pd.to_datetime(part[CARD_ID].astype(object).map(known), utc=True)
    return pd.Series(~(at.notna() & (part[TIMESTAMP] >= at)).to_numpy(), index=part.index)


def _counted_rows(part: pd.DataFrame, known: dict, columns: list[str]) -> pd.DataFrame:
    return part.loc[_counted(part, known).to_numpy(), columns]


def check_windows(split: TimeSplit, frauds: pd.DataFrame, day_counts: pd.Series) -> None:
    """``fraud.splits.check_classes`` on stand-in rows: the real fraud rows plus one
    legitimate row on each day that has any (windows are whole days)."""
    legit_days = day_counts[day_counts > 0].index
    stand_in = pd.DataFrame({TIMESTAMP: pd.DatetimeIndex(legit_days, tz="UTC"), LABEL: 0,
                             LABEL_TIME: pd.DatetimeIndex(legit_days, tz="UTC")})
    rows = pd.concat([frauds.assign(**{LABEL: 1})[[TIMESTAMP, LABEL, LABEL_TIME]], stand_in], ignore_index=True)
    check_classes(split, rows[TIMESTAMP], rows[LABEL].to_numpy(), rows[LABEL_TIME])


def _training_rows(part: pd.DataFrame, names: list[str], cutoff: pd.Timestamp, rate: float, seed: int,
                   hard: tuple | None = None):
    """A fold's training rows of one partition: the labels known at ``cutoff``, negatives
    down-sampled (weight 1 / rate) and, with ``hard`` (ids, weight), the reviewed hard
    examples' weight multiplied in, as ``fraud.refit.refit_rows`` and the local folds do."""
    known = ((part[LABEL].to_numpy() == 1) & (part[LABEL_TIME] < cutoff).to_numpy()).astype(np.int8)
    keep = (known == 1) | (row_uniform(part[TRANSACTION_ID], seed) < rate)
    out = part.loc[keep, names].reset_index(drop=True)
    out[Y] = known[keep]
    weight = np.where(known[keep] == 1, 1.0, 1.0 / rate) if rate < 1 else np.ones(int(keep.sum()))
    if hard is not None:
        ids, factor = hard
        weight = weight * np.where(part[TRANSACTION_ID].astype(str).isin(ids).to_numpy()[keep], factor, 1.0)
    out[W] = weight
    return out


def make_folds(client, table_path, split: TimeSplit, names: list[str], rate: float, seed: int,
               known: dict, hard: tuple | None = None) -> list[DaskFold]:
    """``hard``: (the up-weighted transaction ids, an array, and their weight), or None."""
    folds = []
    for fold in split.folds:
        rows = read_feature_table(table_path, fold.train.start, fold.train.end)
        meta = pd.DataFrame({**{n: pd.Series(dtype=np.float64) for n in names},
                             Y: pd.Series(dtype=np.int8), W: pd.Series(dtype=np.float64)})
        train = client.persist(rows.map_partitions(_training_rows, names, fold.label_cutoff, rate, seed, hard,
                                                   meta=meta))
        val = read_feature_table(table_path, fold.validation.start, fold.validation.end)
        # one map_partitions: a mask and the frame it filters, projected apart, may be read
        # into different partitions by the optimiser
        val = client.persist(val.map_partitions(_counted_rows, known, [*names, LABEL],
                                                meta=val._meta[[*names, LABEL]]))
        totals = train.groupby(Y)[W].sum().compute()
        y_val = val[LABEL].compute().to_numpy(dtype=np.int8)
        n_train = int(train.map_partitions(len).compute().sum())
        if totals.get(1, 0.0) == 0 or y_val.sum() == 0:
            raise ValueError(f"fold {fold.train.start.date()}..{fold.validation.end.date()} has no fraud "
                             "labels in its training or validation window")
        with_weight = rate < 1 or hard is not None
        folds.append(DaskFold(train[names], train[Y], train[W] if with_weight else None, val[names], y_val,
                              totals=(float(totals.get(0, 0.0)), float(totals.get(1, 0.0))), n_train=n_train,
                              y_val_dask=val[LABEL]))
    return folds


def _score_rows(part: pd.DataFrame, models: dict, winner: str, names: list[str], known: dict) -> pd.DataFrame:
    """One small row per transaction: the scores of every candidate and what the figures need."""
    X = part[names]
    out = pd.DataFrame({TIMESTAMP: part[TIMESTAMP].to_numpy(), LABEL: part[LABEL].to_numpy(np.int8),
                        AMOUNT: part[AMOUNT].to_numpy(np.float64),
                        "card": pd.util.hash_array(part[CARD_ID].to_numpy(dtype=object), categorize=False),
                        "pattern": (part["fraud_pattern"].astype(object).fillna("").to_numpy()
                                    if "fraud_pattern" in part.columns else np.full(len(part), "", dtype=object)),
                        "counted": _counted(part, known).to_numpy()})
    for kind, model in models.items():
        out[f"p_{kind}"] = model.predict_proba(X) if len(part) else np.zeros(0)
    out["margin"] = models[winner].margin(X) if len(part) else np.zeros(0)
    return out


@dataclass
class ScoredRows:
    """The collected rows of one window, shaped like ``LabelledFeatures`` for the figures."""

    frame: pd.DataFrame

    def rows(self, mask) -> "ScoredRows":
        return ScoredRows(self.frame.loc[np.asarray(mask, dtype=bool)].reset_index(drop=True))

    @property
    def label(self) -> np.ndarray:
        return self.frame[LABEL].to_numpy(np.int8)

    @property
    def amount(self) -> np.ndarray:
        return self.frame[AMOUNT].to_numpy(np.float64)

    @property
    def card_id(self) -> np.ndarray:
        return self.frame["card"].to_numpy()

    @property
    def pattern(self) -> np.ndarray:
        return self.frame["pattern"].to_numpy(dtype=object)

    def probs(self, kind: str) -> np.ndarray:
        return self.frame[f"p_{kind}"].to_numpy(np.float64)

    def days(self) -> np.ndarray:
        ts = self.frame[TIMESTAMP]
        return (ts.dt.floor("D") - ts.min().floor("D")).dt.days.to_numpy() if len(ts) else np.zeros(0, int)

    def n_days(self) -> float:
        return float(len(np.unique(self.days()))) if len(self.frame) else 0.0


def score_window(client, table_path, window: Window, models: dict, winner: str, names, known) -> ScoredRows:
    rows = read_feature_table(table_path, window.start, window.end)
    meta = _score_rows(rows._meta, models, winner, names, known)
    return ScoredRows(rows.map_partitions(_score_rows, models, winner, names, known, meta=meta)
                      .compute().reset_index(drop=True))


class _ValRows:
    """What ``fraud.training._choose_winner`` reads: features (on the workers) and labels."""

    def __init__(self, fold: DaskFold, days: np.ndarray):
        self.features, self.label, self._days = fold.X_val, fold.y_val, days

    def days(self) -> np.ndarray:
        return self._days


def train_dask(client, table_path, config: FraudConfig, spec: FeatureSpec, split: TimeSplit, known: dict,
               amount_range: dict, progress: bool = True, hard: tuple | None = None) -> TrainingResult:
    """Search, choose, calibrate and threshold from the feature table at ``table_path``;
    ``hard``: the reviewed hard examples' (ids, weight) for the training rows, or None."""
    started = time.perf_counter()
    cfg = config.search
    names = list(spec.names)
    folds = make_folds(client, table_path, split, names, cfg.negative_sample_rate, cfg.seed, known, hard)
    log.info("time split: %s", split.to_dict())
    with progress_bar(total=cfg.max_trials, enabled=progress, desc="hyper-parameter search", unit="trial") as bar:
        search = run_search(list(cfg.candidates), folds, cfg, bar, DaskFitter(client))
    results = search.results
    models = {kind: res.model.local() for kind, res in results.items()}
    capacity = config.policy.review_capacity_per_day

    fold0 = split.folds[0]
    val_all = score_window(client, table_path, fold0.validation, models, next(iter(models)), names, known)
    val_counted = val_all.rows(val_all.frame["counted"])
    winner, choice = _choose_winner(results, _ValRows(folds[0], val_counted.days()), capacity)
    model = models[winner]
    test_all = score_window(client, table_path, split.test, models, winner, names, known)
    test = test_all.rows(test_all.frame["counted"])
    val = val_all  # calibration and thresholds on every row of fold 0's validation window

    raw_val, raw_test, raw_test_all = val.probs(winner), test.probs(winner), test_all.probs(winner)
    calibrator = Calibrator(cfg.calibration).fit(raw_val, val.label)
    cal_val, cal_test, cal_test_all = calibrator.predict(raw_val), calibrator.predict(raw_test), \
        calibrator.predict(raw_test_all)
    thresholds, policy_report = choose_thresholds(cal_val, val.label, val.amount, val.n_days(), config.policy)
    test_outcome = outcome(cal_test, test.label, test.amount, test.n_days(), thresholds, config.policy)
    workload = outcome(cal_test_all, test_all.label, test_all.amount, test_all.n_days(), thresholds, config.policy)
    decisions = thresholds.decide(cal_test)
    margins = test.frame["margin"].to_numpy(np.float64)

    candidates, test_probs = {}, {}
    plots = {"pr_curves": {}, "histories": {}}
    for kind, res in results.items():
        probs = test_probs[kind] = test.probs(kind)
        candidates[kind] = {
            **choice["validation"][kind], "params": res.best.params, "rounds": res.model.n_rounds_,
            "trials": len(res.trials), **{f"test_{k}": v for k, v in metrics.ranking(probs, test.label).items()},
            "test_recall_at_capacity": metrics.recall_at_capacity(probs, test.label, test.days(), capacity),
            "test_average_precision_unfiltered": metrics.ranking(test_all.probs(kind),
                                                                 test_all.label)["average_precision"]}
        plots["pr_curves"][kind] = metrics.pr_curve(probs, test.label)
        plots["histories"][kind] = res.model.history_
    gamma, alpha = model.focal if winner in FOCAL_KINDS else (0.0, None)
    served = {"kind": winner, "refitted": False, "train": fold0.train.to_dict(),
              "label_cutoff": fold0.label_cutoff.isoformat(), "as_of": split.as_of.isoformat(),
              "age_days": (split.as_of - fold0.label_cutoff) / pd.Timedelta(days=1),
              "calibrated_on": fold0.validation.to_dict(), "refit": None, "engine": "dask"}
    summary = {
        "split": split.to_dict(),
        "served_model": served,
        "rows": {"train_fold0": folds[0].n_train, "validation": int(len(val_counted.label)),
                 "test": int(len(test.label)), "validation_frauds": int(val_counted.label.sum()),
                 "test_frauds": int(test.label.sum())},
        "evaluation": {
            "counted": "transactions of cards with no fraud label known at that moment (known ones are blocked)",
            "validation_rows_left_out": int(len(val_all.label) - len(val_counted.label)),
            "validation_frauds_left_out": int(val_all.label.sum() - val_counted.label.sum()),
            "test_rows_left_out": int(len(test_all.label) - len(test.label)),
            "test_frauds_left_out": int(test_all.label.sum() - test.label.sum())},
        "choice": choice,
        "candidates": candidates,
        "winner": {"kind": winner, "params": results[winner].best.params, "rounds": model.n_rounds_,
                   "gamma": gamma, "alpha": alpha},
        "calibration": {"method": cfg.calibration,
                        "validation": metrics.calibration_figures(raw_val, cal_val, val.label),
                        "test": metrics.calibration_figures(raw_test, cal_test, test.label)},
        "policy": policy_report,
        "test": {**metrics.ranking(cal_test, test.label), "policy": test_outcome.to_dict(),
                 "card_precision_at_k": metrics.card_precision_at_k(cal_test, test.label, test.card_id,
                                                                    test.days(), int(round(capacity))),
                 "per_class": metrics.per_class(decisions, test.label, test.pattern),
                 "focal": metrics.focal_view(margins, test.label, gamma, alpha)},
        "test_unfiltered": {**metrics.ranking(cal_test_all, test_all.label), "policy": workload.to_dict(),
                            "card_precision_at_k": metrics.card_precision_at_k(
                                cal_test_all, test_all.label, test_all.card_id, test_all.days(),
                                int(round(capacity)), drop_detected=False)},
        "comparison": day_bootstrap(test_probs, test.label, test.days(), BASELINE_KINDS, FOCAL_KINDS, seed=cfg.seed),
        "feature_importance": model.feature_importance(),
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
        thresholds=thresholds.to_dict())
    bundle = ModelBundle(model, calibrator, thresholds, spec,
                         metadata={"winner": winner, "gamma": gamma, "alpha": alpha, "trained_on": fold0.train.to_dict(),
                                   "label_cutoff": fold0.label_cutoff.isoformat(), "age_days": served["age_days"],
                                   "as_of": split.as_of.isoformat(), "currency": config.data.currency,
                                   "amount_range": amount_range,
                                   "expected_review_share": workload.reviews_per_day * test_all.n_days()
                                   / max(len(test_all.label), 1)})
    log.info("winner %s (gamma %s, alpha %s): test AP %.4f, recall at thresholds %.3f, %.1f reviews/day (Dask)",
             winner, gamma, alpha, summary["test"]["average_precision"], test_outcome.recall,
             test_outcome.reviews_per_day)
    reference = _reference(table_path, fold0.validation, names, model, calibrator, len(val_all.label), cfg.seed,
                           gamma=gamma if winner in FOCAL_KINDS else None, alpha=alpha,
                           window=served["calibrated_on"], importance=summary.get("feature_importance"),
                           hard_p_t=config.monitoring.hard_p_t, model_kind=winner)
    return TrainingResult(bundle, summary, plots, results, reference)


def _reference(table_path, rows_window, names: list[str], model, calibrator, rows: int, seed: int,
               **figures) -> dict:
    """``reference.json`` (``fraud.monitoring.reference``) from at most ``REFERENCE_ROWS`` rows
    of the window calibration was fitted on, sampled on the workers: the deciles and
    histograms a monitor compares with need a sample, not every row in the driver."""
    table = read_feature_table(table_path, rows_window.start, rows_window.end, columns=[*names, LABEL, TIMESTAMP])
    if rows > REFERENCE_ROWS:
        table = table.sample(frac=REFERENCE_ROWS / rows, random_state=seed)
    sample = table.compute()
    features = sample[names]
    return reference_distributions(features, calibrator.predict(model.predict_proba(features)),
                                   model.margin(features), sample[LABEL].to_numpy(), timestamps=sample[TIMESTAMP],
                                   **figures)
