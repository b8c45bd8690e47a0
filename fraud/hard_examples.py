"""Hard examples for labelling (issue 16, section 6): the scored transactions the model is
least sure about, queued with their reasons so reviewers label them first, and up-weighted
in training once labelled.

A decision-log row (``fraud.decisions.read_decisions``) is hard when

- ``near_threshold``: its calibrated probability is within ``[hard_examples]
  threshold_margin`` of the review threshold of the model version that scored it;
- ``low_p_t``: it has a label (label store, known by now) and p_t, the probability the
  model gave that label (from its raw margin, as ``fraud.monitoring`` counts it), is below
  ``[monitoring] hard_p_t``;
- ``fraud_approved`` / ``legit_declined``: the label contradicts the decision.

``hardness`` orders them, 1 the most uncertain: ``1 - |p - t| / max(t, 1 - t)`` (1 on the
threshold t), and for a labelled row at least ``1 - p_t`` (a confident miss is as hard as a
coin toss). Each scored day queues at most ``per_day``, the hardest first; a transaction is
queued once, whatever the runs (the queue's ids are excluded, and a re-run fills only what
the day's cap has left).

The queue (``HardExampleQueue``) has the label store's shape: JSON Lines partitioned by the
scored day, ``date=YYYY-MM-DD/hard-examples-<digest>.jsonl``, atomic content-named files,
locally or on S3. ``reviewed_ids``: the queued transactions that now have a stored label,
which ``[training] hard_example_weight`` up-weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod

import numpy as np
import pandas as pd

from fraud.monitoring.outcomes import labels_known
from fraud.storage.blob import BlobStore, open_blob_store

log = logging.getLogger(__name__)

PARTITION = "date="
SUFFIX = ".jsonl"
KINDS = ("near_threshold", "low_p_t", "fraud_approved", "legit_declined")
COLUMNS = ["transaction_id", "day", "scored_at", "timestamp", "card", "terminal_id", "amount", "probability",
           "margin", "decision", "model_version", "review_threshold", "label", "p_t", "kinds", "hardness", "reasons"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def select_hard_examples(decisions: pd.DataFrame, labels: pd.DataFrame | None, review_thresholds: dict,
                         *, threshold_margin: float, hard_p_t: float, per_day: int, as_of,
                         queued: set[str] = frozenset(), room: dict | None = None) -> pd.DataFrame:
    """The hard rows of ``decisions``, at most ``room[day]`` (default ``per_day``) per scored
    day, hardest first, none of the ``queued`` ids. ``review_thresholds``: model version ->
    its review threshold; ``labels``: the label store's frame (only labels known before
    ``as_of`` count)."""
    if decisions.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = decisions.assign(transaction_id=decisions["transaction_id"].astype(str)).reset_index(drop=True)
    rows = rows[~rows["transaction_id"].isin(set(queued))].reset_index(drop=True)
    known = labels_known(labels, as_of) if labels is not None and len(labels) else \
        pd.DataFrame({"transaction_id": pd.Series(dtype=str), "label": pd.Series(dtype=int)})
    rows = rows.merge(known, on="transaction_id", how="left")
    p = rows["probability"].to_numpy(dtype=np.float64)
    t = rows["model_version"].map(review_thresholds).to_numpy(dtype=np.float64)  # NaN: version unknown
    y = rows["label"].to_numpy(dtype=np.float64)                                   # NaN: no label
    margin = pd.to_numeric(rows["margin"], errors="coerce").to_numpy(dtype=np.float64)
    p_raw = np.where(np.isnan(margin), p, _sigmoid(np.nan_to_num(margin)))
    p_t = np.where(y == 1, p_raw, 1 - p_raw)
    p_t[np.isnan(y)] = np.nan
    decision = rows["decision"].astype(str).to_numpy()
    with np.errstate(invalid="ignore"):
        kinds = {"near_threshold": np.abs(p - t) <= threshold_margin, "low_p_t": p_t < hard_p_t,
                 "fraud_approved": (y == 1) & (decision == "approve"),
                 "legit_declined": (y == 0) & (decision == "decline")}
        hardness = np.fmax(1 - np.abs(p - t) / np.maximum(t, 1 - t), 1 - p_t)
    hard = np.logical_or.reduce(list(kinds.values()))
    out = rows.assign(review_threshold=t, p_t=p_t, hardness=np.nan_to_num(hardness, nan=0.0),
                      kinds=[[k for k in KINDS if kinds[k][i]] for i in range(len(rows))],
                      day=pd.to_datetime(rows["scored_at"], utc=True).dt.strftime("%Y-%m-%d"),
                      label=pd.array(rows["label"], dtype="Int8"))[hard]
    out = out.sort_values(["day", "hardness", "transaction_id"], ascending=[True, False, True], kind="stable")
    room = room or {}
    rank = out.groupby("day", sort=False).cumcount().to_numpy()
    cap = out["day"].map(lambda d: room.get(d, per_day)).to_numpy()
    return out[rank < cap].reindex(columns=COLUMNS).reset_index(drop=True)


def _record(row: dict) -> dict:
    """One queue line: JSON types, reasons as a list, absent values null."""
    out = {}
    for key in COLUMNS:
        value = row[key]
        if key == "reasons":
            value = json.loads(value) if isinstance(value, str) else (value if value is not None else [])
        elif isinstance(value, pd.Timestamp):
            value = value.isoformat()
        elif value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            value = None
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


class HardExampleQueue(ABC):
    uri: str

    @abstractmethod
    def append(self, examples: pd.DataFrame, queued_at) -> int:
        """Queue ``select_hard_examples``' rows; returns how many."""

    @abstractmethod
    def read(self, day: str | None = None) -> list[dict]:
        """The queued examples (of one scored day: ``day``), each once."""

    def ids(self) -> set[str]:
        return {r["transaction_id"] for r in self.read()}


class BlobHardExampleQueue(HardExampleQueue):
    def __init__(self, blobs: BlobStore):
        self.blobs = blobs
        self.uri = blobs.uri

    def append(self, examples: pd.DataFrame, queued_at) -> int:
        when = pd.Timestamp(queued_at).tz_convert("UTC").isoformat()
        for day, rows in examples.groupby("day", sort=True):
            text = "".join(json.dumps({**_record(r), "queued_at": when}, separators=(",", ":")) + "\n"
                           for r in rows.to_dict("records"))
            digest = hashlib.sha256(text.encode()).hexdigest()[:24]
            self.blobs.put(f"{PARTITION}{day}/hard-examples-{digest}{SUFFIX}", text.encode())
        return int(len(examples))

    def read(self, day: str | None = None) -> list[dict]:
        prefix = f"{PARTITION}{day}/" if day else ""
        seen, out = set(), []
        for key in self.blobs.list(prefix):
            if not key.startswith(PARTITION) or not key.endswith(SUFFIX):
                continue
            for line in self.blobs.get(key).decode().splitlines():
                record = json.loads(line) if line.strip() else None
                if record and record["transaction_id"] not in seen:
                    seen.add(record["transaction_id"])
                    out.append(record)
        return out


def open_hard_example_queue(uri: str, endpoint_url: str | None = None) -> HardExampleQueue:
    """``s3://bucket/hard-examples`` or a local directory."""
    return BlobHardExampleQueue(open_blob_store(uri, endpoint_url))


def reviewed_ids(queue_uri: str | None, labels: pd.DataFrame | None, as_of=None,
                 endpoint_url: str | None = None) -> set[str]:
    """Queued transactions with a stored label known before ``as_of`` (all: None)."""
    if not queue_uri or labels is None or labels.empty:
        return set()
    queued = open_hard_example_queue(queue_uri, endpoint_url).ids()
    if as_of is not None:
        labels = labels[pd.to_datetime(labels["known_at"], utc=True) < pd.Timestamp(as_of)]
    return queued & set(labels["transaction_id"].astype(str))


def weighted_hard_examples(weight: float, queue_uri: str | None, labels_uri: str | None, as_of=None,
                           endpoint_url: str | None = None) -> set[str]:
    """The transaction ids training up-weights: the reviewed hard examples (labels known
    before ``as_of``); none when it changes nothing (weight 1, the default, or no queue or
    label store)."""
    if weight == 1.0 or not queue_uri or not labels_uri:
        return set()
    from fraud.labels import open_label_store

    labels = open_label_store(labels_uri, endpoint_url).read(as_of)
    return reviewed_ids(queue_uri, labels, as_of, endpoint_url)


def hard_example_weights(transaction_ids, weight: float, queue_uri: str | None, labels_uri: str | None,
                         as_of=None, endpoint_url: str | None = None) -> np.ndarray | None:
    """Training's sample weights: ``weight`` on the reviewed hard examples among
    ``transaction_ids`` (labels known before ``as_of``), 1 elsewhere; None when it changes
    nothing (weight 1, the default, or no reviewed hard example in the data)."""
    ids = weighted_hard_examples(weight, queue_uri, labels_uri, as_of, endpoint_url)
    if not ids:
        return None
    hit = pd.Series(transaction_ids).astype(str).isin(ids).to_numpy()
    log.info("hard examples: %d reviewed ones in the data weighted %g", int(hit.sum()), weight)
    return np.where(hit, weight, 1.0) if hit.any() else None