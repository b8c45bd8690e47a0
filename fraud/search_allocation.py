"""Which candidate gets the search's next trial.

One study per candidate rather than one study with the candidate as a categorical: the
kinds have different spaces (the baselines have no gamma or alpha) and costs (a LightGBM
round is not an XGBoost round), a dozen trials are too few for TPE to learn a conditional
space, and per-kind studies persist and warm-start on their own when the candidate list
changes. Between them the trials are shared as arms of a bandit: after one trial each,
the next goes to the candidate with the highest upper confidence bound (UCB1, Auer et al.
2002) on its best validation AP,

    best_k + spread * sqrt(2 ln N / n_k)

(N trials so far, n_k of candidate k, spread the standard deviation of the run's finished
scores, at least 0.005, the margin within which selection calls candidates tied). A
candidate far behind the leader stops getting trials; one close to it keeps getting some.
The rule depends on the scores alone, so the same scores give the same allocation.
"""

from __future__ import annotations

import math

import numpy as np

MIN_SPREAD = 0.005


def upper_bounds(best: dict[str, float], counts: dict[str, int], scores: list[float]) -> dict[str, float]:
    """``best``: each kind's best finished score this run (-inf if none); ``counts``: its
    trials (pruned ones too); ``scores``: every finished trial's score this run."""
    spread = max(float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0, MIN_SPREAD)
    total = sum(counts.values())
    return {kind: (math.inf if counts[kind] == 0 or not math.isfinite(best[kind])
                   else best[kind] + spread * math.sqrt(2 * math.log(max(total, 1)) / counts[kind]))
            for kind in best}


def next_kind(best: dict[str, float], counts: dict[str, int], scores: list[float],
              eligible: list[str]) -> str | None:
    """The eligible kind with the highest bound (ties: fewer trials, then listed order)."""
    if not eligible:
        return None
    bounds = upper_bounds(best, counts, scores)
    return max(eligible, key=lambda k: (bounds[k], -counts[k], -eligible.index(k)))
