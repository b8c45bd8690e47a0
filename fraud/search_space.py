"""What the hyper-parameter search may try for each candidate kind.

Continuous ranges from ``[search]`` (each a ``[low, high]`` pair; one value fixes the
parameter): the learning rate, the minimum leaf hessian scale and the L2 penalty are
sampled on a log scale (their effect is multiplicative), the rest uniformly. The focal
kinds add gamma and alpha; the logistic baselines keep their own space (no focal
parameters: ``weighted_logistic_xgb`` weighs the classes by their counts instead).
"""

from __future__ import annotations

import optuna

from .config import SearchConfig
from .models import FOCAL_KINDS

# parameter (a [search] range of the same name) -> (integer?, log scale?)
COMMON = {"max_depth": (True, False), "learning_rate": (False, True), "min_child_weight_scale": (False, True),
          "subsample": (False, False), "colsample_bytree": (False, False), "reg_lambda": (False, True)}
FOCAL = {"gamma": (False, False), "alpha": (False, False)}
# the libraries' own defaults (and the focal loss paper's gamma 2, alpha 0.25), clipped into
# the configured ranges: the first trial of a candidate with no history
LIBRARY_DEFAULTS = {"max_depth": 6, "learning_rate": 0.1, "min_child_weight_scale": 1.0, "subsample": 1.0,
                    "colsample_bytree": 1.0, "reg_lambda": 1.0, "gamma": 2.0, "alpha": 0.25}


def space(kind: str) -> dict[str, tuple[bool, bool]]:
    return {**COMMON, **(FOCAL if kind in FOCAL_KINDS else {})}


def bounds(cfg: SearchConfig, name: str) -> tuple[float, float]:
    values = getattr(cfg, name)
    return min(values), max(values)


def clip(kind: str, params: dict, cfg: SearchConfig) -> dict:
    """``params`` (a previous night's best, or the defaults) inside this config's ranges,
    with the kind's parameters only; missing ones take the library default."""
    out = {}
    for name, (integer, _) in space(kind).items():
        low, high = bounds(cfg, name)
        value = min(max(params.get(name, LIBRARY_DEFAULTS[name]), low), high)
        out[name] = int(round(value)) if integer else float(value)
    return out


def default_params(kind: str, cfg: SearchConfig) -> dict:
    return clip(kind, LIBRARY_DEFAULTS, cfg)


def suggest(trial: optuna.Trial, kind: str, cfg: SearchConfig) -> dict:
    """One point of the kind's space, sampled by the study's sampler (or an enqueued one)."""
    params = {}
    for name, (integer, log) in space(kind).items():
        low, high = bounds(cfg, name)
        if low == high:
            params[name] = int(low) if integer else float(low)
        elif integer:
            params[name] = trial.suggest_int(name, int(low), int(high))
        else:
            params[name] = trial.suggest_float(name, low, high, log=log)
    return params
