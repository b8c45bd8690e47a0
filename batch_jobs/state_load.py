"""Loading the online feature state from history (``fraud state load``).

The state is what ``OnlineFeatures`` would hold after replaying the history one transaction
and one label at a time, computed in bulk (``history_states``: the batch engine's ordering
and floats) for the champion's feature spec and under the deployment's hash key, so the API
reads it as its own.

What is loaded: transactions from ``since`` (default: the newest transaction before
``as_of`` less ``history.lookback(spec)``, as batch scoring reads) up to ``as_of``
(excluded; default now), and the labels known in the same range (``since <= label_time <
as_of``), also those of older transactions: a label window counts a label by when it
became known.

Idempotent and resumable: every item is written unconditionally with values that depend on
the input only, in chunks of ``CHUNK_ITEMS`` (one DynamoDB BatchWriteItem each, retried on
throttling by ``put_many``), so a rerun after a kill rewrites the same values. The
watermark item (``STATE_WATERMARK_KEY``) and the API's heartbeat (``STATE_LIVE_KEY``) are
deleted first and the watermark written last: it exists only after a complete load, and
says which transactions and labels the state reflects. A load
replaces the state of every card and terminal in the history (what the API applied to them
since is overwritten): run it before the API takes traffic, or with history up to now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from fraud.features.online import (STATE_LIVE_KEY, STATE_WATERMARK_KEY, OnlineFeatures, _add_label_states,
                                   history_states, read_watermark)
from fraud.features.spec import FeatureSpec
from fraud.progress import progress_bar
from fraud.pseudonym import Pseudonymizer
from fraud.schema import CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TIMESTAMP
from fraud.storage.kv import KeyValueStore
from fraud.validation import InputError

from .history import lookback

CHUNK_ITEMS = 25  # one BatchWriteItem


@dataclass
class StateLoadSummary:
    cards: int
    terminals: int
    rows: int
    labels: int
    first: str | None
    items: int
    watermark: dict
    seconds: float = 0.0

    def lines(self) -> list[str]:
        w = self.watermark
        return [f"cards:        {self.cards}",
                f"terminals:    {self.terminals}",
                f"transactions: {self.rows} ({self.first} .. {w['transactions_until']})",
                f"labels:       {self.labels} (known until {w['labels_until']})",
                f"items:        {self.items} in chunks of {CHUNK_ITEMS}",
                f"watermark:    {w}",
                f"seconds:      {self.seconds:.1f}"]


def _ts(value) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise InputError(f"not a date or time: {value!r}") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _iso(ts) -> str | None:
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat()


def select_history(frame: pd.DataFrame, spec: FeatureSpec, since=None, as_of=None):
    """(transactions, labelled rows, since, as_of): what the state is built from. ``as_of``
    None: now (a label time in the future is not known yet; the API refuses such timestamps)."""
    as_of, since = _ts(as_of), _ts(since)
    if as_of is None:
        as_of = pd.Timestamp.now(tz="UTC")
    before = frame.loc[frame[TIMESTAMP] < as_of] if len(frame) else frame
    if not len(before):
        raise InputError(f"no transactions to load before {as_of}")
    if since is None:
        since = before[TIMESTAMP].max() - lookback(spec)
    txns = before.loc[before[TIMESTAMP] >= since]
    if LABEL_TIME in frame.columns and LABEL in frame.columns:
        known = frame[LABEL_TIME].notna() & (frame[LABEL_TIME] >= since) & (frame[LABEL_TIME] < as_of)
        labels = frame.loc[known]
    else:
        labels = frame.iloc[:0]
    return txns, labels, since, as_of


def build_state(frame: pd.DataFrame, spec: FeatureSpec, keys: Pseudonymizer, since=None, as_of=None,
                source: str = "", extra: dict | None = None):
    """(items by key, summary without timing): the state after the selected history."""
    txns, labels, since, as_of = select_history(frame, spec, since, as_of)
    states = history_states(txns.drop(columns=[LABEL_TIME], errors="ignore"), spec, None, keys)
    if len(labels):
        _add_label_states(labels, spec, None, states, keys, usage=txns)
    watermark = {"transactions_until": _iso(txns[TIMESTAMP].max()) if len(txns) else None,
                 "labels_until": _iso(labels[LABEL_TIME].max()) if len(labels) else None,
                 "loaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "since": _iso(since), "as_of": _iso(as_of),
                 "cards": int(txns[CARD_ID].nunique()),
                 "terminals": int(pd.concat([txns[TERMINAL_ID], labels[TERMINAL_ID]]).nunique()),
                 "source": str(source), "spec_version": spec.version, **(extra or {})}
    summary = StateLoadSummary(cards=watermark["cards"], terminals=watermark["terminals"], rows=len(txns),
                               labels=len(labels), first=_iso(txns[TIMESTAMP].min()) if len(txns) else None,
                               items=len(states), watermark=watermark)
    return states, summary


def write_state(store: KeyValueStore, states: dict[str, dict], watermark: dict, ttl_seconds: float | None,
                progress: bool = False, chunk_items: int = CHUNK_ITEMS) -> None:
    """Watermark off, every item in chunks (sorted keys: the same chunks every run), watermark on."""
    store.delete(STATE_WATERMARK_KEY)
    store.delete(STATE_LIVE_KEY)  # the API's heartbeat vouched for state this load overwrites
    keys = sorted(states)
    for lo in progress_bar(range(0, len(keys), chunk_items), enabled=progress, desc="state load", unit="chunk"):
        store.put_many({k: states[k] for k in keys[lo:lo + chunk_items]}, ttl_seconds=ttl_seconds)
    store.put(STATE_WATERMARK_KEY, watermark)


def load_state(frame: pd.DataFrame, spec: FeatureSpec, store: KeyValueStore, keys: Pseudonymizer, since=None,
               as_of=None, source: str = "", progress: bool = False, extra: dict | None = None) -> StateLoadSummary:
    """Build the state from ``frame`` and write it to ``store`` (see the module docstring)."""
    started = time.monotonic()
    states, summary = build_state(frame, spec, keys, since, as_of, source, extra)
    ttl = OnlineFeatures(spec, store, keys=keys).ttl  # the API's: its own updates keep the same expiry
    write_state(store, states, summary.watermark, ttl, progress)
    summary.seconds = time.monotonic() - started
    return summary
