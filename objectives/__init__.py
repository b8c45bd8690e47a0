"""Focal loss for gradient-boosted trees (XGBoost and LightGBM): pure math, no domain.

    FL = -alpha_t (1 - p_t)^gamma log p_t

Focal loss down-weights easy examples so boosting spends its capacity on the rare,
hard ones. Everything here takes raw margins and returns gradients and hessians with
respect to them; numpy arrays are processed on the CPU (fused numba kernels), CuPy arrays
on the GPU (fused CUDA kernels).
"""

from .class_balanced import class_balanced_alpha, class_balanced_weights
from .focal import FocalLoss
from .lightgbm_adapter import LightGBMMetric, LightGBMObjective
from .metrics import average_precision
from .multiclass import MulticlassFocalLoss
from .persistence import FocalPredictor, load_predictor, sigmoid
from .schedule import GammaSchedule, ScheduledObjective
from .xgboost_adapter import XGBoostMetric, XGBoostObjective, booster_params, train_on_device


def __getattr__(name):
    """The scikit-learn classifiers load scikit-learn (about 2 s): only when asked for."""
    if name in ("FocalXGBClassifier", "FocalLGBMClassifier"):
        from . import sklearn as _sklearn

        return getattr(_sklearn, name)
    raise AttributeError(f"module 'objectives' has no attribute {name!r}")

__all__ = [
    "FocalLoss",
    "MulticlassFocalLoss",
    "XGBoostObjective",
    "XGBoostMetric",
    "LightGBMObjective",
    "LightGBMMetric",
    "FocalXGBClassifier",
    "FocalLGBMClassifier",
    "booster_params",
    "train_on_device",
    "average_precision",
    "sigmoid",
    "FocalPredictor",
    "load_predictor",
    "class_balanced_weights",
    "class_balanced_alpha",
    "GammaSchedule",
    "ScheduledObjective",
]
