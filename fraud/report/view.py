"""The parts of a run's summary that the report's sections share, looked up once: which
model is the challenger, which the champion, which is served, and their test-window
figures.
"""

from __future__ import annotations

from . import fmt
from .fmt import esc

KINDS = {"focal_xgb": "XGBoost, focal loss", "focal_lgbm": "LightGBM, focal loss", "logistic_xgb": "XGBoost, log loss",
         "weighted_logistic_xgb": "XGBoost, weighted log loss", "cb_focal_xgb": "XGBoost, class-balanced focal loss",
         "focal_xgb_gamma_schedule": "XGBoost, focal loss with a gamma schedule"}


def kind_name(kind) -> str:
    """'XGBoost, focal loss' for focal_xgb; an unknown kind as it is."""
    return esc(KINDS.get(kind, kind)) if kind else fmt.DASH


def version_tag(version) -> str:
    return f"<span class='v'>{esc(version)}</span>" if version else "(unknown version)"


class RunView:
    """``summary``: the nightly job's report.json (see ``fraud.report``)."""

    def __init__(self, summary: dict):
        s = self.s = summary
        self.gate = s.get("gate") or {}
        scores = self.gate.get("scores") or {}
        models = s.get("models") or {}
        self.challenger = scores.get("challenger") or {}
        self.champion = scores.get("champion")  # None on the first night, or when it could not be loaded
        self.challenger_version = self.challenger.get("version") or s.get("registry_version")
        self.challenger_facts = models.get("challenger") or {"version": self.challenger_version}
        self.champion_facts = models.get("champion") or ({"version": self.champion["version"]} if self.champion
                                                         else None)
        self.served = models.get("served") or {}
        self.ours = self.challenger.get("outcomes")
        self.theirs = self.champion.get("outcomes") if self.champion else None
        served = self.served.get("version")
        self.served_is_challenger = served is not None and served == self.challenger_version
        self.served_outcomes = self.ours if self.served_is_challenger else (
            self.theirs if self.champion and served == self.champion.get("version") else None)
        self.currency = (self.ours or {}).get("currency", "")
        test = s["split"]["test"]
        self.window = fmt.date_range(test["start"], test["end"])
        self.capacity = s["policy"]["constraints"]["review_capacity_per_day"]

    def money(self, value, cents: bool = False) -> str:
        return fmt.money(value, self.currency, cents)
