"""Focal loss whose gamma moves over the boosting rounds.

Early rounds with a small gamma fit the bulk of the data like a logistic loss; later ones
with a larger gamma concentrate on the rows still misclassified (or the reverse, with a
decaying schedule). gamma moves linearly from ``start`` at round 0 to ``end`` at round
``rounds - 1`` and stays there. Early stopping may end training before ``end`` is reached.

``ScheduledObjective`` wraps the library adapter (``XGBoostObjective`` or
``LightGBMObjective``): both libraries call the objective exactly once per boosting round,
in order, so the n-th call is round n. The schedule only shapes training: the saved model
predicts from its trees and starting margin alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GammaSchedule:
    start: float
    end: float
    rounds: int

    def __post_init__(self):
        for name in ("start", "end"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"gamma {name} must be a finite number >= 0, got {value!r}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds!r}")

    def gamma_at(self, round_: int) -> float:
        """gamma of boosting round ``round_`` (0-based)."""
        if self.rounds == 1:
            return float(self.end)
        t = min(max(round_, 0), self.rounds - 1) / (self.rounds - 1)
        return float(self.start + (self.end - self.start) * t)


class ScheduledObjective:
    """The library objective ``adapter`` (its ``loss`` swapped each round) with the loss
    ``make_loss(gamma)`` at the schedule's gamma of the round being built."""

    def __init__(self, adapter, schedule: GammaSchedule, make_loss):
        self.adapter = adapter
        self.schedule = schedule
        self.make_loss = make_loss
        self.round = 0

    def __call__(self, preds, data):
        self.adapter.loss = self.make_loss(self.schedule.gamma_at(self.round))
        self.round += 1
        return self.adapter(preds, data)
