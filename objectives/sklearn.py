"""scikit-learn classifiers trained with the focal loss: ``FocalXGBClassifier`` and
``FocalLGBMClassifier``.

They follow the estimator contract (constructor stores parameters, ``fit`` returns self,
fitted state in trailing-underscore attributes), so ``clone``, ``Pipeline`` and
grid search work. What they add over the libraries' own sklearn wrappers:

- the starting margin is the focal-loss minimiser (the wrappers start at 0 with a
  callable objective);
- ``min_child_weight="auto"`` scales the minimum leaf hessian to the focal hessian,
  which is far smaller than the logistic one once examples are easy;
- early stopping on the last ``eval_set`` with a margin metric (average precision or the
  focal loss);
- ``predict_proba`` returns sigmoid / softmax probabilities of the margin;
- ``save_model``/``load_model`` without pickle: the library's own format plus a JSON
  sidecar (``<path>.focal.json``) holding the loss, the starting margin and the classes;
- ``gamma_end``: gamma moves linearly from ``gamma`` (round 0) to ``gamma_end`` (round
  ``n_estimators - 1``) over the boosting rounds (``objectives.schedule``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .focal import FocalLoss, check_binary_labels
from .multiclass import MulticlassFocalLoss
from .persistence import SIDECAR_FORMAT, load_booster, probabilities, read_sidecar, sidecar_path



def make_loss(n_classes: int, gamma: float, alpha, hessian: str, min_hessian: float):
    """The focal loss for this many classes (``alpha``: scalar for binary, vector for k)."""
    if n_classes == 2:
        if alpha is not None and not np.isscalar(alpha):
            raise ValueError("alpha must be a number or None for a binary problem")
        return FocalLoss(gamma=gamma, alpha=alpha, hessian=hessian, min_hessian=min_hessian)
    if alpha is not None and np.isscalar(alpha):
        raise ValueError(f"alpha must be one weight per class ({n_classes}) or None for multiclass")
    return MulticlassFocalLoss(n_classes=n_classes, gamma=gamma,
                               alpha=None if alpha is None else tuple(alpha),
                               hessian=hessian, min_hessian=min_hessian)


def hessian_scale(loss, y: np.ndarray, weight) -> float:
    """Mean focal hessian at the starting margin over the mean logistic hessian at the prior.

    Multiplying a logistic-tuned min_child_weight by this keeps the same "effective rows"
    per leaf under the focal loss.
    """
    w = np.ones(y.shape[0]) if weight is None else np.asarray(weight, dtype=np.float64)
    init = loss.init_margin(y, w)
    if loss.n_classes == 2:
        margins = np.full(y.shape[0], float(init))
        prior = float(np.sum(w * y) / np.sum(w))
        logistic = prior * (1.0 - prior)
    else:
        margins = np.tile(np.asarray(init), (y.shape[0], 1))
        prior = np.bincount(y, weights=w, minlength=loss.n_classes) / np.sum(w)
        logistic = float(np.mean(prior * (1.0 - prior)))
    _, hess = loss.grad_hess(margins, y, w)
    focal = float(np.sum(hess) / np.sum(w)) / (1 if hess.ndim == 1 else hess.shape[1])
    return max(focal / logistic, 1e-6)


class _FocalGBDTClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit/predict/persistence logic; subclasses talk to one library."""

    _library = ""

    def __init__(self, gamma=2.0, alpha=0.25, hessian="floor", min_hessian=1e-16,
                 n_estimators=200, learning_rate=0.1, max_depth=6, min_child_weight="auto",
                 subsample=1.0, colsample_bytree=1.0, reg_lambda=1.0, max_bin=256,
                 early_stopping_rounds=None, eval_metric="average_precision", n_jobs=None,
                 random_state=0, device="cpu", extra_params=None, gamma_end=None):
        self.gamma = gamma
        self.alpha = alpha
        self.hessian = hessian
        self.min_hessian = min_hessian
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.eval_metric = eval_metric
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.device = device
        self.extra_params = extra_params
        self.gamma_end = gamma_end

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None, eval_set=None, sample_weight_eval_set=None,
            callbacks=None):
        """Fit on (X, y); early-stop on the last of ``eval_set`` if ``early_stopping_rounds``."""
        y = np.asarray(y).reshape(-1)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError("y must contain at least two classes")
        self.n_classes_ = int(self.classes_.size)
        self.loss_ = make_loss(self.n_classes_, self.gamma, self.alpha, self.hessian, self.min_hessian)
        if self.n_classes_ == 2:
            check_binary_labels(encoded)
        weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        init = self.loss_.init_margin(encoded, weight)
        self.init_margin_ = float(init) if self.n_classes_ == 2 else np.asarray(init)
        if self.min_child_weight == "auto":
            # a gamma schedule: the smaller scale of its two ends, so no round's splits are blocked
            losses = [self.loss_] + ([] if self.gamma_end is None else [self._loss_at(self.gamma_end)])
            self.min_child_weight_ = self._default_min_child_weight() * min(
                hessian_scale(loss, encoded, weight) for loss in losses)
        else:
            self.min_child_weight_ = float(self.min_child_weight)
        self._record_features(X)
        evals = []
        for i, (Xe, ye) in enumerate(eval_set or []):
            we = None if not sample_weight_eval_set else sample_weight_eval_set[i]
            evals.append((Xe, self._encode(ye), we))
        self._fit_library(X, encoded, weight, evals, callbacks)
        return self

    def _loss_at(self, gamma: float):
        return make_loss(self.n_classes_, gamma, self.alpha, self.hessian, self.min_hessian)

    def _objective(self, adapter_cls):
        """The library objective: the fixed focal loss, or with ``gamma_end`` the loss of
        each round's gamma. ``loss_`` (the starting margin, the sidecar, the focal metric)
        stays the round-0 loss."""
        if self.gamma_end is None:
            return adapter_cls(self.loss_)
        from .schedule import GammaSchedule, ScheduledObjective

        return ScheduledObjective(adapter_cls(self.loss_), GammaSchedule(self.gamma, self.gamma_end, self.n_estimators),
                                  self._loss_at)

    def _encode(self, y) -> np.ndarray:
        y = np.asarray(y).reshape(-1)
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, self.classes_.size - 1)
        if np.any(self.classes_[idx] != y):
            raise ValueError("eval labels contain classes not seen in training")
        return idx

    def _record_features(self, X) -> None:
        self.n_features_in_ = int(X.shape[1])
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)

    def _early_stopping(self, evals) -> int | None:
        return self.early_stopping_rounds if evals and self.early_stopping_rounds else None

    # -- predicting --------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Raw margin (starting margin included): (n,) for binary, (n, k) for multiclass."""
        check_is_fitted(self, "booster_")
        return self._raw_margin(X)

    def predict_proba(self, X) -> np.ndarray:
        return probabilities(self.decision_function(X), self.n_classes_)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # -- persistence -------------------------------------------------------------------
    def save_model(self, path) -> Path:
        """Write the booster in the library's own format and the JSON sidecar beside it."""
        check_is_fitted(self, "booster_")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._save_booster(path)
        init = self.init_margin_
        sidecar = {
            "format": SIDECAR_FORMAT,
            "estimator": type(self).__name__,
            "library": self._library,
            "library_version": self._library_version(),
            "model_file": path.name,
            "loss": self.loss_.to_dict(),
            "init_margin": float(init) if np.ndim(init) == 0 else [float(v) for v in init],
            "classes": self.classes_.tolist(),
            "n_features_in": self.n_features_in_,
            "feature_names_in": (self.feature_names_in_.tolist()
                                 if hasattr(self, "feature_names_in_") else None),
            "min_child_weight": self.min_child_weight_,
            "params": _jsonable(self.get_params()),
        }
        sidecar_path(path).write_text(json.dumps(sidecar, indent=2, sort_keys=True))
        return path

    @classmethod
    def load_model(cls, path):
        """Rebuild a fitted classifier from ``save_model``'s two files (no pickle)."""
        path = Path(path)
        meta = read_sidecar(path, cls._library)
        est = cls(**meta["params"])
        est.classes_ = np.asarray(meta["classes"])
        est.n_classes_ = int(est.classes_.size)
        est.loss_ = make_loss(est.n_classes_, est.gamma, est.alpha, est.hessian, est.min_hessian)
        init = meta["init_margin"]
        est.init_margin_ = float(init) if np.ndim(init) == 0 else np.asarray(init)
        est.n_features_in_ = meta["n_features_in"]
        if meta.get("feature_names_in"):
            est.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
        est.min_child_weight_ = meta["min_child_weight"]
        est._load_booster(path)
        return est


def _jsonable(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


class FocalXGBClassifier(_FocalGBDTClassifier):
    """XGBoost trained with the focal loss (``hist`` trees; ``device="cuda"`` for GPU)."""

    _library = "xgboost"

    @staticmethod
    def _default_min_child_weight() -> float:
        return 1.0  # XGBoost's own default, tuned for the logistic hessian

    @staticmethod
    def _library_version() -> str:
        import xgboost

        return xgboost.__version__

    def xgb_params(self) -> dict:
        """The XGBoost parameters (before the objective and starting margin are added)."""
        params = {
            "eta": self.learning_rate, "max_depth": self.max_depth,
            "min_child_weight": getattr(self, "min_child_weight_", 1.0),
            "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda, "max_bin": self.max_bin, "tree_method": "hist",
            "device": self.device, "seed": self.random_state,
        }
        if self.n_jobs is not None:
            params["nthread"] = self.n_jobs
        params.update(self.extra_params or {})
        return params

    def _fit_library(self, X, y, weight, evals, callbacks):
        xp = self._margin_loop_namespace(evals, callbacks)
        if xp is not None:
            return self._fit_margin_loop(X, y, weight, evals, xp)
        import xgboost as xgb

        from .xgboost_adapter import XGBoostMetric, XGBoostObjective, booster_params

        params = booster_params(self.loss_, self.init_margin_, self.xgb_params())
        dtrain = xgb.DMatrix(X, label=y, weight=weight)
        watch = [(xgb.DMatrix(Xe, label=ye, weight=we), f"eval_{i}")
                 for i, (Xe, ye, we) in enumerate(evals)]
        metric = XGBoostMetric(self.loss_, self.eval_metric)
        cbs = list(callbacks or [])
        rounds = self._early_stopping(evals)
        if rounds:
            cbs.append(xgb.callback.EarlyStopping(rounds=rounds, metric_name=metric.name,
                                                  maximize=metric.maximize, save_best=True))
        self.evals_result_ = {}
        booster = xgb.train(params, dtrain, num_boost_round=self.n_estimators, evals=watch,
                            obj=self._objective(XGBoostObjective), custom_metric=metric if watch else None,
                            evals_result=self.evals_result_, callbacks=cbs, verbose_eval=False)
        self.booster_ = booster
        self.best_iteration_ = booster.num_boosted_rounds() - 1

    def _margin_loop_namespace(self, evals, callbacks):
        """CuPy when this fit should keep the margin on the GPU (``train_on_device``): a
        binary fit on ``device="cuda"`` with CuPy installed, without XGBoost callbacks or eval
        weights (the loop has neither) or gamma schedule. On an H100 that loop is 7x faster than
        letting XGBoost copy each round's predictions to the host (README, Performance). None otherwise."""
        if not str(self.device).startswith("cuda") or self.n_classes_ != 2 or callbacks or self.gamma_end is not None:
            return None
        if any(we is not None for *_, we in evals):
            return None
        try:
            import cupy
        except ImportError:
            return None
        return cupy

    def _fit_margin_loop(self, X, y, weight, evals, xp):
        from .xgboost_adapter import XGBoostMetric, train_on_device

        def on_device(a, dtype=np.float32):
            return xp.asarray(np.asarray(a, dtype=dtype))

        metric = XGBoostMetric(self.loss_, self.eval_metric)
        booster, history = train_on_device(
            self.xgb_params(), on_device(X), on_device(y), self.loss_, self.n_estimators,
            weight=None if weight is None else on_device(weight), init_margin=self.init_margin_,
            evals=[(on_device(Xe), on_device(ye), f"eval_{i}") for i, (Xe, ye, _) in enumerate(evals)],
            metric=metric.name, early_stopping_rounds=self._early_stopping(evals))
        best = booster.attr("best_iteration")
        if best is not None:  # as XGBoost's EarlyStopping(save_best=True): keep the best rounds only
            booster = booster[: int(best) + 1]
        if hasattr(X, "columns"):
            booster.feature_names = [str(c) for c in X.columns]
        self.evals_result_ = {name: {metric.name: values} for name, values in history.items()}
        self.booster_ = booster
        self.best_iteration_ = booster.num_boosted_rounds() - 1

    def _raw_margin(self, X) -> np.ndarray:
        return self.booster_.inplace_predict(X, predict_type="margin")

    def _save_booster(self, path: Path) -> None:
        if path.suffix not in (".json", ".ubj"):
            raise ValueError("XGBoost models are saved as .json or .ubj")
        self.booster_.save_model(str(path))

    def _load_booster(self, path: Path) -> None:
        self.booster_ = load_booster("xgboost", path)
        self.best_iteration_ = self.booster_.num_boosted_rounds() - 1


class FocalLGBMClassifier(_FocalGBDTClassifier):
    """LightGBM trained with the focal loss; ``max_depth`` also sets ``num_leaves``."""

    _library = "lightgbm"

    @staticmethod
    def _default_min_child_weight() -> float:
        return 1e-3  # LightGBM's default min_sum_hessian_in_leaf

    @staticmethod
    def _library_version() -> str:
        import lightgbm

        return lightgbm.__version__

    def lgb_params(self) -> dict:
        """The LightGBM parameters (before the objective is added)."""
        depth = self.max_depth if self.max_depth and self.max_depth > 0 else -1
        params = {
            "learning_rate": self.learning_rate, "max_depth": depth,
            "num_leaves": min(2 ** depth - 1, 131071) if depth > 0 else 31,
            "min_sum_hessian_in_leaf": getattr(self, "min_child_weight_", 1e-3),
            "feature_fraction": self.colsample_bytree, "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1 else 0, "lambda_l2": self.reg_lambda,
            "max_bin": self.max_bin, "seed": self.random_state, "verbose": -1,
            "device_type": "cuda" if str(self.device).startswith("cuda") else "cpu",
            "metric": "None",  # only the focal-aware feval; built-ins assume a logistic link
        }
        if self.n_jobs is not None:
            params["num_threads"] = self.n_jobs
        params.update(self.extra_params or {})
        return params

    def _fit_library(self, X, y, weight, evals, callbacks):
        import lightgbm as lgb

        from .lightgbm_adapter import LightGBMMetric, LightGBMObjective, init_score

        params = {**self.lgb_params(), "objective": self._objective(LightGBMObjective)}
        if self.n_classes_ > 2:
            params["num_class"] = self.n_classes_
        dtrain = lgb.Dataset(X, label=y, weight=weight,
                             init_score=init_score(self.init_margin_, len(y)), free_raw_data=True)
        valid = [lgb.Dataset(Xe, label=ye, weight=we, reference=dtrain,
                             init_score=init_score(self.init_margin_, len(ye)))
                 for Xe, ye, we in evals]
        metric = LightGBMMetric(self.loss_, self.eval_metric)
        self.evals_result_ = {}
        cbs = list(callbacks or []) + [lgb.record_evaluation(self.evals_result_)]
        rounds = self._early_stopping(evals)
        if rounds:
            cbs.append(lgb.early_stopping(rounds, first_metric_only=True, verbose=False))
        booster = lgb.train(params, dtrain, num_boost_round=self.n_estimators, valid_sets=valid,
                            valid_names=[f"eval_{i}" for i in range(len(valid))],
                            feval=metric if valid else None, callbacks=cbs)
        self.booster_ = booster
        best = booster.best_iteration if rounds and booster.best_iteration > 0 else booster.current_iteration()
        self.best_iteration_ = int(best) - 1

    def _raw_margin(self, X) -> np.ndarray:
        from .lightgbm_adapter import raw_margin

        return raw_margin(self.booster_, X, self.init_margin_, num_iteration=self.best_iteration_ + 1)

    def _save_booster(self, path: Path) -> None:
        self.booster_.save_model(str(path), num_iteration=self.best_iteration_ + 1)

    def _load_booster(self, path: Path) -> None:
        self.booster_ = load_booster("lightgbm", path)
        self.best_iteration_ = self.booster_.current_iteration() - 1

