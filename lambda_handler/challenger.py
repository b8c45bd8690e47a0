"""The challenger's part of a scoring request (issue 16, section 4).

Every freshly scored row is scored by the champion and, when a challenger is loaded, by the
challenger on the same feature matrix (one predict call each per request). In shadow mode
the champion decides every row and the challenger's score only travels beside it (to the
decision log). In canary mode a fixed share of transaction ids is decided by the
challenger: a keyed hash of the id, so a retry, on any instance, gets the same model,
and nobody outside can pick which model scores a transaction. The row's ``shadow`` is
then the champion's score.

A challenger that fails to score is logged and dropped for the request: it never fails
scoring.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fraud.bundle import ModelBundle
from fraud.pseudonym import Pseudonymizer

log = logging.getLogger(__name__)
CANARY_DIGITS = 15  # hex digits of the keyed hash read as a number in [0, 1)


@dataclass(frozen=True)
class Challenger:
    """A loaded, verified challenger, checked against ``champion_version`` (same features)."""

    bundle: ModelBundle
    version: str
    mode: str  # "shadow" or "canary"
    canary_share: float
    champion_version: str


@dataclass(frozen=True)
class RowAnswer:
    """One row's model answer: the deciding model's score, and the other model's (``shadow``)."""

    probability: float
    margin: float
    decision: str  # under the deciding model's thresholds, before overrides and policy
    reasons: list[dict]
    model_version: str
    bundle: ModelBundle  # the deciding model: its thresholds and metadata apply to the row
    decided_by: str  # "champion" or "challenger"
    shadow: dict | None  # {model_version, probability, margin, decision} of the other model


def canary_draw(keys: Pseudonymizer, transaction_id: str) -> float:
    """A number in [0, 1), fixed per transaction id and deployment key."""
    return int(keys.digest("canary", transaction_id, CANARY_DIGITS), 16) / 16 ** CANARY_DIGITS


def decided_by_challenger(challenger: Challenger | None, keys: Pseudonymizer, transaction_id: str) -> bool:
    return (challenger is not None and challenger.mode == "canary"
            and canary_draw(keys, transaction_id) < challenger.canary_share)


def model_scores(bundle: ModelBundle, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw margin and calibrated probability from one predict call (what
    ``bundle.predict_proba`` computes, with the margin kept for the decision log)."""
    margin = np.asarray(bundle.model.margin(bundle._matrix(frame)), dtype=np.float64)
    return margin, bundle.calibrator.predict(1.0 / (1.0 + np.exp(-margin)))


def _challenger_part(challenger: Challenger, frame: np.ndarray, transaction_ids: list[str], keys: Pseudonymizer):
    """(margin, probabilities, decisions, canary mask, reasons of the canary rows), or None
    when the challenger fails: logged, and the request goes on with the champion alone."""
    try:
        margin, probs = model_scores(challenger.bundle, frame)
        canary = np.array([decided_by_challenger(challenger, keys, t) for t in transaction_ids], dtype=bool)
        reasons = challenger.bundle.reasons(frame[canary], exact=False) if canary.any() else []
        return margin, probs, challenger.bundle.thresholds.decide(probs), canary, reasons
    except Exception as exc:  # noqa: BLE001 - a broken challenger never fails scoring
        log.error("challenger %s could not score (ignored for this request): %s", challenger.version, exc)
        return None


def answer_rows(champion: ModelBundle, version: str, challenger: Challenger | None, frame: np.ndarray,
                transaction_ids: list[str], keys: Pseudonymizer) -> list[RowAnswer]:
    """Per row of ``frame``: the answer of the model that decides it, the other one's score
    beside it. Reasons are computed only for the rows each model decides."""
    margin, probs = model_scores(champion, frame)
    decisions = champion.thresholds.decide(probs)
    other = _challenger_part(challenger, frame, transaction_ids, keys) if challenger is not None else None
    canary = other[3] if other is not None else np.zeros(len(transaction_ids), dtype=bool)
    reasons: list[list[dict] | None] = [None] * len(transaction_ids)
    if (~canary).any():
        for i, why in zip(np.flatnonzero(~canary), champion.reasons(frame[~canary], exact=False)):
            reasons[i] = why
    if other is not None:
        for i, why in zip(np.flatnonzero(canary), other[4]):
            reasons[i] = why
    out = []
    for i in range(len(transaction_ids)):
        champion_side = {"model_version": version, "probability": float(probs[i]), "margin": float(margin[i]),
                         "decision": str(decisions[i])}
        if other is None:
            out.append(RowAnswer(float(probs[i]), float(margin[i]), str(decisions[i]), reasons[i], version,
                                 champion, "champion", None))
            continue
        challenger_side = {"model_version": challenger.version, "probability": float(other[1][i]),
                           "margin": float(other[0][i]), "decision": str(other[2][i])}
        deciding, shadow, bundle, who = ((challenger_side, champion_side, challenger.bundle, "challenger")
                                         if canary[i] else (champion_side, challenger_side, champion, "champion"))
        out.append(RowAnswer(deciding["probability"], deciding["margin"], deciding["decision"], reasons[i],
                             deciding["model_version"], bundle, who, shadow))
    return out
