"""The candidate models the nightly job compares, behind one small interface.

- ``focal_xgb`` / ``focal_lgbm``: the focal-loss classifiers from ``objectives``;
- ``cb_focal_xgb``: focal loss with class-balanced weights (``objectives.class_balanced``)
  in place of alpha, from the searched beta and the fold's class counts;
- ``focal_xgb_gamma_schedule``: focal loss whose gamma moves linearly from ``gamma`` to
  ``gamma_end`` over the boosting rounds (``objectives.schedule``);
- ``logistic_xgb``: XGBoost's built-in logistic loss (the baseline every team has);
- ``weighted_logistic_xgb``: the same with positives up-weighted by negatives/positives.

Each one fits with early stopping on a validation set (average precision), predicts an
uncalibrated probability and its margin, explains a prediction with per-feature
contributions (TreeSHAP, in margin space), and saves itself in its library's own format
(never pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xgboost as xgb

if TYPE_CHECKING:  # pandas is imported where it is used: the scoring Lambda never needs it
    import pandas as pd

from objectives.persistence import load_predictor, sidecar_path

CLASS_BALANCED = "cb_focal_xgb"
GAMMA_SCHEDULE = "focal_xgb_gamma_schedule"
# every focal-loss kind: searched over gamma, reported with their (gamma, alpha), and the
# challengers of the report's focal-vs-baseline verdict
FOCAL_KINDS = ("focal_xgb", "focal_lgbm", CLASS_BALANCED, GAMMA_SCHEDULE)
BASELINE_KINDS = ("logistic_xgb", "weighted_logistic_xgb")
KINDS = FOCAL_KINDS + BASELINE_KINDS


@dataclass
class HyperParams:
    max_depth: int = 6
    learning_rate: float = 0.1
    n_estimators: int = 400
    gamma: float | None = None
    alpha: float | None = None
    min_child_weight_scale: float = 1.0
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    reg_lambda: float = 1.0
    beta: float | None = None       # cb_focal_xgb: the effective-number beta (alpha is derived from it)
    gamma_end: float | None = None  # focal_xgb_gamma_schedule: gamma of the last round (``gamma``: of the first)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        variants = {k: v for k, v in (("beta", self.beta), ("gamma_end", self.gamma_end)) if v is not None}
        return {"max_depth": self.max_depth, "learning_rate": self.learning_rate, "n_estimators": self.n_estimators,
                "gamma": self.gamma, "alpha": self.alpha, "min_child_weight_scale": self.min_child_weight_scale,
                "subsample": self.subsample, "colsample_bytree": self.colsample_bytree, "reg_lambda": self.reg_lambda,
                **variants, **self.extra}

    def for_fold(self, kind: str, y, weight) -> "HyperParams":
        """These parameters as a fit on (y, weight) uses them: for ``cb_focal_xgb`` alpha is
        the class-balanced one of beta and the fold's class counts, the weighted counts
        (the 1/rate weight of down-sampled negatives restores their count before sampling,
        the number of distinct examples the class has in the training window)."""
        if kind != CLASS_BALANCED:
            return self
        from objectives.class_balanced import class_balanced_alpha

        return replace(self, alpha=class_balanced_alpha(y, self.beta, weight))


def focal_hessian_scale(params: HyperParams, y, weight) -> float:
    """``objectives.sklearn.hessian_scale`` of the fit's focal loss; of a gamma schedule,
    the smaller of its two ends (as the classifier's min_child_weight="auto")."""
    from objectives.sklearn import hessian_scale, make_loss

    gammas = [params.gamma] + ([] if params.gamma_end is None else [params.gamma_end])
    return min(hessian_scale(make_loss(2, g, params.alpha, "floor", 1e-16), np.asarray(y), weight) for g in gammas)


class Candidate:
    """One trained candidate: ``fit``, ``predict_proba`` (uncalibrated), ``margin``,
    ``contributions``, ``save``/``load``."""

    def __init__(self, kind: str, params: HyperParams, early_stopping_rounds: int = 30,
                 n_jobs: int | None = None, seed: int = 0, device: str = "cpu"):
        if kind not in KINDS:
            raise ValueError(f"unknown candidate {kind!r}; choose from {KINDS}")
        if kind == CLASS_BALANCED and params.beta is None:
            raise ValueError(f"{kind} needs beta")
        if kind == GAMMA_SCHEDULE and params.gamma_end is None:
            raise ValueError(f"{kind} needs gamma_end")
        self.kind = kind
        self.params = params
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs
        self.seed = seed
        self.device = device

    # -- fitting -------------------------------------------------------------------------
    def _estimator(self, y, weight, monitor=None):
        p = self.params
        sampling = {"subsample": p.subsample, "colsample_bytree": p.colsample_bytree, "reg_lambda": p.reg_lambda}
        if self.kind in FOCAL_KINDS:
            from objectives import FocalLGBMClassifier, FocalXGBClassifier

            lgbm = self.kind == "focal_lgbm"
            cls = FocalLGBMClassifier if lgbm else FocalXGBClassifier
            est = cls(gamma=p.gamma, alpha=p.alpha, n_estimators=p.n_estimators, learning_rate=p.learning_rate,
                      max_depth=p.max_depth, early_stopping_rounds=self.early_stopping_rounds,
                      eval_metric="average_precision", n_jobs=self.n_jobs, random_state=self.seed,
                      device="cpu" if lgbm else self.device, gamma_end=p.gamma_end, **sampling)
            if p.min_child_weight_scale != 1.0:
                # resolve "auto" now, then scale it
                base = est._default_min_child_weight() * focal_hessian_scale(p, y, weight)
                est.set_params(min_child_weight=base * p.min_child_weight_scale)
            return est
        extra = {}
        if self.kind == "weighted_logistic_xgb":
            w = np.ones(len(y)) if weight is None else np.asarray(weight)
            extra["scale_pos_weight"] = float(w[np.asarray(y) == 0].sum() / max(w[np.asarray(y) == 1].sum(), 1e-9))
        return xgb.XGBClassifier(objective="binary:logistic", n_estimators=p.n_estimators,
                                 learning_rate=p.learning_rate, max_depth=p.max_depth,
                                 min_child_weight=p.min_child_weight_scale, tree_method="hist",
                                 eval_metric="aucpr", early_stopping_rounds=self.early_stopping_rounds,
                                 n_jobs=self.n_jobs, random_state=self.seed, device=self.device,
                                 callbacks=[monitor.xgboost()] if monitor is not None else None, **sampling, **extra)

    def fit(self, X: pd.DataFrame, y, weight=None, X_val=None, y_val=None, monitor=None) -> "Candidate":
        """``monitor`` (``fraud.search_monitor.FitMonitor``): watches the boosting rounds of a
        search trial, to prune it or stop it at its time cap."""
        self.params = self.params.for_fold(self.kind, y, weight)
        est = self._estimator(y, weight, monitor)
        eval_set = [(X_val, y_val)] if X_val is not None else None
        if self.kind in FOCAL_KINDS:
            callbacks = None if monitor is None else [
                monitor.lightgbm() if self.kind == "focal_lgbm" else monitor.xgboost()]
            est.fit(X, y, sample_weight=weight, eval_set=eval_set, callbacks=callbacks)
            history = next(iter(est.evals_result_.values()), {})
        else:
            est.fit(X, y, sample_weight=weight, eval_set=eval_set, verbose=False)
            # no eval set (fraud.refit fits a fixed number of rounds): no history
            history = est.evals_result().get("validation_0", {}) if eval_set else {}
        self.estimator_ = est
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.items()}
        self.n_rounds_ = self.best_rounds()
        self.feature_names_ = list(X.columns)
        return self

    def best_rounds(self) -> int:
        est = self.estimator_
        if self.kind in FOCAL_KINDS:
            return int(est.best_iteration_) + 1
        best = getattr(est, "best_iteration", None)
        return int(best) + 1 if best is not None else int(est.get_booster().num_boosted_rounds())

    # -- predicting ----------------------------------------------------------------------
    def margin(self, X) -> np.ndarray:
        if self.kind in FOCAL_KINDS:
            return self.estimator_.decision_function(X)
        booster = self.estimator_.get_booster()
        return booster.inplace_predict(X, predict_type="margin", iteration_range=(0, self.n_rounds_))

    def predict_proba(self, X) -> np.ndarray:
        """Uncalibrated probability of fraud."""
        z = np.asarray(self.margin(X), dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-z))

    def contributions(self, X: np.ndarray, exact: bool = True) -> np.ndarray:
        """Per-feature contributions to the margin, (n, n_features) (bias dropped), for a
        matrix whose columns are in ``feature_names_`` order.

        ``exact``: TreeSHAP; otherwise XGBoost's path-based (Saabas) attribution, about 20x
        cheaper and good enough to name the top reasons on the request path (LightGBM
        only offers TreeSHAP). The DMatrix carries no feature names: the column order is
        the caller's contract, and XGBoost's name checks cost a quarter of a millisecond
        per call, more than the attribution of one row.
        """
        if self.kind == "focal_lgbm":
            booster = self.estimator_.booster_
            out = booster.predict(X, pred_contrib=True, num_iteration=self.estimator_.best_iteration_ + 1,
                                  **getattr(self.estimator_, "lightgbm_predict_kwargs", {}))
        else:
            booster = self.estimator_.booster_ if self.kind in FOCAL_KINDS else self.estimator_.get_booster()
            out = booster.predict(xgb.DMatrix(np.asarray(X)), pred_contribs=True, approx_contribs=not exact,
                                  iteration_range=(0, self.n_rounds_), validate_features=False)
        return np.asarray(out)[:, :-1]

    def set_threads(self, n_threads: int) -> "Candidate":
        """Threads per prediction call of a loaded model (0: the library's default). Serving
        uses 1: a request scores one or a few rows, where waking a thread pool costs more
        than it saves, and concurrent requests already use the cores."""
        if self.kind in FOCAL_KINDS:
            self.estimator_.set_threads(n_threads)
        else:
            self.estimator_.set_params(n_jobs=n_threads or None)
            self.estimator_.get_booster().set_param({"nthread": n_threads})
        return self

    def feature_importance(self) -> dict[str, float]:
        """Total gain per feature, normalised to sum 1."""
        if self.kind == "focal_lgbm":
            gains = self.estimator_.booster_.feature_importance(importance_type="gain")
            raw = dict(zip(self.feature_names_, gains))
        else:
            booster = self.estimator_.booster_ if self.kind in FOCAL_KINDS else self.estimator_.get_booster()
            raw = booster.get_score(importance_type="total_gain")
        total = sum(raw.values()) or 1.0
        return {name: float(raw.get(name, 0.0)) / total for name in self.feature_names_}

    @property
    def focal(self) -> tuple[float, float | None] | None:
        """(gamma, alpha) of the loss the model's last trees were fitted with, for focal
        candidates: ``cb_focal_xgb``'s alpha is the one derived from beta and its training
        fold's counts; ``focal_xgb_gamma_schedule``'s gamma is the schedule's at the last
        round kept (early stopping may end it before ``gamma_end``)."""
        if self.kind not in FOCAL_KINDS:
            return None
        p = self.params
        if self.kind == GAMMA_SCHEDULE:
            from objectives.schedule import GammaSchedule

            return GammaSchedule(p.gamma, p.gamma_end, p.n_estimators).gamma_at(self.n_rounds_ - 1), p.alpha
        return p.gamma, p.alpha

    # -- persistence ---------------------------------------------------------------------
    def model_filename(self) -> str:
        return "model.txt" if self.kind == "focal_lgbm" else "model.json"

    def save(self, directory: Path) -> list[Path]:
        """Write the model files; returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.model_filename()
        meta = {"kind": self.kind, "params": self.params.to_dict(), "n_rounds": self.n_rounds_,
                "feature_names": self.feature_names_}
        if self.kind in FOCAL_KINDS:
            self.estimator_.save_model(path)
            files = [path, sidecar_path(path)]
        else:
            self.estimator_.get_booster()[: self.n_rounds_].save_model(str(path))
            files = [path]
        (directory / "candidate.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return files + [directory / "candidate.json"]

    @classmethod
    def load(cls, directory: Path) -> "Candidate":
        meta = json.loads((directory / "candidate.json").read_text())
        params = dict(meta["params"])
        known = {k: params.pop(k) for k in list(params) if k in HyperParams.__dataclass_fields__}
        cand = cls(meta["kind"], HyperParams(**known, extra=params))
        path = directory / cand.model_filename()
        if cand.kind in FOCAL_KINDS:
            cand.estimator_ = load_predictor(path)  # prediction only: no scikit-learn at serving time
        else:
            cand.estimator_ = _SavedBaseline(path)  # XGBClassifier would need scikit-learn
        cand.n_rounds_ = int(meta["n_rounds"])
        cand.feature_names_ = list(meta["feature_names"])
        cand.history_ = {}
        return cand


class _SavedBaseline:
    """A saved baseline XGBoost model, for prediction: its Booster behind the two calls a
    loaded candidate makes (``get_booster``, ``set_params``). ``xgb.XGBClassifier`` refuses
    to exist without scikit-learn, which the serving image does not install."""

    def __init__(self, path: Path):
        self._booster = xgb.Booster(model_file=str(path))

    def get_booster(self) -> xgb.Booster:
        return self._booster

    def set_params(self, **params) -> "_SavedBaseline":
        return self  # n_jobs: the thread count lives on the booster (see Candidate.set_threads)


def library_versions() -> dict:
    import lightgbm as lgb
    import pandas as pd
    import sklearn

    return {"xgboost": xgb.__version__, "lightgbm": lgb.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__}
