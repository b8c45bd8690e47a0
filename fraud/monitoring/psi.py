"""Binning and the population stability index (PSI), the drift measure of ``fraud monitor``.

Bins are right-closed intervals between sorted interior ``edges`` (``(-inf, e0]``,
``(e0, e1]``, ..., ``(e_last, inf)``) plus, last, a bin for missing values (NaN), so a
feature that goes missing in production shows up as drift too.

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

over the bins' shares, reference ``e`` and actual ``a``, an empty bin counting as
``epsilon`` (the logarithm of 0 is undefined). Rule of thumb: below 0.1 stable, 0.1-0.2 a
shift worth a look, above 0.2 a shift that matters.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-4


def bin_index(values, edges) -> np.ndarray:
    """Each value's bin: 0..len(edges) for values, len(edges) + 1 for missing ones."""
    x = np.asarray(values, dtype=np.float64)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="left")
    return np.where(np.isnan(x), len(edges) + 1, index)


def bin_shares(values, edges) -> np.ndarray:
    """The share of ``values`` in each bin (the missing bin last); zeros for no values."""
    counts = np.bincount(bin_index(values, edges), minlength=len(edges) + 2).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def quantile_edges(values, quantiles=np.linspace(0.1, 0.9, 9)) -> list[float]:
    """Interior edges at the deciles of the non-missing values, repeats dropped: a constant
    feature gets one edge (its value), an all-missing one none."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if not x.size:
        return []
    return [float(v) for v in np.unique(np.quantile(x, quantiles))]


def psi(expected, actual, epsilon: float = EPSILON) -> float:
    """PSI of the ``actual`` shares against the ``expected`` ones (same bins)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), epsilon, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), epsilon, None)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs the same bins: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))
