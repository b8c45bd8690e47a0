"""Model files without pickle: the library's own format plus a JSON sidecar.

``save_model`` of the classifiers writes ``<path>`` (XGBoost JSON/UBJ or LightGBM text)
and ``<path>.focal.json`` (the loss, the starting margin, the classes). ``load_predictor``
reads them back into a ``FocalPredictor``: prediction only, and importing neither
scikit-learn nor numba, so a serving process starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIDECAR_SUFFIX = ".focal.json"
SIDECAR_FORMAT = "focal-gbdt/1"


def sidecar_path(model_path) -> Path:
    return Path(str(model_path) + SIDECAR_SUFFIX)


def read_sidecar(model_path, library: str | None = None) -> dict:
    path = sidecar_path(model_path)
    meta = json.loads(path.read_text())
    if meta.get("format") != SIDECAR_FORMAT or (library and meta.get("library") != library):
        raise ValueError(f"{path} is not a focal-gbdt sidecar for {library or 'a focal model'}")
    return meta


def load_booster(library: str, path):
    if library == "xgboost":
        import xgboost as xgb

        return xgb.Booster(model_file=str(path))
    import lightgbm as lgb

    return lgb.Booster(model_file=str(path))


def sigmoid(z) -> np.ndarray:
    """Numerically safe logistic function."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def softmax(z) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def probabilities(margin, n_classes: int) -> np.ndarray:
    """Class probabilities from raw margins: (n, 2) via the sigmoid, (n, k) via softmax."""
    if n_classes == 2:
        p = sigmoid(margin)
        return np.column_stack([1.0 - p, p])
    return softmax(margin)


class FocalPredictor:
    """A saved focal model, for prediction: margins (starting margin included) and
    sigmoid/softmax probabilities; ``booster_`` for contributions."""

    def __init__(self, model_path):
        meta = read_sidecar(model_path)
        self.library = meta["library"]
        self.booster_ = load_booster(self.library, model_path)
        init = meta["init_margin"]
        self.init_margin_ = float(init) if np.ndim(init) == 0 else np.asarray(init)
        self.classes_ = np.asarray(meta["classes"])
        self.n_classes_ = int(self.classes_.size)
        self.loss_params = meta["loss"]
        self.n_features_in_ = meta["n_features_in"]
        if self.library == "xgboost":
            self.best_iteration_ = self.booster_.num_boosted_rounds() - 1
        else:
            self.best_iteration_ = self.booster_.current_iteration() - 1
        self.lightgbm_predict_kwargs = {}

    def set_threads(self, n_threads: int) -> "FocalPredictor":
        """Threads per prediction call (0: the library's default, all cores)."""
        if self.library == "xgboost":
            self.booster_.set_param({"nthread": n_threads})
        else:
            self.lightgbm_predict_kwargs = {"num_threads": n_threads} if n_threads else {}
        return self

    def decision_function(self, X) -> np.ndarray:
        if self.library == "xgboost":
            return self.booster_.inplace_predict(X, predict_type="margin")
        return self.booster_.predict(X, raw_score=True, num_iteration=self.best_iteration_ + 1,
                                     **self.lightgbm_predict_kwargs) + self.init_margin_

    def predict_proba(self, X) -> np.ndarray:
        return probabilities(self.decision_function(X), self.n_classes_)


def load_predictor(model_path) -> FocalPredictor:
    return FocalPredictor(model_path)
