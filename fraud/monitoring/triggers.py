"""Retrain triggers: when the model's health (or the calendar) says retrain, and when a
retrain would only thrash.

A trigger fires on any of three reasons (``conditions``):

- ``recall``: the policy's recall on the labels known so far is below the SLO;
- ``psi``: the PSI of one of the champion's important features is above the threshold;
- ``schedule``: the last retrain started more than ``[retrain] schedule_hours`` ago (in AWS
  the nightly EventBridge schedule plays this part).

and, except for the schedule (the cadence, never held back: in AWS the nightly-training
alarm expects it), is suppressed (``decide``) by

- ``cooldown``: a retrain started less than ``[retrain] cooldown_hours`` ago;
- ``min_labels``: fewer than ``[retrain] min_new_labels`` labels became known since the last
  retrain started (a retrain on the same labels learns nothing new).

Every decision, fired, suppressed or quiet, with its reasons and the numbers behind them, is
appended to the trigger log (``TriggerLog``: JSON Lines per UTC day, locally or on S3, the
shape of ``fraud.labels.store``); the cooldown counts from the newest fired decision in it.
Triggers that fire together (the recall and PSI alarms breach on the same night's metrics)
each claim the start after the last one (``TriggerLog.claim``): one wins, the others are
recorded as held back by the cooldown.
Pure logic and JSON only: importable without pandas.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from datetime import date, datetime, timedelta, timezone
from typing import Protocol

from fraud.storage.blob import BlobStore, S3BlobStore, open_blob_store

REASONS = ("recall", "psi", "schedule")
PARTITION = "date="
SUFFIX = ".jsonl"


class HealthLike(Protocol):
    """What a trigger reads of ``fraud.monitoring.health.Health``."""

    day: date
    recall: float | None
    recall_verdict: bool                   # enough labelled frauds for a recall verdict
    drift_verdict: bool                    # enough scored rows on ``day`` for a PSI verdict
    drifted_features: tuple[str, ...]      # important features whose PSI on ``day`` is above the threshold
    feature_psi: dict                      # feature -> {day: PSI}
    thresholds: dict                       # psi_threshold, recall_slo, min_rows, min_labels, ...
    scored_rows: int
    labelled_rows: int
    labelled_frauds: int


@dataclass(frozen=True)
class RetrainPolicy:
    cooldown_hours: float = 12.0
    min_new_labels: int = 50
    schedule_hours: float | None = None  # None: no time-based reason (AWS: the nightly schedule)

    @classmethod
    def from_config(cls, config) -> "RetrainPolicy":
        r = config.retrain
        return cls(r.cooldown_hours, r.min_new_labels, r.schedule_hours)


@dataclass(frozen=True)
class TriggerDecision:
    at: str                      # ISO 8601 UTC
    source: str                  # "monitor", "alarm:<name>", "schedule"
    reasons: tuple[str, ...]     # the conditions that held (empty: quiet)
    outcome: str                 # "fired", "suppressed" or "quiet"
    suppressed_by: str | None    # "cooldown" or "min_labels"
    figures: dict = field(default_factory=dict)
    message: str = ""

    @property
    def fired(self) -> bool:
        return self.outcome == "fired"

    @property
    def id(self) -> str:
        return hashlib.sha256(_line(self.to_dict()).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "TriggerDecision":
        return cls(d["at"], d["source"], tuple(d["reasons"]), d["outcome"], d.get("suppressed_by"),
                   d.get("figures") or {}, d.get("message", ""))


def _utc(value) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return when.astimezone(timezone.utc)


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def conditions(health: HealthLike, policy: RetrainPolicy, last_start: datetime | None,
               now: datetime) -> tuple[list[str], dict]:
    """The reasons that hold, and the figures they were judged on. Recall and PSI count only
    where the health had enough data for a verdict (``[monitoring] min_labels``, ``min_rows``):
    the health leaves ``drifted_features`` empty without one."""
    t = health.thresholds
    reasons = []
    figures = {"day": str(health.day), "recall": health.recall, "recall_slo": t["recall_slo"],
               "recall_verdict": health.recall_verdict, "labelled_rows": health.labelled_rows,
               "labelled_frauds": health.labelled_frauds, "scored_rows": health.scored_rows,
               "drift_verdict": health.drift_verdict, "psi_threshold": t["psi_threshold"]}
    if health.recall_verdict and _finite(health.recall) and health.recall < t["recall_slo"]:
        reasons.append("recall")
    # the health's drifted features are the important ones above the threshold, none without a verdict
    drifted = {f: health.feature_psi.get(f, {}).get(health.day) for f in health.drifted_features}
    if drifted:
        reasons.append("psi")
        figures["psi_above"] = drifted
    if policy.schedule_hours is not None:
        figures["hours_since_last_start"] = None if last_start is None else (now - last_start) / timedelta(hours=1)
        if last_start is None or now - last_start >= timedelta(hours=policy.schedule_hours):
            reasons.append("schedule")
    return reasons, figures


def decide(reasons: Sequence[str], figures: dict, source: str, last_start: datetime | None, new_labels: int,
           policy: RetrainPolicy, now: datetime) -> TriggerDecision:
    """Fired, suppressed (cooldown first, then min labels) or quiet, with the numbers."""
    now = _utc(now)
    figures = {**figures, "last_start": last_start.isoformat() if last_start else None, "new_labels": new_labels,
               "cooldown_hours": policy.cooldown_hours, "min_new_labels": policy.min_new_labels}
    reasons = tuple(reasons)
    at = now.isoformat()
    if not reasons:
        return TriggerDecision(at, source, reasons, "quiet", None, figures, "no reason to retrain")
    if "schedule" in reasons:  # the cadence itself: never held back, and the cooldown counts from it
        return TriggerDecision(at, source, reasons, "fired", None, figures, "retrain: " + ", ".join(reasons))
    if last_start is not None and now - last_start < timedelta(hours=policy.cooldown_hours):
        hours = (now - last_start) / timedelta(hours=1)
        return TriggerDecision(at, source, reasons, "suppressed", "cooldown", figures,
                               f"a retrain started {hours:.1f} h ago, within the {policy.cooldown_hours:g} h cooldown")
    if new_labels < policy.min_new_labels:
        return TriggerDecision(at, source, reasons, "suppressed", "min_labels", figures,
                               f"{new_labels} labels known since the last retrain started, fewer than "
                               f"{policy.min_new_labels}")
    return TriggerDecision(at, source, reasons, "fired", None, figures, "retrain: " + ", ".join(reasons))


def lost_claim(decision: TriggerDecision) -> TriggerDecision:
    """``decision`` (fired) held back: a concurrent trigger claimed the start first."""
    return replace(decision, outcome="suppressed", suppressed_by="cooldown",
                   message="a concurrent trigger claimed the retrain after the last start")


def _line(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True, default=str)


class TriggerLog(ABC):
    uri: str

    @abstractmethod
    def append(self, decision: TriggerDecision) -> None:
        """Record one decision (idempotent: the same decision twice is read once)."""

    @abstractmethod
    def read(self) -> list[TriggerDecision]:
        """Every decision, oldest first."""

    def last_fired(self) -> TriggerDecision | None:
        """The newest fired decision (a retrain start)."""
        fired = [d for d in self.read() if d.fired]
        return max(fired, key=lambda d: _utc(d.at)) if fired else None

    def last_start(self) -> datetime | None:
        """When the newest fired decision was made."""
        last = self.last_fired()
        return _utc(last.at) if last else None

    @abstractmethod
    def claim(self, last: TriggerDecision | None, decision: TriggerDecision) -> bool:
        """Be the one start after ``last`` (the newest start when ``decision`` was judged):
        True for the first claim, False for any later one. Two alarms firing together start
        two tasks that both read the same last start; only the claimer trains."""


class BlobTriggerLog(TriggerLog):
    """``date=YYYY-MM-DD/trigger-<id>.jsonl``, one file per decision: a PUT is atomic on S3
    and locally, and an S3 object cannot be appended to."""

    def __init__(self, blobs: BlobStore):
        self.blobs = blobs
        self.uri = blobs.uri

    def append(self, decision: TriggerDecision) -> None:
        self.blobs.put(f"{PARTITION}{decision.at[:10]}/trigger-{decision.id}{SUFFIX}",
                       (_line(decision.to_dict()) + "\n").encode())

    def _days(self) -> dict[str, list[str]]:
        days: dict[str, list[str]] = {}
        for key in self.blobs.list():
            if key.startswith(PARTITION) and key.endswith(SUFFIX):
                days.setdefault(key[len(PARTITION):].split("/", 1)[0], []).append(key)
        return days

    def _decisions(self, keys) -> list[TriggerDecision]:
        rows = [json.loads(line) for key in keys for line in self.blobs.get(key).decode().splitlines() if line.strip()]
        return sorted((TriggerDecision.from_dict(r) for r in rows), key=lambda d: _utc(d.at))

    def read(self) -> list[TriggerDecision]:
        return self._decisions(k for keys in self._days().values() for k in keys)

    def last_fired(self) -> TriggerDecision | None:
        """Newest day first, stopping at the first day with a start: one day read, not the log."""
        for day, keys in sorted(self._days().items(), reverse=True):
            fired = [d for d in self._decisions(keys) if d.fired]
            if fired:
                return max(fired, key=lambda d: _utc(d.at))
        return None

    def claim(self, last: TriggerDecision | None, decision: TriggerDecision) -> bool:
        """Create ``claims/after-<last id>.json`` if absent: locally O_EXCL, on S3 a
        conditional PUT (``If-None-Match: *``), both atomic."""
        key = f"claims/after-{last.id if last else 'none'}.json"
        data = (_line(decision.to_dict()) + "\n").encode()
        if isinstance(self.blobs, S3BlobStore):
            full = f"{self.blobs.prefix}/{key}" if self.blobs.prefix else key
            try:
                self.blobs.s3.put_object(Bucket=self.blobs.bucket, Key=full, Body=data, IfNoneMatch="*")
            except self.blobs.s3.exceptions.ClientError as exc:
                if exc.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise
            return True
        path = Path(self.blobs.root) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True


def open_trigger_log(uri: str, endpoint_url: str | None = None) -> TriggerLog:
    """``s3://bucket/triggers`` or a local directory."""
    return BlobTriggerLog(open_blob_store(uri, endpoint_url))
