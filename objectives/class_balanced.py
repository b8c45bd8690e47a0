"""Class-balanced weights from the effective number of samples (Cui et al. 2019,
"Class-Balanced Loss Based on Effective Number of Samples").

A class with n samples is worth E_n = (1 - beta^n) / (1 - beta) "effective" samples: new
samples overlap the ones already seen, so the value of more data saturates at
1 / (1 - beta). Its weight is 1 / E_n, normalised so the weights sum to the number of
classes. beta = 0 weighs every class 1 (no re-weighting); beta -> 1 tends to inverse class
frequency. Counts may be fractional (sums of sample weights).
"""

from __future__ import annotations

import numpy as np


def class_balanced_weights(counts, beta: float) -> np.ndarray:
    """Per-class weights (1 - beta) / (1 - beta^n_c), normalised to sum to len(counts)."""
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or n.size < 2 or not np.all(n > 0):
        raise ValueError(f"counts must be two or more positive class counts, got {counts!r}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    # 1 - beta^n as -expm1(n log beta): exact for beta within 1e-5 of 1 and n in the millions
    effective = -np.expm1(n * np.log(beta)) / (1.0 - beta) if beta > 0 else np.ones_like(n)
    weights = 1.0 / effective
    return weights * (n.size / weights.sum())


def class_balanced_alpha(label, beta: float, weight=None) -> float:
    """The focal loss's alpha (positive-class weight) that makes alpha_t the class-balanced
    weight of the row's class, up to the constant 1/2: with the two weights w_0 + w_1 = 2,
    alpha = w_1 / 2 gives alpha_t = w_1 / 2 for positives and 1 - alpha = w_0 / 2 for
    negatives. n_c is the (weighted) count of class c in ``label``; with ``weight`` (e.g.
    1 / rate on down-sampled negatives) it estimates the count before down-sampling.
    """
    y = np.asarray(label).ravel()
    w = np.ones(y.shape[0]) if weight is None else np.asarray(weight, dtype=np.float64).ravel()
    counts = [float(w[y == 0].sum()), float(w[y == 1].sum())]
    w0, w1 = class_balanced_weights(counts, beta)
    return float(np.clip(w1 / (w0 + w1), 1e-6, 1 - 1e-6))
