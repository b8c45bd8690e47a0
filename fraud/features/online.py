"""Online features: one transaction at a time against per-entity state in a key-value store.

Per card and per terminal the state holds running totals (count, sum, sum of squares of
amounts, last time) and, per bucket width, the totals as they stood before the first
transaction of each recent bucket. A window's aggregate is "totals now" minus "totals
before the window's first bucket with activity": the same numbers, added in the same
order, as ``batch.build_features``. Old buckets are pruned on every update, so the state
is bounded by the longest window.

The card's state also keeps ``seen``: terminal token -> time the card last used it (a JSON
object, in order of last use), for ``card_terminal_seen_before`` (1 when the card used
this terminal at most ``history_window`` seconds before). Every update drops the entries
older than the window and then, beyond ``MAX_SEEN_TERMINALS`` entries, the least recently
used ones, so the card's document stays under about 35 KB whatever the card does (DynamoDB
refuses items over 400 KB). The engines agree exactly for a card with fewer than
``MAX_SEEN_TERMINALS`` distinct terminals in the window; beyond that (a card-testing
burst) the oldest are forgotten and online may read 0 where batch reads 1: a deliberate
bound on the state. A state written before ``seen`` had times holds a list of tokens
without them; it is migrated on read by dropping it (the card's terminals read as unseen
until used again, at most one window; ``load_history`` rebuilds it exactly).

A transaction reads its card's and its terminal's state in one batched read, and writes
both back in one transaction (``KeyValueStore.transact``: versioned conditional writes,
all or nothing, retried on conflict) together with a record of the features it got. So a
transaction's own update is visible to the next transaction of the same card, also under
concurrency, and applying a transaction is idempotent: a retry (the request died before
answering, or a batch failed after its features were computed) finds the record and gets
the same features back instead of counting the transaction twice (for ``APPLIED_TTL_S``).

Transactions arrive in time order per entity (as an authorisation stream does); a late one
is counted in the totals but moves no clock backwards (its time since the previous
transaction is missing), and the API refuses timestamps beyond a small clock skew into the
future, so no single transaction can prune another's history. Labels arrive through
``add_label`` at the time they become known.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..pseudonym import Pseudonymizer
from ..schema import AMOUNT, CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID, epoch_seconds
from ..storage.kv import ConditionFailed, KeyValueStore, Write
from . import derive
from .spec import (CARD, CARD_TERMINAL, HISTORY_AGGREGATIONS, LABEL_AGGREGATIONS, TERMINAL, TRANSACTION,
                   WINDOW_AGGREGATIONS, FeatureSpec, bucket_seconds, n_buckets)

if TYPE_CHECKING:  # pandas is imported where it is used: scoring one transaction needs none of it
    import pandas as pd

NAN = float("nan")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
APPLIED_PREFIX = "applied#"
APPLIED_TTL_S = 7 * 86400  # a retry later than this would count its transaction again
MAX_ATTEMPTS = 20
LABEL_APPLIED_PREFIX = "label-applied#"
LABEL_MARKER_TTL_S = 400 * 86400  # as long as labels are kept: a later duplicate must still find it
STATE_WATERMARK_KEY = "state-watermark"  # what transactions and labels a bulk-loaded state reflects
STATE_LIVE_KEY = "state-live"  # the newest transaction the API applied to a fresh state (its heartbeat)
MAX_SEEN_TERMINALS = 1000  # per card: about 30 bytes each in its state document


def read_watermark(store: KeyValueStore) -> dict | None:
    """The state's watermark (``STATE_WATERMARK_KEY``): written last by a bulk load; None
    while the state was never (completely) loaded."""
    item = store.get(STATE_WATERMARK_KEY)
    return None if item is None else item.value


def entity_key(keys: Pseudonymizer, kind: str, entity_id: str) -> str:
    """Store key: a keyed hash of the id, so card numbers never sit in the table in clear
    and cannot be recovered from it without the key."""
    return f"{kind}#{keys.digest(kind, entity_id)}"


def _seen_token(keys: Pseudonymizer, terminal_id: str) -> str:
    """How a card's state remembers a terminal it has used."""
    return keys.digest(TERMINAL, terminal_id, 16)


def _remember_terminal(seen: dict, token: str, t: int, now: int, window: int, cap: int) -> dict:
    """``seen`` after the card used ``token`` at ``t`` (``now``: the card's clock): entries in
    order of last use, none older than ``window`` before ``now``, at most ``cap`` of them."""
    if seen.get(token, t) <= t:  # a late transaction moves no use backwards
        seen.pop(token, None)
        seen[token] = t
    excess, drop = len(seen) - cap, []
    for k, used in seen.items():  # oldest first: stops at the first entry kept
        if len(drop) >= excess and now - used <= window:
            break
        drop.append(k)
    for k in drop:
        del seen[k]
    return seen


def to_epoch_seconds(value) -> int:
    """datetime / pandas Timestamp / ISO-8601 text / epoch number -> whole UTC seconds."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return math.floor(value)
    if isinstance(value, str):
        import pandas as pd

        value = pd.Timestamp(value)
    if isinstance(value, datetime):  # includes pandas Timestamps; naive means UTC
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        delta = value - EPOCH  # integer arithmetic: floors exactly, like the batch path
        return delta.days * 86400 + delta.seconds
    raise TypeError(f"cannot read a timestamp from {value!r}")


def _empty_state() -> dict:
    return {"n": 0, "s": 0.0, "q": 0.0, "last": None, "snaps": {}}


def _base(snaps: list, begin_bucket: int, current: list) -> list:
    """Totals before the first active bucket >= begin_bucket (or now, if none)."""
    for entry in snaps:
        if entry[0] >= begin_bucket:
            return entry
    return current


def _record_bucket(state_snaps: dict, t: int, granularities: dict[int, int], current: list) -> None:
    """Snapshot the totals at the start of t's bucket, per width; prune expired buckets."""
    for g, keep in granularities.items():
        b = t // g
        snaps = state_snaps.setdefault(str(g), [])
        if not snaps or snaps[-1][0] < b:
            snaps.append([b, *current])
        oldest = b - keep + 1
        while snaps and snaps[0][0] < oldest:
            snaps.pop(0)


class OnlineFeatures:
    """Compute features for one transaction and fold it into the state."""

    def __init__(self, spec: FeatureSpec, store: KeyValueStore, ttl_seconds: float | None = None,
                 keys: Pseudonymizer | None = None, max_seen_terminals: int = MAX_SEEN_TERMINALS):
        """``keys`` hashes card and terminal ids into state keys; without one, a random key
        for this instance (state written by it is then unreadable by any other)."""
        self.spec = spec
        self.max_seen = max_seen_terminals
        self.store = store
        self.keys = keys or Pseudonymizer.ephemeral()
        self.ttl = ttl_seconds if ttl_seconds is not None else spec.history_window + 7 * 86400
        aggs = WINDOW_AGGREGATIONS + HISTORY_AGGREGATIONS
        self._card_windows = [(f, bucket_seconds(f.window), n_buckets(f.window)) for f in spec.of(CARD) if f.window]
        self._term_windows = [(f, bucket_seconds(f.window), n_buckets(f.window)) for f in spec.of(TERMINAL)
                              if f.aggregation in WINDOW_AGGREGATIONS]
        self._label_windows = [(f, bucket_seconds(f.window), n_buckets(f.window)) for f in spec.of(TERMINAL)
                               if f.aggregation in LABEL_AGGREGATIONS]
        self._card_grans = spec.granularities(CARD, aggs)
        self._term_grans = spec.granularities(TERMINAL, WINDOW_AGGREGATIONS)
        self._label_grans = spec.granularities(TERMINAL, LABEL_AGGREGATIONS)
        self._card_other = [f for f in spec.of(CARD) if not f.window]
        self._pair = spec.of(CARD_TERMINAL)
        self._row = spec.of(TRANSACTION)

    # -- the transaction path ------------------------------------------------------------
    def process(self, txn: Mapping) -> dict[str, float]:
        """Features of ``txn`` (canonical keys, ``transaction_id`` included), with card and
        terminal state updated; the features it got the first time if it was applied before."""
        t = to_epoch_seconds(txn[TIMESTAMP])
        amount = float(txn[AMOUNT])
        term_hash = _seen_token(self.keys, txn[TERMINAL_ID])
        steps = []  # (state key, step: old state -> (new state, features))
        if self._card_windows or self._card_other or self._pair:
            steps.append((entity_key(self.keys, CARD, txn[CARD_ID]),
                          lambda old: self._card_step(old, t, amount, term_hash)))
        if self._term_windows or self._label_windows:
            steps.append((entity_key(self.keys, TERMINAL, txn[TERMINAL_ID]),
                          lambda old: self._terminal_step(old, t, amount)))
        applied_key = APPLIED_PREFIX + str(txn[TRANSACTION_ID])
        row_features = self._row_features(txn, t, amount)
        for _ in range(MAX_ATTEMPTS):
            found = self.store.get_many([applied_key] + [key for key, _ in steps])
            if applied_key in found:
                return _features_from_record(found[applied_key].value, self.spec.names)
            out = dict(row_features)
            writes = []
            for key, step in steps:
                old = found.get(key)
                state, features = step(None if old is None else old.value)
                out.update(features)
                writes.append(Write(key, state, 0 if old is None else old.version, self.ttl))
            features = {name: out[name] for name in self.spec.names}
            writes.append(Write(applied_key, _features_record(features), 0, APPLIED_TTL_S))
            try:
                self.store.transact(writes)
                return features
            except ConditionFailed:  # another transaction of the same card or terminal won: redo
                continue
        raise ConditionFailed(f"{applied_key}: gave up after {MAX_ATTEMPTS} concurrent modifications")

    def _row_features(self, txn, t, amount) -> dict:
        out = {}
        hour, weekday, night, weekend = derive.calendar_one(t, self.spec.night_hours, self.spec.timezone)
        for f in self._row:
            agg = f.aggregation
            if agg == "amount":
                out[f.name] = amount
            elif agg == "log_amount":
                out[f.name] = math.log1p(amount)
            elif agg == "hour":
                out[f.name] = hour
            elif agg == "weekday":
                out[f.name] = weekday
            elif agg == "is_night":
                out[f.name] = night
            elif agg == "is_weekend":
                out[f.name] = weekend
            elif agg == "distance_km":
                out[f.name] = derive.haversine_km_one(txn.get("card_lat"), txn.get("card_lon"),
                                                      txn.get("terminal_lat"), txn.get("terminal_lon"))
            elif agg == "is_online":
                out[f.name] = derive.is_online_one(txn.get("channel"))
        return out

    def _window_values(self, state, windows, t, amount, out) -> None:
        n, s, q = state["n"], state["s"], state["q"]
        current = [None, n, s, q]
        for f, g, nb in windows:
            base = _base(state["snaps"].get(str(g), ()), t // g - nb + 1, current)
            agg = f.aggregation
            if agg in HISTORY_AGGREGATIONS:
                ratio, z = derive.history_ratio_z_one(amount, n - base[1], s - base[2], q - base[3])
                out[f.name] = ratio if agg == "amount_ratio" else z
            else:
                count = float(n + 1 - base[1])
                total = (s + amount) - base[2]
                out[f.name] = count if agg == "count" else total if agg == "sum" else total / count

    def _card_step(self, old, t, amount, term_hash):
        state = old or {**_empty_state(), "seen": {}}
        seen = state.get("seen")
        if not isinstance(seen, dict):  # a list from before seen had times: dropped (module docstring)
            seen = {}
        out: dict[str, float] = {}
        self._window_values(state, self._card_windows, t, amount, out)
        for f in self._card_other:  # a late (out-of-order) transaction has no known previous one: missing
            out[f.name] = float(t - state["last"]) if state["last"] is not None and t >= state["last"] else NAN
        used = seen.get(term_hash)  # pruned at the last update, not since: check the age
        for f in self._pair:
            out[f.name] = float(used is not None and t - used <= self.spec.history_window)
        self._advance(state, t, amount, self._card_grans)
        state["seen"] = _remember_terminal(seen, term_hash, t, state["last"], self.spec.history_window,
                                           self.max_seen)
        return state, out

    def _terminal_step(self, old, t, amount):
        state = old or {**_empty_state(), "ln": 0, "lf": 0, "lsnaps": {}}
        out: dict[str, float] = {}
        self._window_values(state, self._term_windows, t, amount, out)
        current = [None, state["ln"], state["lf"]]
        for f, g, nb in self._label_windows:
            base = _base(state["lsnaps"].get(str(g), ()), t // g - nb + 1, current)
            labels, frauds = float(state["ln"] - base[1]), float(state["lf"] - base[2])
            out[f.name] = labels if f.aggregation == "label_count" else derive.rate_one(frauds, labels)
        self._advance(state, t, amount, self._term_grans)
        return state, out

    @staticmethod
    def _advance(state, t, amount, granularities) -> None:
        _record_bucket(state["snaps"], t, granularities, [state["n"], state["s"], state["q"]])
        state["n"] += 1
        state["s"] = state["s"] + amount
        state["q"] = state["q"] + amount * amount
        state["last"] = t if state["last"] is None else max(state["last"], t)  # never backwards

    # -- the label path ------------------------------------------------------------------
    def add_label(self, terminal_id: str, is_fraud: bool, known_at, label_id: str | None = None) -> None:
        """A label became known at ``known_at`` for a transaction at ``terminal_id``.

        With ``label_id`` (the labelled transaction's id) the label counts once however often
        it is applied: the terminal's state and a marker are written in one transaction, so
        a request that died after the write and is retried finds the marker."""
        if not self._label_windows:
            return
        t = to_epoch_seconds(known_at)
        key = entity_key(self.keys, TERMINAL, terminal_id)
        marker = None if label_id is None else LABEL_APPLIED_PREFIX + str(label_id)
        for _ in range(MAX_ATTEMPTS):
            found = self.store.get_many([key] if marker is None else [key, marker])
            if marker in found:
                return
            old = found.get(key)
            state = (old.value if old else None) or {**_empty_state(), "ln": 0, "lf": 0, "lsnaps": {}}
            _record_bucket(state["lsnaps"], t, self._label_grans, [state["ln"], state["lf"]])
            state["ln"] += 1
            state["lf"] += int(bool(is_fraud))
            writes = [Write(key, state, old.version if old else 0, self.ttl)]
            if marker is not None:
                writes.append(Write(marker, {}, 0, LABEL_MARKER_TTL_S))
            try:
                self.store.transact(writes)
                return
            except ConditionFailed:  # the terminal's state moved meanwhile: redo on fresh state
                continue
        raise ConditionFailed(f"{key}: gave up adding a label after {MAX_ATTEMPTS} concurrent modifications")

    # -- bulk build from history -----------------------------------------------------------
    def load_history(self, history: pd.DataFrame, as_of=None) -> int:
        """Write the state as it stands after ``history`` (transactions before ``as_of``,
        labels known before ``as_of``); returns the number of entities written."""
        as_of = None if as_of is None else to_epoch_seconds(as_of)
        states = history_states(history, self.spec, as_of, self.keys, self.max_seen)
        self.store.put_many(states, ttl_seconds=self.ttl)
        return len(states)


def _features_record(features: dict[str, float]) -> dict:
    """JSON has no NaN (a missing feature): stored as null."""
    return {"features": {k: (None if v != v else v) for k, v in features.items()}}


def _features_from_record(record: dict, names: list[str]) -> dict[str, float]:
    """The recorded features under ``names``; one the record lacks (a new champion with
    another feature spec arrived between the attempt and its retry) is missing (NaN)."""
    stored = record["features"]
    return {name: NAN if stored.get(name) is None else stored[name] for name in names}


def history_states(history: pd.DataFrame, spec: FeatureSpec, as_of: int | None,
                   keys: Pseudonymizer, max_seen: int = MAX_SEEN_TERMINALS) -> dict[str, dict]:
    """Per-entity state after replaying ``history``, computed in bulk (same floats as replay,
    and the same ``seen``: the card's latest use of each terminal within the window before
    its last transaction, the ``max_seen`` most recent, in order of last use)."""
    from .batch import _last_of_pair, _Prepared, _running_totals

    df = history
    if as_of is not None:
        df = df.loc[epoch_seconds(df[TIMESTAMP]) < as_of]
    prep = _Prepared(df)  # the batch engine's ordering: (entity, time, tiebreak)
    states: dict[str, dict] = {}
    aggs = WINDOW_AGGREGATIONS + HISTORY_AGGREGATIONS
    plans = [(CARD, CARD_ID, spec.granularities(CARD, aggs)),
             (TERMINAL, TERMINAL_ID, spec.granularities(TERMINAL, WINDOW_AGGREGATIONS))]
    for kind, column, grans in plans:
        _, n_entities, perm, starts = prep.entity(df, column)
        ids = df[column].to_numpy(dtype=object)[perm]
        t, amount = prep.t[perm], prep.amount[perm]
        before_s, before_q = _running_totals(starts, amount)
        terms = df[TERMINAL_ID].to_numpy(dtype=object)[perm] if kind == CARD else None
        if kind == CARD:  # rows of each card's latest use of a terminal, within the window
            term_codes, n_terms, _, _ = prep.entity(df, TERMINAL_ID)
            clock = np.repeat(t[starts[1:] - 1], np.diff(starts))  # the card's last time, per row
            recent = np.flatnonzero(_last_of_pair(starts, term_codes[perm], n_terms)
                                    & (clock - t <= spec.history_window))
            recent_bounds = np.searchsorted(recent, starts)
        for g_idx in range(n_entities):
            lo, hi = starts[g_idx], starts[g_idx + 1]
            last = hi - 1
            state = {"n": int(hi - lo), "s": float(before_s[last] + amount[last]),
                     "q": float(before_q[last] + amount[last] * amount[last]), "last": int(t[last]), "snaps": {}}
            for g, keep in grans.items():
                buckets = t[lo:hi] // g
                first = np.r_[True, buckets[1:] != buckets[:-1]]
                oldest = t[last] // g - keep + 1
                rows = np.flatnonzero(first & (buckets >= oldest)) + lo
                state["snaps"][str(g)] = [[int(t[r] // g), int(r - lo), float(before_s[r]), float(before_q[r])]
                                          for r in rows]
            if kind == CARD:
                rows = recent[recent_bounds[g_idx]:recent_bounds[g_idx + 1]][-max_seen:]
                state["seen"] = {_seen_token(keys, terms[r]): int(t[r]) for r in rows}
            else:
                state.update(ln=0, lf=0, lsnaps={})
            states[entity_key(keys, kind, ids[lo])] = state
    _add_label_states(history, spec, as_of, states, keys)
    return states


def _add_label_states(history, spec, as_of, states, keys: Pseudonymizer) -> None:
    import pandas as pd

    grans = spec.granularities(TERMINAL, LABEL_AGGREGATIONS)
    if not grans or LABEL not in history.columns or LABEL_TIME not in history.columns:
        return
    from ..schema import tiebreak

    labelled = history.loc[history[LABEL_TIME].notna()]
    lt = epoch_seconds(labelled[LABEL_TIME])
    if as_of is not None:
        labelled, lt = labelled.loc[lt < as_of], lt[lt < as_of]
    tb = tiebreak(labelled[TRANSACTION_ID].to_numpy(dtype=object))
    frame = pd.DataFrame({"term": labelled[TERMINAL_ID].to_numpy(dtype=object), "lt": lt, "tb": tb,
                          "fraud": labelled[LABEL].to_numpy().astype(np.int64)})
    frame = frame.sort_values(["term", "lt", "tb"], kind="stable")
    for term, events in frame.groupby("term", sort=False):
        key = entity_key(keys, TERMINAL, term)
        state = states.setdefault(key, {**_empty_state(), "ln": 0, "lf": 0, "lsnaps": {}})
        et, fraud = events["lt"].to_numpy(), events["fraud"].to_numpy()
        before_f = np.r_[0, np.cumsum(fraud)[:-1]]
        for g, keep in grans.items():
            buckets = et // g
            first = np.r_[True, buckets[1:] != buckets[:-1]]
            rows = np.flatnonzero(first & (buckets >= et[-1] // g - keep + 1))
            state["lsnaps"][str(g)] = [[int(buckets[r]), int(r), int(before_f[r])] for r in rows]
        state["ln"] = int(len(et))
        state["lf"] = int(fraud.sum())
