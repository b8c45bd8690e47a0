"""Fitting the candidates on a Dask cluster: ``xgboost.dask`` and LightGBM's Dask API,
with the focal objective (each worker evaluates it on its own partitions).

The trained model comes back as the same local classifier the single-process path
produces, so calibration, thresholds, the registry and the API do not know the
difference. A fold is either in-memory (``FoldData``: converted with ``dd.from_pandas``)
or already on the workers (``batch_jobs.dask_train.DaskFold``: Dask collections plus the
weighted class totals, all the driver needs for the starting margin, the hessian scale and
the class weights, which depend on the labels only through those totals). The returned
candidate scores a Dask DataFrame on the workers (``DaskCandidate``). LightGBM's Dask API has no early stopping: it trains the configured number
of rounds. Use through ``DaskFitter(client)`` as the ``fitter`` of ``fraud.training.train``.
The search's per-fit monitor (pruning, the trial's time cap) runs in the training loop,
which here is on the workers: a Dask fit is neither pruned nor cut short, and the search's
budget holds only between trials.
"""

from __future__ import annotations

import logging

import numpy as np
import xgboost as xgb
import xgboost.dask  # noqa: F401  (registers xgb.dask)

from fraud.models import FOCAL_KINDS, Candidate, focal_hessian_scale
from fraud.search import FoldData
from objectives import FocalLGBMClassifier, FocalXGBClassifier, XGBoostMetric, XGBoostObjective
from objectives.lightgbm_adapter import LightGBMSklearnObjective
from objectives import booster_params as focal_booster_params
from objectives.schedule import GammaSchedule, ScheduledObjective
from objectives.sklearn import hessian_scale, make_loss

log = logging.getLogger(__name__)


def _to_dask(client, X, y=None, w=None, partitions: int = 4):
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(X, dd.DataFrame):  # already on the workers
        return X, y, w
    Xd = dd.from_pandas(X.reset_index(drop=True), npartitions=partitions)
    chunks = tuple(Xd.map_partitions(len).compute())
    yd = None if y is None else da.from_array(np.asarray(y, dtype=np.float32), chunks=(chunks,))
    wd = None if w is None else da.from_array(np.asarray(w, dtype=np.float32), chunks=(chunks,))
    return Xd, yd, wd


def _margin_of(part, model: Candidate):
    import pandas as pd

    return pd.Series(model.margin(part) if len(part) else np.zeros(0), index=part.index, dtype=np.float64)


class DaskCandidate(Candidate):
    """A fitted candidate that scores a Dask DataFrame on the workers (and anything else
    in process); ``local()`` is the plain ``Candidate`` to save or ship."""

    def local(self) -> Candidate:
        plain = Candidate.__new__(Candidate)
        plain.__dict__.update(self.__dict__)
        return plain

    def margin(self, X) -> np.ndarray:
        import dask.dataframe as dd

        if isinstance(X, dd.DataFrame):
            return X.map_partitions(_margin_of, self.local(), meta=(None, np.float64)).compute().to_numpy()
        return super().margin(X)


def class_totals(fold) -> tuple[np.ndarray, np.ndarray]:
    """Two rows, (legitimate, fraud), weighted by the fold's class totals: every function
    of the labels the fit needs (starting margin, hessian scale, class weights) sees the
    same numbers as on all the rows."""
    if hasattr(fold, "totals"):
        neg, pos = fold.totals
    else:
        y = np.asarray(fold.y_train)
        w = np.ones(y.shape[0]) if fold.w_train is None else np.asarray(fold.w_train, dtype=np.float64)
        neg, pos = float(w[y == 0].sum()), float(w[y == 1].sum())
    return np.array([0, 1]), np.array([neg, pos], dtype=np.float64)


def _val_labels(fold):
    """The validation labels as the eval set needs them: on the workers for a ``DaskFold``."""
    on_workers = getattr(fold, "y_val_dask", None)
    return fold.y_val if on_workers is None else on_workers


class DaskFitter:
    """``fitter(candidate, fold)`` that trains on a Dask cluster."""

    def __init__(self, client, partitions: int | None = None):
        self.client = client
        self.partitions = partitions or max(2, len(client.scheduler_info()["workers"]))

    def __call__(self, cand: Candidate, fold: FoldData, monitor=None) -> Candidate:
        fitted = self._fit_lightgbm(cand, fold) if cand.kind == "focal_lgbm" else self._fit_xgboost(cand, fold)
        fitted.__class__ = DaskCandidate
        return fitted

    def _fit_xgboost(self, cand: Candidate, fold: FoldData) -> Candidate:
        y2, w2 = class_totals(fold)
        p = cand.params = cand.params.for_fold(cand.kind, y2, w2)  # cb_focal_xgb: its alpha
        Xd, yd, wd = _to_dask(self.client, fold.X_train, fold.y_train, fold.w_train, self.partitions)
        Xv, yv, _ = _to_dask(self.client, fold.X_val, _val_labels(fold), None, self.partitions)
        # the names given, not read from the data: a worker that holds no partition builds an
        # empty DMatrix from these arguments alone, and one without names fails the booster's
        # feature check at the first evaluation ("data did not contain feature names")
        names = list(fold.X_train.columns)
        dtrain = xgb.dask.DaskDMatrix(self.client, Xd, yd, weight=wd, feature_names=names)
        dval = xgb.dask.DaskDMatrix(self.client, Xv, yv, feature_names=names)
        base = {"max_depth": p.max_depth, "eta": p.learning_rate, "tree_method": "hist", "seed": cand.seed,
                "subsample": p.subsample, "colsample_bytree": p.colsample_bytree, "lambda": p.reg_lambda}
        if cand.kind in FOCAL_KINDS:
            loss = make_loss(2, p.gamma, p.alpha, "floor", 1e-16)
            init = loss.init_margin(y2, w2)
            base["min_child_weight"] = focal_hessian_scale(p, y2, w2) * p.min_child_weight_scale
            params, obj, metric = focal_booster_params(loss, init, base), XGBoostObjective(loss), XGBoostMetric(loss)
            if p.gamma_end is not None:  # each worker counts its own calls: one per round
                obj = ScheduledObjective(obj, GammaSchedule(p.gamma, p.gamma_end, p.n_estimators),
                                         lambda g: make_loss(2, g, p.alpha, "floor", 1e-16))
            # early stopping told which way is better: given only early_stopping_rounds, XGBoost
            # takes a custom metric it does not know for a loss (lower is better) and keeps round 0
            stop = xgb.callback.EarlyStopping(rounds=cand.early_stopping_rounds, metric_name=metric.name,
                                              data_name="eval_0", maximize=metric.maximize)
            out = xgb.dask.train(self.client, params, dtrain, num_boost_round=p.n_estimators, evals=[(dval, "eval_0")],
                                 obj=obj, custom_metric=metric, callbacks=[stop], verbose_eval=False)
            est = FocalXGBClassifier(gamma=p.gamma, alpha=p.alpha, n_estimators=p.n_estimators,
                                     learning_rate=p.learning_rate, max_depth=p.max_depth, gamma_end=p.gamma_end)
            booster = out["booster"]
            best = int(booster.attr("best_iteration") or booster.num_boosted_rounds() - 1)
            est.booster_ = booster[: best + 1]
            est.classes_, est.n_classes_, est.loss_, est.init_margin_ = np.array([0, 1]), 2, loss, float(init)
            est.best_iteration_, est.n_features_in_ = best, fold.X_train.shape[1]
            est.feature_names_in_ = np.asarray(list(fold.X_train.columns), dtype=object)
            est.min_child_weight_, est.evals_result_ = base["min_child_weight"], out["history"]
            cand.estimator_ = est
            cand.history_ = {k: list(map(float, v)) for k, v in out["history"].get("eval_0", {}).items()}
        else:
            params = {**base, "objective": "binary:logistic", "eval_metric": "aucpr",
                      "min_child_weight": p.min_child_weight_scale}
            if cand.kind == "weighted_logistic_xgb":
                params["scale_pos_weight"] = float(w2[0] / max(w2[1], 1e-9))
            out = xgb.dask.train(self.client, params, dtrain, num_boost_round=p.n_estimators, evals=[(dval, "eval_0")],
                                 early_stopping_rounds=cand.early_stopping_rounds, verbose_eval=False)
            est = xgb.XGBClassifier()
            est._Booster = out["booster"]
            est.n_classes_ = 2
            cand.estimator_ = est
            cand.history_ = {k: list(map(float, v)) for k, v in out["history"].get("eval_0", {}).items()}
        cand.feature_names_ = list(fold.X_train.columns)
        cand.n_rounds_ = cand.best_rounds()
        log.info("dask-trained %s: %d rounds", cand.kind, cand.n_rounds_)
        return cand

    def _fit_lightgbm(self, cand: Candidate, fold: FoldData) -> Candidate:
        import lightgbm as lgb

        p = cand.params
        y2, w2 = class_totals(fold)
        loss = make_loss(2, p.gamma, p.alpha, "floor", 1e-16)
        init = loss.init_margin(y2, w2)
        Xd, yd, wd = _to_dask(self.client, fold.X_train, fold.y_train, fold.w_train, self.partitions)
        init_d = yd * 0.0 + float(init)
        mcw = 1e-3 * hessian_scale(loss, y2, w2) * p.min_child_weight_scale
        model = lgb.DaskLGBMClassifier(client=self.client, objective=LightGBMSklearnObjective(loss), n_estimators=p.n_estimators,
                                       learning_rate=p.learning_rate, max_depth=p.max_depth,
                                       num_leaves=2 ** p.max_depth - 1, min_sum_hessian_in_leaf=mcw,
                                       subsample=p.subsample, subsample_freq=1 if p.subsample < 1 else 0,
                                       colsample_bytree=p.colsample_bytree, reg_lambda=p.reg_lambda,
                                       random_state=cand.seed, verbose=-1)
        model.fit(Xd, yd, sample_weight=wd, init_score=init_d)
        local = model.to_local()
        est = FocalLGBMClassifier(gamma=p.gamma, alpha=p.alpha, n_estimators=p.n_estimators,
                                  learning_rate=p.learning_rate, max_depth=p.max_depth)
        est.booster_ = local.booster_
        est.classes_, est.n_classes_, est.loss_, est.init_margin_ = np.array([0, 1]), 2, loss, float(init)
        est.best_iteration_ = local.booster_.current_iteration() - 1
        est.n_features_in_ = fold.X_train.shape[1]
        est.feature_names_in_ = np.asarray(list(fold.X_train.columns), dtype=object)
        est.min_child_weight_, est.evals_result_ = mcw, {}
        cand.estimator_ = est
        cand.history_ = {}
        cand.feature_names_ = list(fold.X_train.columns)
        cand.n_rounds_ = cand.best_rounds()
        log.info("dask-trained focal_lgbm: %d rounds (no early stopping on Dask)", cand.n_rounds_)
        return cand
