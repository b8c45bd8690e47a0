"""How sure a comparison of models is: bootstrap over days.

Fraud comes in bursts (a compromised terminal, a card-testing run), so transactions of the
same day are not independent: resampling rows would make intervals far too narrow. Days
are resampled instead (with replacement, as many as the window has), every candidate on the
same resampled days, so the difference between two candidates is paired and its interval
says whether one beat the other on this window or the gap is within day-to-day noise.
"""

from __future__ import annotations

import numpy as np

from objectives import average_precision

N_RESAMPLES = 200
LEVEL = 0.95


def _ap(scores, labels, weight=None) -> float:
    labels = np.asarray(labels)
    return average_precision(scores, labels, weight) if 0 < labels.sum() < labels.size else float("nan")


def day_bootstrap(scores_by_model: dict[str, np.ndarray], labels, day_index, baselines: tuple[str, ...] = (),
                  challengers: tuple[str, ...] = (), n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict:
    """Average precision of each model with a day-bootstrap interval, and the paired
    difference of the best challenger minus the best baseline (by point AP), with its
    interval and a verdict in words. ``challengers``/``baselines``: the model names of each
    family present in ``scores_by_model``."""
    labels = np.asarray(labels)
    _, day_of_row = np.unique(np.asarray(day_index), return_inverse=True)
    n_days = int(day_of_row.max()) + 1 if day_of_row.size else 0
    rng = np.random.default_rng(seed)
    names = list(scores_by_model)
    point = {m: _ap(scores_by_model[m], labels) for m in names}
    draws = {m: [] for m in names}
    for _ in range(n_resamples):
        # a day drawn k times counts k times: the weight of each of its rows
        weight = np.bincount(rng.integers(0, n_days, n_days), minlength=n_days)[day_of_row].astype(np.float64)
        keep = weight > 0
        for m in names:
            draws[m].append(_ap(np.asarray(scores_by_model[m])[keep], labels[keep], weight[keep]))
    lo_q, hi_q = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
    table = {m: {"average_precision": point[m], "low": float(np.nanquantile(draws[m], lo_q)),
                 "high": float(np.nanquantile(draws[m], hi_q))} for m in names}
    out = {"days": n_days, "resamples": n_resamples, "level": LEVEL, "models": table}
    ours = [m for m in challengers if m in point]
    theirs = [m for m in baselines if m in point]
    if ours and theirs:
        best, base = max(ours, key=point.get), max(theirs, key=point.get)
        diff = np.asarray(draws[best]) - np.asarray(draws[base])
        low, high = float(np.nanquantile(diff, lo_q)), float(np.nanquantile(diff, hi_q))
        gap = point[best] - point[base]
        if low > 0:
            verdict = (f"{best} beat the tuned baseline {base} this run: average precision {gap:+.4f} "
                       f"({LEVEL:.0%} interval over days {low:+.4f} to {high:+.4f})")
        elif high < 0:
            verdict = (f"{best} did worse than the tuned baseline {base} this run: average precision {gap:+.4f} "
                       f"({LEVEL:.0%} interval over days {low:+.4f} to {high:+.4f})")
        else:
            verdict = (f"{best} did not clearly beat the tuned baseline {base} this run: average precision "
                       f"{gap:+.4f}, within day-to-day noise ({LEVEL:.0%} interval over days {low:+.4f} to "
                       f"{high:+.4f})")
        out["difference"] = {"challenger": best, "baseline": base, "average_precision": gap, "low": low,
                             "high": high, "verdict": verdict}
    return out
