"""Drift per day from the decision log (``fraud.decisions.read_decisions``' frame): PSI of
every reference feature and of the calibrated score against the reference, the review
share, and how many rows each figure stands on. Days are UTC days of ``scored_at``.

The score's PSI counts only rows the reference's own model scored (``model_version``): the
day after a promotion, the old champion's scores say nothing about the new one's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .psi import EPSILON, bin_shares, psi

FEATURE_PREFIX = "feature."


def scored_day(decisions: pd.DataFrame) -> pd.Series:
    """The UTC day (``datetime.date``) each row was scored."""
    return pd.to_datetime(decisions["scored_at"], utc=True).dt.tz_convert("UTC").dt.date


def _feature_values(rows: pd.DataFrame, name: str) -> np.ndarray:
    column = FEATURE_PREFIX + name
    if column not in rows.columns:  # never logged: every value missing (the missing bin)
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=np.float64)


def day_drift(rows: pd.DataFrame, reference: dict, version: str | None = None, epsilon: float = EPSILON) -> dict:
    """One day's figures: rows, review share, score PSI (and its rows), PSI per feature."""
    features = {name: psi(ref["shares"], bin_shares(_feature_values(rows, name), ref["edges"]), epsilon)
                for name, ref in reference["features"].items()} if len(rows) else {}
    own = rows if version is None or "model_version" not in rows.columns else rows[rows["model_version"] == version]
    score = reference["score"]
    scores = pd.to_numeric(own["probability"], errors="coerce").to_numpy(dtype=np.float64)
    decisions = rows["decision"].astype(str) if len(rows) else pd.Series(dtype=str)
    return {"rows": int(len(rows)), "score_rows": int(len(own)),
            "review_share": float((decisions == "review").mean()) if len(rows) else None,
            "decline_share": float((decisions == "decline").mean()) if len(rows) else None,
            "score_psi": psi(score["shares"], bin_shares(scores, score["edges"]), epsilon) if len(own) else None,
            "score_histogram": _histogram(scores, score["histogram"]["edges"]),
            "feature_psi": features}


def _histogram(values: np.ndarray, edges) -> list[float]:
    from .reference import histogram

    values = values[~np.isnan(values)]
    return histogram(values, edges) if values.size else [0.0] * (len(edges) - 1)


def daily_drift(decisions: pd.DataFrame, reference: dict, version: str | None = None,
                epsilon: float = EPSILON) -> dict:
    """``{day: day_drift(...)}`` for every day in the log, oldest first."""
    if decisions.empty:
        return {}
    days = scored_day(decisions)
    return {day: day_drift(decisions[days == day], reference, version, epsilon) for day in sorted(days.unique())}
