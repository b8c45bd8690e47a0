"""What the hyper-parameter search may try for each candidate kind.

Continuous ranges from ``[search]`` (each a ``[low, high]`` pair; one value fixes the
parameter): the learning rate, the minimum leaf hessian scale and the L2 penalty are
sampled on a log scale (their effect is multiplicative), the rest uniformly. The focal
kinds add gamma and alpha; ``cb_focal_xgb`` beta instead of alpha (sampled on a log scale
of 1 - beta: 0.9, 0.99, 0.999 are equally far apart, as their effective numbers 10, 100,
1000); ``focal_xgb_gamma_schedule`` gamma_end (gamma is the schedule's start). The
logistic baselines keep their own space (no focal parameters: ``weighted_logistic_xgb``
weighs the classes by their counts instead).
"""

from __future__ import annotations

import optuna

from .config import SearchConfig
from .models import CLASS_BALANCED, FOCAL_KINDS, GAMMA_SCHEDULE

# parameter (a [search] range of the same name) -> (integer?, log scale?)
COMMON = {"max_depth": (True, False), "learning_rate": (False, True), "min_child_weight_scale": (False, True),
          "subsample": (False, False), "colsample_bytree": (False, False), "reg_lambda": (False, True)}
FOCAL = {"gamma": (False, False), "alpha": (False, False)}
VARIANTS = {CLASS_BALANCED: {"gamma": (False, False), "beta": (False, True)},
            GAMMA_SCHEDULE: {**FOCAL, "gamma_end": (False, False)}}
# sampled as this transform of the parameter (Optuna's name for it), back by the inverse
TRANSFORMED = {"beta": ("one_minus_beta", lambda b: 1.0 - b, lambda x: 1.0 - x)}
# the libraries' own defaults (and the focal loss paper's gamma 2, alpha 0.25), clipped into
# the configured ranges: the first trial of a candidate with no history
LIBRARY_DEFAULTS = {"max_depth": 6, "learning_rate": 0.1, "min_child_weight_scale": 1.0, "subsample": 1.0,
                    "colsample_bytree": 1.0, "reg_lambda": 1.0, "gamma": 2.0, "alpha": 0.25,
                    # the paper's usual beta; a schedule from the logistic loss to the paper's gamma
                    "beta": 0.999, "gamma_end": 2.0}
KIND_DEFAULTS = {GAMMA_SCHEDULE: {"gamma": 0.0}}


def space(kind: str) -> dict[str, tuple[bool, bool]]:
    return {**COMMON, **VARIANTS.get(kind, FOCAL if kind in FOCAL_KINDS else {})}


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
        value = int(round(value)) if integer else float(value)
        if name in TRANSFORMED:  # enqueued under the name the sampler uses
            name, value = TRANSFORMED[name][0], TRANSFORMED[name][1](value)
        out[name] = value
    return out


def default_params(kind: str, cfg: SearchConfig) -> dict:
    return clip(kind, {**LIBRARY_DEFAULTS, **KIND_DEFAULTS.get(kind, {})}, cfg)


def suggest(trial: optuna.Trial, kind: str, cfg: SearchConfig) -> dict:
    """One point of the kind's space, sampled by the study's sampler (or an enqueued one)."""
    params = {}
    for name, (integer, log) in space(kind).items():
        low, high = bounds(cfg, name)
        if low == high:
            params[name] = int(low) if integer else float(low)
        elif integer:
            params[name] = trial.suggest_int(name, int(low), int(high))
        elif name in TRANSFORMED:
            sampled, forward, back = TRANSFORMED[name]
            a, b = sorted((forward(low), forward(high)))
            params[name] = back(trial.suggest_float(sampled, a, b, log=log))
        else:
            params[name] = trial.suggest_float(name, low, high, log=log)
    return params
