"""Keeping the online feature state current with the data lake (``fraud state catch-up``).

The API folds every transaction it scores into the state, and its heartbeat keeps the
coverage fresh (``lambda_handler.coverage``). Transactions that reached the data lake but
not the API (it was down, a channel that does not call it, a backfill) are missing from
the state, and so are chargeback labels that arrive only in the lake. The catch-up applies
them through the API's own path, so it is safe beside live traffic and counts each once:

- transactions newer than the watermark's ``transactions_until`` (the last load or
  catch-up), in the batch engine's order, by ``OnlineFeatures.process``: one the API applied
  already has its ``applied#`` marker and changes nothing;
- labels known after the watermark's ``labels_until``, by ``OnlineFeatures.add_label`` with
  the transaction id as label id: the same marker ``/v1/feedback`` writes, so a label that
  came both ways counts once;
- then the watermark moves to the newest transaction and label time applied.

Limits (documented, checked): the ``applied#`` markers live ``APPLIED_TTL_S`` (7 days), so a
transaction older than that, less a day's margin, is refused: such a gap needs
``fraud state load``. A lake-only transaction older than one the API already applied for the
same card counts in the windows as a late transaction (the state keeps running totals), so
the catch-up is exact for gaps (the API down) and close for interleaved channels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from fraud.features.online import (APPLIED_PREFIX, APPLIED_TTL_S, LABEL_APPLIED_PREFIX, STATE_WATERMARK_KEY,
                                   OnlineFeatures, read_watermark)
from fraud.features.spec import FeatureSpec
from fraud.progress import progress_bar
from fraud.pseudonym import Pseudonymizer
from fraud.schema import CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID, epoch_seconds, tiebreak
from fraud.storage.kv import KeyValueStore
from fraud.validation import InputError

from .state_load import _iso, _ts

MARKER_MARGIN_S = 86400  # refuse what is within a day of the applied markers' expiry
READ_BATCH = 100  # one DynamoDB BatchGetItem


@dataclass
class CatchUpSummary:
    transactions: int  # in the lake beyond the watermark
    labels: int
    applied_transactions: int  # of those, the ones the API had not applied
    applied_labels: int
    watermark: dict
    seconds: float = 0.0

    def lines(self) -> list[str]:
        w = self.watermark
        return [f"transactions: {self.applied_transactions} applied of {self.transactions} beyond the watermark "
                f"(the rest the API had applied), up to {w['transactions_until']}",
                f"labels:       {self.applied_labels} applied of {self.labels}, up to {w['labels_until']}",
                f"watermark:    {w}",
                f"seconds:      {self.seconds:.1f}"]


def _after(frame: pd.DataFrame, column: str, bound: str | None, as_of: pd.Timestamp) -> pd.DataFrame:
    if column not in frame.columns:
        return frame.iloc[:0]
    keep = frame[column].notna() & (frame[column] < as_of)
    if bound is not None:
        keep &= frame[column] > pd.Timestamp(bound)
    return frame.loc[keep]


def catch_up_state(frame: pd.DataFrame, spec: FeatureSpec, store: KeyValueStore, keys: Pseudonymizer,
                   as_of=None, since=None, progress: bool = False, now: float | None = None) -> CatchUpSummary:
    """Apply what ``frame`` (the data lake) holds beyond the state's watermark, up to
    ``as_of`` (default now); see the module docstring. Refuses a store never loaded and a gap
    older than the markers. ``since``: start there instead, when later than the watermark
    (what is older is taken as applied: the API was up and saw it)."""
    started = time.monotonic()
    watermark = read_watermark(store)
    if watermark is None or watermark.get("transactions_until") is None:
        raise InputError("the feature state has no watermark: load it first (`fraud state load`)")
    as_of = _ts(as_of) or pd.Timestamp.now(tz="UTC")
    since = _ts(since)
    after_txn, after_label = watermark["transactions_until"], watermark.get("labels_until")
    if since is not None:
        after_txn = max(pd.Timestamp(after_txn), since - pd.Timedelta(microseconds=1)).isoformat()
        after_label = (since - pd.Timedelta(microseconds=1) if after_label is None
                       else max(pd.Timestamp(after_label), since - pd.Timedelta(microseconds=1))).isoformat()
    txns = _after(frame, TIMESTAMP, after_txn, as_of)
    labels = _after(frame, LABEL_TIME, after_label, as_of) if LABEL in frame.columns else frame.iloc[:0]
    oldest_allowed = (time.time() if now is None else now) - APPLIED_TTL_S + MARKER_MARGIN_S
    if len(txns) and epoch_seconds(txns[TIMESTAMP]).min() < oldest_allowed:
        raise InputError(f"transactions from {_iso(txns[TIMESTAMP].min())} are past the {APPLIED_TTL_S // 86400}-day "
                         f"memory of what the API applied (the watermark is {watermark['transactions_until']}): "
                         f"catching up could count them twice; reload the state with `fraud state load`")
    events = pd.concat([
        pd.DataFrame({"kind": 0, "t": epoch_seconds(txns[TIMESTAMP]),
                      "tb": tiebreak(txns[TRANSACTION_ID].to_numpy(object)), "row": txns.index}),
        pd.DataFrame({"kind": 1, "t": epoch_seconds(labels[LABEL_TIME]),
                      "tb": tiebreak(labels[TRANSACTION_ID].to_numpy(object)), "row": labels.index}),
    ]).sort_values(["t", "kind", "tb"], kind="stable")  # a label known at t is not used at t: the API's order
    engine = OnlineFeatures(spec, store, keys=keys)
    records = frame.loc[events["row"].unique()].to_dict("index")
    done = _applied_already(store, events, records)
    for kind, _, _, row in progress_bar(events.itertuples(index=False), enabled=progress, total=len(events),
                                        desc="state catch-up", unit="event"):
        rec = records[row]
        if (kind, rec[TRANSACTION_ID]) in done:
            continue
        if kind == 0:
            engine.process(rec)
        else:
            engine.add_label(rec[TERMINAL_ID], rec[LABEL] == 1, rec[LABEL_TIME], label_id=rec[TRANSACTION_ID],
                             card_id=rec[CARD_ID])
    moved = {"transactions_until": _newest(watermark["transactions_until"], txns[TIMESTAMP]),
             "labels_until": _newest(watermark.get("labels_until"), labels[LABEL_TIME] if len(labels) else None),
             "caught_up_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "caught_up_transactions": int(len(txns)), "caught_up_labels": int(len(labels))}
    store.put(STATE_WATERMARK_KEY, {**watermark, **moved})
    already = [kind for kind, _ in done]
    return CatchUpSummary(len(txns), len(labels), len(txns) - already.count(0), len(labels) - already.count(1),
                          {**watermark, **moved}, time.monotonic() - started)


def _applied_already(store: KeyValueStore, events: pd.DataFrame, records: dict) -> set[tuple[int, str]]:
    """(kind, transaction id) of events whose marker exists: read in batches of
    ``READ_BATCH`` keys, so a day the API saw whole costs a few reads, not one per row
    (``process``/``add_label`` check the marker again, for what the API applies meanwhile)."""
    prefix = {0: APPLIED_PREFIX, 1: LABEL_APPLIED_PREFIX}
    keys = {prefix[kind] + str(records[row][TRANSACTION_ID]): (kind, records[row][TRANSACTION_ID])
            for kind, _, _, row in events.itertuples(index=False)}
    names = list(keys)
    found: set[tuple[int, str]] = set()
    for lo in range(0, len(names), READ_BATCH):
        found.update(keys[k] for k in store.get_many(names[lo:lo + READ_BATCH]))
    return found


def _newest(bound: str | None, times) -> str | None:
    if times is None or not len(times):
        return bound
    newest = pd.Timestamp(times.max())
    return _iso(newest if bound is None else max(newest, pd.Timestamp(bound)))
