"""Judging a challenger from what the API logged (issue 16, section 4).

``compare_on_shadow``: may the challenger be promoted? Both models scored the same
transactions (the decision log's row and its ``shadow_*`` columns); on the labels that
arrived for them, the challenger's AP and its recall at its own thresholds must not fall
below the champion's beyond a tolerance, after a minimum shadow period and label count.

``judge_canary``: should a canary be rolled back? Recall and precision (review + decline
counted as flagged, the final decision) of the transactions the challenger decided against
those the champion decided in the same period; below the champion's beyond a tolerance,
with minimum counts on both sides, it is rolled back.

Both take DataFrames in ``fraud.decisions.read_decisions``'s shape and labels in
``fraud.labels``'s; nothing here reads or writes a store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .policy import Thresholds

DAY_S = 86400.0


@dataclass(frozen=True)
class Side:
    """A model as the verdicts need it: its version and its own thresholds."""

    version: str
    thresholds: Thresholds

    @classmethod
    def of(cls, bundle) -> "Side":
        return cls(bundle.metadata["version"], bundle.thresholds)


@dataclass
class Verdict:
    promote: bool
    reason: str
    shadow_days: float
    counts: dict  # shadow_scored, labelled, frauds
    champion: dict = field(default_factory=dict)  # version, average_precision, recall, precision, flagged
    challenger: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CanaryVerdict:
    rollback: bool
    judged: bool  # False: too few labels yet on one side (kept, nothing judged)
    reason: str
    arms: dict  # "champion"/"challenger" -> labelled, frauds, flagged, recall, precision

    def to_dict(self) -> dict:
        return asdict(self)


def final_labels(labels: pd.DataFrame) -> pd.Series:
    """transaction_id -> 0/1: the label known last decides, fraud at a tie (``fraud.labels.merge``)."""
    if labels is None or labels.empty:
        return pd.Series(dtype="int64")
    ordered = labels.sort_values(["known_at", "label"], kind="stable")
    last = ordered.drop_duplicates("transaction_id", keep="last")
    return pd.Series(last["label"].astype("int64").to_numpy(), index=last["transaction_id"].astype(str).to_numpy())


def _with_labels(frame: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    label = final_labels(labels)
    out = frame.assign(label=frame["transaction_id"].astype(str).map(label))
    return out[out["label"].notna()].assign(label=lambda f: f["label"].astype("int64"))


def _catch(flagged: np.ndarray, y: np.ndarray) -> dict:
    frauds, n_flagged = int(y.sum()), int(flagged.sum())
    caught = int((flagged & (y == 1)).sum())
    return {"labelled": int(len(y)), "frauds": frauds, "flagged": n_flagged,
            "recall": caught / frauds if frauds else None, "precision": caught / n_flagged if n_flagged else None}


def _average_precision(scores: np.ndarray, y: np.ndarray) -> float | None:
    from objectives import average_precision

    return float(average_precision(scores, y)) if 0 < y.sum() < len(y) else None


def shadow_pairs(decisions: pd.DataFrame, champion: str, challenger: str) -> pd.DataFrame:
    """Rows both models scored, as transaction_id, scored_at, champion and challenger probability,
    whichever of the two decided (canary rows count: both scores are logged)."""
    d = decisions
    as_champion = (d["model_version"] == champion) & (d["shadow_model_version"] == challenger)
    as_challenger = (d["model_version"] == challenger) & (d["shadow_model_version"] == champion)
    rows = d[as_champion | as_challenger]
    flipped = (rows["model_version"] == challenger).to_numpy()
    p, shadow = rows["probability"].to_numpy(dtype=float), rows["shadow_probability"].to_numpy(dtype=float)
    return pd.DataFrame({"transaction_id": rows["transaction_id"].astype(str).to_numpy(),
                         "scored_at": rows["scored_at"].to_numpy(),
                         "champion": np.where(flipped, shadow, p), "challenger": np.where(flipped, p, shadow)})


def compare_on_shadow(decisions: pd.DataFrame, labels: pd.DataFrame, champion: Side, challenger: Side,
                      min_days: float, min_labels: int, min_frauds: int = 1,
                      average_precision_tolerance: float = 0.01, recall_tolerance: float = 0.02) -> Verdict:
    """May ``challenger`` replace ``champion``? The shadow period is the span of the log's
    rows both scored (first to last ``scored_at``); the labels are those of these rows."""
    pairs = shadow_pairs(decisions, champion.version, challenger.version)
    days = (float((pairs["scored_at"].max() - pairs["scored_at"].min()) / pd.Timedelta(seconds=1)) / DAY_S
            if len(pairs) else 0.0)
    labelled = _with_labels(pairs, labels)
    y = labelled["label"].to_numpy()
    counts = {"shadow_scored": int(len(pairs)), "labelled": int(len(y)), "frauds": int(y.sum())}
    sides = {}
    for name, side in (("champion", champion), ("challenger", challenger)):
        scores = labelled[name].to_numpy(dtype=float)
        sides[name] = {"version": side.version, "average_precision": _average_precision(scores, y),
                       **_catch(scores >= side.thresholds.review, y)}

    def verdict(promote: bool, reason: str) -> Verdict:
        return Verdict(promote, reason, days, counts, sides["champion"], sides["challenger"])

    if days < min_days:
        return verdict(False, f"the challenger has been scored in shadow for {days:.1f} days; promotion needs "
                              f"{min_days:g} ([challenger] min_shadow_days)")
    if counts["labelled"] < min_labels or counts["frauds"] < min_frauds:
        return verdict(False, f"{counts['labelled']} labels ({counts['frauds']} fraud) arrived for the "
                              f"{counts['shadow_scored']} shadow-scored transactions; promotion needs {min_labels} "
                              f"labels with {min_frauds} fraud ([challenger] min_labels, min_frauds)")
    c, k = sides["challenger"], sides["champion"]
    figures = (f"AP {c['average_precision']:.4f} vs {_text(k['average_precision'])}, recall at its own thresholds "
               f"{c['recall']:.3f} vs {k['recall']:.3f} on {counts['labelled']} labels ({counts['frauds']} fraud) "
               f"over {days:.1f} days")
    if c["average_precision"] is None or (k["average_precision"] is not None
                                          and c["average_precision"] < k["average_precision"]
                                          - average_precision_tolerance):
        return verdict(False, f"the challenger ranks worse than the champion beyond the tolerance "
                              f"{average_precision_tolerance:g}: {figures}")
    if c["recall"] < k["recall"] - recall_tolerance:
        return verdict(False, f"the challenger catches less than the champion beyond the tolerance "
                              f"{recall_tolerance:g}: {figures}")
    return verdict(True, f"the challenger is not worse than the champion: {figures}")


def _text(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def judge_canary(decisions: pd.DataFrame, labels: pd.DataFrame, champion: str, challenger: str,
                 recall_tolerance: float, precision_tolerance: float, min_labels: int, min_frauds: int,
                 min_flagged: int) -> CanaryVerdict:
    """Roll the canary back? Each arm (the rows ``champion`` decided with ``challenger`` in
    shadow, the rows ``challenger`` decided) needs ``min_labels`` labels, of them
    ``min_frauds`` frauds (recall's denominator) and ``min_flagged`` flagged (precision's)."""
    d = decisions
    arms_rows = {"champion": d[(d["decided_by"] == "champion") & (d["model_version"] == champion)
                               & (d["shadow_model_version"] == challenger)],
                 "challenger": d[(d["decided_by"] == "challenger") & (d["model_version"] == challenger)]}
    arms = {}
    for name, rows in arms_rows.items():
        labelled = _with_labels(rows, labels)
        arms[name] = _catch(labelled["decision"].isin(["review", "decline"]).to_numpy(),
                            labelled["label"].to_numpy())
    short = [f"{name}: {a['labelled']} labels, {a['frauds']} fraud, {a['flagged']} flagged"
             for name, a in arms.items()
             if a["labelled"] < min_labels or a["frauds"] < min_frauds or a["flagged"] < min_flagged]
    if short:
        return CanaryVerdict(False, False, "too few labels to judge the canary yet (" + "; ".join(short)
                             + f"; each side needs {min_labels} labels, {min_frauds} fraud, {min_flagged} flagged)",
                             arms)
    c, k = arms["challenger"], arms["champion"]
    figures = (f"recall {c['recall']:.3f} vs the champion's {k['recall']:.3f}, precision {c['precision']:.3f} vs "
               f"{k['precision']:.3f} ({c['labelled']} and {k['labelled']} labelled transactions)")
    worse = []
    if c["recall"] < k["recall"] - recall_tolerance:
        worse.append(f"recall below the champion's by more than {recall_tolerance:g}")
    if c["precision"] < k["precision"] - precision_tolerance:
        worse.append(f"precision below the champion's by more than {precision_tolerance:g}")
    if worse:
        return CanaryVerdict(True, True, f"canary {challenger} rolled back: {' and '.join(worse)}: {figures}", arms)
    return CanaryVerdict(False, True, f"canary {challenger} kept (within tolerance): {figures}", arms)
